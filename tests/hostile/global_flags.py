"""Correct kernels in a notebook that changes global torch settings: only the sandbox's own
process is affected, never the references. The student's module, built in that process, gets
float64 parameters and fails the module tests that feed it float32 (12 + 2 points)."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "setup": "import torch\ntorch.set_default_dtype(torch.float64)\n",  # locked: restored
        "self_attention": """
torch.set_default_dtype(torch.float64)
torch.set_flush_denormal(True)


def self_attention(X, omega_q, beta_q, omega_k, beta_k, omega_v, beta_v):
    Q = omega_q @ X + beta_q[:, None]
    K = omega_k @ X + beta_k[:, None]
    V = omega_v @ X + beta_v[:, None]
    return V @ torch.softmax(K.T @ Q / math.sqrt(Q.shape[0]), dim=0)
""",
    },
    "status": "graded",
    "score": 14,
}
