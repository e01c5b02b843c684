"""Modules that are right for their first k calls after load_state_dict and wrong afterwards (a
parameter changed in place, a cache filled, a counter): a grader that calls each module once or
twice, and recomputes the forward for the gradients, would give them the hidden module tests.
Every module is called at least six times in each hidden test, every call compared with its own
gradients, so each loses the two hidden module cells (3 points)."""

from tests.hostile._code import solution

CORRECT_MHSA = solution("a1_attention", "MultiHeadSelfAttention")
CORRECT_GAT = solution("a4_graphs", "GATConv")


def right_first(source: str, cls: str, k: int) -> str:
    """``cls`` of ``source``, right for its first ``k`` calls after each load_state_dict: from
    then on its output is the output of its first call, whatever the input."""
    return (
        source
        + f"""

class Counted({cls}):
    def load_state_dict(self, state, strict=True):
        self.calls = 0
        return super().load_state_dict(state, strict)

    def forward(self, *inputs):
        out = super().forward(*inputs)
        calls = getattr(self, "calls", None)
        if calls is None:  # never loaded (its own training builds it): always right
            return out
        self.calls = calls + 1
        return out if self.calls <= {k} else out * 0.5  # a bug that shows after k calls


{cls} = Counted
"""
    )


SUBMISSIONS = {
    **{
        f"module_right_first_{k}_calls": {
            "assignment": "a1_attention",
            "cells": {
                "MultiHeadSelfAttention": right_first(CORRECT_MHSA, "MultiHeadSelfAttention", k)
            },
            "status": "graded",
            "score": 13,
            "message": "call",
        }
        for k in (1, 2, 5)
    },
    "gat_right_first_3_calls": {
        "assignment": "a4_graphs",
        "cells": {"GATConv": right_first(CORRECT_GAT, "GATConv", 3)},
        "status": "graded",
        "score": 20,
        "message": "call",
    },
}
