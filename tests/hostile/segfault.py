"""A segmentation fault in one kernel: that kernel's tests fail, the others score."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "sinusoidal_position_encoding": """
import os
import signal


def sinusoidal_position_encoding(num_positions, dim):
    os.kill(os.getpid(), signal.SIGSEGV)
""",
    },
    "status": "crashed",
    "score": 10,
    "message": "SIGSEGV",
}
