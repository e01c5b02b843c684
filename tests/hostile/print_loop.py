"""Printing in a loop at every call: correct functions keep their points."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "masked_softmax": """
def masked_softmax(x, mask, dim=-1):
    for i in range(20_000):
        print("attending", i, flush=True)
    return softmax(x.masked_fill(~mask, float("-inf")), dim=dim)
""",
    },
    "status": "graded",
    "score": 10,
}
