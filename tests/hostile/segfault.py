"""A segmentation fault in one kernel: that kernel's tests fail, the others score."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "sinusoidal_position_encoding": """
import ctypes


def sinusoidal_position_encoding(num_positions, dim):
    return ctypes.string_at(0)
""",
    },
    "status": "crashed",
    "score": 10,
    "message": "SIGSEGV",
}
