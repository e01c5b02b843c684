"""Two test cells deleted: tests come from the source notebook, so nothing changes."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {},
    "delete": ["test_softmax_random", "test_masked_softmax_visible", "setup"],
    "status": "graded",
    "score": 10,
}
