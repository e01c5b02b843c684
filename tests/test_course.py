"""The nbgrader course: source notebooks, the release, and autograding a class."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tests.submissions import CLASSES

ROOT = Path(__file__).resolve().parents[1]
SOURCE_NOTEBOOKS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
RELEASED_NOTEBOOKS = sorted((ROOT / "assignments").glob("*/*.ipynb"))
# The text between nbgrader's markers (marker lines excluded, indentation kept).
SOLUTION_REGION = re.compile(
    r"^[ \t]*### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n?", re.S | re.M
)
HIDDEN_REGION = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS\n(.*?)^[ \t]*### END HIDDEN TESTS", re.S | re.M
)


def make(*args: str, course: Path) -> subprocess.CompletedProcess:
    """Run one of the Makefile's instructor targets on the course directory ``course``."""
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), f"COURSE={course}", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def secret_lines(notebook: Path) -> set[str]:
    """The distinctive lines of a source notebook's solution and hidden-test regions that the
    rest of the notebook does not show anyway (a visible test may import what a hidden one
    does)."""
    source = "\n".join(cell.source for cell in nbformat.read(notebook, as_version=4).cells)
    regions = SOLUTION_REGION.findall(source) + HIDDEN_REGION.findall(source)
    public = HIDDEN_REGION.sub("", SOLUTION_REGION.sub("", source))
    lines = {line.strip() for region in regions for line in region.splitlines()}
    return {line for line in lines if len(line) >= 16 and line not in public}


def test_every_assignment_has_a_class_of_submissions():
    assert sorted(CLASSES) == sorted(p.parent.name for p in SOURCE_NOTEBOOKS)


def test_every_assignment_has_a_source_and_a_release():
    assert SOURCE_NOTEBOOKS, "no source notebooks in solutions/"
    sources = {p.relative_to(ROOT / "solutions") for p in SOURCE_NOTEBOOKS}
    released = {p.relative_to(ROOT / "assignments") for p in RELEASED_NOTEBOOKS}
    assert sources == released


@pytest.mark.parametrize("notebook", SOURCE_NOTEBOOKS + RELEASED_NOTEBOOKS, ids=str)
def test_notebooks_are_committed_without_outputs_and_with_stable_ids(notebook):
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        assert cell.get("outputs", []) == [], f"{notebook.name}: cell {cell.id} has outputs"
        assert cell.id == cell.metadata["nbgrader"]["grade_id"], "cell id must be its grade_id"


