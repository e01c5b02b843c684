"""A module whose forward counts its calls in a global and is right only on the first two, where
a grader that calls each module once would look: the hidden tests call fresh modules many times
in random order, so only the visible test scores. (12 points of the kernels + 1.)"""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "MultiHeadSelfAttention": """
CALLS = [0]


class MultiHeadSelfAttention(torch.nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj, self.k_proj = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.v_proj, self.out_proj = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, x):
        CALLS[0] += 1
        if CALLS[0] > 2:
            return self.out_proj(self.v_proj(x))  # attention dropped after the first calls
        B, N, D = x.shape
        d = D // self.num_heads
        q, k, v = (p(x).view(B, N, self.num_heads, d).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(B, N, D))
""",
    },
    "status": "graded",
    "score": 13,
    "message": "MultiHeadSelfAttention",
}
