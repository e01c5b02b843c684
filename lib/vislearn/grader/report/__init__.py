"""The instructor's report on a class: ``python -m vislearn.grader.report`` (``make report``).

A static HTML site, one page per assignment and an overview, written from the gradebook, the
grading records and the log of grading runs, never from a student's notebook:

- the spread of the scores (a histogram per assignment, with the counts beside it);
- the pass rate of each test cell, visible and hidden tests apart;
- for each test cell, its failure messages grouped by kind (shape, wrong values, NaN,
  timeout, forbidden name ...), most frequent first, with links to example feedback pages;
- the submissions that need a person: every status but ``graded``, with its reason, and the
  threshold-scored exercises whose measure lies near a threshold;
- how long grading took: the distribution, the ten slowest submissions, and each run's wall
  time;
- each table also as a CSV file beside the page.

Modules: :mod:`.data` (what is read, pseudonyms), :mod:`.failures` (kinds and groups of
messages), :mod:`.figures` (matplotlib), :mod:`.tables` (HTML and CSV), :mod:`.pages`.
"""

from __future__ import annotations

from pathlib import Path

from vislearn.grader.course import Course
from vislearn.grader.report import data, pages

MARGIN = 0.02  # a measure this close to a threshold needs a person (e.g. 2 points of accuracy)


def assignments_of(course: Course) -> list[str]:
    """Every assignment of the course that has a source notebook."""
    return sorted(p.parent.name for p in course.source.glob("*/*.ipynb") if p.stem == p.parent.name)


def build(
    course: Course,
    folder: Path,
    assignments: list[str] | None = None,
    *,
    anonymous: bool = False,
    margin: float = MARGIN,
) -> Path:
    """Write the report on ``assignments`` (default: all) of ``course`` into ``folder``;
    the overview page's path."""
    report = data.load(course, assignments or assignments_of(course), anonymous)
    return pages.write(report, folder, margin)
