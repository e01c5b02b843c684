"""The published book: it builds with warnings as errors and publishes no solutions."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.test_course import SOLUTION_REGION, SOURCE_NOTEBOOKS, secret_lines

ROOT = Path(__file__).resolve().parents[1]


def toc_files() -> list[str]:
    """Every page listed in _toc.yml, in order."""

    def walk(entries: list[dict]) -> list[str]:
        return [f for e in entries for f in [e["file"], *walk(e.get("sections", []))]]

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *walk([c for part in toc["parts"] for c in part["chapters"]])]


def html_pages(site: Path) -> list[Path]:
    """The pages a reader can reach: the table of contents, the index and the search page."""
    special = ["index", "genindex", "search"]
    return [site / f"{page}.html" for page in [*special, *toc_files()]]


def test_every_page_of_the_toc_is_built(built_book):
    assert (built_book / "index.html").exists()
    for page in toc_files():
        assert (built_book / f"{page}.html").exists(), page


def test_chapters_are_executed_and_show_no_errors(built_book):
    for page in toc_files():
        html = (built_book / f"{page}.html").read_text()
        assert "Traceback" not in html and 'class="output traceback' not in html, page
        if (ROOT / f"{page}.md").read_text().count("{code-cell}"):
            assert "cell_output" in html, f"{page} was not executed"


def test_the_book_publishes_no_solutions_and_no_hidden_tests(built_book):
    assert not list(built_book.rglob("solutions")), "solutions/ was published"
    published = "\n".join(p.read_text(errors="ignore") for p in built_book.rglob("*.html"))
    # a notebook's lines, whole, less the chapters' own (public) lines: a chapter may use
    # a common line such as `with torch.no_grad():` that a solution uses too
    chapters = {line.strip() for p in (ROOT / "book").glob("*.md")
                for line in p.read_text().splitlines()}  # fmt: skip
    notebook_lines = {line.strip() for p in built_book.rglob("*.ipynb")
                      for cell in nbformat.read(p, as_version=4).cells
                      for line in cell.source.splitlines()} - chapters  # fmt: skip
    for notebook in SOURCE_NOTEBOOKS:
        leaked = [line for line in secret_lines(notebook)
                  if line in published or line in notebook_lines]  # fmt: skip
        assert not leaked, f"{notebook.parent.name}: {leaked[:3]}"


def chapter_solution_lines() -> dict[str, set[str]]:
    """For each chapter, the distinctive lines of its exercises' solutions: lines of code and
    lines of prose that the page shows verbatim (no markup, no quotes that Sphinx would curl),
    at least 16 characters long and in no chapter's own source."""
    from tools.solutions_site import CHAPTER_SOLUTIONS, SOLUTION

    chapters = "\n".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    found = {}
    for path in sorted(CHAPTER_SOLUTIONS.glob("*.md")):
        lines = set()
        for block in SOLUTION.finditer(path.read_text()):
            in_code = False
            for line in block.group(0).splitlines():
                if line.startswith("```"):
                    in_code = line.startswith("```{code-cell}")
                    continue
                line = line.strip()
                if line.startswith(":"):  # a directive's option (:tags:, :pyobject:)
                    continue
                verbatim = in_code or not re.search(r"[$`*{}\\'\"]|--|\.\.\.", line)
                if verbatim and len(line) >= 16 and line not in chapters:
                    lines.add(line)
        assert lines, path
        found[path.stem] = lines
    return found


