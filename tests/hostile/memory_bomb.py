"""A memory bomb in the graded function: it hits the memory limit and raises MemoryError."""

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
    "status": "graded",
    "score": 0,
    "message": "MemoryError",
}
