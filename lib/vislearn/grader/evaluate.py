"""Grading one submission: the trusted side.

The source notebook's locked cells (e.g. ``setup``) run here, in a namespace where every
student function is a proxy into the sandbox (:mod:`remote`). Then each graded test cell of
the source notebook, visible and hidden, runs here too, with fixed seeds derived from the
grading seed (``vislearn.testing.make_generator`` is re-seeded the same way, so hidden tests
draw inputs no student has seen) and full-precision matmuls. A cell scores its points iff it
runs without an exception; the exception's message, stripped of reference values, is the
feedback. A cell with a threshold rule (training exercises) scores the share of its points
that the metric it measured earns, and the feedback states the metric. Test sources never
leave this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import re
import shutil
import site
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

import vislearn
from vislearn import testing
from vislearn.grader.notebook import (
    AssignmentSpec,
    MalformedNotebook,
    TestCell,
    read_code_cells,
    sandbox_cells,
)
from vislearn.grader.remote import GraderError, Session, StudentFailure
from vislearn.grader.sandbox import ALWAYS_FORBIDDEN, Limits
from vislearn.grader.scan import scan


@dataclass(frozen=True)
class Task:
    """What a worker needs to grade one submission (plain data: it is sent to a process)."""

    spec: AssignmentSpec
    student: str
    notebook: str | None  # the student's notebook, None if it is missing
    found: tuple[str, ...]  # the notebooks that are there instead, for the message
    seed: int
    limits: Limits
    argv: tuple[str, ...]  # the command that starts a sandbox (see sandbox.command)
    sandboxed: bool
    course: str = ""  # the course's folder: never named in a message


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on ``parts``."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def sandbox_seed(seed: int) -> int:
    """The seed of a submission's sandbox: derived from the grading seed by a one-way step of
    its own, so the sandbox cannot rebuild the seeds the hidden tests draw from."""
    return derive_seed(seed, "sandbox")


def trusted_settings(threads: int) -> None:
    """Reproducible references: no TF32, deterministic kernels, a fixed thread count."""
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.set_float32_matmul_precision("highest")


def _host_paths(course: str) -> list[tuple[str, str]]:
    """``(folder, placeholder)`` for the folders of this machine that a message may name (the
    Python environment, the grader, the course, home, temporary files), longest first."""
    package = Path(__file__).resolve().parents[1]
    named = [(course, "<course>"), (str(package.parents[1]), "<grader>"),
             (str(package), "<grader>"), (sys.prefix, "<python>"), (sys.base_prefix, "<python>"),
             *((p, "<python>") for p in site.getsitepackages()),
             (str(Path.home()), "<home>"), (tempfile.gettempdir(), "<tmp>")]  # fmt: skip
    found = {}
    for folder, placeholder in named:
        for path in {folder, os.path.realpath(folder)} if folder else ():
            if len(path) > 1:
                found.setdefault(path.rstrip("/"), placeholder)
    return sorted(found.items(), key=lambda item: -len(item[0]))


def scrub(text: str, course: str = "") -> str:
    """``text`` with the folders of this machine replaced by placeholders (``<python>/...``):
    feedback names no path of the grader's machine."""
    for folder, placeholder in _host_paths(course):
        text = re.sub(re.escape(folder) + r"(?=/|\b|$)", placeholder, text)
    return text


def result(task: Task, status: str, cells: list | None = None, notes=()) -> dict:
    """The record of a grading; cells not given score 0 with ``status`` as their message.
    No message or note names a folder of the grading machine (:func:`scrub`)."""
    if cells is None:
        cells = [_cell(test, 0.0, f"not graded: {status}") for test in task.spec.tests]
    cells = [{**cell, "message": scrub(cell["message"], task.course)} for cell in cells]
    return {
        "assignment": task.spec.name,
        "student": task.student,
        "status": status,
        "score": sum(cell["points"] for cell in cells),
        "max_score": task.spec.max_score,
        "cells": cells,
        "notes": [scrub(note, task.course) for note in notes],
        "seed": task.seed,
    }


def _cell(test: TestCell, points: float, message: str) -> dict:
    return {"grade_id": test.grade_id, "points": points, "max_points": test.points,
            "message": message}  # fmt: skip


def _feedback(error: BaseException) -> str:
    text = str(error)[:600]
    if isinstance(error, (StudentFailure, AssertionError)):
        return text or "a check of this test failed"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextlib.contextmanager