def page_text(page: Path) -> str:
    """What a reader reads on an HTML page: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_the_book_publishes_no_solution_of_the_exercises(built_book):
    """No page, search index, source or notebook download holds a line of a solution."""
    files = [p for p in built_book.rglob("*") if "_mathjax" not in p.parts
             and p.suffix in {".html", ".js", ".txt", ".ipynb", ".md", ".json"}]  # fmt: skip
    assert "searchindex.js" in {p.name for p in files}
    published = "\n".join(p.read_text(errors="ignore") for p in files)
    published += "\n".join(page_text(p) for p in files if p.suffix == ".html")
    for chapter, lines in chapter_solution_lines().items():
        leaked = [line for line in lines if line in published]
        assert not leaked, f"{chapter}: {leaked[:3]}"
    from tools.solutions_site import CHAPTER_SOLUTIONS

    chapters = "\n".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    experiments = (CHAPTER_SOLUTIONS / "experiments.py").read_text().splitlines()
    leaked = [line for line in map(str.strip, experiments)
              if len(line) >= 16 and line not in chapters and line in published]  # fmt: skip
    assert not leaked, f"book/solutions/experiments.py: {leaked[:3]}"


def test_every_chapter_page_offers_its_notebook_and_the_site_ships_vislearn(built_book):
    """The download button offers the chapter as a notebook: an install cell, then exactly
    the chapter's cells; the wheel that cell installs is on the site."""
    import jupytext

    wheels = list((built_book / "wheels").glob("vislearn-*.whl"))
    assert len(wheels) == 1, wheels
    for page in toc_files():
        source = ROOT / f"{page}.md"
        if "{code-cell}" not in source.read_text():
            continue
        html_text = (built_book / f"{page}.html").read_text()
        links = re.findall(r'href="([^"]*_sources/[^"]*\.ipynb)"', html_text)
        assert len(links) == 1, f"{page}: {links}"
        notebook = nbformat.read((built_book / page).parent / links[0], as_version=4)
        install, *cells = notebook.cells
        assert wheels[0].name in install.source and "vislearn[data,book]" in install.source
        chapter = jupytext.read(source)
        assert [c.source for c in cells] == [c.source for c in chapter.cells], page
        assert not any(c.get("outputs") for c in cells), page


def test_chapters_are_committed_as_myst_notebooks_without_outputs():
    for page in toc_files():
        source = (ROOT / f"{page}.md").read_text()
        if "{code-cell}" in source:
            assert "format_name: myst" in source, page
    assert not list((ROOT / "book").rglob("*.ipynb")), "chapters are MyST Markdown, not .ipynb"


def test_every_assignment_page_offers_the_released_notebook_for_download(built_book):
    for released in sorted((ROOT / "assignments").glob("*/*.ipynb")):
        page = built_book / "book" / "assignments" / f"{released.parent.name}.html"
        assert page.exists(), f"no page for {released.parent.name}"
        links = re.findall(r'href="([^"]*_downloads/[^"]*\.ipynb)"', page.read_text())
        assert len(links) == 1, links
        download = (page.parent / links[0]).resolve()
        assert download.read_bytes() == released.read_bytes(), "the download is not the release"


