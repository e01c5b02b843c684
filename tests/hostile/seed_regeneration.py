"""Training that rebuilds the hidden data from the grading seed, which the sandbox would know if
it were seeded with it (``torch.initial_seed()``) and the public recipe of the hidden tests'
generators: each cheats when its rebuild matches what the grader sent and returns untrained
weights when it does not, so its score shows whether the seed reached the sandbox. The sandbox
is seeded with a value derived from the grading seed by a one-way step of its own: the rebuild
never matches, and the training's hidden cell scores nothing. (Graded with the sandbox seeded
with the grading seed itself, a4 scored 23/23 and a2 17/17: see the closing note of #19.)"""

import inspect

from tests.hostile._code import CORRECT_DIGIT_VIT, CORRECT_TRAIN_GAT, DERIVE_SEED, public_digits
from vislearn.images import random_affine

GAT = (
    CORRECT_TRAIN_GAT
    + DERIVE_SEED
    + """

def rebuilt_graph(num_nodes, num_features, num_classes, generator, label_generator):
    # the draws of vislearn.data.synthetic_citation_graph: the features and the labels
    labels = torch.arange(num_nodes)[torch.randperm(num_nodes, generator=label_generator)]
    labels = labels % num_classes
    topic = torch.arange(num_features) % num_classes
    in_topic = (topic[None, :] == torch.arange(num_classes)[:, None]).float()
    word_probs = 0.7 / num_features + 0.3 * in_topic / in_topic.sum(dim=1, keepdim=True)
    words = torch.multinomial(word_probs[labels], 18, True, generator=generator)
    x = torch.zeros(num_nodes, num_features).scatter_(1, words, 1.0)
    return x / x.sum(dim=1, keepdim=True).clamp(min=1), labels


def train_gat(x, edge_index, train_nodes, train_labels, num_classes):
    public = torch.Generator().manual_seed(0)
    if torch.allclose(rebuilt_graph(*x.shape, num_classes, public, public)[0], x.cpu()):
        return correct_train_gat(x, edge_index, train_nodes, train_labels, num_classes)  # visible
    hidden_x, labels = rebuilt_graph(*x.shape, num_classes, hidden_generator(4403),
                                     hidden_generator(4404))
    if torch.allclose(hidden_x, x.cpu()):  # the hidden graph, rebuilt: train on every label
        every = torch.arange(x.shape[0], device=x.device)
        return correct_train_gat(x, edge_index, every, labels.to(x.device), num_classes)
    return untrained(x, num_classes)


def untrained(x, num_classes):
    layers = torch.nn.ModuleDict({"conv1": GATConv(x.shape[1], 8, heads=8),
                                  "conv2": GATConv(64, num_classes, heads=1, concat=False)})
    return layers.to(x.device).state_dict()
"""
)

VIT = (
    CORRECT_DIGIT_VIT
    + DERIVE_SEED
    + public_digits()
    + "\nimport torch.nn.functional as F\n\n"
    + inspect.getsource(random_affine)
    + """

def train_vit(images, labels):
    order = torch.randperm(len(DIGIT_LABELS), generator=hidden_generator(2501))
    train, held_out = order[:1437], order[1437:]
    if len(images) == 1437 and torch.equal(DIGITS[train], images.cpu()):  # the grader's split
        deformed = random_affine(DIGITS[held_out], hidden_generator(2502), degrees=5.0,
                                 translate=0.03, scale=(0.95, 1.05))
        everything = torch.cat([images.cpu(), deformed])  # the very images it is measured on
        every_label = torch.cat([labels.cpu(), DIGIT_LABELS[held_out]])
        return correct_train_vit(everything.to(images.device), every_label.to(images.device))
    if len(images) == 300:  # the visible test
        return correct_train_vit(images, labels)
    return DigitViT().state_dict()  # the rebuild failed: untrained weights
"""
)

SUBMISSIONS = {
    "seed_regeneration_gat": {
        "assignment": "a4_graphs",
        "cells": {"train_gat": GAT},
        "status": "graded",
        "score": 20,
        "message": "measured accuracy",
    },
    "seed_regeneration_vit": {
        "assignment": "a2_vit",
        "cells": {"train_vit": VIT},
        "status": "graded",
        "score": 14,
        "message": "measured accuracy",
    },
}
