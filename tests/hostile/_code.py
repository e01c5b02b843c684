"""Code shared by the corpus: a correct softmax, a wrong one, and the correct training of a4."""

import json

CORRECT_SOFTMAX = """
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    m = work.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = (work - m).exp()
    s = e.sum(dim=dim, keepdim=True)
    return (e / torch.where(s > 0, s, torch.ones_like(s))).to(x.dtype)
"""

# Right shape, dtype and device, wrong values: what a cheat would hand in.
UNIFORM_SOFTMAX = """
def softmax(x, dim=-1):
    return torch.full_like(x, 1.0 / x.shape[dim])
"""


def solution(assignment: str, grade_id: str, rename: str | None = None) -> str:
    """The instructor's code of a solution cell, with its function renamed to ``rename``."""
    from tests.test_course import ROOT, SOLUTION_REGION

    notebook = json.loads((ROOT / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    (source,) = ["".join(c["source"]) for c in notebook["cells"] if c["id"] == grade_id]
    source = SOLUTION_REGION.sub(lambda m: m.group(1), source)
    return source.replace(f"def {grade_id}(", f"def {rename}(") if rename else source


# The correct training of a4, as `correct_train_gat`, for the hostile variations of train_gat.
CORRECT_TRAIN_GAT = solution("a4_graphs", "train_gat", rename="correct_train_gat")
