"""20 MB printed while the notebook runs and at every call: the log is capped, grading is not
disturbed, and correct functions keep their points."""

from tests.hostile._code import CORRECT_SOFTMAX

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
import sys

print("x" * 20_000_000)
sys.stderr.write("y" * 20_000_000)


def softmax(x, dim=-1):
    print("z" * 20_000_000)
"""
        + CORRECT_SOFTMAX,
    },
    "status": "graded",
    "score": 10,
}
