"""The worker side: grading one submission on whatever machine a Dask worker runs on.

The client sends a :class:`Job` (plain data: the grading plan, the notebook's bytes, the
seed and the limits) and gets a record back. Everything that depends on the machine is
decided here: the threads and the GPU-memory share of the submission, the sandbox's command
line (this machine's Python, a private copy of the harness) and whether the sandbox is sound.
A worker without a working bubblewrap raises :class:`SandboxUnavailable` instead of grading
unsandboxed. The worker process is the trusted side of :mod:`evaluate`: it never runs a
student's code itself.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from distributed import get_client, get_worker
from distributed.comm import get_address_host

from vislearn.grader.evaluate import Task, grade_safely, trusted_settings
from vislearn.grader.notebook import AssignmentSpec
from vislearn.grader.sandbox import Limits, bwrap_problem, command, prepare_runtime, self_test

GPU_MEMORY_SHARE = 0.8  # of a GPU's memory, split between the submissions that share it


class SandboxUnavailable(Exception):
    """This worker cannot grade safely (no bubblewrap, or a sandbox that leaks)."""


@dataclass(frozen=True)
class Host:
    """How many submissions one machine grades at once: ``slots`` in all, ``gpu_slots`` of
    them on the GPU (0: the worker declares no GPU resource)."""

    slots: int
    gpu_slots: int = 0


@dataclass(frozen=True)
class Job:
    """One submission to grade, as sent to a worker."""

    spec: AssignmentSpec
    student: str
    notebook: bytes | None  # the notebook's first bytes (see run.read_notebook); None: missing
    found: tuple[str, ...]  # the notebooks that are there instead, for the message
    seed: int
    limits: Limits  # threads, GPU share and CPU time are set here, per machine
    sandboxed: bool
    course: str  # the course's path on the client: the sandbox must not show it


def machines(workers: Iterable[dict]) -> dict[str, Host]:
    """What each machine grades at once, from the scheduler's information on ``workers``:
    all its workers' threads, of which the GPU slots they declare (``--resources GPU=n``)."""
    found: dict[str, Host] = {}
    for info in workers:
        host = found.get(info["host"], Host(slots=0))
        found[info["host"]] = Host(slots=host.slots + info["nthreads"],
                                   gpu_slots=host.gpu_slots +
                                   int(info["resources"].get("GPU", 0)))  # fmt: skip
    return found


def _host() -> str:
    """This worker's host, as the scheduler names it."""
    return get_address_host(get_worker().address)


@functools.cache
def _machine() -> Host:
    """What this worker's machine grades at once, as the scheduler knows it when the worker
    grades its first submission."""
    workers = get_client().scheduler_info(n_workers=-1)["workers"].values()
    return machines(workers).get(_host(), Host(slots=1))


@functools.cache
def _runtime() -> Path:
    """This process's copy of what the sandbox mounts at ``/grader``, removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="vislearn-grader-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return prepare_runtime(directory)


@functools.cache
def _sandbox(limits: Limits, sandboxed: bool, gpu: bool, course: str) -> tuple[str, ...]:
    """The command that starts a sandbox here, checked once per process and setting."""
    if sandboxed and (problem := bwrap_problem()):
        raise SandboxUnavailable(
            f"worker on {_host()} refuses to grade: {problem} "
            "(apt-get install bubblewrap on every worker)"
        )
    argv = command(_runtime(), limits, sandboxed=sandboxed, gpu=gpu)
    if sandboxed and (leaks := self_test(argv, Path(course))):
        raise SandboxUnavailable(
            f"worker on {_host()} refuses to grade: its sandbox is not sound ({', '.join(leaks)})"
        )
    return tuple(argv)


def machine_limits(limits: Limits, host: Host, gpu: bool) -> Limits:
    """``limits`` with this machine's share of its cores and, if ``gpu``, of its GPU: shared
    by the submissions that hold its GPU slots, else by all that ``host`` grades at once."""
    threads = max(1, len(os.sched_getaffinity(0)) // host.slots)
    gpu_fraction = GPU_MEMORY_SHARE / (host.gpu_slots or host.slots) if gpu else None
    return replace(limits, threads=threads, gpu_fraction=gpu_fraction,
                   cpu_seconds=int(limits.submission_timeout * threads) + 1)  # fmt: skip


def grade(job: Job) -> dict:
    """Grade ``job`` here (see :func:`vislearn.grader.evaluate.grade_safely`)."""
    gpu = torch.cuda.is_available()
    limits = machine_limits(job.limits, _machine(), gpu)
    argv = _sandbox(limits, job.sandboxed, gpu, job.course)
    trusted_settings(limits.threads)
    with tempfile.TemporaryDirectory(prefix="vislearn-submission-") as folder:
        notebook = None
        if job.notebook is not None:
            notebook = Path(folder) / f"{job.spec.name}.ipynb"
            notebook.write_bytes(job.notebook)
        task = Task(spec=job.spec, student=job.student,
                    notebook=None if notebook is None else str(notebook), found=job.found,
                    seed=job.seed, limits=limits, argv=argv, sandboxed=job.sandboxed,
                    course=job.course)  # fmt: skip
        return grade_safely(task)
