"""bob's wrong-axis softmax, with every test cell replaced by `pass`: it loses exactly bob's
points (tests/submissions/a0_softmax.py)."""

from tests.submissions.a0_softmax import A0_WRONG_AXIS

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": A0_WRONG_AXIS,
        **{
            test: "pass\n"
            for test in [
                "test_softmax_visible",
                "test_softmax_random",
                "test_softmax_large_logits",
                "test_softmax_dtypes_and_gradient",
                "test_masked_softmax_visible",
                "test_masked_softmax_random",
                "test_masked_softmax_fully_masked",
            ]
        },
    },
    "status": "graded",
    "score": 1,
}
