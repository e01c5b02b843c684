"""What the report is made of, read from the course: the instructor's source notebooks (the
test cells, their points, which are hidden, their thresholds), the grading records, the
gradebook (final scores, manual points included, and the students' names) and the log of
grading runs. Nothing here reads a student's notebook or feedback page.

With ``anonymous``, every student is shown as a pseudonym, ``student-`` and 8 hex digits of
an HMAC of the student id keyed with the course's grading secret: the same student gets the
same pseudonym in every report of the course, and nobody without the secret can tell who it
is. Names are then never read, and the student id is replaced by the pseudonym in every
message too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vislearn.grader import feedback, records
from vislearn.grader.course import Course
from vislearn.grader.gradebook import Entry, entries
from vislearn.grader.notebook import load_spec
from vislearn.grader.store import RUNS

HIDDEN_MARK = "### BEGIN HIDDEN TESTS"
PSEUDONYM_DIGITS = 8


@dataclass(frozen=True)
class Test:
    """A graded test cell of the source notebook."""

    grade_id: str
    points: float
    hidden: bool  # it holds hidden tests (its score depends on checks students never saw)
    zero: float | None = None  # its threshold rule, for a cell that measures a metric
    full: float | None = None


@dataclass
class Submission:
    """One graded submission, as the report shows it."""

    student: str  # the student id, or the pseudonym
    student_id: str  # the student id: never shown in an anonymous report
    name: str  # the student's name from the gradebook ("" if none, or anonymous)
    status: str
    score: float  # the gradebook's (manual points included); the record's without one
    auto_score: float  # the record's
    max_score: float
    seconds: float | None  # the grading's, None in records written before it was kept
    reason: str
    cells: list[dict]
    feedback: Path  # the student's feedback page in the course


@dataclass
class Assignment:
    """An assignment's tests and submissions, and the grading runs that included it."""

    name: str
    tests: list[Test]
    max_score: float
    submissions: list[Submission] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)


@dataclass
class ClassReport:
    """Everything the report shows, for some assignments of a course."""

    course_id: str
    assignments: list[Assignment]
    runs: list[dict]
    unreadable: list[Path]  # record files that could not be read
    anonymous: bool


def pseudonyms(students: Iterable[str], secret: str) -> dict[str, str]:
    """A stable pseudonym for each student (longer if 8 digits would collide)."""
    students = sorted(set(students))
    digests = {
        s: hmac.new(secret.encode(), f"pseudonym/{s}".encode(), hashlib.sha256).hexdigest()
        for s in students
    }
    digits = PSEUDONYM_DIGITS
    while len({d[:digits] for d in digests.values()}) < len(students):
        digits += 4
    return {s: f"student-{d[:digits]}" for s, d in digests.items()}


def tests_of(course: Course, assignment: str) -> list[Test]:
    """The graded test cells of ``assignment``'s source notebook."""
    spec = load_spec(course.source_notebook(assignment), assignment)
    return [
        Test(
            t.grade_id,
            t.points,
            HIDDEN_MARK in t.source,
            t.threshold.zero if t.threshold else None,
            t.threshold.full if t.threshold else None,
        )
        for t in spec.tests
    ]


def gradebook_entries(course: Course, assignments: list[str]) -> dict[tuple[str, str], Entry]:
    """(assignment, student) -> the gradebook's score and names; empty when the course has no
    gradebook yet."""
    prefix = "sqlite:///"
    if course.db_url.startswith(prefix) and not Path(course.db_url[len(prefix) :]).exists():
        return {}
    return entries(course.db_url, course.course_id, assignments)


def read_runs(course: Course) -> list[dict]:
    """The logged grading runs, oldest first (unreadable lines are skipped)."""
    path = course.autograded / RUNS
    if not path.is_file():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue
    return runs


def _submission(course: Course, record: dict, entry: Entry | None, shown: str, anonymous: bool):
    student = record["student"]

    def hide(text: str) -> str:
        return re.sub(rf"\b{re.escape(student)}\b", shown, text) if anonymous else text

    name = ""
    if entry and not anonymous:
        name = " ".join(part for part in (entry.first_name, entry.last_name) if part)
    cells = [{**cell, "message": hide(cell["message"])} for cell in record["cells"]]
    return Submission(
        student=shown,
        student_id=student,
        name=name,
        status=record["status"],
        score=entry.score if entry else float(record["score"]),
        auto_score=float(record["score"]),
        max_score=float(record["max_score"]),
        seconds=record.get("seconds"),
        reason=hide(records.reason(record)),
        cells=cells,
        feedback=feedback.page(course, record["assignment"], student),
    )


def load(course: Course, assignments: list[str], anonymous: bool = False) -> ClassReport:
    """The report's data for ``assignments`` of ``course``."""
    runs = read_runs(course)
    unreadable: list[Path] = []
    loaded = []
    gradebook = gradebook_entries(course, assignments)
    for name in assignments:
        stored = list(records.stored_records(course, name))
        unreadable += [path for path, record in stored if record is None]
        found = [record for _, record in stored if record is not None]
        shown = (
            pseudonyms((r["student"] for r in found), course.secret())
            if anonymous
            else {r["student"]: r["student"] for r in found}
        )
        tests = tests_of(course, name)
        assignment = Assignment(
            name,
            tests,
            sum(t.points for t in tests),
            runs=[run for run in runs if name in run.get("assignments", [])],
        )
        assignment.submissions = [
            _submission(
                course, r, gradebook.get((name, r["student"])), shown[r["student"]], anonymous
            )
            for r in found
        ]
        loaded.append(assignment)
    return ClassReport(course.course_id, loaded, runs, unreadable, anonymous)
