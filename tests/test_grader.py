"""The safe grader (``python -m vislearn.grader``) on a class of hostile, broken, buggy and
correct submissions (``tests/hostile/`` and ``tests/submissions/``), all graded in one
parallel run; then a re-grade, a crashing resubmission, and a refusal without bubblewrap."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from tests.hostile import SUBMISSIONS
from tests.submissions import CLASSES
from tests.test_course import cell_points, secret_lines, submission
from vislearn.grader import feedback
from vislearn.grader.course import Course

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(CLASSES)
# Short limits keep the endless loops cheap; 2 jobs = the cores of the course's CI machine.
FLAGS = ["--jobs", "2", "--timeout", "4", "--setup-timeout", "8", "--submission-timeout", "60",
         "--memory-mb", "1536", "--max-restarts", "1"]  # fmt: skip

# A value in the grader's environment that no feedback may show (tests/hostile/feedback_words.py)
CANARY = "grader-environment-canary"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("bwrap") is None,
        reason="bubblewrap (bwrap) is not installed, and the safe grader refuses to grade "
        "without it: apt-get install bubblewrap",
    ),
]


def run_grader(course: Path, *args: str):
    """The safe grader on ``course`` with :data:`FLAGS`, then ``args`` (which may override
    them), with :data:`CANARY` in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "vislearn.grader", "--course", str(course), *FLAGS, *args],
        env={**os.environ, "VISLEARN_CANARY": CANARY},
        capture_output=True,
        text=True,
        timeout=1500,  # the whole corpus, 150 submissions, on a loaded 2-core machine
    )


