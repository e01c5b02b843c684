"""What the safe grader writes for the instructor and the student besides the record: the
autograded notebook nbgrader's formgrader shows, and the feedback page with the exchange's
files, built from records and notebooks made up here (no grading runs)."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from tests.test_course import make, submission
from tests.test_grader import ROOT
from vislearn.grader import autograded, feedback
from vislearn.grader.course import Course
from vislearn.grader.gradebook import Review

ASSIGNMENT = "a0_softmax"
SOURCE = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
STUDENT_CODE = "def softmax(x, dim=-1):\n    return x.exp() / x.exp().sum(dim, keepdim=True)\n"


def a_record(status: str = "graded") -> dict:
    """A record of every test cell of a0: the first fails, the others pass."""
    cells = [
        cell
        for cell in nbformat.read(SOURCE, as_version=4).cells
        if cell.metadata.nbgrader.get("grade")
    ]
    graded = [
        {
            "grade_id": c.id,
            "points": float(c.metadata.nbgrader.points),
            "max_points": float(c.metadata.nbgrader.points),
            "message": "passed",
        }
        for c in cells
    ]
    graded[0].update(points=0.0, message="softmax for x of shape (2, 3): 6 of 6 values are off")
    return {
        "assignment": ASSIGNMENT,
        "student": "ann",
        "status": status,
        "score": sum(c["points"] for c in graded),
        "max_score": 10.0,
        "cells": graded,
        "notes": ["a note <b>of</b> the grader"],
        "seed": 1,
        "seconds": 1.5,
    }


@pytest.fixture
def student_notebook(tmp_path):
    """Ann's notebook: her softmax, masked_softmax deleted, an edited visible test, a cell of
    her own, a Markdown cell with a script, outputs, and a second cell with a grade id."""
    nb = nbformat.reads(submission(ASSIGNMENT, {"softmax": STUDENT_CODE}), as_version=4)
    nb.cells = [cell for cell in nb.cells if cell.id != "masked_softmax"]
    index = next(i for i, cell in enumerate(nb.cells) if cell.id == "softmax")
    mine = nbformat.v4.new_code_cell("helper = 42")
    html = {"text/html": "<script>x</script>"}
    mine.outputs = [nbformat.v4.new_output("display_data", data=html)]
    note = nbformat.v4.new_markdown_cell("<script>alert('grader')</script>")
    copy = nbformat.v4.new_code_cell("print('second softmax cell')", id="softmax-2")
    copy.metadata["nbgrader"] = {"grade_id": "softmax", "solution": True}
    nb.cells[index + 1 : index + 1] = [mine, note, copy]
    visible = next(cell for cell in nb.cells if cell.id == "test_softmax_visible")
    visible.source = "assert True  # edited by Ann"
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(nb, path)
    return path


def test_the_autograded_notebook_holds_the_students_code_and_the_safe_scores(student_notebook):
    source = nbformat.read(SOURCE, as_version=4)
    notebook = autograded.build(source, student_notebook, a_record("tampered"))
    nbformat.validate(notebook)
    ids = [cell.id for cell in notebook.cells]
    source_ids = [cell.id for cell in source.cells]
    assert ids[0] == "safe-grader-verdict"
    assert "status: tampered" in notebook.cells[0].outputs[0].text
    assert "a note <b>of</b> the grader" in notebook.cells[0].outputs[0].text
    assert [i for i in ids if i in source_ids] == source_ids  # every source cell, in order
    cells = {cell.id: cell for cell in notebook.cells}
    assert cells["softmax"].source == STUDENT_CODE
    assert cells["masked_softmax"].source == "# (this cell is not in the submission)"
    assert cells["test_softmax_visible"].source == next(
        c.source for c in source.cells if c.id == "test_softmax_visible"
    )
    assert cells["test_softmax_visible"].outputs[0].text.startswith("0 / 1 points: softmax for")
    added = ids[ids.index("softmax") + 1 : ids.index("softmax") + 3]
    assert [cells[i].source for i in added] == [
        "helper = 42",
        "# a second cell with grade id 'softmax'\nprint('second softmax cell')",
    ]
    assert all("nbgrader" not in cells[i].metadata for i in added)
    text = json.dumps(notebook)
    assert "<script>" not in text and "alert(" not in text
    assert source == nbformat.read(SOURCE, as_version=4)  # the cached source is left alone


def test_an_unreadable_notebook_leaves_the_solution_cells_empty(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    source = nbformat.read(SOURCE, as_version=4)
    for path in (broken, None):
        notebook = autograded.build(source, path, a_record("malformed"))
        solution = next(cell for cell in notebook.cells if cell.id == "softmax")
        assert solution.source == "# (no notebook could be read from the submission: malformed)"


@pytest.fixture
def course(tmp_path) -> Course:
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    return Course.load(tmp_path)


def test_the_feedback_page_goes_where_the_exchange_takes_it(course):
    submitted = course.submitted / "ann" / ASSIGNMENT
    submitted.mkdir(parents=True)
    (submitted / "timestamp.txt").write_text("2026-01-01 10:00:00.000000 UTC")
    (submitted / "submission_secret.txt").write_text("s3cret")
    record = a_record()
    page = feedback.write_feedback(course, record)
    assert page == course.feedback / "ann" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert (page.parent / "submission_secret.txt").read_text() == "s3cret"
    assert "<title>a0_softmax: 9 / 10</title>" in page.read_text()
    assert "a note &lt;b&gt;of&lt;/b&gt; the grader" in page.read_text()
    assert feedback.by_hand(course, ASSIGNMENT) == []

    # Resubmitted by hand, without the notebook: the secret goes, a page per notebook found.
    for name in ("timestamp.txt", "submission_secret.txt"):
        (submitted / name).unlink()
    missing = {**record, "status": "missing notebook", "cells": [], "score": 0.0}
    feedback.write_feedback(course, missing, found=("my_notebook.ipynb",))
    assert sorted(p.name for p in page.parent.iterdir()) == ["a0_softmax.html", "my_notebook.html"]
    assert feedback.by_hand(course, ASSIGNMENT) == ["ann"]


def test_a_review_adds_manual_points_and_comments_to_the_page():
    record = a_record("tampered")
    grade_id = record["cells"][0]["grade_id"]
    page = feedback.render(record, Review({grade_id: 1.0}, {"softmax": "good <idea>"}))
    assert "<title>a0_softmax: 10 / 10</title>" in page
    assert "1 / 1 (given by your instructor; the grader gave 0)" in page
    assert "softmax: good &lt;idea&gt;" in page


@pytest.mark.parametrize("target", ["autograde", "feedback"])
def test_plain_nbgrader_refuses_an_assignment_the_safe_grader_graded(course, target):
    (course.autograded / "ann" / ASSIGNMENT).mkdir(parents=True)
    (course.autograded / "ann" / ASSIGNMENT / "grading.json").write_text("{}")
    result = make(target, f"ASSIGNMENT={ASSIGNMENT}", course=course.root)
    assert result.returncode != 0
    assert "graded by the safe grader" in result.stderr
    assert not (course.feedback / "ann").exists()
