"""The autograded notebook that nbgrader's formgrader shows an instructor.

The formgrader opens ``autograded/<student>/<assignment>/<assignment>.ipynb`` to review a
submission and give manual points; the scores beside each cell come from the gradebook. The
safe grader never runs the student's notebook in a kernel, so it writes this notebook
itself, without executing anything:

- the source notebook's cells, in its order: the instructor's text, locked cells and test
  cells (hidden tests included: the formgrader is the instructor's), each test cell with an
  output that gives its points and the grader's message;
- in each solution cell the student's code (empty, and said so, if the student deleted it);
- each code cell the student added, after the graded cell it followed;
- first, a cell whose output gives the status, the score and the notes.

Nothing of the student's notebook but the source of code cells is copied: no outputs, no
metadata, no Markdown (which the formgrader would render as HTML in the instructor's
browser). A notebook that cannot be read (``malformed``, ``missing notebook``) leaves every
solution cell empty.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_output

from vislearn.grader.notebook import Cell, MalformedNotebook, read_code_cells

START = None  # where cells the student added before every graded cell are attached


def _stream(text: str) -> list:
    return [new_output("stream", name="stdout", text=text)]


def _verdict(record: dict) -> nbformat.NotebookNode:
    lines = [
        f"status: {record['status']}",
        f"score: {record['score']:g} / {record['max_score']:g}",
        *(f"note: {note}" for note in record["notes"]),
    ]
    cell = new_code_cell("# The safe grader's verdict (python -m vislearn.grader)")
    cell.id, cell.outputs = "safe-grader-verdict", _stream("\n".join(lines) + "\n")
    return cell


def _student_cells(path: Path | None) -> list[Cell] | None:
    """The code cells of the student's notebook, None if there is none to read."""
    if path is None:
        return None
    try:
        return read_code_cells(path)[0]
    except (MalformedNotebook, OSError):
        return None


def _by_anchor(cells: list[Cell], graded: set[str]) -> tuple[dict, dict]:
    """The student's source of each graded cell (the first one with its grade id), and the
    other code cells grouped by the graded cell they follow."""
    sources: dict[str, str] = {}
    added: dict[str | None, list[str]] = {}
    anchor = START
    for cell in cells:
        if cell.grade_id in graded and cell.grade_id not in sources:
            sources[cell.grade_id] = cell.source
            anchor = cell.grade_id
        elif cell.grade_id in graded:
            added.setdefault(anchor, []).append(
                f"# a second cell with grade id '{cell.grade_id}'\n{cell.source}"
            )
        else:
            added.setdefault(anchor, []).append(cell.source)
    return sources, added


def build(
    source: nbformat.NotebookNode, submitted: Path | None, record: dict
) -> nbformat.NotebookNode:
    """The autograded notebook of ``record``, from the source notebook (left unchanged) and
    the student's notebook at ``submitted`` (None: not handed in)."""
    notebook = copy.deepcopy(source)
    cells = _student_cells(submitted)
    graded = {c.metadata.nbgrader["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata}
    sources, added = _by_anchor(cells or [], graded)
    results = {cell["grade_id"]: cell for cell in record["cells"]}
    counter = iter(range(1, len(cells or []) + 1))

    def student_cells(anchor: str | None) -> list:
        made = [new_code_cell(text) for text in added.get(anchor, [])]
        for cell in made:
            cell.id = f"student-cell-{next(counter)}"
        return made

    missing = (
        "# (this cell is not in the submission)"
        if cells is not None
        else f"# (no notebook could be read from the submission: {record['status']})"
    )
    out = [_verdict(record), *student_cells(START)]
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if meta.get("solution"):
            cell.source = sources.get(grade_id, missing)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if grade_id in results:
                result = results[grade_id]
                cell.outputs = _stream(
                    f"{result['points']:g} / {result['max_points']:g} points: {result['message']}\n"
                )
        out.append(cell)
        out += student_cells(grade_id)
    notebook.cells = out
    return notebook


def write_autograded(path: Path, notebook: nbformat.NotebookNode) -> None:
    """Write ``notebook`` to ``path`` in one step (the formgrader may be reading it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    nbformat.write(notebook, partial)
    os.replace(partial, path)
