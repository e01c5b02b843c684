"""Plants ipykernel_launcher.py, sitecustomize.py and a fake vislearn beside the notebook,
each of which would disable the tests if it were ever imported."""

from tests.hostile._code import UNIFORM_SOFTMAX

PATCH = """
import vislearn.testing
vislearn.testing.assert_close = lambda *args, **kwargs: None
"""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {"softmax": UNIFORM_SOFTMAX},
    "files": {
        "ipykernel_launcher.py": PATCH + "from ipykernel import kernelapp\nkernelapp.main()\n",
        "sitecustomize.py": PATCH,
        "usercustomize.py": PATCH,
        "vislearn/__init__.py": "assert_close = lambda *args, **kwargs: None\n",
        "vislearn/testing.py": "def assert_close(*args, **kwargs):\n    pass\n",
    },
    "status": "graded",
    "score": 0,
}
