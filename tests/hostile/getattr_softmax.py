"""Hides torch.softmax behind getattr and a reloaded module."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
import importlib
import sys

sys.meta_path[:] = [finder for finder in sys.meta_path if "Guard" not in type(finder).__name__]


def softmax(x, dim=-1):
    functional = importlib.reload(importlib.import_module("torch.nn.functional"))
    return getattr(functional, "soft" + "max")(x, dim)
""",
    },
    "status": "tampered",
    "score": 0,
}
