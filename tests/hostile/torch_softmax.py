"""Uses Tensor.softmax, which a0 forbids; masked_softmax inherits the fault."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
def softmax(x, dim=-1):
    return x.softmax(dim)
""",
    },
    "status": "tampered",
    "score": 0,
    "message": "not allowed in this exercise",
}
