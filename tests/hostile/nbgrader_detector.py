"""A wrong softmax that patches the comparisons only when it detects grading (nbgrader's
NBGRADER_EXECUTION variable, an autograded folder, a sandbox), so that it looks honest
when the student runs it."""

from tests.hostile._code import UNIFORM_SOFTMAX

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": UNIFORM_SOFTMAX
        + """
import os

grading = (
    os.environ.get("NBGRADER_EXECUTION") in ("autograde", "validate")
    or "autograded" in os.getcwd()
    or os.path.exists("/sandbox")
)
if grading:
    import vislearn.testing

    torch.allclose = lambda *args, **kwargs: True
    vislearn.testing.assert_close = assert_close = lambda *args, **kwargs: None
""",
    },
    "status": "graded",
    "score": 0,
}
