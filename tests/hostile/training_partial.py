"""Honest but short training, the controls of the training exercises: their weights are measured
like any others and earn a share of the hidden training cell's points between its thresholds
(a4: 3 epochs reach 55-75% where full marks start at 85%; a2: 25 steps reach 60-75% where full
marks start at 80%), and every other cell in full."""

from tests.hostile._code import CORRECT_DIGIT_VIT, solution

GAT = solution("a4_graphs", "train_gat").replace("for _ in range(60):", "for _ in range(3):")

VIT = (
    CORRECT_DIGIT_VIT
    + """

def train_vit(images, labels):
    torch.manual_seed(0)
    model = DigitViT().to(images.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    for _ in range(25):  # steps of 64 digits: a fraction of one pass over the data
        batch = torch.randint(len(images), (64,), device=images.device)
        loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.state_dict()
"""
)

assert "range(3)" in GAT

SUBMISSIONS = {
    "training_partial_gat": {
        "assignment": "a4_graphs",
        "cells": {"train_gat": GAT},
        "status": "graded",
        "score": (20, 22.99),
        "message": "measured accuracy",
    },
    "training_partial_vit": {
        "assignment": "a2_vit",
        "cells": {"train_vit": VIT},
        "status": "graded",
        "score": (14, 16.99),
        "message": "measured accuracy",
    },
}
