"""train_gat returns weights with a key missing and an unexpected one: they do not load into the
reference GAT, and the training cells score 0 (15 + 4 points)."""

from tests.hostile._code import CORRECT_TRAIN_GAT

SUBMISSION = {
    "assignment": "a4_graphs",
    "cells": {
        "train_gat": CORRECT_TRAIN_GAT
        + """

def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    weights = correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)
    weights["conv3.weight"] = weights.pop("conv2.bias")
    return weights
""",
    },
    "status": "graded",
    "score": 19,
    "message": "missing ['conv2.bias'], unexpected ['conv3.weight']",
}
