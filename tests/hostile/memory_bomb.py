"""A memory bomb in the graded function: it hits the memory limit and raises MemoryError. On a
loaded machine (its bytearrays are written to, 1.5 GB of them) a call can reach its time limit
first, and every call may (seen with the corpus sharing its core with Chromium): `timed out`,
with the same score, and the timeout's message instead of MemoryError."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
def softmax(x, dim=-1):
    blocks = []
    while True:
        blocks.append(bytearray(64 << 20))
""",
    },
    "status": ("graded", "timed out"),
    "score": 0,
    "message": ("MemoryError", "did not finish within"),
}
