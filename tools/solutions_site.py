"""Build the instructors' "solutions" site: the chapters' exercises with their solutions, and
the assignments with their solutions shown and their hidden tests removed, for release after
the deadline. Run it with `make solutions-book`.

The site is a separate Jupyter Book under ``_build/solutions/``; the default book never
contains solutions.

- A page per chapter: the solutions of a chapter's exercises live in
  ``book/solutions/<chapter>.md`` (a MyST notebook that the default book never reads), one
  sphinx-exercise ``solution-start``/``solution-end`` block per exercise, in the chapter's
  order, with any shared code cells between them. The page is that file with each
  exercise, copied from the chapter, put before its solution; the build executes it.
  ``book/solutions/experiments.py``, the experiments that the solutions run small and
  quote at full scale (from ``benchmarks/experiment_exercises.py``), goes beside the pages,
  which import it and show its code.
- A page per assignment: each source notebook in ``solutions/`` is copied with nbgrader's
  ``ClearHiddenTests`` applied, the solution markers dropped and outputs cleared, then
  executed by the build so that the visible tests show their results.

Every page is executed afresh at every build, in parallel (``tools/execute_notebooks.py``),
before Jupyter Book builds the site from the results.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml
from nbgrader.preprocessors import ClearHiddenTests

from tools.execute_notebooks import execute_in_parallel

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)
CHAPTER_SOLUTIONS = ROOT / "book" / "solutions"
# sphinx-exercise's gated blocks, as the chapters and the solution files write them
EXERCISE = re.compile(r"^```\{exercise-start\}.*?^```\{exercise-end\}\n```\n", re.M | re.S)
SOLUTION = re.compile(r"^```\{solution-start\} (\S+)\n.*?^```\{solution-end\}\n```\n", re.M | re.S)
LABEL = re.compile(r"^:label: (\S+)$", re.M)
CROSS_REFERENCE = re.compile(r"\{(?:eq|numref|ref|doc)\}`")


def chapter_exercises(chapter: Path) -> dict[str, str]:
    """The chapter's exercises, ``{label: its gated block}``, in the chapter's order."""
    blocks = EXERCISE.findall(chapter.read_text())
    return {LABEL.search(block).group(1): block for block in blocks}


def chapter_solutions(solutions: Path) -> list[tuple[str | None, str]]:
    """The solution file cut into ``(label, solution block)`` and ``(None, anything else)``
    pieces, in order."""
    source, pieces, at = solutions.read_text(), [], 0
    for match in SOLUTION.finditer(source):
        pieces += [(None, source[at : match.start()]), (match.group(1), match.group(0))]
        at = match.end()
    return [*pieces, (None, source[at:])]


def chapter_page(chapter: Path, solutions: Path) -> str:
    """The solutions page of a chapter: its solution file with each exercise before its
    solution. Fails unless every exercise has exactly one solution, in the same order, and
    the exercises refer to nothing that only the chapter defines."""
    exercises = chapter_exercises(chapter)
    pieces = chapter_solutions(solutions)
    solved = [label for label, _ in pieces if label is not None]
    if solved != list(exercises):
        raise SystemExit(
            f"{solutions.relative_to(ROOT)}: solutions {solved} do not match the exercises of "
            f"{chapter.relative_to(ROOT)}, {list(exercises)} (one each, in the same order)"
        )
    for label, block in exercises.items():
        if CROSS_REFERENCE.search(block):
            raise SystemExit(f"exercise {label}: a cross-reference to the chapter cannot "
                             "resolve on the solutions site; write it out")  # fmt: skip
    return "".join(exercises[label] + "\n" + text if label else text for label, text in pieces)


def solution_notebook(source: Path) -> nbformat.NotebookNode:
    """The source notebook without hidden tests, solution markers or outputs."""
    nb = nbformat.read(source, as_version=4)
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    for cell in nb.cells:
        cell.source = SOLUTION_MARKER.sub("", cell.source)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def write_book(out: Path, cache: Path) -> list[Path]:
    """Write the chapters' and the assignments' solution pages and a book configuration,
    whose execution cache is ``cache``, into ``out``; returns the pages."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    book_toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [ROOT / f"{entry['file']}.md" for part in book_toc["parts"]
                for entry in part["chapters"]]  # fmt: skip
    chapters = [c for c in chapters if (CHAPTER_SOLUTIONS / c.name).exists()]
    for chapter in chapters:
        (out / chapter.name).write_text(chapter_page(chapter, CHAPTER_SOLUTIONS / chapter.name))
    shutil.copy2(CHAPTER_SOLUTIONS / "experiments.py", out)
    assignments = sorted(p for p in (ROOT / "solutions").glob("*/*.ipynb"))
    for source in assignments:
        nbformat.write(solution_notebook(source), out / source.name)
    (out / "index.md").write_text(
        f"# {config['title']}: solutions\n\n"
        "Worked solutions of the chapters' exercises, in the chapters' order and with the "
        "same numbers, and of the assignments, with their visible tests. Hidden tests are "
        "not included.\n\n## References\n\n```{bibliography}\n```\n"
    )
    toc = {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {"caption": "Exercises", "chapters": [{"file": c.stem} for c in chapters]},
            {"caption": "Assignments", "chapters": [{"file": p.stem} for p in assignments]},
        ],
    }
    (out / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    config["title"] = f"{config['title']}: solutions"
    config["exclude_patterns"] = ["_build"]
    config["execute"]["cache"] = str(cache)
    config["sphinx"]["config"]["chapter_notebooks"] = False
    config["bibtex_bibfiles"] = [str(ROOT / "references.bib")]
    extensions = config["sphinx"]["local_extensions"]
    config["sphinx"]["local_extensions"] = {
        name: str(ROOT / path) for name, path in extensions.items()
    }
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return [out / chapter.name for chapter in chapters] + [out / p.name for p in assignments]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "solutions")
    args = parser.parse_args()
    source, cache = args.out / "source", args.out / ".jupyter_cache"
    for folder in (source, cache):  # every page is executed afresh
        shutil.rmtree(folder, ignore_errors=True)
    source.mkdir(parents=True)
    pages = write_book(source, cache)
    config = yaml.safe_load((source / "_config.yml").read_text())
    execute_in_parallel(pages, cache, config["execute"]["timeout"])
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = [str(jupyter_book), "build", str(source), "--path-output", str(args.out),
             "--warningiserror", "--keep-going"]  # fmt: skip
    return subprocess.run(build, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
