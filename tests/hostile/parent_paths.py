"""Reads and writes ../ paths, the gradebook and the course folder; its functions only work if
it could read the gradebook."""

from tests.hostile._code import CORRECT_SOFTMAX

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
stolen = []
for path in ["../../../gradebook.db", "../../gradebook.db", "../gradebook.db",
             "@COURSE@/gradebook.db", "@ROOT@/gradebook.db"]:
    try:
        with open(path, "rb") as f:
            stolen.append(f.read(16))
    except OSError:
        pass
    try:
        with open(path, "ab") as f:
            f.write(b"pwned")
    except OSError:
        pass
for path in ["@COURSE@/pwned.txt", "../../../pwned.txt", "@COURSE@/submitted/alice/pwned.txt"]:
    try:
        with open(path, "w") as f:
            f.write("pwned")
    except OSError:
        pass


def softmax(x, dim=-1):
    if not stolen:
        raise RuntimeError("no gradebook to be found")
"""
        + CORRECT_SOFTMAX,
    },
    "status": "graded",
    "score": 0,
}
