"""An endless loop in one graded function: its calls time out, the others still score."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "masked_softmax": """
def masked_softmax(x, mask, dim=-1):
    while True:
        pass
""",
    },
    "status": "timed out",
    "score": 5,
    "message": "masked_softmax did not finish within",
}