def _fresh_generators(seed: int):
    """``make_generator(n)`` in the tests draws from a seed derived from the grading seed."""
    original = testing.make_generator
    testing.make_generator = lambda n: original(derive_seed(seed, "generator", n))
    try:
        yield
    finally:
        testing.make_generator = original


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def run_tests(task: Task, session: Session, tainted: dict) -> list[dict]:
    """Every graded test cell of the source notebook, run here against the proxies."""
    spec = task.spec
    namespace: dict = {"__name__": "__main__"}
    try:
        with _quiet():
            for grade_id, source in spec.setup_cells:
                exec(compile(source, f"<{grade_id}>", "exec"), namespace)
    except Exception as error:
        raise GraderError(f"the source notebook's cell failed here: {error!r}") from error
    proxies = {
        name: session.module_class(name) if name in spec.classes else session.proxy(name)
        for name in spec.functions
    }
    cells = []
    with _fresh_generators(task.seed):
        for test in spec.tests:
            blocked = [f for f in test.functions if f in tainted]
            if blocked:
                cells.append(_cell(test, 0.0, f"not run: {blocked[0]} "
                                   f"{tainted[blocked[0]].describe()}"))  # fmt: skip
                continue
            namespace.update(proxies)
            vislearn.seed_everything(derive_seed(task.seed, test.grade_id) % 2**32)
            trusted_settings(torch.get_num_threads())
            try:
                with _quiet():
                    exec(compile(test.source, f"<test {test.grade_id}>", "exec"), namespace)
            except GraderError:
                raise
            except Exception as error:
                cells.append(_cell(test, 0.0, _feedback(error)))
            else:
                cells.append(_scored(test, namespace))
    return cells


def _scored(test: TestCell, namespace: dict) -> dict:
    """The record of a test cell that ran through: its points, or its threshold's share."""
    if test.threshold is None:
        return _cell(test, test.points, "passed")
    value = namespace.get(test.threshold.metric)
    if not isinstance(value, float) or not math.isfinite(value):
        raise GraderError(f"test cell {test.grade_id} set no float {test.threshold.metric}")
    points = round(test.points * test.threshold.fraction(value), 2)
    return {**_cell(test, points, test.threshold.describe(value)), "measured": value}


def _status(session: Session, hits: list) -> str:
    if hits or session.refused or "protocol" in session.events:
        return "tampered"
    if "timeout" in session.events:
        return "timed out"
    if "crash" in session.events:
        return "crashed"
    return "graded"


def grade(task: Task) -> dict:
    """Grade one submission; every outcome is a record with an explicit status."""
    spec = task.spec
    if task.notebook is None:
        found = ", ".join(task.found) or "nothing"
        note = f"{spec.name}.ipynb is not in the submission (found: {found})"
        return result(task, "missing notebook", notes=[note])
    try:
        cells, _ = read_code_cells(Path(task.notebook))
    except (MalformedNotebook, OSError) as error:
        return result(task, "malformed", notes=[str(error)])
    run, notes = sandbox_cells(spec, cells)
    setup_ids = {grade_id for grade_id, _ in spec.setup_cells}
    forbidden = (*spec.forbidden, *ALWAYS_FORBIDDEN)
    student = [c for c in run if c[0] not in setup_ids]
    setup_cells = [list(cell) for cell in spec.setup_cells]
    hits, tainted = scan(student, forbidden, spec.functions, context=setup_cells)
    notes += [hit.describe() for hit in hits]
    workdir = None if task.sandboxed else Path(tempfile.mkdtemp(prefix="vislearn-submission-"))
    setup = {"op": "setup", "cells": run, "forbidden": list(forbidden),
             "seed": sandbox_seed(task.seed), "threads": task.limits.threads,
             "gpu_fraction": task.limits.gpu_fraction}  # fmt: skip
    defining = {f: tuple(g for g, names in spec.solution_cells.items() if f in names)
                for f in spec.functions}  # fmt: skip
    session = Session(list(task.argv), workdir, task.limits, setup, defining, spec.timeouts)
    try:
        graded = run_tests(task, session, tainted)
    finally:
        session.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    notes += [f"cell '{label}' raised {error}" for label, error in session.cell_errors or []]
    notes += [
        f"{name} was refused at run time ({count} time{'s' * (count > 1)}): it is not "
        "allowed in this exercise"
        for name, count in Counter(session.refused).items()
    ]
    return result(task, _status(session, hits), graded, notes)


def grade_safely(task: Task) -> dict:
    """:func:`grade`, with a grader failure recorded as status ``error`` (never silent)."""
    start = time.monotonic()
    try:
        record = grade(task)
    except Exception as error:
        record = result(task, "error", notes=[f"the grader failed: {error}"])
    record["seconds"] = round(time.monotonic() - start, 2)
    return record
