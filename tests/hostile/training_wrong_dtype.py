"""train_gat returns float64 weights, which load_state_dict alone would silently convert: refused
(15 + 4 points)."""

from tests.hostile._code import CORRECT_TRAIN_GAT

SUBMISSION = {
    "assignment": "a4_graphs",
    "cells": {
        "train_gat": CORRECT_TRAIN_GAT
        + """

def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    weights = correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)
    return {key: value.double() for key, value in weights.items()}
""",
    },
    "status": "graded",
    "score": 19,
    "message": "dtype torch.float32, got",
}
