"""The gradebook on a PostgreSQL server: the safe grader writes to it, ``make grades`` exports
from it, a regrade replaces a score, and the report and the return of feedback read scores and
manual reviews from it. The test starts a real server (Debian's ``postgresql`` binaries) as an
unprivileged user in a temporary folder, on 127.0.0.1."""

from __future__ import annotations

import csv
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from tests.submissions import CLASSES
from tests.test_course import submission
from tests.test_grader import FLAGS, ROOT, record, submit
from vislearn.grader import __main__ as cli
from vislearn.grader.gradebook import Review, entries, reviews

BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
COURSE_ID = "transformers-and-beyond"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BIN is None,
        reason="the PostgreSQL server binaries are absent (/usr/lib/postgresql/*/bin): "
        "apt-get install postgresql",
    ),
]


def as_server_user(*argv: str) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as ``nobody``."""
    if os.geteuid() != 0:
        return list(argv)
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own (trust authentication, 127.0.0.1 only); its URL."""
    folder = Path(tempfile.mkdtemp(prefix="vislearn-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody", "nogroup")
    data, port = folder / "data", free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    pg_ctl = as_server_user(f"{BIN}/pg_ctl", "-D", str(data))
    try:
        subprocess.run(as_server_user(f"{BIN}/initdb", "-D", str(data), "-U", "grader",
                                      "--auth=trust", "--no-sync"), **run)  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*pg_ctl, "-o", options, "-l", str(folder / "log"), "-w", "start"], **run)
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def scores(url: str) -> dict[str, float]:
    gradebook = Gradebook(url, COURSE_ID)
    try:
        return {s.student.id: s.score for s in gradebook.assignment_submissions("a0_softmax")}
    finally:
        gradebook.close()


def exported(course: Path) -> dict[str, float]:
    """``make grades`` (nbgrader's export from the configured gradebook): student -> score."""
    make = ["make", "--no-print-directory", "-C", str(ROOT), "grades", f"COURSE={course}"]
    result = subprocess.run(make, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(course / "grades.csv") as f:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}


def grade(course: Path, *students: str) -> None:
    """Trusted submissions, graded without the sandbox: it is tested elsewhere."""
    args = [arg for student in students for arg in ("--student", student)]
    status = cli.main(["a0_softmax", "--course", str(course), "--no-sandbox", *FLAGS, *args])
    assert status == 0


def test_grades_go_to_postgresql_and_a_regrade_replaces_them(postgres, tmp_path):
    course = tmp_path
    config = (ROOT / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text(
        f"{config}\nc.CourseDirectory.db_url = {postgres!r}\n"
    )
    shutil.copytree(ROOT / "solutions", course / "solutions")
    correct, buggy = CLASSES["a0_softmax"]["alice"][0], CLASSES["a0_softmax"]["bob"][0]
    for student, cells in (("alice", correct), ("bob", buggy)):
        submit(course, student, "a0_softmax", submission("a0_softmax", cells), {})
    grade(course)
    assert not (course / "gradebook.db").exists()
    first = {s: record(course, "a0_softmax", s)["score"] for s in ("alice", "bob")}
    assert first["alice"] > first["bob"]
    assert scores(postgres) == first
    assert exported(course) == first

    submit(course, "alice", "a0_softmax", submission("a0_softmax", buggy), {})
    grade(course, "alice")
    assert scores(postgres) == exported(course) == {"alice": first["bob"], "bob": first["bob"]}

    # What the report and `make return-feedback` read: scores, names and manual reviews.
    with Gradebook(postgres, COURSE_ID) as gradebook:
        gradebook.find_grade(
            "test_softmax_visible", "a0_softmax", "a0_softmax", "bob"
        ).manual_score = 1
        gradebook.find_comment("softmax", "a0_softmax", "a0_softmax", "bob").manual_comment = "ok"
        gradebook.db.commit()
    found = entries(postgres, COURSE_ID, ["a0_softmax"])
    assert {student: entry.score for (_, student), entry in found.items()} == scores(postgres)
    assert reviews(postgres, COURSE_ID, "a0_softmax") == {
        "bob": Review({"test_softmax_visible": 1.0}, {"softmax": "ok"})
    }
