"""A chapter downloaded from the built site runs where readers run notebooks.

A fresh virtual environment starts with nothing but the pinned torch and a Jupyter kernel
(ipykernel), and what these require. The chapter's notebook is downloaded from the site over
HTTP, as a reader's browser would, and executed in that environment from top to bottom,
exercise cells included (which the book itself does not run): its first cell installs
``vislearn`` with its ``data`` and ``book`` extras from the site's wheel, and pip brings what
the wheel depends on. The chapter is the conventions chapter, the cheapest one with an
exercise and its check; the check must report the unwritten stub, and pass once the
exercise's solution is put after it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.test_browser import serve
from tests.test_exercises import code_cells
from tools.solutions_site import SOLUTION
from vislearn.grader.sandbox import requirement_closure

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "conventions"
TORCH = next(line for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.startswith("torch=="))  # fmt: skip
KERNEL = next(line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.startswith("ipykernel=="))  # fmt: skip


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> Path:
    """A new virtual environment with the pinned torch and ipykernel only: the files of their
    distributions and of everything these require, linked from this environment (where pip
    installed them from the same wheels), in seconds where pip takes a minute."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([str(python), "-c", where], capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    distributions = requirement_closure(("torch", "ipykernel"))
    for distribution in distributions.values():
        for file in distribution.files or ():
            source = Path(distribution.locate_file(file))
            if Path(file).parts[0] == ".." or not source.is_file():
                continue  # scripts in bin/ are not needed (the kernel is python -m ...)
            target = Path(purelib) / file
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another file system
                shutil.copy2(source, target)
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    for pinned in (TORCH, KERNEL):
        assert any(line.startswith(pinned) for line in listed.splitlines()), listed
    return python


@pytest.mark.slow
def test_a_downloaded_chapter_runs_in_a_fresh_environment(
    built_book, fresh_python, tmp_path, monkeypatch
):
    from nbclient import NotebookClient

    # the fresh environment's kernel, found through JUPYTER_PATH
    spec = tmp_path / "jupyter" / "kernels" / "fresh"
    spec.mkdir(parents=True)
    argv = [str(fresh_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "fresh",
                                                  "language": "python"}))  # fmt: skip
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    work = tmp_path / "reader"
    work.mkdir()

    with serve(built_book) as site:
        monkeypatch.setenv("VISLEARN_SITE", site)
        with urllib.request.urlopen(f"{site}/_sources/book/{CHAPTER}.ipynb") as response:
            notebook = nbformat.reads(response.read().decode(), as_version=4)
        # the reader solves the exercise: its solution goes after the stub
        solutions = (ROOT / "book" / "solutions" / f"{CHAPTER}.md").read_text()
        solved = [cell for match in SOLUTION.finditer(solutions)
                  for cell in code_cells(match.group(0)) if "check_" in cell]  # fmt: skip
        notebook.cells.extend(nbformat.v4.new_code_cell(cell) for cell in solved)
        client = NotebookClient(
            notebook,
            kernel_name="fresh",
            timeout=900,
            skip_cells_with_tag="run-everything",  # exercise stubs run too
            resources={"metadata": {"path": str(work)}},
        )
        client.execute()

    outputs = [
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    text = "\n".join(outputs)
    assert "running on cpu" in text, text[:2000]
    assert "✗ log_softmax: not written yet" in text, text[-2000:]
    assert "✓ log_softmax" in text, text[-2000:]
    installed = subprocess.run(
        [str(fresh_python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "vislearn==" in installed, installed
    assert any(line.startswith(TORCH) for line in installed.splitlines()), "torch was replaced"
