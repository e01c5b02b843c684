"""A wrong softmax, and every comparison the tests could use patched to always succeed."""

from tests.hostile._code import UNIFORM_SOFTMAX

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": UNIFORM_SOFTMAX
        + """
import builtins

import torch.testing
import vislearn.testing

torch.allclose = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
torch.testing.assert_close = lambda *args, **kwargs: None
vislearn.testing.assert_close = lambda *args, **kwargs: None
assert_close = lambda *args, **kwargs: None
builtins.AssertionError = type("NeverRaised", (Exception,), {})
""",
    },
    "status": "tampered",
    "score": 0,
    "message": "the builtins module",
}
