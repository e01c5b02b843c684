"""Writing grading records into nbgrader's gradebook, with nbgrader's own API.

Only the parent process writes (one writer). For each record the submission is created if
needed and every graded cell's ``auto_score`` is set, so a new result always replaces the
old one, also when the new status is a failure. The status is kept in the gradebook as the
notebook's ``flagged`` mark (set unless the status is ``graded``) and at the start of the
auto-comment of each solution cell, followed by the feedback of the tests of that cell's
functions. Manual scores given in nbgrader's formgrader are left alone, and, as nbgrader's
own autograder does, a cell that has one is marked as needing a manual grade again, so that
the formgrader shows the regraded submission for review.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import (
    Assignment,
    BaseCell,
    Comment,
    Grade,
    Gradebook,
    MissingEntry,
    Student,
    SubmittedAssignment,
    SubmittedNotebook,
)
from nbgrader.utils import parse_utc
from sqlalchemy import func

from vislearn.grader.notebook import AssignmentSpec


class GradebookWriter:
    """An open gradebook, with the assignments being graded registered in it."""

    def __init__(self, db_url: str, course_id: str, specs: list[AssignmentSpec]):
        # nbgrader runs `alembic` when it creates a gradebook: use this environment's
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
        self.gradebook = Gradebook(db_url, course_id=course_id)
        self.specs = {spec.name: spec for spec in specs}
        for spec in specs:
            self._register(spec)

    def _register(self, spec: AssignmentSpec) -> None:
        gb, name = self.gradebook, spec.name
        gb.update_or_create_assignment(name)
        gb.update_or_create_notebook(name, name)
        for test in spec.tests:
            gb.update_or_create_grade_cell(test.grade_id, name, name, max_score=test.points,
                                           cell_type="code")  # fmt: skip
        for grade_id in spec.solution_cells:
            gb.update_or_create_solution_cell(grade_id, name, name)

    def write(self, record: dict, timestamp: str | None = None) -> None:
        """Store one grading record (see :func:`vislearn.grader.evaluate.result`)."""
        gb, spec = self.gradebook, self.specs[record["assignment"]]
        name, student = spec.name, record["student"]
        gb.update_or_create_student(student)
        try:
            extra = {"timestamp": parse_utc(timestamp)} if timestamp else {}
        except (ValueError, OverflowError):
            extra = {}  # an unreadable timestamp.txt is no reason not to record the grade
        gb.update_or_create_submission(name, student, **extra)
        notebook = gb.find_submission_notebook(name, name, student)
        for cell in record["cells"]:
            try:
                grade = gb.find_grade(cell["grade_id"], name, name, student)
            except MissingEntry:  # a cell added to the assignment after this submission
                grade_cell = gb.find_grade_cell(cell["grade_id"], name, name)
                grade = Grade(cell_id=grade_cell.id, notebook=notebook)
                gb.db.add(grade)
            grade.auto_score = cell["points"]
            grade.needs_manual_grade = grade.manual_score is not None
        by_id = {cell["grade_id"]: cell for cell in record["cells"]}
        header = (
            f"Autograder status: {record['status']} ({record['score']:g}/{record['max_score']:g})."
        )
        for i, (grade_id, functions) in enumerate(spec.solution_cells.items()):
            lines = [header] + (record["notes"] if i == 0 else [])
            for test in spec.tests:
                if set(test.functions) & set(functions) and test.grade_id in by_id:
                    cell = by_id[test.grade_id]
                    lines.append(f"{test.grade_id}: {cell['points']:g}/{cell['max_points']:g}, "
                                 f"{cell['message']}")  # fmt: skip
            gb.find_comment(grade_id, name, name, student).auto_comment = "\n".join(lines)
        notebook.flagged = record["status"] != "graded"
        gb.db.commit()

    def score(self, assignment: str, student: str) -> float:
        """The submission's total score as nbgrader computes it."""
        return self.gradebook.find_submission(assignment, student).score

    def close(self) -> None:
        self.gradebook.close()


@dataclass(frozen=True)
class Review:
    """What an instructor gave a submission by hand in the formgrader: manual scores (grade
    id -> points) and comments (solution cell -> text)."""

    scores: dict[str, float] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)


def reviews(db_url: str, course_id: str, assignment: str) -> dict[str, Review]:
    """student -> the review of their submission of ``assignment``, for the students who
    have one (two queries, whatever the size of the class)."""
    found: dict[str, Review] = {}
    with Gradebook(db_url, course_id=course_id) as gradebook:
        given = (
            (Grade, Grade.manual_score, Grade.manual_score.isnot(None), "scores"),
            (Comment, Comment.manual_comment, Comment.manual_comment != "", "comments"),
        )
        for model, column, condition, into in given:
            rows = (
                gradebook.db.query(Student.id, BaseCell.name, column)
                .select_from(model)
                .join(BaseCell, model.cell_id == BaseCell.id)
                .join(SubmittedNotebook, model.notebook_id == SubmittedNotebook.id)
                .join(
                    SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id
                )
                .join(Student, SubmittedAssignment.student_id == Student.id)
                .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
                .filter(Assignment.name == assignment, condition)
            )
            for student, cell, value in rows:
                getattr(found.setdefault(student, Review()), into)[cell] = value
    return found


@dataclass(frozen=True)
class Entry:
    """A submission as the gradebook holds it: its score (manual points included) and the
    student's name."""

    score: float
    first_name: str | None
    last_name: str | None


def entries(db_url: str, course_id: str, assignments: list[str]) -> dict[tuple[str, str], Entry]:
    """(assignment, student) -> the gradebook's entry, for every submission of
    ``assignments`` (one query, whatever the size of the class)."""
    with Gradebook(db_url, course_id=course_id) as gradebook:
        rows = (
            gradebook.db.query(
                Assignment.name,
                Student.id,
                Student.first_name,
                Student.last_name,
                func.sum(Grade.score),
            )
            .select_from(Grade)
            .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
            .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
            .join(Student, SubmittedAssignment.student_id == Student.id)
            .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
            .filter(Assignment.name.in_(assignments))
            .group_by(Assignment.name, Student.id, Student.first_name, Student.last_name)
        )
        return {
            (name, student): Entry(float(score or 0.0), first, last)
            for name, student, first, last, score in rows
        }
