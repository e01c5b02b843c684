"""A class through nbgrader's exchange and the safe grader, end to end, with real student
identities.

The instructor releases an assignment into an exchange directory (world-writable and sticky,
as README "Running a class" sets it up); two students fetch it, one submits a correct notebook
and one a notebook that calls a function the exercise forbids. The instructor collects and
grades with the safe grader (``make grade``): the second submission is flagged ``tampered``.
The instructor reviews it in nbgrader's formgrader (on its own server) and gives a point and a
comment by hand, then returns the feedback (``make return-feedback``), which holds the review;
each student fetches their own. The second student resubmits late, honest but with a bug: the
new submission replaces the old, the manual point stays through the regrade, and the student
then holds two feedback pages, one per submission.

Where the tests run as root (here and in CI) each student is a Unix user created for the test,
with a home directory of their own (mode 700), so every permission check is the kernel's. The
instructor side runs as the user running the tests, through the Makefile's targets. Without
root (or when other users cannot run the course's Python) the same cycle runs under one user,
with separate home directories and ``--student`` ids, and the tests of permissions are skipped
with the reason.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import re
import resource
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from tests.formgrader import Formgrader
from tests.hostile import SUBMISSIONS
from tests.submissions import CLASSES
from tests.test_course import cell_points, make, secret_lines, submission
from tests.test_grader import FLAGS

ROOT = Path(__file__).resolve().parents[1]
COURSE_ID = "transformers-and-beyond"  # nbgrader_config.py's c.CourseDirectory.course_id
ASSIGNMENT = "a0_softmax"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
RIGHT, WRONG = "alice", "bob"  # two submissions of tests/submissions/a0_softmax.py
FORBIDDEN = SUBMISSIONS["torch_softmax"]  # Bob's first submission: Tensor.softmax, forbidden
MANUAL_CELL, MANUAL_POINTS = "test_softmax_visible", 1.0  # what the instructor gives by hand
COMMENT = "Tensor.softmax is not allowed here: <one point> for the idea."
# The safe grader's limits of tests/test_grader.py, on one worker; without bubblewrap the
# trusted submissions of this class run unsandboxed (the sandbox is tested there).
GRADE_ARGS = " ".join([*FLAGS, "--jobs", "1", *([] if shutil.which("bwrap") else ["--no-sandbox"])])

# Students run nbgrader from the course's packages, with an interpreter they may execute: the
# virtual environment's, or else (when that one links to a Python behind a directory other
# users cannot enter, e.g. pyenv under /root) the system's Python of the same version.
SITE_PACKAGES = sysconfig.get_path("purelib")
BOOT = (
    "import site, sys; site.addsitedir(sys.argv.pop(1)); "
    "from nbgrader.apps.nbgraderapp import main; sys.argv[0] = 'nbgrader'; sys.exit(main())"
)
PYTHONS = [sys.executable] + [
    f"{prefix}/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    for prefix in ("/usr", "/usr/local")
]

# Attempts of one student, as that Unix user, on another's work, the exchange and the
# instructor's files: each one must fail with PermissionError.
PROBE = """
import json, os, sys
outcome = {}
for what, action, path in json.loads(sys.argv[1]):
    try:
        if action == "list":
            os.listdir(path)
        elif action == "read":
            open(path, "rb").read()
        elif action == "write":
            open(path, "a").close()
        elif action == "rename":
            os.rename(path, path + "-moved")
        outcome[what] = "allowed"
    except OSError as error:
        outcome[what] = type(error).__name__
print(json.dumps(outcome))
"""


@dataclass
class Student:
    name: str  # the nbgrader student id: the Unix user's name, or --student without root
    home: Path
    uid: int | None = None
    gid: int | None = None

    @property
    def work(self) -> Path:
        """The assignment folder that fetch_assignment creates in the student's home."""
        return self.home / ASSIGNMENT


