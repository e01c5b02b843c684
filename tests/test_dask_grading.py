"""The safe grader on a Dask cluster of separate OS processes (``dask scheduler`` and two
``dask worker`` on 127.0.0.1): a class of correct, buggy and hostile submissions graded as
the local run of tests/test_grader.py grades them, through a killed client (resumed) and a
killed worker; an assignment that kills every worker it runs on; GPU workers (a label here)
that get the submissions whose tests use devices, and refuse them without bubblewrap."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from distributed import Client
from nbgrader.api import Gradebook

from tests.test_grader import FLAGS, ROOT
from vislearn.grader import __main__ as cli

# 12 submissions of three assignments, every status but `timed out` and `error` (which the
# last test makes): correct and buggy ones, and hostile ones that crash, cheat, break the
# notebook or leave it out (see tests/hostile); most of them on a0, the cheapest to grade.
CLASS = {
    "a0_softmax": ["alice", "bob", "dan", "os_exit", "torch_softmax", "truncated_json",
                   "renamed_notebook", "getattr_softmax"],
    "a3_masked": ["alice", "mae_reference_import"],
    "a5_lifting": ["alice", "bea"],
}  # fmt: skip
STARTUP = 120  # seconds for the scheduler and a worker to come up

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("bwrap") is None,
        reason="bubblewrap (bwrap) is not installed, and the workers refuse to grade without "
        "it: apt-get install bubblewrap",
    ),
]


def spawn(*args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """A Dask command in its own process group (so that teardown kills all of it)."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dask"), *args],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def worker(address: str, name: str, folder: Path, *args: str, env=None) -> subprocess.Popen:
    """A single-threaded ``dask worker`` (with its nanny, which restarts it if it dies)."""
    return spawn("worker", address, "--name", name, "--nthreads", "1", "--memory-limit", "0",
                 "--no-dashboard", "--local-directory", str(folder / name), *args,
                 log=folder / f"{name}.log", env=env)  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler (``allowed-failures`` 1: a job that kills two workers is an error) and two
    single-threaded workers; the scheduler's address."""
    folder = tmp_path_factory.mktemp("dask")
    address_file = folder / "scheduler.json"
    scheduler = ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(address_file)]  # fmt: skip
    allowed_failures = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    processes = [spawn(*scheduler, log=folder / "scheduler.log", env=allowed_failures)]
    try:
        deadline = time.monotonic() + STARTUP
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        processes += [worker(address, name, folder) for name in ("w1", "w2")]
        with Client(address, timeout=STARTUP) as client:
            client.wait_for_workers(2, timeout=STARTUP)
        yield address, folder
    finally:
        for process in processes:
            stop(process)


@pytest.fixture(scope="module")
def local(graded):
    """The local run's course (tests/test_grader.py), for the records of this class."""
    course, _, _ = graded
    return course


def class_course(local: Path, folder: Path, source: Path = ROOT / "solutions") -> Path:
    """A course with this module's class, copied from the local run's course, with its
    grading secret (so the same seeds) and no records."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(source, folder / "solutions")
    (folder / "autograded").mkdir()
    shutil.copy(local / "autograded" / ".grading_secret", folder / "autograded")
    for assignment, students in CLASS.items():
        for student in students:
            shutil.copytree(local / "submitted" / student / assignment,
                            folder / "submitted" / student / assignment)  # fmt: skip
    return folder


def grader(course: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "vislearn.grader", *CLASS, "--course", str(course),
            *FLAGS, *args]  # fmt: skip


def records(course: Path) -> dict:
    """(assignment, student) -> the record, without the time its grading took."""
    return {
        (path.parts[-2], path.parts[-3]): {
            key: value for key, value in json.loads(path.read_text()).items() if key != "seconds"
        }
        for path in course.glob("autograded/*/*/grading.json")
    }


def gradebook(course: Path) -> dict:
    """Every score, comment and flag of this class in the course's gradebook."""
    book = Gradebook(f"sqlite:///{course / 'gradebook.db'}", "transformers-and-beyond")
    try:
        entries = {}
        for assignment, students in CLASS.items():
            for student in students:
                notebook = book.find_submission(assignment, student).notebooks[0]
                entries[assignment, student] = (
                    notebook.flagged,
                    sorted((grade.name, grade.auto_score) for grade in notebook.grades),
                    sorted((comment.name, comment.auto_comment) for comment in notebook.comments),
                )
        return entries
    finally:
        book.close()


