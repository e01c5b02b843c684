"""Honest training of a model that never predicts some classes, the controls of the training
exercises' partial credit: the weights are measured like any others and earn a share of the
hidden training cell's points between its thresholds, and every other cell in full.

The classes are silenced through the classifier's bias after full training, so the accuracy
is about (the trained accuracy) x (the share of the other classes) whatever the grading seed:
a4 silences 2 of 7 classes (about 66%, between 55% and 85%), a2 3 of 10 (about 64%, between
50% and 80%). A short training is no control: a4's 3 epochs reach 48-87% over grading seeds."""

from tests.hostile._code import CORRECT_DIGIT_VIT, CORRECT_TRAIN_GAT

GAT = (
    CORRECT_TRAIN_GAT
    + """

def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    state = correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)
    state["conv2.bias"][:2] = -1e4  # classes 0 and 1 are never predicted
    return state
"""
)

VIT = (
    CORRECT_DIGIT_VIT
    + """

def train_vit(images, labels):
    state = correct_train_vit(images, labels)
    state["head.bias"][:3] = -1e4  # digits 0, 1 and 2 are never predicted
    return state
"""
)

SUBMISSIONS = {
    "training_partial_gat": {
        "assignment": "a4_graphs",
        "cells": {"train_gat": GAT},
        "status": "graded",
        "score": (20.1, 22.9),
        "message": "measured accuracy",
    },
    "training_partial_vit": {
        "assignment": "a2_vit",
        "cells": {"train_vit": VIT},
        "status": "graded",
        "score": (14.1, 16.9),
        "message": "measured accuracy",
    },
}
