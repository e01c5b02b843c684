"""train_gat imports the harness's protocol module, to swap its encoder for one that sends an
object whose unpickling would run code (``__reduce__``): the sandbox refuses to import the
grader's own modules (and the scan reports it), so the training cells score 0 (15 + 4 points).
Had the object been sent, the grader would have refused it: it reads every frame with
``torch.load(weights_only=True)`` (tests/test_grader.py)."""

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
    import protocol  # the harness's own module, beside it in the sandbox

    protocol.encode = lambda value: Payload()
    return correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)
""",
    },
    "status": "tampered",
    "score": 19,
    "message": "the grader's own modules (protocol)",
}
