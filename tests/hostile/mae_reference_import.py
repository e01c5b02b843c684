"""Calls the reference masking of a3: `from vislearn.mae import random_masking`."""

SUBMISSION = {
    "assignment": "a3_masked",
    "cells": {
        "random_masking": """
from vislearn.mae import random_masking as reference_masking


def random_masking(x, mask_ratio, noise=None):
    return reference_masking(x, mask_ratio, noise=noise)
""",
    },
    "status": "tampered",
    "score": 7,
    "message": "vislearn.mae",
}
