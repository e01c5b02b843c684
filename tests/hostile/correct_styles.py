"""Correct, in other styles: the axis moved last with a helper function, torch.where for
the mask, an extra cell of the student's own."""

SUBMISSION = {
    "assignment": "a0_softmax",
    "cells": {
        "softmax": """
def _last_axis_softmax(z):
    z = z - torch.nan_to_num(z.max(-1, keepdim=True).values, neginf=0.0)
    e = z.exp()
    total = e.sum(-1, keepdim=True)
    return e / torch.where(total == 0, torch.ones_like(total), total)


def softmax(x, dim=-1):
    low = x.dtype in (torch.float16, torch.bfloat16)
    z = torch.movedim(x.float() if low else x, dim, -1)
    return torch.movedim(_last_axis_softmax(z), -1, dim).to(x.dtype)
""",
        "masked_softmax": """
def masked_softmax(x, mask, dim=-1):
    blocked = torch.where(mask, x, torch.tensor(float("-inf"), dtype=x.dtype, device=x.device))
    return softmax(blocked, dim=dim)
""",
    },
    "status": "graded",
    "score": 10,
}
