"""Right values, wrong kind of answer: position encodings as a NumPy array, self-attention
detached from autograd. Only the checks of those properties fail."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "self_attention": """
def self_attention(X, omega_q, beta_q, omega_k, beta_k, omega_v, beta_v):
    Q = omega_q @ X + beta_q[:, None]
    K = omega_k @ X + beta_k[:, None]
    V = omega_v @ X + beta_v[:, None]
    return (V @ torch.softmax(K.T @ Q / math.sqrt(Q.shape[0]), dim=0)).detach()
""",
        "sinusoidal_position_encoding": """
import numpy as np


def sinusoidal_position_encoding(num_positions, dim):
    pos = np.arange(num_positions)[:, None]
    angles = pos / 10000.0 ** (np.arange(0, dim, 2) / dim)
    P = np.zeros((num_positions, dim), dtype=np.float32)
    P[:, 0::2] = np.sin(angles)
    P[:, 1::2] = np.cos(angles)[:, : dim // 2]
    return P
""",
    },
    "status": "graded",
    "score": 12,
    "message": "ndarray",
}
