"""The public digits pasted into the notebook. A DigitViT whose forward looks each image up among
them (nearest neighbour) needs no training, and scored 100% when the grader measured the
student's own module; now its weights must load into the reference ViT, and they do not fit (12
points of the kernels). Training on all 1797 pasted digits, the grader's held-out originals
among them, is honest work done on more data: it gains nothing, since the instructor's training
on the 1437 it is given already reaches full marks (87-95% on deformed held-out digits over 20
splits, against 92-96% for training on all 1797; full marks from 80%)."""

from tests.hostile._code import CORRECT_DIGIT_VIT, public_digits

LOOKUP = (
    public_digits()
    + """

class DigitViT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, images):
        distances = torch.cdist(images.flatten(1), DIGITS.flatten(1).to(images))  # (B, 1797)
        nearest = DIGIT_LABELS.to(images.device)[distances.argmin(dim=1)]
        return self.scale * torch.nn.functional.one_hot(nearest, 10).float()


def train_vit(images, labels):
    return DigitViT().state_dict()
"""
)

TRAIN_ON_ALL = (
    CORRECT_DIGIT_VIT
    + public_digits()
    + """

def train_vit(images, labels):
    everything = torch.cat([images.cpu(), DIGITS])  # the held-out originals are among them
    every_label = torch.cat([labels.cpu(), DIGIT_LABELS])
    return correct_train_vit(everything.to(images.device), every_label.to(images.device))
"""
)

SUBMISSIONS = {
    "memorised_digits_lookup": {
        "assignment": "a2_vit",
        "cells": {"train_vit": LOOKUP},
        "status": "graded",
        "score": 12,
        "message": "the keys differ",
    },
    "memorised_digits_training": {
        "assignment": "a2_vit",
        "cells": {"train_vit": TRAIN_ON_ALL},
        "status": "graded",
        "score": 17,
    },
}