def notebook_text(assignment: str, entry: dict, cells: dict, course: Path) -> str:
    """A hostile entry's notebook (see tests/hostile/__init__.py)."""
    cells = {
        grade_id: source.replace("@COURSE@", str(course)).replace("@ROOT@", str(ROOT))
        for grade_id, source in cells.items()
    }
    nb = nbformat.reads(submission(assignment, cells), as_version=4)
    nb.cells = [cell for cell in nb.cells if cell.id not in entry.get("delete", [])]
    for grade_id, source in entry.get("duplicate", {}).items():
        (index,) = [i for i, cell in enumerate(nb.cells) if cell.id == grade_id]
        copy = nbformat.from_dict(json.loads(json.dumps(nb.cells[index])))
        copy.id, copy.source = f"{grade_id}-copy", source
        nb.cells.insert(index + 1, copy)
    text = nbformat.writes(nb)
    return text[: len(text) // 2] if entry.get("truncate") else text


def submit(course: Path, student: str, assignment: str, text: str, entry: dict) -> None:
    folder = course / "submitted" / student / assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / entry.get("notebook", f"{assignment}.ipynb")).write_text(text)
    for name, content in entry.get("files", {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def record(course: Path, assignment: str, student: str) -> dict:
    """The submission's record, without the time its grading took."""
    path = course / "autograded" / student / assignment / "grading.json"
    return {key: value for key, value in json.loads(path.read_text()).items() if key != "seconds"}


def grade_the_corpus(course: Path):
    """Submit the whole corpus to ``course`` and grade it in one run of one worker: the
    course, the run and the digest of the submissions before it (the session's ``graded``
    fixture, in conftest.py, graded in the background while other tests run; the tests of
    tests/test_dask_grading.py compare their runs with it)."""
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    for assignment, students in CLASSES.items():
        for student, (cells, _) in students.items():
            submit(course, student, assignment, submission(assignment, cells), {})
    for name, entry in SUBMISSIONS.items():
        cells = entry.get("first", entry["cells"])
        text = notebook_text(entry["assignment"], entry, cells, course)
        submit(course, name, entry["assignment"], text, {} if "first" in entry else entry)
    before = digest(course / "submitted")
    result = run_grader(course, *ASSIGNMENTS, "--jobs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    return course, result, before


def test_the_corpus_is_large_enough():
    assert len(SUBMISSIONS) + sum(len(c) for c in CLASSES.values()) >= 30
    assert {entry["assignment"] for entry in SUBMISSIONS.values()} >= {"a0_softmax", "a1_attention"}


def placeholders(text: str, course: Path) -> str:
    """``@COURSE@``, ``@ROOT@``, ``@VENV@`` and ``@PYTHON@`` (the grader's Python environment
    and its base interpreter) as the folders they stand for."""
    for name, folder in [("@COURSE@", course), ("@ROOT@", ROOT), ("@VENV@", sys.prefix),
                         ("@PYTHON@", sys.base_prefix)]:  # fmt: skip
        text = text.replace(name, str(folder))
    return text


def scored(got: dict, expected) -> bool:
    if isinstance(expected, tuple):  # a range: a training between a threshold's two ends
        low, high = expected
        return low <= got["score"] <= high
    return got["score"] == expected


def test_hostile_submissions_get_their_status_and_score(graded):
    course, _, _ = graded
    wrong = {}
    for name, entry in SUBMISSIONS.items():
        got = record(course, entry["assignment"], name)
        status, score = ("graded", 10) if "first" in entry else (entry["status"], entry["score"])
        if got["status"] not in (status if isinstance(status, tuple) else (status,)) or not scored(
            got, score
        ):
            wrong[name] = (got["status"], got["score"], got["notes"], got["cells"])
        text = json.dumps(got)
        messages = entry.get("message", "")
        messages = (messages,) if isinstance(messages, str) else messages
        if "first" not in entry and not any(message in text for message in messages):
            wrong[name] = f"none of {messages!r} in {text}"
        page = feedback.page(Course.load(course), entry["assignment"], name).read_text()
        shown = [t for t in entry.get("absent", []) if placeholders(t, course) in page]
        if shown:
            wrong[name] = f"the feedback shows {shown}"
    assert not wrong


def test_buggy_submissions_lose_exactly_the_points_of_their_bugs(graded):
    course, _, _ = graded
    for assignment, students in CLASSES.items():
        points = cell_points(assignment)
        for student, (_, failing) in students.items():
            got = record(course, assignment, student)
            scores = {cell["grade_id"]: cell["points"] for cell in got["cells"]}
            expected = {c: 0 if c in failing else p for c, p in points.items()}
            assert (got["status"], scores) == ("graded", expected), (student, got)


def test_gradebook_and_csv_hold_every_status_and_score(graded):
    course, _, _ = graded
    with open(course / "grades.csv") as f:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    gradebook = Gradebook(f"sqlite:///{course / 'gradebook.db'}", "transformers-and-beyond")
    try:
        for path in course.glob("autograded/*/*/grading.json"):
            got = json.loads(path.read_text())
            row = rows[got["assignment"], got["student"]]
            assert (row["status"], float(row["score"])) == (got["status"], got["score"])
            stored = gradebook.find_submission(got["assignment"], got["student"])
            assert stored.score == got["score"]
            assert stored.notebooks[0].flagged == (got["status"] != "graded")
    finally:
        gradebook.close()
    assert len(rows) == len(SUBMISSIONS) + sum(len(c) for c in CLASSES.values())


def test_submissions_are_untouched_and_nothing_escaped(graded):
    course, _, before = graded
    assert digest(course / "submitted") == before
    assert not list(course.rglob("pwned*")) and not list(ROOT.glob("pwned*"))
    assert (course / "gradebook.db").read_bytes()[-5:] != b"pwned"


def test_feedback_shows_no_hidden_test_or_reference_value(graded):
    course, _, _ = graded
    secrets = set().union(*(secret_lines(p) for p in (ROOT / "solutions").glob("*/*.ipynb")))
    pages = [p for p in course.glob("feedback/*/*/*.html") if p.stem == p.parent.name]
    assert len(pages) == len(SUBMISSIONS) + sum(len(c) for c in CLASSES.values())
    folders = [str(course), str(ROOT), sys.prefix, sys.base_prefix]
    for page in pages:
        text = page.read_text()
        assert not [line for line in secrets if line in text], page
        assert "reference_" not in text and not re.search(r"expected -?\d", text), page
        assert "largest error" not in text, page
        assert not [folder for folder in folders if folder in text], page


def test_regrading_is_idempotent_and_a_crashing_resubmission_replaces_the_score(graded):
    course, _, _ = graded
    name = "crash_resubmission"
    entry = SUBMISSIONS[name]
    before = record(course, "a0_softmax", "alice")
    submit(course, name, entry["assignment"], notebook_text(entry["assignment"], entry,
           entry["cells"], course), entry)  # fmt: skip
    result = run_grader(course, "a0_softmax", "--student", "alice", "--student", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert record(course, "a0_softmax", "alice") == before
    got = record(course, "a0_softmax", name)
    assert (got["status"], got["score"]) == (entry["status"], entry["score"])
    assert entry["message"] in json.dumps(got)
    with open(course / "grades.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["student_id"] == name)
    assert (row["status"], float(row["score"])) == (entry["status"], entry["score"])
    gradebook = Gradebook(f"sqlite:///{course / 'gradebook.db'}", "transformers-and-beyond")
    try:
        assert gradebook.find_submission("a0_softmax", name).score == entry["score"]
    finally:
        gradebook.close()


def test_grading_refuses_to_run_without_bubblewrap(monkeypatch, capsys):
    from vislearn.grader import __main__ as cli
    from vislearn.grader import sandbox

    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)  # no bwrap on the PATH
    assert cli.main(["a0_softmax", "--course", str(ROOT)]) == 1
    message = capsys.readouterr().err
    assert "bwrap" in message and "--no-sandbox" in message


def test_training_metadata_gives_timeouts_and_partial_credit(tmp_path):
    from vislearn.grader.notebook import MalformedNotebook, load_spec

    spec = load_spec(ROOT / "solutions" / "a4_graphs" / "a4_graphs.ipynb", "a4_graphs")
    assert spec.timeouts == {"train_gat": 30.0} and spec.classes == ("GATConv",)
    (threshold,) = [t.threshold for t in spec.tests if t.threshold is not None]
    fractions = [threshold.fraction(a) for a in (0.3, 0.55, 0.7, 0.85, 0.99)]
    assert fractions == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert "measured accuracy 70.0%" in threshold.describe(0.7)
    notebook = nbformat.read(ROOT / "solutions" / "a4_graphs" / "a4_graphs.ipynb", as_version=4)
    notebook.metadata.grading["thresholds"]["test_train_gat_hidden"]["zero"] = 0.9  # > full
    nbformat.write(notebook, tmp_path / "a4_graphs.ipynb")
    with pytest.raises(MalformedNotebook, match="zero must be below its full"):
        load_spec(tmp_path / "a4_graphs.ipynb", "a4_graphs")


def test_a_change_to_the_grader_or_a_reference_changes_the_setup_hash(tmp_path, monkeypatch):
    """``--resume`` keeps a record only if the same code graded it: a fixed reference or grader
    never hides behind old records."""
    from vislearn.grader import run
    from vislearn.grader.notebook import load_spec
    from vislearn.grader.sandbox import Limits

    original = tmp_path / "original" / "vislearn"
    shutil.copytree(ROOT / "lib" / "vislearn", original)
    before = run.code_hash(original)
    for changed in ("gnn.py", "grader/evaluate.py"):  # a reference, the grader
        package = tmp_path / changed.replace("/", "-") / "vislearn"
        shutil.copytree(original, package)
        (package / changed).write_text((package / changed).read_text() + "\n# a fix\n")
        assert run.code_hash(package) != before, changed
    spec = load_spec(ROOT / "solutions" / "a0_softmax" / "a0_softmax.ipynb", "a0_softmax")
    graded_by_this_code = run.setup_hash(spec, Limits(), True)
    fixed = run.code_hash(package)
    monkeypatch.setattr(run, "code_hash", lambda: fixed)
    assert run.setup_hash(spec, Limits(), True) != graded_by_this_code


def test_a_frame_whose_unpickling_would_run_code_is_refused(tmp_path):
    """The grader reads the sandbox's frames with ``torch.load(weights_only=True)``: an object
    with a ``__reduce__`` is a protocol error, and its code never runs."""
    import io

    import torch

    from vislearn.grader import protocol

    target = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(target), "w"))

    buffer = io.BytesIO()
    torch.save({"op": "result", "ok": True, "value": Payload()}, buffer)  # as the harness would
    with pytest.raises(protocol.ProtocolError, match="unreadable frame"):
        protocol.unpack(buffer.getvalue())
    assert not target.exists()