def test_internal_links_and_assets_resolve(built_book):
    for page in html_pages(built_book):
        html = page.read_text()
        for target in re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', html):
            if re.match(r"^[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(built_book)} -> {target}"


def test_pages_load_nothing_from_other_sites(built_book):
    for page in html_pages(built_book):
        html = page.read_text()
        external = re.findall(
            r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(https?://[^"]+)"', html
        )
        external = [u for u in external if not u.startswith("http://localhost")]
        assert not external, f"{page.relative_to(built_book)} loads {external}"
    assert (built_book / "_mathjax" / "tex-chtml.js").exists()
    assert (built_book / "_mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


@pytest.mark.both_cores
def test_solutions_site_shows_solutions_and_never_hidden_tests():
    """`make solutions-book` builds a separate site with the solutions and no hidden tests."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "solutions-book"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    site = ROOT / "_build" / "solutions" / "_build" / "html"
    for notebook in SOURCE_NOTEBOOKS:
        page = (site / f"{notebook.stem}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))  # tags first: code holds "<" too
        solution = SOLUTION_REGION.findall(
            "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells)
        )
        solution_lines = {line.strip() for r in solution for line in r.splitlines()}
        assert all(line in text for line in solution_lines if len(line) >= 16)
        hidden = secret_lines(notebook) - solution_lines
        assert hidden and not [line for line in hidden if line in text]
    # a page per chapter: every exercise, each followed by its solution, whose code ran
    from tools.solutions_site import CHAPTER_SOLUTIONS, chapter_exercises

    for path in sorted(CHAPTER_SOLUTIONS.glob("*.md")):
        page = (site / f"{path.stem}.html").read_text()
        labels = list(chapter_exercises(ROOT / "book" / path.name))
        assert [f'id="{label}"' in page for label in labels] == [True] * len(labels), path
        solutions = re.findall(r'<div class="solution[^"]*"', page)
        assert len(solutions) == len(labels), f"{path.stem}: {len(solutions)} solutions"
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        missing = [line for line in chapter_solution_lines()[path.stem] if line not in text]
        assert not missing, f"{path.stem}: {missing[:3]}"
        assert "✓" in text and "✗" not in text, f"{path.stem}: a solution fails its check"
        assert "Traceback" not in text, path.stem


def test_every_figure_has_alt_text_and_a_caption(built_book):
    for page in toc_files():
        html_text = (built_book / f"{page}.html").read_text()
        images = re.findall(r"<img [^>]*>", html_text)
        for image in images:
            alt = re.search(r'alt="([^"]*)"', image)
            assert alt and len(alt.group(1)) > 20, f"{page}: image without alt text: {image[:120]}"
        captions = len(re.findall(r"<figcaption", html_text))
        assert captions >= len([i for i in images if "_images/" in i]), (
            f"{page}: figure without caption"
        )


def test_the_graphs_chapter_runs_without_the_planetoid_files(tmp_path, monkeypatch):
    """Without Cora's files (and no internet) the chapter falls back to the synthetic graph,
    says so, and still runs to the end."""
    import jupytext
    from nbclient import NotebookClient

    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("VISLEARN_DATA", str(empty))
    monkeypatch.setenv("MPLBACKEND", "agg")
    notebook = jupytext.read(ROOT / "book" / "graphs.md")
    NotebookClient(
        notebook, timeout=600, resources={"metadata": {"path": str(ROOT / "book")}}
    ).execute()
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "Cora is not available here" in text
    assert "SYNTHETIC data, not Cora" in text


BLOCK_START = re.compile(r"^\s*(?:[-+*]|\d+[.)]|>|#{1,6})(?:\s|$)")


def wrapped_block_starts(source: str) -> list[tuple[int, str]]:
    """Lines of a MyST source that Markdown reads as a new list item, quote or heading
    although they continue a sentence: the wrapped line starts with ``+``, or with any block
    marker while an inline ``$...$`` of the paragraph is still open (outside code fences)."""
    found, fence, paragraph = [], None, ""
    for number, line in enumerate(source.splitlines(), 1):
        fenced = re.match(r"\s*(`{3,}|:{3,}|~{3,})", line)
        if fence or fenced:
            if fence is None:
                fence = fenced.group(1)
            elif line.strip().startswith(fence):
                fence = None
            paragraph = ""
            continue
        if not line.strip():
            paragraph = ""
            continue
        if paragraph and BLOCK_START.match(line):
            if line.lstrip().startswith("+ ") or paragraph.count("$") % 2:
                found.append((number, line.strip()))
        paragraph = line if re.match(r"^\s*(?:[-*]|\d+[.)])\s", line) else paragraph + line
    return found


def test_no_wrapped_line_starts_a_block_by_accident():
    assert wrapped_block_starts("- column sums of $\\mathbf{A}\n  + \\mathbf{I}$) divide") == [
        (2, "+ \\mathbf{I}$) divide")
    ]
    assert wrapped_block_starts("a sum $x$ of\n- a list item\n  + a sub-item") == [
        (3, "+ a sub-item")
    ]
    assert wrapped_block_starts("Two items:\n- $a$ and\n- $b$\n\n```\n+ code\n```") == []
    found = {
        page: hits
        for page in sorted((ROOT / "book").rglob("*.md"))
        if (hits := wrapped_block_starts(page.read_text()))
    }
    assert not found, found
