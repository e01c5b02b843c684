"""The sandboxes the zygote forks (vislearn/grader/sandbox.py, harness.py): each submission's
sandbox is fresh, private and cannot reach the zygote, another sandbox or the grader."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vislearn.grader import protocol, sandbox
from vislearn.grader.sandbox import (
    Limits,
    Sandbox,
    SandboxError,
    command,
    prepare_runtime,
    self_test,
    zygote,
)

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"
)

# What a student's code tries to leave behind, and then looks for: a file in each folder a
# sandbox could share with the next one (the private ones, /dev, every folder of sys.path).
LEAVE = """
import os, sys
PLACES = ['/tmp', '/sandbox', '/dev', '/dev/shm', *[p for p in sys.path if os.path.isdir(p)]]
def leave():
    written = []
    for place in PLACES:
        try:
            with open(os.path.join(place, 'left_behind.py'), 'w') as f:
                f.write('SECRET = 1')
            written.append(place)
        except OSError:
            pass
    return written
def find():
    return [p for p in PLACES if os.path.exists(os.path.join(p, 'left_behind.py'))]
def under_tmp():
    import package_under_tmp
    return package_under_tmp.WHERE
def spin():
    while True:
        pass
"""


@pytest.fixture(scope="module")
def argv(tmp_path_factory) -> list[str]:
    """The sandbox's command, with one more package, in a folder under /tmp (as a Python
    environment in a CI checkout under /tmp would be)."""
    folder = tmp_path_factory.mktemp("site")
    assert str(folder).startswith("/tmp/")
    (folder / "package_under_tmp.py").write_text("WHERE = 'under /tmp'\n")
    packages = [*sandbox.sandbox_packages(), (str(folder), "package_under_tmp.py")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox, "sandbox_packages", lambda: packages)
        return command(prepare_runtime(tmp_path_factory.mktemp("runtime")), Limits(),
                       sandboxed=True, gpu=False)  # fmt: skip


def started(argv: list[str]) -> Sandbox:
    """A sandbox that has run :data:`LEAVE`."""
    sandbox = Sandbox(zygote(argv, sandboxed=True), None)
    deadline = time.monotonic() + 60
    sandbox.send({"op": "setup", "cells": [["cell", LEAVE]], "forbidden": [], "seed": 1,
                  "threads": 1, "gpu_fraction": None}, deadline)  # fmt: skip
    assert sandbox.receive(deadline)["op"] == "hello"
    assert sandbox.receive(deadline) == {"op": "ready", "errors": [], "refused": []}
    return sandbox


@contextmanager
def running(argv: list[str]) -> Iterator[Sandbox]:
    """:func:`started`, killed on exit."""
    sandbox = started(argv)
    try:
        yield sandbox
    finally:
        sandbox.kill()


def called(sandbox: Sandbox, name: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    sandbox.send({"op": "call", "name": name, "args": protocol.encode([]),
                  "kwargs": protocol.encode({})}, deadline)  # fmt: skip
    reply = sandbox.receive(deadline)
    assert reply["ok"], reply
    return protocol.decode(reply["value"])


def test_the_forked_sandboxes_pass_their_self_test(argv):
    assert self_test(argv, ROOT) == []


def test_the_self_test_names_what_an_unsandboxed_process_reaches(tmp_path):
    """The checks can fail: without bubblewrap a fork shares the grader's PID namespace and
    reads the grader's environment."""
    runtime = prepare_runtime(tmp_path)
    plain = command(runtime, Limits(), sandboxed=False, gpu=False)
    (tmp_path / "work").mkdir()
    sandbox = Sandbox(zygote(plain, sandboxed=False), tmp_path / "work")
    deadline = time.monotonic() + 60
    try:
        sandbox.send({"op": "self-test", "paths": [str(ROOT / "solutions")]}, deadline)
        report = sandbox.receive(deadline)["report"]
    finally:
        sandbox.kill()
    assert report["shares the PID namespace"] and report["reads another environment"]
    assert report[f"sees {ROOT / 'solutions'}"]
    assert not report["fork"], "the seccomp filter applies without bubblewrap too"


def test_nothing_a_sandbox_writes_reaches_the_next(argv):
    with running(argv) as first:
        assert set(called(first, "leave")) == {"/tmp", "/sandbox", "/dev/shm"}
    with running(argv) as second:
        assert called(second, "find") == []


def test_a_sandbox_that_never_answers_is_killed_and_the_next_one_starts(argv):
    spinning = started(argv)
    with pytest.raises(SandboxError) as timeout:
        called(spinning, "spin", timeout=1)
    assert timeout.value.kind == "timeout"
    spinning.kill()
    assert not spinning.alive
    assert "SIGKILL" in spinning.how_it_ended()
    with running(argv) as after:
        assert called(after, "find") == []


def test_a_zygote_that_died_is_started_again(argv):
    first = zygote(argv, sandboxed=True)
    first.process.kill()
    first.process.wait()
    with running(argv) as sandbox:
        assert sandbox.zygote is not first and sandbox.zygote.alive


def test_a_python_environment_under_tmp_stays_in_sight(argv):
    """The fork's fresh /tmp hides what bubblewrap bound there: it is bound again."""
    with running(argv) as inside:
        assert called(inside, "under_tmp") == "under /tmp"
        assert "/tmp" in called(inside, "leave")


def test_a_sandbox_lost_with_its_zygote_is_the_graders_fault_not_the_students(argv):
    lost = started(argv)
    threading.Timer(0.5, lost.zygote.process.kill).start()  # during the call
    with pytest.raises(SandboxError) as error:
        called(lost, "spin", timeout=20)
    assert error.value.kind == "infrastructure"
    lost.kill()  # nothing left to kill, and no error
    assert not lost.alive


def test_without_nested_namespaces_each_sandbox_gets_a_container_of_its_own(argv):
    """Where a fork cannot make namespaces of its own (here: bubblewrap's --disable-userns),
    the zygote's container is the sandbox, and each sandbox gets a zygote of its own."""
    plain = [argv[0], "--disable-userns", *argv[1:]]
    assert self_test(plain, ROOT) == []
    with running(plain) as first:
        assert first.zygote.one_sandbox
        assert {"/tmp", "/sandbox"} <= set(called(first, "leave"))
    with running(plain) as second:
        assert second.zygote is not first.zygote
        assert called(second, "find") == []
