"""What feedback says about outputs that went wrong on the way back, and what it never says.

- An error message that names the grading machine's folders (the Python environment, the
  course) shows them as placeholders: ``<python>``, never a host path.
- A sparse tensor cannot be sent back: the feedback says so in words, not "expected a tensor,
  got Tensor".
- A function that looks for packages on the sandbox's Python path finds torch's and NumPy only,
  never the grader's packages or those that bundle data sets (scikit-learn, scikit-image).
- A function that reads the environment of every process it can see (bubblewrap's own, PID 1
  of its container, once showed the grader's) finds no variable of the grader's: the corpus
  is graded with a canary in the grader's environment (tests.test_grader.CANARY).

(The instructor's masked_softmax calls softmax: a broken softmax costs both.)
"""

HOST_PATHS = """
import os
import sys


def softmax(x, dim=-1):
    raise RuntimeError(f"python {sys.executable} in {sys.prefix}, working in {os.getcwd()}")
"""

SPARSE = """
def softmax(x, dim=-1):
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return (e / e.sum(dim=dim, keepdim=True)).to_sparse()
"""

PACKAGES = """
import os
import sys

CANDIDATES = ["torch", "numpy", "sklearn", "skimage", "scipy", "matplotlib", "nbgrader",
              "distributed", "pandas", "torch_geometric"]


def masked_softmax(x, mask, dim=-1):
    found = [name for name in CANDIDATES
             if any(os.path.exists(os.path.join(folder, name)) for folder in sys.path)]
    raise RuntimeError(f"importable: {found}")
"""

ENVIRONMENTS = """
import os


def softmax(x, dim=-1):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                found += [v for v in f.read().split(b"\\0") if b"CANARY" in v]
        except OSError:
            pass
    raise RuntimeError(f"environments read: {found}")
"""

SUBMISSIONS = {
    "graders_environment": {
        "assignment": "a0_softmax",
        "cells": {"softmax": ENVIRONMENTS},
        "status": "graded",
        "score": 0,
        "message": "environments read: []",
        "absent": ["VISLEARN_CANARY"],
    },
    "host_paths_in_an_error": {
        "assignment": "a0_softmax",
        "cells": {"softmax": HOST_PATHS},
        "status": "graded",
        "score": 0,
        "message": "<python>",
        "absent": ["@ROOT@", "@PYTHON@", "@VENV@", "@COURSE@"],
    },
    "sparse_output": {
        "assignment": "a0_softmax",
        "cells": {"softmax": SPARSE},
        "status": "graded",
        "score": 0,
        "message": "a tensor that cannot be sent back",
    },
    "packages_in_sight": {
        "assignment": "a0_softmax",
        "cells": {"masked_softmax": PACKAGES},
        "status": "graded",
        "score": 5,
        "message": "'torch'",
        "absent": ["sklearn", "skimage", "scipy", "matplotlib", "nbgrader", "torch_geometric"],
    },
}
