"""Seconds to build the instructor's report (``python -m vislearn.grader.report``) of a large
class, from synthetic records.

The class: ``--submissions`` graded submissions spread evenly over the course's assignments
(their real test cells, points, hidden tests and thresholds), each a record as the safe grader
writes it, with a status, per-cell points and messages, and a grading time drawn from a
realistic mix (most graded, a few timed out, crashed, tampered, malformed, missing or in
error; failure messages of every kind, with the numbers of each student's inputs), its
feedback page, and a gradebook that holds every score, written with bulk SQL inserts into
nbgrader's schema (as the grader's one writer would have left it, only faster). Then the
report is built, timed in two parts: reading (records, gradebook, source notebooks) and
writing (figures, tables, CSV files, the copies of the linked feedback pages).

    python benchmarks/report.py --submissions 10000 --out benchmarks/results/report-cpu.json
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _record

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# status -> share of the class
STATUSES = {
    "graded": 0.9,
    "timed out": 0.03,
    "crashed": 0.02,
    "tampered": 0.02,
    "malformed": 0.01,
    "missing notebook": 0.01,
    "error": 0.01,
}
MESSAGES = [
    "{f} for x of shape ({a}, {b}): {k} of {n} values are off; the largest error is {e:.3g} "
    "(at index ({i}, {j}): got {g:.6g}; allowed atol=1e-05 + rtol=1.3e-06 * |expected|)",
    "{f} for x of shape ({a}, {b}): expected shape ({a}, {b}), got ({b}, {a})",
    "{f} for x of shape ({a}, {b}): {k} value(s) are NaN or infinite where finite values were "
    "expected, first at index ({i}, {j}) (got nan)",
    "{f} for x of shape ({a}, {b}): expected dtype torch.float16, got torch.float32",
    "{f} raised RuntimeError: The size of tensor a ({a}) must match the size of tensor b ({b})",
    "{f} did not finish within {a} s (it was stopped)",
    "not run: {f} uses torch.softmax (cell '{f}', line {i}), which is not allowed in this exercise",
]
WEIGHTS = [50, 15, 10, 5, 12, 5, 3]


def record(spec, student: str, rng: random.Random) -> dict:
    """One synthetic record of ``spec`` (an AssignmentSpec) for ``student``."""
    status = rng.choices(list(STATUSES), list(STATUSES.values()))[0]
    cells, notes = [], []
    for index, test in enumerate(spec.tests):
        function = test.functions[0] if test.functions else "f"
        if status in ("malformed", "missing notebook", "error"):
            cells.append(
                {
                    "grade_id": test.grade_id,
                    "points": 0.0,
                    "max_points": test.points,
                    "message": f"not graded: {status}",
                }
            )
            continue
        cell = {
            "grade_id": test.grade_id,
            "points": test.points,
            "max_points": test.points,
            "message": "passed",
        }
        if test.threshold is not None:
            value = rng.uniform(0.3, 0.95)
            cell.update(
                points=round(test.points * test.threshold.fraction(value), 2),
                message=test.threshold.describe(value),
                measured=value,
            )
        elif rng.random() < 0.05 + 0.25 * (index * 7 % 5) / 4:  # 5 to 30% fail, by cell
            numbers = {
                "a": rng.randint(1, 64),
                "b": rng.randint(1, 64),
                "k": rng.randint(1, 99),
                "n": 100,
                "e": rng.random(),
                "i": rng.randint(0, 9),
                "j": rng.randint(0, 9),
                "g": rng.random(),
            }
            text = rng.choices(MESSAGES, WEIGHTS)[0].format(f=function, **numbers)
            cell.update(points=0.0, message=text)
        cells.append(cell)
    if status != "graded":
        notes.append(f"synthetic {status} submission")
    return {
        "assignment": spec.name,
        "student": student,
        "status": status,
        "score": sum(c["points"] for c in cells),
        "max_score": spec.max_score,
        "cells": cells,
        "notes": notes,
        "seed": rng.getrandbits(63),
        "seconds": round(rng.lognormvariate(0.5, 0.6), 2),
    }


def fill_gradebook(course, specs, records: list[dict]) -> None:
    """Every record's scores into the course's gradebook, in bulk."""
    from nbgrader.api import (
        Assignment,
        Grade,
        GradeCell,
        Notebook,
        Student,
        SubmittedAssignment,
        SubmittedNotebook,
    )
    from sqlalchemy import insert

    from vislearn.grader.gradebook import GradebookWriter

    writer = GradebookWriter(course.db_url, course.course_id, specs)  # the assignments' cells
    db = writer.gradebook.db
    assignments = {a.name: a.id for a in db.query(Assignment)}
    notebooks = {n.assignment.name: n.id for n in db.query(Notebook)}
    cells = {(c.notebook.assignment.name, c.name): c.id for c in db.query(GradeCell)}
    students, submitted, notebook_rows, grades = set(), [], [], []
    for r in records:
        students.add(r["student"])
        assignment_id, notebook_id = uuid.uuid4().hex, uuid.uuid4().hex
        submitted.append(
            {
                "id": assignment_id,
                "assignment_id": assignments[r["assignment"]],
                "student_id": r["student"],
            }
        )
        notebook_rows.append(
            {
                "id": notebook_id,
                "assignment_id": assignment_id,
                "notebook_id": notebooks[r["assignment"]],
                "flagged": r["status"] != "graded",
            }
        )
        grades += [
            {
                "id": uuid.uuid4().hex,
                "cell_id": cells[r["assignment"], c["grade_id"]],
                "notebook_id": notebook_id,
                "auto_score": c["points"],
                "needs_manual_grade": False,
            }
            for c in r["cells"]
        ]
    db.execute(insert(Student), [{"id": s} for s in sorted(students)])
    db.execute(insert(SubmittedAssignment), submitted)
    db.execute(insert(SubmittedNotebook), notebook_rows)
    db.execute(insert(Grade), grades)
    db.commit()
    writer.close()


def make_class(folder: Path, submissions: int, seed: int):
    """The synthetic class in a fresh course at ``folder``; the course."""
    from vislearn.grader import feedback, records
    from vislearn.grader.course import Course
    from vislearn.grader.notebook import load_spec
    from vislearn.grader.report import assignments_of

    shutil.copy(REPO / "nbgrader_config.py", folder)
    shutil.copytree(REPO / "solutions", folder / "solutions")
    course = Course.load(folder)
    specs = [load_spec(course.source_notebook(a), a) for a in assignments_of(course)]
    rng = random.Random(seed)
    made = [
        record(specs[i % len(specs)], f"s{i // len(specs):06d}", rng) for i in range(submissions)
    ]
    for r in made:
        records.write_record(course, r)
        feedback.write_feedback(course, r)
    fill_gradebook(course, specs, made)
    return course


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # nbgrader runs alembic
    from vislearn.grader.report import assignments_of, data, pages

    with tempfile.TemporaryDirectory(prefix="vislearn-report-benchmark-") as tmp:
        start = time.perf_counter()
        course = make_class(Path(tmp), args.submissions, args.seed)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        report = data.load(course, assignments_of(course))
        reading = time.perf_counter() - start
        start = time.perf_counter()
        pages.write(report, Path(tmp) / "report", margin=0.02)
        writing = time.perf_counter() - start
        copies = len(list((Path(tmp) / "report" / "feedback").glob("*/*.html")))
    _record.write(
        {
            "submissions": args.submissions,
            "assignments": len(report.assignments),
            "feedback_pages_copied": copies,
            "seconds_to_make_the_class": round(setup, 1),
            "seconds_reading": round(reading, 2),
            "seconds_writing": round(writing, 2),
            "seconds_total": round(reading + writing, 2),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
