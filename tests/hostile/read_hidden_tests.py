"""Searches the file system for the hidden tests (or the grader's memory, via /proc) and
uses a correct function only if it finds them."""

from tests.hostile._code import CORRECT_SOFTMAX

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
import os

found = False
for top in ["/sandbox", "/tmp", "/grader", "..", "@COURSE@", "@ROOT@/solutions", "@ROOT@/tests"]:
    for folder, folders, files in os.walk(top):
        skip = ("usr", "proc", "sys", "dev", ".venv", ".pyenv")
        folders[:] = [f for f in folders if f not in skip]
        for name in files:
            try:
                with open(os.path.join(folder, name), errors="ignore") as f:
                    found |= "BEGIN HIDDEN TESTS" in f.read()
            except OSError:
                pass
for pid in os.listdir("/proc"):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
        found |= b"nbgrader" in command or b"vislearn.grader" in command
    except OSError:
        pass


def softmax(x, dim=-1):
    if not found:
        raise RuntimeError("no hidden tests found")
"""
        + CORRECT_SOFTMAX,
    },
    "status": "graded",
    "score": 0,
}
