"""A module that keeps the keys and values of its first call and never clears them: hidden state
that a test calling each module once would miss. The grader computes every gradient by a fresh
call in the sandbox and calls modules many times in random order, so the two hidden module
tests fail (12 points of the kernels + 1)."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "MultiHeadSelfAttention": """
class MultiHeadSelfAttention(torch.nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj, self.k_proj = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.v_proj, self.out_proj = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.cache = None  # keys and values of the first call, never cleared

    def forward(self, x):
        B, N, D = x.shape
        d = D // self.num_heads

        def heads(t):
            return t.view(t.shape[0], t.shape[1], self.num_heads, d).transpose(1, 2)

        if self.cache is None:
            self.cache = heads(self.k_proj(x)), heads(self.v_proj(x))
        k, v = self.cache
        q = heads(self.q_proj(x))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(B, N, D))
""",
    },
    "status": "graded",
    "score": 13,
    "message": "for call",
}