def run_as(student: Student, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``argv`` in the student's home with the student's identity and a minimal
    environment (no variable of the test's own leaks in)."""
    env = {
        "HOME": str(student.home),
        "USER": student.name,
        "LOGNAME": student.name,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    identity = {}
    if student.uid is not None:
        identity = dict(user=student.uid, group=student.gid, extra_groups=[], umask=0o022)
    return subprocess.run(
        argv, env=env, cwd=student.home, capture_output=True, text=True, timeout=300, **identity
    )


@dataclass
class Class:
    exchange: Path
    course: Path  # the instructor's course directory (a copy of this repository's course)
    python: str  # the students' interpreter
    students: dict[str, Student]  # RIGHT and WRONG
    no_users: str | None  # why the students are not Unix users of their own, if they are not
    log: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)  # wall, CPU seconds
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    fetched: dict[str, dict[str, str]] = field(default_factory=dict)
    returned: dict[str, str] = field(default_factory=dict)  # the instructor's reports
    inbound: dict[str, str] = field(default_factory=dict)  # submission folder -> its owner
    review: dict = field(default_factory=dict)  # what the formgrader showed and holds

    def output(self, step: str) -> str:
        return self.log[step].stdout + self.log[step].stderr

    @contextmanager
    def timed(self, step: str):
        """Record the step's wall-clock time and the CPU time of the processes it ran."""

        def cpu() -> float:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime

        wall, used = time.perf_counter(), cpu()
        yield
        self.timings[step] = (time.perf_counter() - wall, cpu() - used)

    def instructor(self, step: str, target: str, *args: str) -> None:
        """A Makefile target on the course, as the instructor (the user running the tests)."""
        result = make(
            target,
            f"ASSIGNMENT={ASSIGNMENT}",
            f"EXCHANGE={self.exchange}",
            *args,
            course=self.course,
        )
        self.log[step] = result
        assert result.returncode == 0, f"make {target}:\n{result.stdout}\n{result.stderr}"

    def nbgrader(self, step: str, student: Student, *args: str, check: bool = True):
        """``nbgrader ARGS`` in the student's home, as the student."""
        if student.uid is None and args[0] == "submit":
            args = (*args, f"--student={student.name}")  # one Unix user: say who submits
        result = run_as(student, [self.python, "-c", BOOT, SITE_PACKAGES, *args])
        self.log[step] = result
        if check:
            assert result.returncode == 0, f"{step}:\n{result.stdout}\n{result.stderr}"
        return result

    def grade(self, step: str) -> None:
        """``make grade``: the safe grader, as the instructor."""
        self.instructor(step, "grade", f"GRADE_ARGS={GRADE_ARGS}")

    def work_on(self, student: Student, cells: dict[str, str]) -> None:
        """The student completes the fetched notebook with ``cells`` (grade id -> source)
        and the instructor's solutions elsewhere."""
        path = student.work / NOTEBOOK
        path.write_text(submission(ASSIGNMENT, cells))
        if student.uid is not None:
            os.chown(path, student.uid, student.gid)

    def record_scores(self, when: str) -> None:
        with Gradebook(f"sqlite:///{self.course / 'gradebook.db'}", COURSE_ID) as gradebook:
            self.scores[when] = {
                role: gradebook.find_submission(ASSIGNMENT, student.name).score
                for role, student in self.students.items()
            }

    def fetch_feedback(self, when: str) -> None:
        """Each student fetches feedback; record the reports each one then holds, and the
        instructor's report of each (the safe grader's page, where nbgrader looks for it)."""
        for role, student in self.students.items():
            report = self.course / "feedback" / student.name / ASSIGNMENT / f"{ASSIGNMENT}.html"
            self.returned[f"{role} {when}"] = report.read_text()
            self.nbgrader(f"fetch_feedback {role} {when}", student, "fetch_feedback", ASSIGNMENT)
            self.fetched[f"{role} {when}"] = {
                str(p.relative_to(student.work / "feedback")): p.read_text()
                for p in sorted((student.work / "feedback").glob(f"*/{ASSIGNMENT}.html"))
            }


def review(klass: Class) -> None:
    """The instructor opens Bob's flagged submission in nbgrader's formgrader and gives a point
    and a comment by hand."""
    bob = klass.students[WRONG].name
    with Formgrader(klass.course) as formgrader:
        (entry,) = [e for e in formgrader.submitted(ASSIGNMENT) if e["student"] == bob]
        klass.review["flagged"] = entry["flagged"]
        klass.review["page"] = formgrader.submission_page(entry["id"])
        formgrader.give(entry["id"], MANUAL_CELL, MANUAL_POINTS)
        formgrader.comment(entry["id"], "softmax", COMMENT)


def run_cycle(klass: Class) -> None:
    alice, bob = klass.students[RIGHT], klass.students[WRONG]
    with klass.timed("release to the exchange"):
        klass.instructor("release-exchange", "release-exchange")
    with klass.timed("fetch (2 students)"):
        for role, student in klass.students.items():
            klass.nbgrader(f"fetch {role}", student, "fetch_assignment", ASSIGNMENT)
    klass.work_on(alice, CLASSES[ASSIGNMENT][RIGHT][0])
    klass.work_on(bob, FORBIDDEN["cells"])
    with klass.timed("submit (2 students)"):
        for role, student in klass.students.items():
            klass.nbgrader(f"submit {role}", student, "submit", ASSIGNMENT)
    with klass.timed("collect"):
        klass.instructor("collect", "collect")
    klass.inbound = {
        p.name: pwd.getpwuid(p.stat().st_uid).pw_name
        for p in (klass.exchange / COURSE_ID / "inbound").iterdir()
    }
    with klass.timed("grade (2 submissions)"):
        klass.grade("grade")
    klass.record_scores("first")
    with klass.timed("review in the formgrader"):
        review(klass)
    klass.record_scores("after review")
    with klass.timed("return feedback"):
        klass.instructor("return-feedback", "return-feedback")
    with klass.timed("fetch feedback (2 students)"):
        klass.fetch_feedback("first")

    # Bob resubmits after the deadline, without the forbidden function but with a bug.
    klass.work_on(bob, CLASSES[ASSIGNMENT][WRONG][0])
    with klass.timed("resubmit"):
        klass.nbgrader("resubmit bob", bob, "submit", ASSIGNMENT)
    with klass.timed("collect the resubmission"):
        klass.instructor("collect again", "collect")
    with klass.timed("grade again (2 submissions)"):
        klass.grade("grade again")
    klass.record_scores("after resubmission")
    with Gradebook(f"sqlite:///{klass.course / 'gradebook.db'}", COURSE_ID) as gradebook:
        grade = gradebook.find_grade(MANUAL_CELL, ASSIGNMENT, ASSIGNMENT, bob.name)
        klass.review["regraded"] = grade.auto_score, grade.manual_score, grade.needs_manual_grade
    with klass.timed("return feedback again"):
        klass.instructor("return-feedback again", "return-feedback")
    with klass.timed("fetch feedback again (2 students)"):
        klass.fetch_feedback("after resubmission")


def create_student(base: Path, role: str, users: list[str] | None) -> Student:
    """A home directory (mode 700) and, unless ``users`` is None, a Unix user of a unique
    name owning it (its name appended to ``users``)."""
    home = base / "home" / role
    (home / ".jupyter").mkdir(parents=True)
    home.chmod(0o700)
    if users is None:
        return Student(role, home)
    name = f"tb{secrets.token_hex(3)}{role}"
    subprocess.run(
        [
            *("useradd", "--no-create-home", "--home-dir", str(home)),
            *("--user-group", "--shell", "/usr/sbin/nologin", name),
        ],
        check=True,
        capture_output=True,
    )
    users.append(name)
    entry = pwd.getpwnam(name)
    for path in (home, home / ".jupyter"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return Student(name, home, entry.pw_uid, entry.pw_gid)


def configure(student: Student, exchange: Path) -> None:
    """The student's ~/.jupyter/nbgrader_config.py, as README "Running a class" gives it."""
    config = student.home / ".jupyter" / "nbgrader_config.py"
    config.write_text(
        "c = get_config()  # noqa: F821\n"
        f'c.CourseDirectory.course_id = "{COURSE_ID}"\n'
        f'c.Exchange.root = "{exchange}"\n'
        "c.Validator.width = 250\n"
    )
    if student.uid is not None:
        os.chown(config, student.uid, student.gid)


def students_python() -> tuple[str | None, str | None]:
    """The interpreter for students who are Unix users of their own, or why there are none:
    the first of PYTHONS with which the unprivileged user ``nobody`` imports nbgrader."""
    if os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("userdel")):
        return None, "not root (or no useradd): the students share the test's Unix user"
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None, "no user 'nobody' to check what other users can run"
    probe = Student("nobody", Path("/"), nobody.pw_uid, nobody.pw_gid)
    check = "import site, sys; site.addsitedir(sys.argv[1]); import nbgrader"
    for python in PYTHONS:
        try:
            if run_as(probe, [python, "-c", check, SITE_PACKAGES]).returncode == 0:
                return python, None
        except OSError:  # missing, or not executable by other users
            pass
    return None, (
        f"other Unix users cannot run the course's Python: none of {PYTHONS} imports nbgrader "
        f"from {SITE_PACKAGES}; make the repository and .venv readable and searchable by "
        "others (chmod o+rx) to test real permissions"
    )


@contextmanager
def a_class() -> Iterator[Class]:
    """One class, taken through the whole cycle once, its traces and step times recorded
    (benchmarks/class_cycle.py prints them); removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="tb-class-"))
    users: list[str] = []
    try:
        base.chmod(0o755)  # students reach the exchange and their own homes
        exchange = base / "exchange"
        exchange.mkdir()
        exchange.chmod(0o1777)  # world-writable and sticky, like /tmp
        course = base / "instructor" / "course"
        course.mkdir(parents=True)
        course.parent.chmod(0o700)  # the instructor's home: solutions/ and the gradebook
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "solutions", course / "solutions")
        python, no_users = students_python()
        students = {
            role: create_student(base, role, None if no_users else users) for role in (RIGHT, WRONG)
        }
        for student in students.values():
            configure(student, exchange)
        klass = Class(exchange, course, python or sys.executable, students, no_users)
        with klass.timed("whole cycle"):
            run_cycle(klass)
        yield klass
    finally:
        for name in users:
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def klass():
    """The class the tests below read the traces of (taken through its cycle in the
    background from the session's start: tests/conftest.py)."""
    from tests.conftest import background

    return background("klass")


def test_the_exchange_has_nbgraders_permissions(klass):
    course = klass.exchange / COURSE_ID
    modes = {
        str(path.relative_to(klass.exchange.parent)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in (klass.exchange, course / "outbound", course / "inbound", course / "feedback")
    }
    assert list(modes.values()) == ["0o1777", "0o755", "0o2733", "0o711"], modes


def test_each_student_fetched_the_release(klass):
    released = (klass.course / "assignments" / ASSIGNMENT / NOTEBOOK).read_text()
    assert "raise NotImplementedError()" in released
    published = klass.exchange / COURSE_ID / "outbound" / ASSIGNMENT / NOTEBOOK
    assert published.read_text() == released
    assert "Fetched as" in klass.output(f"fetch {RIGHT}")
    for student in klass.students.values():
        if student.uid is not None:
            assert (student.work / NOTEBOOK).stat().st_uid == student.uid


def test_submissions_are_collected_under_each_students_identity(klass):
    names = sorted(student.name for student in klass.students.values())
    assert sorted(entry.split("+")[0] for entry in klass.inbound) == names
    if klass.no_users is None:  # each submission belongs to the Unix user it names
        assert all(owner == entry.split("+")[0] for entry, owner in klass.inbound.items())
        assert "cheating attempt" not in klass.output("collect")
    for name in names:
        assert (klass.course / "submitted" / name / ASSIGNMENT / NOTEBOOK).exists()


def test_the_grades_are_those_of_the_submissions(klass):
    total = sum(cell_points(ASSIGNMENT).values())
    assert FORBIDDEN["score"] < total
    assert klass.scores["first"] == {RIGHT: total, WRONG: FORBIDDEN["score"]}
    assert klass.scores["after review"] == {RIGHT: total, WRONG: FORBIDDEN["score"] + 1}


def test_feedback_reaches_each_student_and_no_other(klass):
    reports = {}
    for role in klass.students:
        fetched = klass.fetched[f"{role} first"]
        assert len(fetched) == 1, fetched
        (reports[role],) = fetched.values()
        assert reports[role] == klass.returned[f"{role} first"]
    assert f"{ASSIGNMENT}: 10 / 10" in reports[RIGHT]
    assert "Status: <strong>tampered</strong>" in reports[WRONG]
    assert FORBIDDEN["message"] in reports[WRONG]


def test_returned_feedback_shows_no_hidden_test(klass):
    hidden = secret_lines(klass.course / "solutions" / ASSIGNMENT / NOTEBOOK)
    pages = [page for fetched in klass.fetched.values() for page in fetched.values()]
    assert len(pages) == 5  # Alice 1 + 1, Bob 1 + 2
    assert not [line for page in pages for line in hidden if line in page]
    assert not [p for p in klass.exchange.rglob("*.html") if "BEGIN HIDDEN" in p.read_text()]


def test_the_instructor_reviews_a_flagged_submission_in_the_formgrader(klass):
    """The formgrader's page of Bob's flagged submission shows his code and the grader's
    verdict; the point and the comment given there reach Bob with his feedback."""
    assert klass.review["flagged"] is True
    page = html.unescape(re.sub(r"<[^>]+>", "", klass.review["page"]))
    assert "return x.softmax(dim)" in page  # Bob's code, from the autograded notebook
    assert "status: tampered" in page and FORBIDDEN["message"] in page
    (returned,) = klass.fetched[f"{WRONG} first"].values()
    assert f"{ASSIGNMENT}: {FORBIDDEN['score'] + MANUAL_POINTS:g} / 10" in returned
    assert "1 / 1 (given by your instructor; the grader gave 0)" in returned
    assert html.escape(COMMENT) in returned and COMMENT not in returned


def test_a_late_resubmission_replaces_the_earlier_one_and_keeps_the_manual_point(klass):
    """The resubmission's automatic scores replace the earlier ones; the manual point stays
    and counts, and its cell is up for review again (as nbgrader's autograder leaves it)."""
    assert "Updating submission" in klass.output("collect again")
    points = cell_points(ASSIGNMENT)
    total, lost = sum(points.values()), sum(points[c] for c in CLASSES[ASSIGNMENT][WRONG][1])
    assert MANUAL_CELL in CLASSES[ASSIGNMENT][WRONG][1]  # the bug fails the cell graded by hand
    bob_score = total - lost + MANUAL_POINTS
    assert klass.scores["after resubmission"] == {RIGHT: total, WRONG: bob_score}
    assert klass.review["regraded"] == (0.0, MANUAL_POINTS, True)
    bob = klass.students[WRONG]
    collected = klass.course / "submitted" / bob.name / ASSIGNMENT / NOTEBOOK
    assert collected.read_text() == (bob.work / NOTEBOOK).read_text()
    # Bob now holds two reports, one per submission; Alice still holds her one.
    before, after = klass.fetched[f"{WRONG} first"], klass.fetched[f"{WRONG} after resubmission"]
    assert len(after) == 2 and set(before) < set(after)
    (new,) = set(after) - set(before)
    assert after[new] == klass.returned[f"{WRONG} after resubmission"]
    assert "Status: <strong>graded</strong>" in after[new]
    assert f"{ASSIGNMENT}: {bob_score:g} / {total:g}" in after[new]
    assert klass.fetched[f"{RIGHT} after resubmission"] == klass.fetched[f"{RIGHT} first"]


def test_the_exchange_publishes_no_solution_and_no_hidden_test(klass):
    hidden = secret_lines(klass.course / "solutions" / ASSIGNMENT / NOTEBOOK)
    outbound = klass.exchange / COURSE_ID / "outbound"
    published = "\n".join(p.read_text() for p in outbound.rglob("*") if p.is_file())
    assert published and not [line for line in hidden if line in published]


def test_a_student_cannot_read_another_students_work_or_the_solutions(klass):
    if klass.no_users:
        pytest.skip(klass.no_users)
    alice, bob = klass.students[RIGHT], klass.students[WRONG]
    course = klass.exchange / COURSE_ID
    (report,) = (alice.work / "feedback").glob(f"*/{ASSIGNMENT}.html")
    (cached,) = (alice.home / ".local/share/jupyter/nbgrader_cache" / COURSE_ID).iterdir()
    attempts = [
        ("list the submissions in inbound/", "list", course / "inbound"),
        ("list the returned feedback", "list", course / "feedback"),
        ("list Alice's home", "list", alice.home),
        ("read Alice's notebook", "read", alice.work / NOTEBOOK),
        ("read Alice's copy of her submission", "read", cached / NOTEBOOK),
        ("read Alice's feedback", "read", report),
        ("read the solutions", "read", klass.course / "solutions" / ASSIGNMENT / NOTEBOOK),
        ("read the gradebook", "read", klass.course / "gradebook.db"),
        ("change the release", "write", course / "outbound" / ASSIGNMENT / NOTEBOOK),
        ("add a file to the release", "write", course / "outbound" / ASSIGNMENT / "extra.py"),
        ("move the course's exchange away", "rename", course),
    ]
    plan = json.dumps([(what, action, str(path)) for what, action, path in attempts])
    result = run_as(bob, [klass.python, "-c", PROBE, plan])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {what: "PermissionError" for what, _, _ in attempts}
    # nbgrader itself refuses too: Bob cannot collect the class's submissions.
    collect = klass.nbgrader("bob collects", bob, "collect", ASSIGNMENT, check=False)
    assert collect.returncode != 0
    assert "You don't have read permissions" in collect.stdout + collect.stderr
    assert not (bob.home / "submitted").exists()


def test_a_submission_under_another_students_name_is_flagged_by_collect(klass):
    """nbgrader trusts ``submit --student``, but collect names the real owner. Runs last: it
    leaves Bob's notebook as Alice's newest submission."""
    if klass.no_users:
        pytest.skip(klass.no_users)
    alice, bob = klass.students[RIGHT], klass.students[WRONG]
    klass.nbgrader("bob as alice", bob, "submit", ASSIGNMENT, f"--student={alice.name}")
    klass.instructor("collect the impersonation", "collect")
    log = klass.output("collect the impersonation")
    assert f"claims to be submitted by {alice.name} but is owned by {bob.name}" in log
    assert "cheating attempt" in log
