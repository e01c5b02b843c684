"""Tries to kill every process it can, its parent and init, then its own process group, while
the notebook runs: inside the sandbox's PID namespace only the sandbox itself can die."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "masked_softmax": """
import os
import signal

for target in (-1, 1, os.getppid()):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass
os.killpg(0, signal.SIGKILL)
""",
    },
    "status": "crashed",
    "score": 0,
    "message": "SIGKILL",
}
