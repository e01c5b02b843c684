"""The grading records: ``grading.json`` per submission, and ``grades.csv`` built from them.

- ``<autograded>/<student>/<assignment>/grading.json``: the full record (status, score and
  message per test cell, notes, seed, the seconds its grading took, and the hashes
  ``resume`` compares); written atomically.
- ``<course>/grades.csv``: one row per graded submission of every assignment, with its status.

The records are what the class report (:mod:`vislearn.grader.report`) reads: each one is a
small JSON file, read without opening the submission or its feedback.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

from vislearn.grader.course import Course

CSV_FIELDS = ["assignment", "student_id", "status", "score", "max_score", "detail"]
RECORD = "grading.json"


def record_path(course: Course, assignment: str, student: str) -> Path:
    return course.autograded / student / assignment / RECORD


def write_record(course: Course, record: dict) -> None:
    """``grading.json``, replaced in one step: a reader sees the old record or the new one."""
    path = record_path(course, record["assignment"], record["student"])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)


def read_record(course: Course, assignment: str, student: str) -> dict | None:
    """The stored record of a submission, or None if there is none (or none readable)."""
    try:
        return json.loads(record_path(course, assignment, student).read_text())
    except (OSError, ValueError):
        return None


def stored_records(course: Course, assignment: str = "*") -> Iterator[tuple[Path, dict | None]]:
    """Each record file of ``assignment`` (default: of all assignments) and its record, None
    if it cannot be read (damaged: grading the submission again rewrites it)."""
    for path in sorted(course.autograded.glob(f"*/{assignment}/{RECORD}")):
        try:
            yield path, json.loads(path.read_text())
        except (OSError, ValueError):
            yield path, None


def reason(record: dict) -> str:
    """Why a submission has its status, in one line: its notes, else its first failure."""
    if record["notes"]:
        return "; ".join(record["notes"])
    failed = [cell["message"] for cell in record["cells"] if cell["points"] < cell["max_points"]]
    return failed[0] if failed else ""


def write_csv(course: Course) -> Path:
    """``grades.csv`` from every record under the autograded folder."""
    rows = [
        {
            "assignment": record["assignment"],
            "student_id": record["student"],
            "status": record["status"],
            "score": record["score"],
            "max_score": record["max_score"],
            "detail": "" if record["status"] == "graded" else "; ".join(record["notes"])[:300],
        }
        for _, record in stored_records(course)
        if record is not None
    ]
    rows.sort(key=lambda row: (row["assignment"], row["student_id"]))
    path = course.root / "grades.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path
