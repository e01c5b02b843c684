"""The published book: it builds with warnings as errors and publishes no solutions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.test_course import SOURCE_NOTEBOOKS, secret_lines

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


@pytest.fixture(scope="module")
def built_book() -> Path:
    """`make book` (warm when the chapters and vislearn are unchanged since the last build)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "book"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return HTML


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
    published += "\n".join(p.read_text(errors="ignore") for p in built_book.rglob("*.ipynb"))
    for notebook in SOURCE_NOTEBOOKS:
        leaked = [line for line in secret_lines(notebook) if line in published]
        assert not leaked, f"{notebook.parent.name}: {leaked[:3]}"


def test_chapters_are_committed_as_myst_notebooks_without_outputs():
    for page in toc_files():
        source = (ROOT / f"{page}.md").read_text()
        if "{code-cell}" in source:
            assert "format_name: myst" in source, page
    assert not list((ROOT / "book").rglob("*.ipynb")), "chapters are MyST Markdown, not .ipynb"
