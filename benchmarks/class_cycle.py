"""Seconds of each step of the class cycle through nbgrader's exchange and the safe grader,
wall-clock and CPU (of the commands the step ran), with the two students of
tests/test_exchange.py: release, fetch, submit, collect, grade, return and fetch the feedback,
a resubmission, a review in the formgrader and a regrade.

    python benchmarks/class_cycle.py --out benchmarks/results/class-cycle-cpu.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _record

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_exchange import a_class  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with a_class() as klass:
        steps = {
            step: {"wall": round(wall, 2), "cpu": round(cpu, 2)}
            for step, (wall, cpu) in klass.timings.items()
        }
        users = "one Unix user" if klass.no_users else "students are Unix users of their own"
    width = max(map(len, steps))
    print(f"{'step':<{width}}  wall (s)  CPU (s)")
    for step, seconds in steps.items():
        print(f"{step:<{width}}  {seconds['wall']:8.1f}  {seconds['cpu']:7.1f}")
    _record.write({"students": users, "steps": steps}, args.out)


if __name__ == "__main__":
    main()
