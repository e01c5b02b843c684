"""Grading a class: every submission of some assignments, on a Dask cluster, with one writer.

Each submission becomes a :class:`~vislearn.grader.worker.Job` that a worker of the cluster
grades (:mod:`cluster`): the workers of ``--scheduler``, or a private local cluster of
``--jobs`` processes. Only this (client) process writes: each record goes to the gradebook,
the autograded notebook, the feedback page and ``grading.json`` as soon as it arrives
(:mod:`store`), and at the end ``grades.csv`` is rebuilt and the run is logged.

``grading.json`` is written last, atomically, and holds the hashes of the submitted notebook
and of the grading setup (the assignment's plan, the limits, the sandbox, the grading code and
the reference library) beside the seed:
with ``resume``, a submission whose record matches all three (and whose status is not
``error``) is not graded again, so a run that was stopped finishes the class where it was.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch

import vislearn
from vislearn.grader import cluster, records
from vislearn.grader.course import Course
from vislearn.grader.evaluate import derive_seed
from vislearn.grader.notebook import MAX_NOTEBOOK_BYTES, AssignmentSpec, load_spec
from vislearn.grader.sandbox import Limits, bwrap_problem
from vislearn.grader.store import Store
from vislearn.grader.worker import Job


class GradingRefused(Exception):
    """Grading cannot start safely (no sandbox, a leaky sandbox, a missing assignment)."""


def cores() -> int:
    return len(os.sched_getaffinity(0))


def read_notebook(path: Path) -> bytes | None:
    """The notebook's bytes (one more than the grader reads, if it is too large), or None."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return f.read(MAX_NOTEBOOK_BYTES + 1)


@functools.cache
def code_hash(package: Path = Path(vislearn.__file__).parent) -> str:
    """A hash of the code that grades and of the references it compares with: every source
    file of ``vislearn`` (the grader and the library), and torch's version."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(f"{path.relative_to(package)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def setup_hash(spec: AssignmentSpec, limits: Limits, sandboxed: bool) -> str:
    """A hash of everything besides the notebook and the seed that decides a grading: the
    assignment's plan, the limits, the sandbox, and the grading code (:func:`code_hash`)."""
    setup = {"spec": asdict(spec), "limits": asdict(limits), "sandboxed": sandboxed,
             "code": code_hash()}  # fmt: skip
    return hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()


def fingerprint(job: Job) -> dict:
    """What a record must match for ``resume`` to keep it."""
    notebook = None if job.notebook is None else hashlib.sha256(job.notebook).hexdigest()
    return {"notebook_sha256": notebook, "seed": job.seed,
            "setup_sha256": setup_hash(job.spec, job.limits, job.sandboxed)}  # fmt: skip


def _jobs(course: Course, spec, students, limits, sandboxed) -> Iterator[Job]:
    """The jobs of one assignment, each notebook read when its job is due."""
    secret = course.secret()
    for student in students:
        folder = course.submitted / student / spec.name
        found = tuple(sorted(p.name for p in folder.glob("*.ipynb"))) if folder.is_dir() else ()
        yield Job(spec=spec, student=student,
                  notebook=read_notebook(folder / f"{spec.name}.ipynb"), found=found,
                  seed=derive_seed(secret, spec.name, student), limits=limits,
                  sandboxed=sandboxed, course=str(course.root))  # fmt: skip


def _kept(course: Course, job: Job) -> dict | None:
    """The job's record if ``resume`` may keep it."""
    stored = records.read_record(course, job.spec.name, job.student)
    if stored is None or stored["status"] == "error":
        return None
    matches = all(stored.get(key) == value for key, value in fingerprint(job).items())
    return stored if matches else None


def grade(
    course: Course,
    assignments: list[str],
    students: list[str] | None = None,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    sandboxed: bool = True,
    limits: Limits | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Grade every submission (or those of ``students``) of each assignment on the cluster
    at ``scheduler`` (default: a local one of ``jobs`` workers, at most one per submission);
    the records."""
    start = time.monotonic()
    if scheduler is None and sandboxed and (problem := bwrap_problem()):
        raise GradingRefused(
            f"{problem}. Install it (Debian/Ubuntu: apt-get install bubblewrap), or pass "
            "--no-sandbox to run students' code without a sandbox (only for code you trust)."
        )
    missing = [a for a in assignments if not course.source_notebook(a).is_file()]
    if missing:
        raise GradingRefused(f"no source notebook for {', '.join(missing)} in {course.source}")
    specs = [load_spec(course.source_notebook(a), a) for a in assignments]
    roster = {spec.name: students or course.students(spec.name) for spec in specs}
    limits = limits or Limits()
    graded: list[dict] = []
    store = Store(course, specs)

    def done(record: dict, job: Job) -> None:
        record.update(fingerprint(job))
        store.write(record, job.found)
        graded.append(record)
        log(
            f"{record['assignment']:<14} {record['student']:<24} {record['status']:<16} "
            f"{record['score']:g}/{record['max_score']:g}  ({record['seconds']:.1f} s)"
        )

    def todo() -> Iterator[Job]:
        for spec in specs:
            for job in _jobs(course, spec, roster[spec.name], limits, sandboxed):
                if resume and (record := _kept(course, job)) is not None:
                    kept.append(record)
                else:
                    yield job

    kept: list[dict] = []
    try:
        workers = max(1, min(jobs or cores(), sum(map(len, roster.values()))))
        with cluster.connect(scheduler, workers) as client:
            machines = cluster.hosts(client)
            threads = sum(host.slots for host in machines.values())
            log(f"grading on {threads} worker thread(s) of {scheduler or 'a local cluster'}, "
                f"{'in bubblewrap sandboxes' if sandboxed else 'WITHOUT a sandbox'}")  # fmt: skip
            cluster.grade_all(client, todo(), machines, done)
            seconds = time.monotonic() - start
            log(f"graded {len(graded)} submission(s) in {seconds:.1f} s"
                + (f", kept {len(kept)} graded before" if resume else ""))  # fmt: skip
            store.log_run({"assignments": assignments, "graded": len(graded), "kept": len(kept),
                           "seconds": round(seconds, 1), "worker_threads": threads,
                           "cluster": scheduler or "local", "sandboxed": sandboxed})  # fmt: skip
    except cluster.WorkerRefused as refusal:
        raise GradingRefused(str(refusal)) from None
    finally:
        store.close()
    records.write_csv(course)
    return graded + kept
