"""nbgrader notebooks read as plain JSON: the grading plan of a source notebook, and the cells
of a student's notebook that the sandbox runs.

The plan comes from the source notebook only (``solutions/``): its graded test cells with
their points and full source (hidden tests included), its locked code cells (e.g. ``setup``),
the functions its solution cells define (the names the student must implement), and the
names the exercise forbids, declared in the notebook's metadata::

    "metadata": {"grading": {"forbidden": ["torch.softmax", "vislearn.softmax", ...]}}

From a student's notebook only the sources of solution cells and of cells the student added
are used; test cells and locked cells always come from the source notebook, so deleting or
editing them changes nothing.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAX_NOTEBOOK_BYTES = 16 << 20


class MalformedNotebook(Exception):
    """A file that is not a readable nbformat-4 notebook."""


@dataclass(frozen=True)
class Cell:
    """A code cell: its nbgrader grade id (``None`` if it has none) and its source."""

    grade_id: str | None
    source: str
    nbgrader: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TestCell:
    """A graded test cell of the source notebook."""

    grade_id: str
    points: float
    source: str
    functions: tuple[str, ...]  # the student functions it calls


@dataclass(frozen=True)
class AssignmentSpec:
    """Everything the grader takes from the source notebook."""

    name: str
    setup_cells: tuple[tuple[str, str], ...]  # locked code cells that are not tests
    solution_cells: dict[str, tuple[str, ...]]  # grade id -> functions defined there
    tests: tuple[TestCell, ...]
    forbidden: tuple[str, ...]

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(f for names in self.solution_cells.values() for f in names)

    @property
    def max_score(self) -> float:
        return sum(test.points for test in self.tests)


def _source(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "".join(value)
    raise MalformedNotebook("a cell's source is neither a string nor a list of strings")


def read_code_cells(path: Path) -> tuple[list[Cell], dict]:
    """The code cells of the notebook at ``path`` and its metadata; raises
    :class:`MalformedNotebook` for anything that is not an nbformat-4 notebook."""
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise MalformedNotebook(f"the notebook is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB")
    try:
        notebook = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedNotebook(f"the notebook is not valid JSON ({error})") from None
    if not isinstance(notebook, dict) or notebook.get("nbformat") != 4:
        raise MalformedNotebook("the file is not an nbformat-4 notebook")
    cells, metadata = notebook.get("cells"), notebook.get("metadata", {})
    if not isinstance(cells, list) or not isinstance(metadata, dict):
        raise MalformedNotebook("the notebook has no list of cells")
    code = []
    for cell in cells:
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise MalformedNotebook("a cell is not a JSON object with a cell_type")
        if cell["cell_type"] != "code":
            continue
        meta = cell.get("metadata", {})
        nbgrader = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
        nbgrader = nbgrader if isinstance(nbgrader, dict) else {}
        grade_id = nbgrader.get("grade_id")
        code.append(Cell(grade_id if isinstance(grade_id, str) else None,
                         _source(cell.get("source", "")), nbgrader))  # fmt: skip
    return code, metadata


def _defined_functions(source: str) -> tuple[str, ...]:
    tree = ast.parse(source)
    return tuple(n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def _names_used(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def load_spec(path: Path, name: str) -> AssignmentSpec:
    """The grading plan of the source notebook at ``path``."""
    cells, metadata = read_code_cells(path)
    setup, solutions, tests = [], {}, []
    for cell in cells:
        meta = cell.nbgrader
        if meta.get("solution"):
            solutions[cell.grade_id] = _defined_functions(cell.source)
        elif meta.get("grade"):
            tests.append((cell.grade_id, float(meta.get("points", 0)), cell.source))
        elif meta.get("locked"):
            setup.append((cell.grade_id, cell.source))
    functions = {f for names in solutions.values() for f in names}
    forbidden = metadata.get("grading", {}).get("forbidden", [])
    if not all(isinstance(n, str) for n in forbidden):
        raise MalformedNotebook(f"{path}: metadata.grading.forbidden must be a list of strings")
    return AssignmentSpec(
        name=name,
        setup_cells=tuple(setup),
        solution_cells=solutions,
        tests=tuple(
            TestCell(gid, points, source, tuple(sorted(_names_used(source) & functions)))
            for gid, points, source in tests
        ),
        forbidden=tuple(forbidden),
    )


def python_source(source: str) -> str:
    """Notebook source as plain Python: IPython magics become ``get_ipython()`` calls."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # leave it to the sandbox to report the syntax error
        return source


def sandbox_cells(spec: AssignmentSpec, cells: list[Cell]) -> tuple[list[list[str]], list[str]]:
    """The ``[label, source]`` cells the sandbox runs for a student, and notes about them.

    Test cells are left out, locked cells are the source notebook's, and solution cells and
    cells the student added are the student's, in the student's order. Locked cells the
    student deleted run first.
    """
    tests = {test.grade_id for test in spec.tests}
    setup = dict(spec.setup_cells)
    counts = Counter(cell.grade_id for cell in cells if cell.grade_id)
    notes = []
    missing_setup = [gid for gid in setup if gid not in counts]
    run = [[gid, setup[gid]] for gid in missing_setup]
    if missing_setup:
        notes.append(f"locked cell(s) {', '.join(missing_setup)} were missing and were run first")
    for index, cell in enumerate(cells, start=1):
        if cell.grade_id in tests:
            continue
        if cell.grade_id in setup:
            run.append([cell.grade_id, setup[cell.grade_id]])
        else:
            label = cell.grade_id or f"code cell {index}"
            run.append([label, python_source(cell.source)])
    for gid in spec.solution_cells:
        if gid not in counts:
            notes.append(f"the solution cell '{gid}' is missing from the notebook")
    for gid, count in sorted(counts.items()):
        if count > 1:
            notes.append(f"grade id '{gid}' appears {count} times; the copies ran in order")
    return run, notes
