"""Seconds per submission of the graders, on one class, in one run.

The class: every correct and buggy submission of ``--assignments`` from tests/submissions/.
Each grader grades all of it, from the same state (no records, no gradebook), timed from the
command's start to its end (start-up included):

- ``nbgrader autograde`` (plain nbgrader, one submission at a time, no sandbox);
- the safe grader on its local cluster, ``--jobs 1`` and ``--jobs 2``;
- the safe grader on a Dask cluster of separate processes (``dask scheduler`` and 1 or 2
  single-threaded ``dask worker``), ``--scheduler``;
- with ``--baseline LIB``, the safe grader of another checkout's ``lib/`` (e.g. the process
  pool before Dask: ``git archive <commit> lib | tar -x -C /tmp/base``, then
  ``--baseline /tmp/base/lib``), ``--jobs 1`` and ``--jobs 2``.

Besides the wall time, each safe-grader row has the seconds its workers spent grading
(``work``, the sum of the records' times) and the ``overhead`` per submission: the wall time
times the workers, less the work, divided by the submissions. ``writer_per_record`` is what
the one writer spends on a record (gradebook, autograded notebook, feedback, grading.json):
the class's records written again into a fresh SQLite gradebook. A cluster grades no faster than
``1 / writer_per_record`` submissions per second, whatever its size.

    python benchmarks/grading.py --out benchmarks/results/grading-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _record

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.submissions import CLASSES  # noqa: E402
from tests.test_course import submission  # noqa: E402

BIN = Path(sys.executable).parent
LIMITS = ["--timeout", "10", "--setup-timeout", "60", "--memory-mb", "2048"]
RECORD_LINE = re.compile(r"\((\d+\.\d) s\)$", re.M)


def make_course(folder: Path, assignments: list[str]) -> int:
    """The class in a fresh course at ``folder``; the number of submissions."""
    shutil.copy(REPO / "nbgrader_config.py", folder)
    shutil.copytree(REPO / "solutions", folder / "solutions")
    count = 0
    for assignment in assignments:
        for student, (cells, _) in CLASSES[assignment].items():
            target = folder / "submitted" / student / assignment
            target.mkdir(parents=True)
            (target / f"{assignment}.ipynb").write_text(submission(assignment, cells))
            count += 1
    return count


def reset(course: Path) -> None:
    """No records, feedback or gradebook; the grading secret stays (the same inputs)."""
    for name in ("feedback", "gradebook.db", "grades.csv"):
        path = course / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for path in course.glob("autograded/*"):
        if path.name != ".grading_secret":
            shutil.rmtree(path)


def timed(argv: list[str], course: Path, env: dict | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=course, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds, result.stdout


def nbgrader(course: Path, assignments: list[str]) -> float:
    reset(course)
    for assignment in assignments:  # the release autograde needs, untimed
        subprocess.run([BIN / "nbgrader", "generate_assignment", assignment, "--force"],
                       cwd=course, check=True, capture_output=True)  # fmt: skip
    script = " && ".join(f"{BIN / 'nbgrader'} autograde {a} --force" for a in assignments)
    return timed(["bash", "-c", script], course)[0]


def safe(course: Path, assignments: list[str], *args: str, lib: Path | None = None) -> dict:
    env = {"PYTHONPATH": str(lib)} if lib else None
    reset(course)
    seconds, log = timed([sys.executable, "-m", "vislearn.grader", *assignments,
                          "--course", str(course), *LIMITS, *args], course, env)  # fmt: skip
    return {"seconds": seconds, "work": sum(map(float, RECORD_LINE.findall(log)))}


class DaskCluster:
    """``dask scheduler`` and ``workers`` single-threaded ``dask worker`` on 127.0.0.1."""

    def __init__(self, workers: int, folder: Path):
        address_file = folder / f"scheduler-{workers}.json"
        scheduler = ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(address_file)]  # fmt: skip
        self.processes = [self._spawn(*scheduler)]
        while not address_file.exists():
            time.sleep(0.1)
        self.address = json.loads(address_file.read_text())["address"]
        for _ in range(workers):
            self.processes.append(self._spawn("worker", self.address, "--nthreads", "1",
                                              "--memory-limit", "0", "--no-dashboard"))  # fmt: skip
        from distributed import Client

        with Client(self.address) as client:
            client.wait_for_workers(workers, timeout=120)

    @staticmethod
    def _spawn(*args: str) -> subprocess.Popen:
        return subprocess.Popen([BIN / "dask", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def close(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def writer_seconds(course: Path, assignments: list[str]) -> float:
    """Seconds per record of the client's writes, for the records now in ``course``."""
    from vislearn.grader.course import Course
    from vislearn.grader.notebook import load_spec
    from vislearn.grader.store import Store

    loaded = Course.load(course)
    records = [json.loads(p.read_text()) for p in course.glob("autograded/*/*/grading.json")]
    (course / "gradebook.db").unlink()
    store = Store(loaded, [load_spec(loaded.source_notebook(a), a) for a in assignments])
    start = time.perf_counter()
    for record in records:
        store.write(record)
    seconds = time.perf_counter() - start
    store.close()
    return seconds / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", nargs="+", default=["a0_softmax", "a3_masked",
                        "a5_lifting"])  # fmt: skip
    parser.add_argument("--baseline", type=Path, help="another checkout's lib/ to time too")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # nbgrader runs alembic
    rows = []
    with tempfile.TemporaryDirectory(prefix="vislearn-grading-benchmark-") as tmp:
        course = Path(tmp) / "course"
        course.mkdir()
        count = make_course(course, args.assignments)

        def row(name: str, workers: int, result: dict) -> None:
            result = {"grader": name, "workers": workers, **result}
            result["per_submission"] = result["seconds"] / count
            if "work" in result:
                overhead = (result["seconds"] * workers - result["work"]) / count
                result["overhead_per_submission"] = overhead
            rows.append(result)
            print(json.dumps(result), flush=True)

        row("nbgrader autograde", 1, {"seconds": nbgrader(course, args.assignments)})
        for jobs in (1, 2):
            row("safe grader, local cluster", jobs, safe(course, args.assignments,
                                                         "--jobs", str(jobs)))  # fmt: skip
        for workers in (1, 2):
            cluster = DaskCluster(workers, Path(tmp))
            try:
                row("safe grader, dask cluster", workers,
                    safe(course, args.assignments, "--scheduler", cluster.address))  # fmt: skip
            finally:
                cluster.close()
        writer = writer_seconds(course, args.assignments)
        if args.baseline:
            for jobs in (1, 2):
                row(f"safe grader, {args.baseline}", jobs, safe(course, args.assignments,
                    "--jobs", str(jobs), lib=args.baseline.resolve()))  # fmt: skip
    base = rows[0]["per_submission"]
    for result in rows:
        result["ratio_to_nbgrader"] = result["per_submission"] / base
    local = {r["workers"]: r for r in rows if r["grader"] == "safe grader, local cluster"}
    for result in rows:
        if result["grader"] == "safe grader, dask cluster":
            same = local[result["workers"]]["per_submission"]
            result["over_local_cluster"] = result["per_submission"] / same - 1
    _record.write({"assignments": args.assignments, "submissions": count,
                   "writer_per_record": writer, "rows": rows}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
