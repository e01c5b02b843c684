"""A corpus of hostile, broken and unusual submissions for the safe grader
(``tests/test_grader.py``), one module each.

Each module defines ``SUBMISSION``, a dict with

- ``assignment``: the assignment it is for;
- ``cells``: grade id -> source replacing that cell of the released notebook, which is
  otherwise completed with the instructor's solutions (``tests.test_course.submission``);
- ``status`` and ``score``: what the grader must report;

and optionally ``message`` (a text the feedback must contain), ``files`` (file name -> text,
planted beside the notebook), ``notebook`` (the notebook's file name, if not the
assignment's), ``truncate`` (cut the notebook's JSON in half), ``delete`` (grade ids of cells
removed), ``duplicate`` (grade id -> source of a copy inserted after that cell, with the same
metadata) and ``first`` (cells of an earlier submission, graded first; ``status`` and
``score`` are then those of this resubmission).

``@COURSE@`` and ``@ROOT@`` in sources stand for the course folder and the repository.
"""

import importlib
import pkgutil

SUBMISSIONS = {
    module.name: importlib.import_module(f"{__name__}.{module.name}").SUBMISSION
    for module in pkgutil.iter_modules(__path__)
    if not module.name.startswith("_")
}
