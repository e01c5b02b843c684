"""The softmax cell copied (same grade id) and the copy changed to bob's bug: the cells run
in order, as in the notebook, so the copy's definition is graded."""

from tests.submissions.a0_softmax import A0_WRONG_AXIS

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {},
    "duplicate": {"softmax": A0_WRONG_AXIS},
    "status": "graded",
    "score": 1,
    "message": "appears 2 times",
}
