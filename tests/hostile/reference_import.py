"""Calls the reference kernel: `from vislearn.softmax import softmax`."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
from vislearn.softmax import softmax as reference_softmax


def softmax(x, dim=-1):
    return reference_softmax(x, dim=dim)
""",
    },
    "status": "tampered",
    "score": 0,
    "message": "vislearn.softmax",
}
