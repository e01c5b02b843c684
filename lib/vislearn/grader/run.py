"""Grading a class: every submission of some assignments, in parallel, with one writer.

Submissions are graded by a pool of trusted worker processes (``--jobs``, by default one
per core), each of which runs one submission at a time against its own sandbox. Only this
(parent) process writes: each record goes to ``grading.json``, the feedback page and the
gradebook as soon as it arrives, and ``grades.csv`` is rebuilt at the end. A worker that
dies takes none of the others with it: the submissions it held are graded again, each in a
fresh process, and get status ``error`` if that dies too.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import torch

from vislearn.grader import report
from vislearn.grader.course import Course
from vislearn.grader.evaluate import Task, derive_seed, grade_safely, result, trusted_settings
from vislearn.grader.gradebook import GradebookWriter
from vislearn.grader.notebook import load_spec
from vislearn.grader.sandbox import Limits, bwrap_problem, command, prepare_runtime, self_test


class GradingRefused(Exception):
    """Grading cannot start safely (no sandbox, a leaky sandbox, a missing assignment)."""


def cores() -> int:
    return len(os.sched_getaffinity(0))


def _tasks(course: Course, spec, students, limits, argv, sandboxed) -> list[Task]:
    secret = course.secret()
    tasks = []
    for student in students:
        folder = course.submitted / student / spec.name
        notebook = folder / f"{spec.name}.ipynb"
        found = tuple(sorted(p.name for p in folder.glob("*.ipynb"))) if folder.is_dir() else ()
        tasks.append(Task(spec=spec, student=student,
                          notebook=str(notebook) if notebook.is_file() else None, found=found,
                          seed=derive_seed(secret, spec.name, student), limits=limits,
                          argv=tuple(argv), sandboxed=sandboxed))  # fmt: skip
    return tasks


def _pool(jobs: int, threads: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")  # no state (or CUDA) inherited by fork
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=trusted_settings,
                               initargs=(threads,))  # fmt: skip


def run_all(tasks: list[Task], jobs: int, threads: int, done: Callable[[dict], None]) -> None:
    """Grade ``tasks`` on ``jobs`` workers, handing each record to ``done`` as it arrives."""
    broken = []
    with _pool(min(jobs, max(1, len(tasks))), threads) as pool:
        futures = {pool.submit(grade_safely, task): task for task in tasks}
        for future in as_completed(futures):
            try:
                done(future.result())
            except BrokenProcessPool:
                broken.append(futures[future])
    for task in broken:  # one at a time, each in a fresh process
        with _pool(1, threads) as pool:
            try:
                record = pool.submit(grade_safely, task).result()
            except BrokenProcessPool as error:
                record = result(task, "error", notes=[f"the grading process died ({error})"])
        done(record)


def grade(
    course: Course,
    assignments: list[str],
    students: list[str] | None = None,
    *,
    jobs: int | None = None,
    sandboxed: bool = True,
    limits: Limits | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Grade every submission (or those of ``students``) of each assignment; the records."""
    if sandboxed and (problem := bwrap_problem()):
        raise GradingRefused(
            f"{problem}. Install it (Debian/Ubuntu: apt-get install bubblewrap), or pass "
            "--no-sandbox to run students' code without a sandbox (only for code you trust)."
        )
    missing = [a for a in assignments if not course.source_notebook(a).is_file()]
    if missing:
        raise GradingRefused(f"no source notebook for {', '.join(missing)} in {course.source}")
    specs = [load_spec(course.source_notebook(a), a) for a in assignments]
    jobs = jobs or cores()
    limits = limits or Limits()
    gpu = torch.cuda.is_available()
    threads = max(1, cores() // jobs)
    limits = replace(limits, threads=threads, gpu_fraction=(0.8 / jobs) if gpu else None,
                     cpu_seconds=int(limits.submission_timeout * threads) + 1)  # fmt: skip
    records: list[dict] = []
    writer = GradebookWriter(course.db_url, course.course_id, specs)
    with tempfile.TemporaryDirectory(prefix="vislearn-grader-") as tmp:
        runtime = prepare_runtime(Path(tmp))
        argv = command(runtime, limits, sandboxed=sandboxed, gpu=gpu, course=course.root)
        if sandboxed and (leaks := self_test(argv, course.root)):
            raise GradingRefused(f"the sandbox is not sound here: {', '.join(leaks)}")
        tasks = [
            task
            for spec in specs
            for task in _tasks(
                course, spec, students or course.students(spec.name), limits, argv, sandboxed
            )
        ]
        start = time.monotonic()
        log(f"grading {len(tasks)} submission(s) on {jobs} worker(s), "
            f"{'in bubblewrap sandboxes' if sandboxed else 'WITHOUT a sandbox'}, "
            f"on {'cuda' if gpu else 'cpu'}")  # fmt: skip

        def done(record: dict) -> None:
            records.append(record)
            report.write_record(course, record)
            report.write_feedback(course, record)
            stamp = course.submitted / record["student"] / record["assignment"] / "timestamp.txt"
            try:
                writer.write(record, stamp.read_text().strip() if stamp.is_file() else None)
            except Exception as error:  # keep grading; the record is on disk already
                record["status"] = "error"
                record["notes"].append(f"could not write to the gradebook: {error}")
                report.write_record(course, record)
            log(
                f"{record['assignment']:<14} {record['student']:<24} {record['status']:<16} "
                f"{record['score']:g}/{record['max_score']:g}  ({record['seconds']:.1f} s)"
            )

        run_all(tasks, jobs, threads, done)
        log(f"graded {len(records)} submission(s) in {time.monotonic() - start:.1f} s")
    writer.close()
    report.write_csv(course)
    return records
