"""A corpus of hostile, broken and unusual submissions for the safe grader
(``tests/test_grader.py``), one module each.

Each module defines ``SUBMISSION``, a dict with

- ``assignment``: the assignment it is for;
- ``cells``: grade id -> source replacing that cell of the released notebook, which is
  otherwise completed with the instructor's solutions (``tests.test_course.submission``);
- ``status`` and ``score``: what the grader must report (``score`` may be a ``(low, high)``
  range, for a training whose accuracy lies between a threshold's two ends; ``status`` a tuple
  of statuses, where the machine's load decides which limit a submission reaches first);

and optionally ``message`` (a text the feedback must contain, or a tuple of texts of which it
must contain one), ``absent`` (texts it must not contain), ``files`` (file name -> text,
planted beside the notebook), ``notebook`` (the notebook's file name, if not the
assignment's), ``truncate`` (cut the notebook's JSON in half), ``delete`` (grade ids of cells
removed), ``duplicate`` (grade id -> source of a copy inserted after that cell, with the same
metadata) and ``first`` (cells of an earlier submission, graded first; ``status`` and
``score`` are then those of this resubmission).

``@COURSE@`` and ``@ROOT@`` in sources stand for the course folder and the repository.
A module may define ``SUBMISSIONS`` (name -> entry) instead, for variants of one attack.
"""

import importlib
import pkgutil


def _entries(name: str) -> dict:
    module = importlib.import_module(f"{__name__}.{name}")
    return getattr(module, "SUBMISSIONS", None) or {name: module.SUBMISSION}


SUBMISSIONS = {
    entry: submission
    for module in pkgutil.iter_modules(__path__)
    if not module.name.startswith("_")
    for entry, submission in _entries(module.name).items()
}
