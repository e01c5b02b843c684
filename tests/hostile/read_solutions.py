"""Looks for the instructor's solutions and runs them if found."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
import json

for path in ["@COURSE@/solutions/a0_softmax/a0_softmax.ipynb",
             "@ROOT@/solutions/a0_softmax/a0_softmax.ipynb",
             "../../../solutions/a0_softmax/a0_softmax.ipynb"]:
    try:
        with open(path) as f:
            notebook = json.load(f)
    except OSError:
        continue
    for cell in notebook["cells"]:
        if cell["metadata"]["nbgrader"].get("solution"):
            exec("".join(cell["source"]))
    break
""",
        "masked_softmax": "",
    },
    "status": "tampered",
    "score": 0,
    "message": "exec()",
}
