"""A memory bomb in the graded function: it hits the memory limit and raises MemoryError. On a
heavily loaded machine a call can reach its time limit first (seen at a load average of 7):
`timed out`, with the same score and the other calls' MemoryError."""

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
    "message": "MemoryError",
}
