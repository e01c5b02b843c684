"""A correct submission, then a resubmission that ends the process while the notebook runs:
the new status and score must replace the old ones."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "first": {},
    "cells": {"masked_softmax": "import os\nos._exit(3)\n"},
    "status": "crashed",
    "score": 0,
    "message": "exited with code 3",
}
