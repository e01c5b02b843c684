"""Writes garbage on every file descriptor it can find, the grader's pipes included."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "masked_softmax": """
import os

for fd in range(3, 64):
    try:
        os.write(fd, b"\\xff" * 64)
    except OSError:
        pass
""",
    },
    "status": "tampered",
    "score": 0,
    "message": "malformed data",
}
