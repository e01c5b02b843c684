"""The instructor's report (``make report``, ``python -m vislearn.grader.report``) on the
corpus graded by the safe grader (the session's ``graded`` fixture): its numbers are those of
the records and the gradebook, failures are grouped by kind, the submissions that need a
person are all there, ``--anonymous`` shows no student, and every page reads well in Chromium
at 1280 pixels (the book's reader's gate)."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from nbgrader.api import Gradebook

from tests.test_browser import CHROMIUM, SCREENSHOTS, browser, open_page, reader_problems, serve
from tests.test_course import make
from tests.test_grader import ROOT
from vislearn import testing
from vislearn.grader.course import Course
from vislearn.grader.records import stored_records
from vislearn.grader.report import __main__ as cli
from vislearn.grader.report import build
from vislearn.grader.report.failures import KINDS, kind
from vislearn.grader.scan import Hit

__all__ = ["browser"]  # the fixture, shared with tests/test_browser.py

pytestmark = pytest.mark.slow
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
PSEUDONYM = re.compile(r"^student-[0-9a-f]{8}$")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def records_of(course: Path, assignment: str) -> list[dict]:
    return [record for _, record in stored_records(Course.load(course), assignment)]


@pytest.fixture(scope="module")
def course(graded, tmp_path_factory) -> Path:
    """A copy of the graded corpus's course (the tests here change its gradebook), in which
    the students have names and one flagged submission got a manual point."""
    source, _, _ = graded
    copy = tmp_path_factory.mktemp("report-course") / "course"
    shutil.copytree(source, copy, symlinks=True)
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}", "transformers-and-beyond") as book:
        for student in book.students:
            book.update_or_create_student(student.id, first_name="Ada", last_name=f"Q{student.id}")
        flagged = next(r for r in records_of(copy, "a0_softmax") if r["status"] != "graded")
        grade = book.find_grade(
            "test_softmax_visible", "a0_softmax", "a0_softmax", flagged["student"]
        )
        grade.manual_score = 1.0
        book.db.commit()
    return copy


@pytest.fixture(scope="module")
def report(course, tmp_path_factory) -> Path:
    """``make report`` into a folder of its own."""
    out = tmp_path_factory.mktemp("report") / "report"
    result = make("report", f"REPORT_ARGS=--out {out}", course=course)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(str(out / "index.html"))
    return out


@pytest.fixture(scope="module")
def anonymous(course, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("anonymous") / "report"
    build(Course.load(course), out, anonymous=True)
    return out


def test_a_page_per_assignment_and_an_overview_with_their_csv_files(report):
    assert {p.name for p in report.glob("*.html")} == {"index.html"} | {
        f"{a}.html" for a in ASSIGNMENTS
    }
    for page in report.glob("*.html"):
        linked = re.findall(r'href="([^"#]+)"', page.read_text())
        tables = page.read_text().count("<table>")
        csvs = [href for href in linked if href.endswith(".csv")]
        assert len(csvs) >= tables, page
        for href in linked:
            assert (report / href.replace("%20", " ")).is_file(), (page.name, href)


def test_scores_statuses_and_pass_rates_are_those_of_the_records(report, course):
    for assignment in ASSIGNMENTS:
        found = records_of(course, assignment)
        scores = read_csv(report / f"{assignment}-scores.csv")
        assert sum(int(row["submissions"]) for row in scores) == len(found)
        people = read_csv(report / f"{assignment}-need-a-person.csv")
        assert {(r["student"], r["status"]) for r in people} == {
            (r["student"], r["status"]) for r in found if r["status"] != "graded"
        }
        assert all(row["reason"] for row in people)
        for row in read_csv(report / f"{assignment}-tests.csv"):
            full = sum(
                c["points"] >= c["max_points"]
                for r in found
                for c in r["cells"]
                if c["grade_id"] == row["test cell"]
            )
            assert int(row["full"]) == full, row
        assert {row["kind"] for row in read_csv(report / f"{assignment}-tests.csv")} <= {
            "visible",
            "hidden",
        }


def test_scores_are_the_gradebooks_with_manual_points_and_names_are_shown(report, course):
    flagged = next(r for r in records_of(course, "a0_softmax") if r["status"] != "graded")
    (row,) = [
        r
        for r in read_csv(report / "a0_softmax-need-a-person.csv")
        if r["student"] == flagged["student"]
    ]
    assert float(row["autograder's score"]) == flagged["score"]
    cell = next(c for c in flagged["cells"] if c["grade_id"] == "test_softmax_visible")
    assert float(row["score"]) == flagged["score"] - cell["points"] + 1.0
    assert row["name"] == f"Ada Q{flagged['student']}"


def test_failures_are_grouped_by_kind_with_counts(report, course):
    for assignment in ASSIGNMENTS:
        found = records_of(course, assignment)
        failing = Counter(
            c["grade_id"] for r in found for c in r["cells"] if c["points"] < c["max_points"]
        )
        rows = read_csv(report / f"{assignment}-failures.csv") if failing else []
        counted = Counter()
        for row in rows:
            counted[row["test cell"]] += int(row["submissions"])
        assert counted == failing, assignment
        kinds = Counter()
        for row in rows:
            kinds[row["kind"]] += int(row["submissions"])
        assert set(kinds) <= {name for name, _ in KINDS} | {"other"}, assignment
        assert kinds["other"] <= 0.05 * kinds.total(), (assignment, kinds)


def test_each_status_is_explained_by_failures_of_its_kind(course):
    """Every timed-out, crashed or tampered submission of the corpus has a failing test cell
    whose message is of a matching kind."""
    expected = {
        "timed out": {"timeout"},
        "crashed": {"crash"},
        "tampered": {"forbidden name", "reach-around construct", "protocol"},
    }
    for assignment in ASSIGNMENTS:
        for record in records_of(course, assignment):
            if record["status"] in expected:
                failed = [c for c in record["cells"] if c["points"] < c["max_points"]]
                kinds = {kind(c["message"]) for c in failed}
                assert kinds & expected[record["status"]], (record["student"], failed)


def test_the_testing_helpers_messages_have_their_kinds():
    x = torch.ones(2, 3)
    cases = {
        "shape": x[:, :2],
        "dtype": x.double(),
        "NaN or infinite": torch.full_like(x, float("nan")),
        "wrong values": x * 2,
    }
    for expected, got in cases.items():
        with pytest.raises(AssertionError) as failure:
            testing.assert_close(got, x, name="softmax", inputs="x of shape (2, 3)")
        assert kind(str(failure.value)) == expected, str(failure.value)


def test_the_scans_messages_have_their_kinds():
    forbidden = Hit("torch.softmax", "softmax", 3, "softmax")
    reach_around = Hit("exec", "softmax", 4, "softmax", reach_around=True)
    assert kind(f"not run: softmax {forbidden.describe()}") == "forbidden name"
    assert kind(f"not run: softmax {reach_around.describe()}") == "reach-around construct"


def test_threshold_exercises_near_a_threshold_need_a_person(course, tmp_path):
    measured = [c for r in records_of(course, "a4_graphs") for c in r["cells"] if "measured" in c]
    assert measured
    build(Course.load(course), tmp_path / "wide", ["a4_graphs"], margin=1.0)
    assert len(read_csv(tmp_path / "wide" / "a4_graphs-near-threshold.csv")) == len(measured)
    build(Course.load(course), tmp_path / "none", ["a4_graphs"], margin=0.0)
    assert read_csv(tmp_path / "none" / "a4_graphs-near-threshold.csv") == []


def test_grading_time_and_the_runs_wall_time_are_shown(report, course):
    for assignment in ASSIGNMENTS:
        seconds = sorted((r["seconds"] for r in records_of(course, assignment)), reverse=True)
        slowest = read_csv(report / f"{assignment}-slowest.csv")
        assert [float(row["seconds"]) for row in slowest] == seconds[:10]
        runs = read_csv(report / f"{assignment}-runs.csv")
        assert runs and all(float(row["wall time (s)"]) > 0 for row in runs)


def test_an_anonymous_report_shows_pseudonyms_only(anonymous, course, tmp_path):
    students = {r["student"] for a in ASSIGNMENTS for r in records_of(course, a)}
    for table in anonymous.glob("*.csv"):
        for row in read_csv(table):
            if "student" in row:
                assert PSEUDONYM.match(row["student"]), (table.name, row["student"])
            assert "name" not in row
    texts = [p.read_text() for p in anonymous.rglob("*") if p.suffix in (".html", ".csv")]
    assert not [t for t in texts if "Ada" in t]
    words = {w for t in texts for w in re.findall(r"\w+", t)}
    assert not words & {s for s in students if len(s) >= 4}
    assert all(PSEUDONYM.match(p.stem) for p in anonymous.glob("feedback/*/*.html"))
    again = tmp_path / "again"
    build(Course.load(course), again, anonymous=True)
    for table in anonymous.glob("*need-a-person.csv"):
        assert read_csv(table) == read_csv(again / table.name)


def test_the_report_reads_records_not_every_feedback_page(course, tmp_path, monkeypatch):
    loaded, read, original = Course.load(course), [], Path.read_text

    def counting(path, *args, **kwargs):
        if loaded.feedback in path.parents:
            read.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    build(loaded, tmp_path / "report")
    copies = list((tmp_path / "report" / "feedback").glob("*/*.html"))
    total = sum(1 for a in ASSIGNMENTS for _ in records_of(course, a))
    assert len(read) == len(copies) < total


def test_an_output_folder_that_is_not_a_report_is_refused(course, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["--course", str(course), "--out", str(tmp_path)]) == 1
    assert "is not a report: choose another --out" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert cli.main(["a9_nothing", "--course", str(course)]) == 1
    assert "no source notebook for a9_nothing" in capsys.readouterr().err


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed")
def test_every_page_reads_well_at_1280_pixels_offline(browser, report):
    problems = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with serve(report) as url:
        for page_file in sorted(report.glob("*.html")):
            page, loading = open_page(browser, f"{url}/{page_file.name}")
            problems += [f"{page_file.name}: {problem}" for problem in loading]
            problems += reader_problems(page, page_file.name)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            if width > 1280:
                problems.append(f"{page_file.name}: {width} pixels wide")
            page.screenshot(path=str(SCREENSHOTS / f"report-{page_file.stem}.png"), full_page=True)
            page.close()
    assert not problems, "\n".join(problems)
