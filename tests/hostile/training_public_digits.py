"""train_vit loads scikit-learn's digits inside the sandbox, to train on all 1797 images, the
grader's held-out ones included: the sandbox holds no package but torch's and NumPy, so the
import fails and the training cells score 0 (12 points of the kernels)."""

SUBMISSION = {
    "assignment": "a2_vit",
    "cells": {
        "train_vit": """
class DigitViT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(64, 10)

    def forward(self, images):
        return self.head(images.flatten(1))


def train_vit(images, labels):
    from sklearn.datasets import load_digits

    everything = load_digits()
    images = torch.tensor(everything.images / 16.0, dtype=torch.float32)[:, None]
    labels = torch.tensor(everything.target)
    model = DigitViT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.state_dict()
""",
    },
    "status": "graded",
    "score": 12,
    "message": "No module named 'sklearn'",
}
