"""Where submissions are graded: the workers of a Dask cluster, and the client's side of it.

``connect`` joins a running cluster (``--scheduler tcp://HOST:8786``) or starts a private
local one: one single-threaded worker process per job, reachable over TLS with throw-away
credentials only, so no other user of the machine can send it work. ``grade_all`` sends
every job to the workers and hands each record to the caller as it arrives; the caller is
the only writer.

Failures. A worker that dies (killed, machine gone) loses nothing but its current jobs, which
the scheduler gives to other workers. A job that was running on workers that died more than
``distributed.scheduler.allowed-failures`` times (1 for the local cluster; set it on the
scheduler of a shared one) comes back as ``KilledWorker`` and is recorded with status
``error``. A worker that cannot grade safely raises
:class:`~vislearn.grader.worker.SandboxUnavailable`: the run stops with its message.

GPUs. Workers started with ``--resources GPU=n`` grade n submissions at once on their GPU.
When the cluster has such workers, the jobs of an assignment whose tests use devices need one
GPU slot each, so the whole assignment is graded on the same kind of machine; other jobs go
to any worker.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator

import dask
from distributed import Client, LocalCluster, as_completed
from distributed.scheduler import KilledWorker

from vislearn.grader import worker
from vislearn.grader.evaluate import Task, result
from vislearn.grader.notebook import AssignmentSpec
from vislearn.grader.worker import Host, Job, SandboxUnavailable

DEVICE_WORDS = ("available_devices", "cuda")  # in a test: it runs on every device there is
AHEAD = 4  # jobs sent per worker thread before the first records come back


class WorkerRefused(Exception):
    """A worker refused to grade (see :class:`~vislearn.grader.worker.SandboxUnavailable`)."""


@contextlib.contextmanager
def connect(scheduler: str | None, jobs: int) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a private local cluster of ``jobs``
    single-threaded workers, closed on exit."""
    if scheduler:
        with Client(scheduler, set_as_default=False) as client:
            yield client
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                               security=True, dashboard_address=None, memory_limit=0)  # fmt: skip
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


def hosts(client: Client) -> dict[str, Host]:
    """What each machine of the cluster grades at once (see :func:`worker.machines`)."""
    return worker.machines(client.scheduler_info(n_workers=-1)["workers"].values())


def uses_devices(spec: AssignmentSpec) -> bool:
    """Do the assignment's tests run on every device there is (and so on a GPU if any)?"""
    sources = [test.source for test in spec.tests] + [source for _, source in spec.setup_cells]
    return any(word in source for source in sources for word in DEVICE_WORDS)


def grade_all(
    client: Client, jobs: Iterable[Job], hosts: dict[str, Host], done: Callable[[dict, Job], None]
) -> None:
    """Grade ``jobs`` on the cluster's workers (``hosts``, see :func:`hosts`), handing each
    record to ``done`` as it arrives.

    Jobs are taken from ``jobs`` as the work goes on, a few per worker thread ahead, so that
    neither this process nor the scheduler holds a whole class's notebooks at once. Raises
    :class:`WorkerRefused` (after cancelling the rest) if a worker refuses to grade.
    """
    gpu_cluster = any(host.gpu_slots for host in hosts.values())
    ahead = AHEAD * max(1, sum(host.slots for host in hosts.values()))
    pending = iter(jobs)
    futures: dict = {}
    finished = as_completed(loop=client.loop)

    def submit(job: Job) -> None:
        resources = {"GPU": 1} if gpu_cluster and uses_devices(job.spec) else None
        future = client.submit(worker.grade, job, resources=resources, pure=False)
        futures[future] = job
        finished.add(future)

    try:
        for job in itertools.islice(pending, ahead):
            submit(job)
        for future in finished:
            job = futures.pop(future)
            done(_record(future, job), job)
            for job in itertools.islice(pending, 1):
                submit(job)
    finally:
        client.cancel(list(futures))


def _record(future, job: Job) -> dict:
    """The record a finished future holds, or the ``error`` record of a job that kept
    killing its workers."""
    try:
        return future.result()
    except SandboxUnavailable as refusal:
        raise WorkerRefused(str(refusal)) from None
    except KilledWorker as error:
        task = Task(spec=job.spec, student=job.student, notebook=None, found=job.found,
                    seed=job.seed, limits=job.limits, argv=(), sandboxed=job.sandboxed,
                    course=job.course)  # fmt: skip
        note = f"the grading process died each time it graded this submission ({error})"
        record = result(task, "error", notes=[note[:600]])
        record["seconds"] = 0.0
        return record
