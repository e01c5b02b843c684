"""train_gat returns weights with NaN in them: refused before loading (15 + 4 points)."""

from tests.hostile._code import CORRECT_TRAIN_GAT

SUBMISSION = {
    "assignment": "a4_graphs",
    "cells": {
        "train_gat": CORRECT_TRAIN_GAT
        + """

def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    weights = correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)
    weights["conv1.lin.weight"][0, 0] = float("nan")
    return weights
""",
    },
    "status": "graded",
    "score": 19,
    "message": "NaN or infinite values",
}
