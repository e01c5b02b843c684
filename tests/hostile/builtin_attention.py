"""Calls PyTorch's fused attention and builds nn.MultiheadAttention, both forbidden in a1."""

SUBMISSION = {
    "assignment": "a1_attention",
    "cells": {
        "scaled_dot_product_attention": """
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
""",
        "multi_head_attention": """
from torch.nn import MultiheadAttention


def multi_head_attention(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, num_heads):
    layer = MultiheadAttention(x.shape[-1], num_heads, batch_first=True)
    return layer(x, x, x, need_weights=False)[0]
""",
    },
    "status": "tampered",
    "score": 9,
    "message": "torch.nn.functional.scaled_dot_product_attention",
}
