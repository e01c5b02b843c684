"""What one grading record becomes, written by the one writer (the client of the cluster).

For each record, in this order: the gradebook (scores, status, flag), the autograded notebook
the formgrader shows, the student's feedback page with the exchange's files, and last
``grading.json``, the record ``resume`` trusts. At the end of a run, one line about the run
(when, how long, how many) is appended to ``autograded/grading-runs.jsonl``.
"""

from __future__ import annotations

import datetime
import json

import nbformat

from vislearn.grader import autograded, feedback, records
from vislearn.grader.course import Course
from vislearn.grader.gradebook import GradebookWriter
from vislearn.grader.notebook import AssignmentSpec

RUNS = "grading-runs.jsonl"


class Store:
    """The course's gradebook, open, and the files written for each record."""

    def __init__(self, course: Course, specs: list[AssignmentSpec]):
        self.course = course
        self.gradebook = GradebookWriter(course.db_url, course.course_id, specs)
        self.sources = {
            spec.name: nbformat.read(course.source_notebook(spec.name), as_version=4)
            for spec in specs
        }

    def write(self, record: dict, found: tuple[str, ...] = ()) -> None:
        """Store ``record``, whose submission holds the notebooks ``found``. A failure to
        write the gradebook makes it an ``error`` record; the record is stored anyway."""
        course, assignment, student = self.course, record["assignment"], record["student"]
        submitted = course.submitted / student / assignment
        stamp = submitted / "timestamp.txt"
        try:
            self.gradebook.write(record, stamp.read_text().strip() if stamp.is_file() else None)
        except Exception as error:  # keep grading; the record says why it is not there
            record["status"] = "error"
            record["notes"].append(f"could not write to the gradebook: {error}")
        notebook = submitted / f"{assignment}.ipynb"
        try:
            built = autograded.build(
                self.sources[assignment], notebook if notebook.is_file() else None, record
            )
            autograded.write_autograded(
                course.autograded / student / assignment / f"{assignment}.ipynb", built
            )
        except Exception as error:  # the grade stands; the formgrader will say it is missing
            record["notes"].append(f"could not write the autograded notebook: {error}")
        feedback.write_feedback(course, record, found)
        records.write_record(course, record)  # last: the record is what `resume` trusts

    def log_run(self, run: dict) -> None:
        """Append ``run`` (with the time it ended) to the course's log of grading runs."""
        line = {"ended": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), **run}
        path = self.course.autograded / RUNS
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")

    def close(self) -> None:
        self.gradebook.close()
