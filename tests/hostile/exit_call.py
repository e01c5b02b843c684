"""exit() inside the graded function: SystemExit is the function's error, nothing more."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
def softmax(x, dim=-1):
    exit()
""",
    },
    "status": "graded",
    "score": 0,
    "message": "raised SystemExit",
}