def wait_for_records(course: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while len(records(course)) < count:
        assert process.poll() is None, "the grader ended before the fault was injected"
        assert time.monotonic() < deadline
        time.sleep(0.1)


def kill_a_busy_worker(address: str) -> None:
    """SIGKILL the grading process of a worker while it grades (its nanny starts another)."""
    deadline = time.monotonic() + STARTUP
    with Client(address) as client:
        busy = []
        while not busy:
            assert time.monotonic() < deadline, "no worker was grading"
            busy = [worker for worker, keys in client.processing().items() if keys]
        os.kill(client.run(os.getpid, workers=busy[:1])[busy[0]], signal.SIGKILL)


@pytest.fixture(scope="module")
def faulted(cluster, local, tmp_path_factory):
    """The class graded on the cluster through two faults: the client is SIGKILLed after 5
    records, then run again with ``--resume``, and a worker is SIGKILLed while grading during
    that second run. The course, the first records' times, and the second run."""
    address, _ = cluster
    course = class_course(local, tmp_path_factory.mktemp("faulted"))
    first = subprocess.Popen(grader(course, "--scheduler", address), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for_records(course, 5, first)
    first.kill()
    first.wait()
    kept = {path: path.stat().st_mtime_ns for path in course.glob("autograded/*/*/grading.json")}
    resume = grader(course, "--scheduler", address, "--resume")
    second = subprocess.Popen(resume, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_records(course, len(kept) + 2, second)
    kill_a_busy_worker(address)
    output, _ = second.communicate(timeout=600)
    return course, kept, second.returncode, output


def test_the_class_graded_through_faults_equals_the_local_run(faulted, local):
    course, _, returncode, output = faulted
    assert returncode == 0, output
    got, expected = records(course), records(local)
    assert len(got) == sum(map(len, CLASS.values()))
    assert got == {key: expected[key] for key in got}
    assert gradebook(course) == gradebook(local)


def test_a_resumed_run_does_not_regrade_what_was_recorded(faulted):
    _, kept, _, output = faulted
    assert f"kept {len(kept)} graded before" in output
    assert {path: path.stat().st_mtime_ns for path in kept} == kept


def test_device_tests_go_to_gpu_workers_which_refuse_without_bubblewrap(
    cluster, local, tmp_path, capsys
):
    """A third worker with a GPU resource (a label on a CPU) and no bwrap on its PATH: the
    submissions of a0 (its tests run on each device) must go to it, and it refuses them."""
    address, folder = cluster
    no_bwrap = {"PATH": str(Path(sys.executable).parent)}
    gpu = worker(address, "gpu", folder, "--resources", "GPU=1", env=no_bwrap)
    try:
        with Client(address) as client:
            client.wait_for_workers(3, timeout=STARTUP)
        course = class_course(local, tmp_path)
        status = cli.main(["a0_softmax", "--course", str(course), "--scheduler", address, *FLAGS])
    finally:
        stop(gpu)
    assert status == 1  # the two workers without the resource would have graded them
    assert "refuses to grade: bubblewrap (bwrap) is not installed" in capsys.readouterr().err
    assert not records(course)


def test_an_assignment_that_kills_every_worker_is_an_error_not_a_hole(cluster, local, tmp_path):
    """An instructor's setup cell that ends the trusted process: it kills both workers (the
    scheduler allows one failure), and the submission is recorded as an error."""
    address, _ = cluster
    source = tmp_path / "source"
    shutil.copytree(ROOT / "solutions", source)
    notebook = source / "a0_softmax" / "a0_softmax.ipynb"
    nb = json.loads(notebook.read_text())
    next(cell for cell in nb["cells"] if cell["id"] == "setup")["source"] = "import os; os._exit(3)"
    notebook.write_text(json.dumps(nb))
    course = class_course(local, tmp_path / "course", source)
    args = ["a0_softmax", "--student", "alice", "--course", str(course), "--scheduler", address]
    assert cli.main([*args, *FLAGS]) == 2
    got = records(course)["a0_softmax", "alice"]
    assert (got["status"], got["score"]) == ("error", 0)
    assert "died each time" in got["notes"][0]


def test_only_assignments_whose_tests_use_devices_need_a_gpu():
    from vislearn.grader.cluster import uses_devices
    from vislearn.grader.notebook import load_spec

    spec = load_spec(ROOT / "solutions" / "a0_softmax" / "a0_softmax.ipynb", "a0_softmax")
    assert uses_devices(spec)
    cpu_only = [replace(test, source="assert 1 + 1 == 2\n") for test in spec.tests]
    assert not uses_devices(replace(spec, tests=tuple(cpu_only), setup_cells=()))
