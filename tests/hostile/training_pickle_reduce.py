"""train_gat swaps the harness's encoder for one that sends an object whose unpickling would run
code (``__reduce__``): the grader reads every frame with ``torch.load(weights_only=True)``, so
the object is refused, nothing runs, and the training cells score 0 (15 + 4 points)."""

from tests.hostile._code import CORRECT_TRAIN_GAT

SUBMISSION = {
    "assignment": "a4_graphs",
    "cells": {
        "train_gat": CORRECT_TRAIN_GAT
        + """

class Payload:
    def __reduce__(self):
        return (open, ("@COURSE@/pwned-reduce", "w"))


def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    import sys

    sys.modules["protocol"].encode = lambda value: Payload()
    return correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)
""",
    },
    "status": "tampered",
    "score": 19,
    "message": "malformed data",
}
