"""nbgrader notebooks read as plain JSON: the grading plan of a source notebook, and the cells
of a student's notebook that the sandbox runs.

The plan comes from the source notebook only (``solutions/``): its graded test cells with
their points and full source (hidden tests included), its locked code cells (e.g. ``setup``),
the functions its solution cells define (the names the student must implement), and the
names the exercise forbids, declared in the notebook's metadata::

    "metadata": {"grading": {"forbidden": ["torch.softmax", "vislearn.softmax", ...]}}

and, for exercises that train a model, the call timeout of a function (seconds) and the
threshold rule of a test cell that measures a metric::

    "grading": {"timeouts": {"train_gat": 60},
                "thresholds": {"test_gat_training_hidden":
                               {"metric": "accuracy", "zero": 0.6, "full": 0.75}}}

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
class Threshold:
    """Partial credit for a measured metric: none at or below ``zero``, full marks from
    ``full``, linear in between. ``metric`` is the variable the test cell sets."""

    metric: str
    zero: float
    full: float

    def fraction(self, value: float) -> float:
        return min(1.0, max(0.0, (value - self.zero) / (self.full - self.zero)))

    def describe(self, value: float) -> str:
        return (f"measured {self.metric} {value:.1%}: full marks from {self.full:.0%}, "
                f"none at or below {self.zero:.0%}")  # fmt: skip


@dataclass(frozen=True)
class TestCell:
    """A graded test cell of the source notebook."""

    grade_id: str
    points: float
    source: str
    functions: tuple[str, ...]  # the student functions and classes it uses
    threshold: Threshold | None = None


@dataclass(frozen=True)
class AssignmentSpec:
    """Everything the grader takes from the source notebook."""

    name: str
    setup_cells: tuple[tuple[str, str], ...]  # locked code cells that are not tests
    solution_cells: dict[str, tuple[str, ...]]  # grade id -> functions and classes defined there
    tests: tuple[TestCell, ...]
    forbidden: tuple[str, ...]
    classes: tuple[str, ...] = ()  # the names in solution_cells that are classes (modules)
    timeouts: dict[str, float] = field(default_factory=dict)  # function -> call timeout

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


def _defined(source: str, kinds: type | tuple) -> tuple[str, ...]:
    return tuple(n.name for n in ast.parse(source).body if isinstance(n, kinds))


def _grading_metadata(path: Path, metadata: dict) -> tuple[tuple, dict, dict]:
    """The forbidden names, call timeouts and thresholds of ``metadata.grading``."""
    grading = metadata.get("grading", {})
    forbidden = grading.get("forbidden", [])
    if not all(isinstance(n, str) for n in forbidden):
        raise MalformedNotebook(f"{path}: metadata.grading.forbidden must be a list of strings")
    timeouts = grading.get("timeouts", {})
    if not all(isinstance(t, int | float) and t > 0 for t in timeouts.values()):
        raise MalformedNotebook(f"{path}: metadata.grading.timeouts must map names to seconds")
    try:
        thresholds = {gid: Threshold(**rule) for gid, rule in grading.get("thresholds", {}).items()}
    except TypeError as error:
        raise MalformedNotebook(f"{path}: metadata.grading.thresholds: {error}") from None
    if not all(t.zero < t.full for t in thresholds.values()):
        raise MalformedNotebook(f"{path}: a threshold's zero must be below its full")
    return tuple(forbidden), {n: float(t) for n, t in timeouts.items()}, thresholds


def _names_used(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def load_spec(path: Path, name: str) -> AssignmentSpec:
    """The grading plan of the source notebook at ``path``."""
    cells, metadata = read_code_cells(path)
    setup, solutions, classes, tests = [], {}, [], []
    for cell in cells:
        meta = cell.nbgrader
        if meta.get("solution"):
            solutions[cell.grade_id] = _defined(
                cell.source, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            )
            classes += _defined(cell.source, ast.ClassDef)
        elif meta.get("grade"):
            tests.append((cell.grade_id, float(meta.get("points", 0)), cell.source))
        elif meta.get("locked"):
            setup.append((cell.grade_id, cell.source))
    functions = {f for names in solutions.values() for f in names}
    forbidden, timeouts, thresholds = _grading_metadata(path, metadata)
    unknown = thresholds.keys() - {gid for gid, _, _ in tests}
    if unknown:
        raise MalformedNotebook(f"{path}: thresholds for cells that are not tests: {unknown}")
    return AssignmentSpec(
        name=name,
        setup_cells=tuple(setup),
        solution_cells=solutions,
        tests=tuple(
            TestCell(
                gid,
                points,
                source,
                tuple(sorted(_names_used(source) & functions)),
                thresholds.get(gid),
            )
            for gid, points, source in tests
        ),
        forbidden=forbidden,
        classes=tuple(classes),
        timeouts=timeouts,
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
