"""train_vit trains well but returns untrained weights, keeping the trained model in a global and
in the sandbox's /tmp; DigitViT's forward then uses the kept model whatever weights it was
given. Under the old grader the held-out digits went through the student's DigitViT in the same
sandbox, where this scored 98% with untrained weights. Now only the returned weights are
measured, in the reference ViT outside the sandbox: the training cells and the module test
score nothing (12 points of the kernels)."""

from tests.hostile._code import CORRECT_DIGIT_VIT

SUBMISSION = {
    "assignment": "a2_vit",
    "cells": {
        "train_vit": CORRECT_DIGIT_VIT
        + """

KEPT = {}
TRAINING = [False]
honest_forward = DigitViT.forward


def kept_forward(self, images):
    if TRAINING[0]:  # while train_vit trains: the module's own forward
        return honest_forward(self, images)
    if "model" not in KEPT:
        try:
            model = DigitViT()
            model.load_state_dict(torch.load("/tmp/kept.pt"))
            KEPT["model"] = model
        except OSError:
            return honest_forward(self, images)
    return honest_forward(KEPT["model"].to(images.device), images)


DigitViT.forward = kept_forward


def train_vit(images, labels):
    TRAINING[0] = True
    weights = correct_train_vit(images, labels)
    TRAINING[0] = False
    KEPT["model"] = DigitViT().to(images.device)
    KEPT["model"].load_state_dict(weights)
    torch.save(weights, "/tmp/kept.pt")
    return DigitViT().state_dict()  # untrained weights
""",
    },
    "status": "graded",
    "score": 12,
    "message": "measured accuracy",
}