def test_release_is_in_sync_with_solutions(tmp_path):
    """assignments/ is exactly what `make release` generates from solutions/."""
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    result = make("release", course=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for released in RELEASED_NOTEBOOKS:
        fresh = tmp_path / released.relative_to(ROOT)
        assert fresh.read_bytes() == released.read_bytes(), (
            f"{released.relative_to(ROOT)} differs from a fresh `make release`: "
            "run `make release` and commit the result"
        )


@pytest.mark.parametrize("notebook", SOURCE_NOTEBOOKS, ids=lambda p: p.parent.name)
def test_release_contains_no_solution_or_hidden_test_code(notebook):
    secrets = secret_lines(notebook)
    assert len(secrets) > 5, "the secret regions should have been found"
    released = (ROOT / "assignments" / notebook.relative_to(ROOT / "solutions")).read_text()
    text = "\n".join(cell.source for cell in nbformat.reads(released, as_version=4).cells)
    leaked = [line for line in secrets if line in text]
    assert not leaked
    assert "BEGIN SOLUTION" not in released and "BEGIN HIDDEN TESTS" not in released


# --- autograding a class -------------------------------------------------------------------


def cell_points(assignment: str) -> dict[str, float]:
    """grade id -> points of every graded cell, from the source notebook's nbgrader metadata."""
    nb = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    meta = [cell.metadata["nbgrader"] for cell in nb.cells]
    return {m["grade_id"]: m["points"] for m in meta if m.get("grade")}


def submission(assignment: str, replacements: dict[str, str]) -> str:
    """The released notebook completed with the instructor's solutions, except the cells
    named in ``replacements`` (grade id -> source)."""
    source = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    solved = {
        cell.id: SOLUTION_REGION.sub(lambda m: m.group(1), cell.source)
        for cell in nbformat.read(source, as_version=4).cells
    }
    nb = nbformat.read(ROOT / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.id in replacements:
            cell.source = replacements[cell.id]
        elif cell.metadata["nbgrader"].get("solution"):
            cell.source = solved[cell.id]
    return nbformat.writes(nb)


# Plain nbgrader runs every submission in a kernel of its own, a few seconds each: it grades
# the instructor's solutions ("alice", who must score in full: the solutions pass their own
# visible and hidden tests) and the first few buggy submissions of each class. The safe
# grader's test (tests/test_grader.py) grades every submission of every class, the correct
# ones in other styles included.
BUGGY_PER_CLASS = 3


def plain_class(assignment: str) -> dict[str, tuple[dict[str, str], set[str]]]:
    """The part of an assignment's class that plain `nbgrader autograde` is tested on."""
    solutions = CLASSES[assignment]["alice"]
    buggy = [(s, entry) for s, entry in CLASSES[assignment].items() if entry[1]]
    assert solutions == ({}, []) and buggy, f"{assignment}: a class needs alice and bugs"
    return {"alice": solutions} | dict(buggy[:BUGGY_PER_CLASS])


def autograde_class(assignment: str, course: Path) -> subprocess.CompletedProcess:
    """A copy of the course at ``course`` with part of the class of ``assignment`` and a
    malformed submission, autograded once by plain nbgrader; the `make autograde` run."""
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    assert make("release", f"ASSIGNMENT={assignment}", course=course).returncode == 0
    for student, (replacements, _) in plain_class(assignment).items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_text(submission(assignment, replacements))
    broken = course / "submitted" / "zed" / assignment
    broken.mkdir(parents=True)
    text = submission(assignment, {})
    (broken / f"{assignment}.ipynb").write_text(text[: len(text) // 2])  # truncated JSON
    return make("autograde", f"ASSIGNMENT={assignment}", course=course)


@pytest.fixture(scope="module")
def autograded(request, tmp_path_factory):
    """The classes of the assignments the selected tests use, autograded two at a time (one
    per core of the CI machine: nbgrader runs one kernel at a time): assignment -> its course
    and the future of its run."""
    wanted = {
        item.callspec.params["graded_class"]
        for item in request.session.items
        if "graded_class" in getattr(getattr(item, "callspec", None), "params", {})
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        courses = {a: tmp_path_factory.mktemp(a) for a in sorted(wanted)}
        yield {
            a: (course, pool.submit(autograde_class, a, course)) for a, course in courses.items()
        }


@pytest.fixture(scope="module", params=sorted(CLASSES))
def graded_class(request, autograded):
    """A copy of the course with part of a class of submissions and a malformed one,
    autograded once."""
    course, run = autograded[request.param]
    return request.param, course, run.result()


@pytest.mark.both_cores
def test_autograde_reports_the_malformed_submission_and_grades_the_rest(graded_class):
    assignment, course, autograde = graded_class
    log = autograde.stdout + autograde.stderr
    assert autograde.returncode != 0, "a failed submission must make the command fail"
    assert "for student 'zed'" in log
    for student in plain_class(assignment):
        assert (course / "autograded" / student / assignment / f"{assignment}.ipynb").exists()


@pytest.mark.both_cores
def test_each_bug_loses_exactly_the_points_of_the_cells_that_check_it(graded_class):
    assignment, course, _ = graded_class
    points = cell_points(assignment)
    for student, (_, failing) in plain_class(assignment).items():
        graded = course / "autograded" / student / assignment / f"{assignment}.ipynb"
        scores = {}
        for cell in nbformat.read(graded, as_version=4).cells:
            grade_id = cell.metadata["nbgrader"]["grade_id"]
            if grade_id in points:
                errored = any(o.output_type == "error" for o in cell.get("outputs", []))
                scores[grade_id] = 0 if errored else points[grade_id]
        expected = {c: 0 if c in failing else p for c, p in points.items()}
        assert scores == expected, student


@pytest.mark.both_cores
def test_grades_export_and_feedback(graded_class):
    assignment, course, _ = graded_class
    assert make("feedback", f"ASSIGNMENT={assignment}", course=course).returncode == 0
    for student in plain_class(assignment):
        assert (course / "feedback" / student / assignment / f"{assignment}.html").exists()
    result = make("grades", course=course)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(course / "grades.csv") as f:
        rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    points = cell_points(assignment)
    for student, (_, failing) in plain_class(assignment).items():
        assert rows[student] == sum(points.values()) - sum(points[c] for c in failing), student
    assert rows.get("zed", 0.0) == 0.0


@pytest.mark.both_cores
def test_submitted_files_are_left_untouched(graded_class):
    assignment, course, _ = graded_class
    for student, (replacements, _) in plain_class(assignment).items():
        on_disk = course / "submitted" / student / assignment / f"{assignment}.ipynb"
        assert on_disk.read_text() == submission(assignment, replacements)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
