"""``python -m vislearn.grader ASSIGNMENT... [--student ID] [--jobs N | --scheduler ADDRESS]
[--resume] [--no-sandbox]``

Grades submissions in ``submitted/<student>/<assignment>/`` of the course in ``--course``
(default: the current directory) on a local Dask cluster of ``--jobs`` workers, or on the
workers of the running cluster at ``--scheduler``, and records the results in the gradebook,
``grades.csv``, ``autograded/<student>/<assignment>/`` (``grading.json`` and the notebook
nbgrader's formgrader shows) and ``feedback/<student>/<assignment>/<assignment>.html``.
``--resume`` keeps the records of submissions graded before with the same notebook, setup
and seed.

Exit status: 0 when every submission got a record (whatever its status), 1 when grading
was refused (no usable sandbox, unknown assignment), 2 when the grader itself failed on a
submission (status ``error``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vislearn.grader.course import Course
from vislearn.grader.run import GradingRefused, grade
from vislearn.grader.sandbox import Limits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Limits()
    parser = argparse.ArgumentParser(
        prog="python -m vislearn.grader",
        description="Grade nbgrader submissions safely: students' code runs in a sandbox, "
        "tests and references run outside it.",
    )
    parser.add_argument("assignments", nargs="+", metavar="ASSIGNMENT")
    parser.add_argument("--student", action="append", help="only this student (repeatable)")
    parser.add_argument("--jobs", type=int, help="workers of the local cluster (default: cores)")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on this running Dask cluster, e.g. tcp://host:8786",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep records that match the notebook, setup and seed"
    )
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="the course directory")
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run students' code without bubblewrap (only for trusted code)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.call_timeout,
        help="seconds per call of a student's function (default: %(default)s)",
    )
    parser.add_argument(
        "--setup-timeout",
        type=float,
        default=defaults.setup_timeout,
        help="seconds to run the notebook's code (default: %(default)s)",
    )
    parser.add_argument(
        "--submission-timeout",
        type=float,
        default=defaults.submission_timeout,
        help="seconds per submission in all (default: %(default)s)",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=defaults.max_restarts,
        help="restarts of a sandbox after a crash or a timeout (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=defaults.memory_bytes >> 20,
        help="memory per sandbox process, MiB (default: %(default)s)",
    )
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = Limits(
        call_timeout=args.timeout,
        setup_timeout=args.setup_timeout,
        submission_timeout=args.submission_timeout,
        memory_bytes=args.memory_mb << 20,
        max_restarts=args.max_restarts,
    )
    try:
        records = grade(
            Course.load(args.course),
            args.assignments,
            args.student,
            jobs=args.jobs,
            scheduler=args.scheduler,
            resume=args.resume,
            sandboxed=not args.no_sandbox,
            limits=limits,
        )
    except GradingRefused as refusal:
        print(f"grading refused: {refusal}", file=sys.stderr)
        return 1
    return 2 if any(record["status"] == "error" for record in records) else 0


if __name__ == "__main__":
    sys.exit(main())
