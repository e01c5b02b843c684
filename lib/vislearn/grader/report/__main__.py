"""``python -m vislearn.grader.report [ASSIGNMENT...] [--course DIR] [--out DIR] [--anonymous]``

Writes the report on the course's grading (default: every assignment) into ``--out``
(default: ``<course>/report``) and prints the overview page's path. ``--anonymous`` shows
stable pseudonyms instead of student ids and names, for teaching assistants or a class.
Exit status 1 when the output folder holds something that is not a report, or an assignment
has no source notebook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vislearn.grader.course import Course
from vislearn.grader.report import MARGIN, build
from vislearn.grader.report.pages import NotAReport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vislearn.grader.report",
        description="The instructor's report on a graded class.",
    )
    parser.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="the course directory")
    parser.add_argument("--out", type=Path, help="the report's folder (default: COURSE/report)")
    parser.add_argument(
        "--anonymous", action="store_true", help="pseudonyms instead of student ids and names"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=MARGIN,
        help="how close to a threshold a measure needs a person (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    course = Course.load(args.course)
    missing = [a for a in args.assignments if not course.source_notebook(a).is_file()]
    if missing:
        print(f"no source notebook for {', '.join(missing)} in {course.source}", file=sys.stderr)
        return 1
    try:
        overview = build(
            course,
            args.out or course.root / "report",
            args.assignments,
            anonymous=args.anonymous,
            margin=args.margin,
        )
    except NotAReport as refusal:
        print(f"report refused: {refusal}", file=sys.stderr)
        return 1
    print(overview)
    return 0


if __name__ == "__main__":
    sys.exit(main())
