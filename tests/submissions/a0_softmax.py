"""A class of a0_softmax submissions (see tests/submissions/__init__.py)."""

A0_WRONG_AXIS = """
def softmax(x, dim=-1):
    exps = (x - x.max(dim=-1, keepdim=True).values).exp()  # ignores `dim`
    return exps / exps.sum(dim=-1, keepdim=True)
"""

A0_NO_MAX_SUBTRACTION = """
def softmax(x, dim=-1):
    exps = x.exp()
    return exps / exps.sum(dim=dim, keepdim=True)
"""

A0_MASK_AFTER_SOFTMAX = """
def masked_softmax(x, mask, dim=-1):
    return softmax(x, dim=dim) * mask  # masked after normalising: rows no longer sum to 1
"""

A0_CRASHING_CELL = """
raise RuntimeError("this cell crashes when the notebook runs")
"""

A0_MASKED = [
    "test_masked_softmax_visible",
    "test_masked_softmax_random",
    "test_masked_softmax_fully_masked",
]

CLASS = {
    "alice": ({}, []),
    # masked_softmax calls the wrong softmax: only its dim=-1 visible test survives
    "bob": (
        {"softmax": A0_WRONG_AXIS},
        [
            "test_softmax_visible",
            "test_softmax_random",
            "test_softmax_large_logits",
            "test_softmax_dtypes_and_gradient",
            "test_masked_softmax_random",
            "test_masked_softmax_fully_masked",
        ],
    ),
    "carol": ({"masked_softmax": A0_CRASHING_CELL}, A0_MASKED),
    # overflow: large logits fail, and exp(-inf - -inf) of a fully masked row is NaN
    "dan": (
        {"softmax": A0_NO_MAX_SUBTRACTION},
        [
            "test_softmax_large_logits",
            "test_masked_softmax_random",
            "test_masked_softmax_fully_masked",
        ],
    ),
    # weights of partly masked rows no longer sum to 1: every masked_softmax check fails
    "erin": ({"masked_softmax": A0_MASK_AFTER_SOFTMAX}, A0_MASKED),
}
