"""A fork bomb in the graded function. The sandbox's seccomp filter makes fork fail (the
grader checks that before grading, so this cannot spread). (``subprocess`` would be reported by
the scan; ``os.fork`` is what seccomp alone stops.)"""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
import os


def softmax(x, dim=-1):
    while True:
        os.fork()
""",
    },
    "status": "graded",
    "score": 0,
    "message": "Operation not permitted",
}
