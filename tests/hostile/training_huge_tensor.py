"""train_gat returns a weight of 80 MB: larger than a frame may be, so it never reaches the
grader (15 + 4 points)."""

from tests.hostile._code import CORRECT_TRAIN_GAT

SUBMISSION = {
    "assignment": "a4_graphs",
    "cells": {
        "train_gat": CORRECT_TRAIN_GAT
        + """

def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    weights = correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)
    weights["conv1.lin.weight"] = torch.zeros(20_000, 1_000)
    return weights
""",
    },
    "status": "graded",
    "score": 19,
    "message": "a result too large to send back (76 MiB; at most 64 MiB)",
}
