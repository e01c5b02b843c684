"""Registers an IPython input transformer that blanks every cell containing `assert`."""

from tests.hostile._code import UNIFORM_SOFTMAX

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": UNIFORM_SOFTMAX
        + """

def _blank_tests(lines):
    return [] if any("assert" in line for line in lines) else lines


get_ipython().input_transformers_cleanup.append(_blank_tests)
""",
    },
    "status": "graded",
    "score": 0,
}
