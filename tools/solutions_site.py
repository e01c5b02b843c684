"""Build the instructors' "solutions" site: the assignments with their solutions shown and
their hidden tests removed, for release after the deadline. Run it with `make solutions-book`.

The site is a separate Jupyter Book under ``_build/solutions/``; the default book never
contains solutions. Each source notebook in ``solutions/`` is copied with nbgrader's
``ClearHiddenTests`` applied, the solution markers dropped and outputs cleared, then executed
by the build so that the visible tests show their results.
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

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", re.M)


def solution_notebook(source: Path) -> nbformat.NotebookNode:
    """The source notebook without hidden tests, solution markers or outputs."""
    nb = nbformat.read(source, as_version=4)
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    for cell in nb.cells:
        cell.source = SOLUTION_MARKER.sub("", cell.source)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def write_book(out: Path) -> None:
    """Write the solution notebooks and a book configuration into ``out``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assignments = sorted(p for p in (ROOT / "solutions").glob("*/*.ipynb"))
    for source in assignments:
        nbformat.write(solution_notebook(source), out / source.name)
    (out / "index.md").write_text(
        f"# {config['title']}: solutions\n\n"
        "Worked solutions of the assignments, with their visible tests. Hidden tests are not "
        "included.\n"
    )
    toc = {
        "format": "jb-book",
        "root": "index",
        "chapters": [{"file": p.stem} for p in assignments],
    }
    (out / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    config["title"] = f"{config['title']}: solutions"
    config["exclude_patterns"] = ["_build"]
    config["execute"]["execute_notebooks"] = "force"
    config["bibtex_bibfiles"] = [str(ROOT / "references.bib")]
    extensions = config["sphinx"]["local_extensions"]
    config["sphinx"]["local_extensions"] = {
        name: str(ROOT / path) for name, path in extensions.items()
    }
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "solutions")
    args = parser.parse_args()
    source = args.out / "source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    write_book(source)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = [str(jupyter_book), "build", str(source), "--path-output", str(args.out),
             "--warningiserror", "--keep-going"]  # fmt: skip
    return subprocess.run(build, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
