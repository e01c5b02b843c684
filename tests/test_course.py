"""The nbgrader course: source notebooks, the release, and autograding a class."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

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
    """The distinctive lines of a source notebook's solution and hidden-test regions."""
    source = "\n".join(
        cell.source for cell in nbformat.read(notebook, as_version=4).cells
    )
    regions = SOLUTION_REGION.findall(source) + HIDDEN_REGION.findall(source)
    lines = {line.strip() for region in regions for line in region.splitlines()}
    return {line for line in lines if len(line) >= 16}


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


@pytest.mark.parametrize("notebook", SOURCE_NOTEBOOKS, ids=lambda p: p.parent.name)
def test_solutions_pass_their_own_visible_and_hidden_tests(notebook):
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


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

A0 = "a0_softmax"

WRONG_AXIS_SOFTMAX = '''
def softmax(x, dim=-1):
    exps = (x - x.max(dim=-1, keepdim=True).values).exp()  # ignores `dim`
    return exps / exps.sum(dim=-1, keepdim=True)
'''

MASK_AFTER_SOFTMAX = '''
def masked_softmax(x, mask, dim=-1):
    return softmax(x, dim=dim) * mask  # masked after normalising: rows no longer sum to 1
'''

CRASHING_CELL = '''
raise RuntimeError("this cell crashes when the notebook runs")
'''


def submission(**replacements: str) -> nbformat.NotebookNode:
    """The released a0 notebook completed with the instructor's solutions, except the cells
    named in ``replacements`` (grade id -> source)."""
    solved = {
        cell.id: SOLUTION_REGION.sub(lambda m: m.group(1), cell.source)
        for cell in nbformat.read(ROOT / "solutions" / A0 / f"{A0}.ipynb", as_version=4).cells
    }
    nb = nbformat.read(ROOT / "assignments" / A0 / f"{A0}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.id in replacements:
            cell.source = replacements[cell.id]
        elif cell.metadata["nbgrader"].get("solution"):
            cell.source = solved[cell.id]
    return nb


CELL_POINTS = {
    "test_softmax_visible": 1,
    "test_softmax_random": 2,
    "test_softmax_large_logits": 1,
    "test_softmax_dtypes_and_gradient": 1,
    "test_masked_softmax_visible": 1,
    "test_masked_softmax_random": 3,
    "test_masked_softmax_fully_masked": 1,
}
SOFTMAX_CELLS = [c for c in CELL_POINTS if "masked" not in c]
MASKED_CELLS = [c for c in CELL_POINTS if "masked" in c]

# student -> (cells replaced, the test cells that must score 0)
CLASS = {
    "alice": ({}, []),
    "bob": ({"softmax": WRONG_AXIS_SOFTMAX},
            # masked_softmax calls the wrong softmax; only its dim=-1 visible test survives
            [c for c in CELL_POINTS if c != "test_masked_softmax_visible"]),
    "carol": ({"masked_softmax": CRASHING_CELL}, MASKED_CELLS),
    # weights of partly masked rows no longer sum to 1: every masked_softmax check fails
    "erin": ({"masked_softmax": MASK_AFTER_SOFTMAX}, MASKED_CELLS),
}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the course with four submissions and a malformed one, autograded once."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    assert make("release", course=course).returncode == 0
    for student, (replacements, _) in CLASS.items():
        folder = course / "submitted" / student / A0
        folder.mkdir(parents=True)
        (folder / f"{A0}.ipynb").write_text(nbformat.writes(submission(**replacements)))
    broken = course / "submitted" / "dave" / A0
    broken.mkdir(parents=True)
    text = nbformat.writes(submission())
    (broken / f"{A0}.ipynb").write_text(text[: len(text) // 2])  # truncated JSON
    autograde = make("autograde", f"ASSIGNMENT={A0}", course=course)
    return course, autograde


def test_autograde_reports_the_malformed_submission_and_grades_the_rest(graded_class):
    course, autograde = graded_class
    log = autograde.stdout + autograde.stderr
    assert autograde.returncode != 0, "a failed submission must make the command fail"
    assert "for student 'dave'" in log
    for student in CLASS:
        assert (course / "autograded" / student / A0 / f"{A0}.ipynb").exists(), log


def test_autograde_scores_each_test_cell_on_its_own(graded_class):
    course, _ = graded_class
    for student, (_, failing) in CLASS.items():
        nb = json.loads((course / "autograded" / student / A0 / f"{A0}.ipynb").read_text())
        scores = {}
        for cell in nb["cells"]:
            grade_id = cell["metadata"]["nbgrader"]["grade_id"]
            if grade_id in CELL_POINTS:
                errored = any(o["output_type"] == "error" for o in cell.get("outputs", []))
                scores[grade_id] = 0 if errored else CELL_POINTS[grade_id]
        expected = {c: 0 if c in failing else p for c, p in CELL_POINTS.items()}
        assert scores == expected, student


def test_grades_export_and_feedback(graded_class):
    course, _ = graded_class
    assert make("feedback", f"ASSIGNMENT={A0}", course=course).returncode == 0
    for student in CLASS:
        assert (course / "feedback" / student / A0 / f"{A0}.html").exists()
    result = make("grades", course=course)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(course / "grades.csv") as f:
        rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    total = sum(CELL_POINTS.values())
    for student, (_, failing) in CLASS.items():
        assert rows[student] == total - sum(CELL_POINTS[c] for c in failing), student
    assert rows.get("dave", 0.0) == 0.0


def test_submitted_files_are_left_untouched(graded_class):
    course, _ = graded_class
    for student, (replacements, _) in CLASS.items():
        on_disk = (course / "submitted" / student / A0 / f"{A0}.ipynb").read_text()
        assert on_disk == nbformat.writes(submission(**replacements))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
