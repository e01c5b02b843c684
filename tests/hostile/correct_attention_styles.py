"""Correct a1 kernels in other styles: transposes, matmul, stacking sines and cosines."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "scaled_dot_product_attention": """
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    return torch.matmul(torch.softmax(scores, dim=-1), v)
""",
        "sinusoidal_position_encoding": """
def sinusoidal_position_encoding(num_positions, dim):
    pos = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    angles = pos / 10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    both = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # interleaved
    return both[:, :dim].to(torch.float32)
""",
    },
    "status": "graded",
    "score": 16,
}
