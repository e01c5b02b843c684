"""Files written for each grading: the record, the student's feedback, and ``grades.csv``.

- ``<autograded>/<student>/<assignment>/grading.json``: the full record (status, score and
  message per test cell, notes, seed, and the hashes ``resume`` compares); written
  atomically; ``grades.csv`` is rebuilt from these records.
- ``<feedback>/<student>/<assignment>/grading.html``: status, score per test cell and its
  message. Messages never hold a test's source or a reference value (see
  :mod:`vislearn.grader.evaluate`).
- ``<course>/grades.csv``: one row per graded submission of every assignment, with its status.
"""

from __future__ import annotations

import csv
import html
import json
import os
from pathlib import Path

from vislearn.grader.course import Course

CSV_FIELDS = ["assignment", "student_id", "status", "score", "max_score", "detail"]


def record_path(course: Course, assignment: str, student: str) -> Path:
    return course.autograded / student / assignment / "grading.json"


def write_record(course: Course, record: dict) -> None:
    """``grading.json``, replaced in one step: a reader sees the old record or the new one."""
    path = record_path(course, record["assignment"], record["student"])
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = {key: value for key, value in record.items() if key != "seconds"}
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)


def read_record(course: Course, assignment: str, student: str) -> dict | None:
    """The stored record of a submission, or None if there is none (or none readable)."""
    try:
        return json.loads(record_path(course, assignment, student).read_text())
    except (OSError, ValueError):
        return None


def write_feedback(course: Course, record: dict) -> Path:
    """The student's feedback page."""
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(c['grade_id'])}</td><td>{c['points']:g} / {c['max_points']:g}</td>"
        f"<td>{e(c['message'])}</td></tr>"
        for c in record["cells"]
    )
    notes = "".join(f"<li>{e(note)}</li>" for note in record["notes"])
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{e(record["assignment"])}: feedback</title></head>
<body>
<h1>{e(record["assignment"])}: {record["score"]:g} / {record["max_score"]:g}</h1>
<p>Status: <strong>{e(record["status"])}</strong></p>
{f"<ul>{notes}</ul>" if notes else ""}
<table border="1" cellpadding="4">
<tr><th>test</th><th>points</th><th>feedback</th></tr>
{rows}
</table>
</body></html>
"""
    path = course.feedback / record["student"] / record["assignment"] / "grading.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


def write_csv(course: Course) -> Path:
    """``grades.csv`` from every record under the autograded folder."""
    rows = []
    for path in sorted(course.autograded.glob("*/*/grading.json")):
        record = json.loads(path.read_text())
        detail = "" if record["status"] == "graded" else "; ".join(record["notes"])[:300]
        rows.append({"assignment": record["assignment"], "student_id": record["student"],
                     "status": record["status"], "score": record["score"],
                     "max_score": record["max_score"], "detail": detail})  # fmt: skip
    rows.sort(key=lambda row: (row["assignment"], row["student_id"]))
    path = course.root / "grades.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path
