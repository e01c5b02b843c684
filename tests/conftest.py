"""Shared fixtures: every numerical test runs on each device this machine has."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from vislearn import available_devices


@pytest.fixture(params=available_devices(), ids=lambda d: d.type)
def device(request) -> torch.device:
    """Each available device in turn (CPU always; CUDA or MPS where present)."""
    return request.param


@pytest.fixture(autouse=True)
def _deterministic_matmul():
    """Full float32 precision for comparisons: no TF32 on Ampere and newer GPUs."""
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


ROOT = Path(__file__).resolve().parents[1]


# --- set-ups in the background ---------------------------------------------------------------
# Two long set-ups only wait on the processes they start: the safe grader's corpus (one worker)
# and a class taken through nbgrader's exchange (tests/test_exchange.py). When a selected test
# needs one, it starts as soon as the tests are collected, its processes pinned to one core
# (the tests before it use about one core), and its fixture waits for it.


def _graded_corpus(cleanup: contextlib.ExitStack):
    from tests.test_grader import grade_the_corpus

    folder = Path(tempfile.mkdtemp(prefix="vislearn-corpus-"))
    cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
    return grade_the_corpus(folder)


def _class_through_the_exchange(cleanup: contextlib.ExitStack):
    from tests.test_exchange import a_class

    return cleanup.enter_context(a_class())


BACKGROUND = {"graded": _graded_corpus, "klass": _class_through_the_exchange}
_running: dict[str, Future] = {}
_pool = ThreadPoolExecutor(max_workers=len(BACKGROUND), thread_name_prefix="background set-up")
_cleanup = contextlib.ExitStack()


def _on_one_core(name: str):
    """Run the set-up ``name`` with this thread, and every process it starts, on one core."""
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # 0: the calling thread
    return BACKGROUND[name](_cleanup)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests in three phases, each in its usual order: first those that use one core, while
    the background set-ups run on the other; then those that read the background set-ups;
    last those that use both cores (``both_cores``)."""

    def phase(item: pytest.Item) -> int:
        if item.get_closest_marker("both_cores"):
            return 2
        return 1 if BACKGROUND.keys() & set(getattr(item, "fixturenames", ())) else 0

    items.sort(key=phase)


def pytest_collection_finish(session: pytest.Session) -> None:
    needed = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for name in BACKGROUND:
        if name in needed:
            _running[name] = _pool.submit(_on_one_core, name)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _pool.shutdown(wait=True)
    _cleanup.close()


def background(name: str):
    """The value of the background set-up ``name``, once it is ready (started now if it was
    not started with the session)."""
    if name not in _running:
        _running[name] = _pool.submit(_on_one_core, name)
    return _running[name].result()


@pytest.fixture(scope="session")
def graded():
    """The safe grader's corpus graded once, shared by tests/test_grader.py,
    tests/test_dask_grading.py and tests/test_report.py (see
    tests.test_grader.grade_the_corpus)."""
    return background("graded")


@pytest.fixture(scope="session")
def built_book() -> Path:
    """`make book` (warm when the chapters and vislearn are unchanged since the last build),
    then the path of the HTML site."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "book"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return ROOT / "_build" / "html"
