"""Code shared by the corpus: a correct softmax, a wrong one, the correct training of a4 and a2,
the grading seed's public recipe, and the public digits as a student could paste them."""

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


# The correct a2 model and training, with train_vit as `correct_train_vit`.
CORRECT_DIGIT_VIT = solution("a2_vit", "train_vit", rename="correct_train_vit")

# The public recipe of the hidden tests' generators (vislearn.grader.evaluate): what a sandbox
# that knew the grading seed could rebuild.
DERIVE_SEED = """
import hashlib


def derive_seed(*parts):
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


SEED = torch.initial_seed()  # read when the cells run, before any training seeds torch again


def hidden_generator(n):  # make_generator(n) of the hidden tests, if the seed were the grader's
    return torch.Generator().manual_seed(derive_seed(SEED, "generator", n))
"""


def public_digits() -> str:
    """Source defining ``DIGITS`` and ``DIGIT_LABELS``: all 1797 of scikit-learn's digits, in the
    order the a2 hidden test stacks them (the library's split, training part first), pasted."""
    import torch

    from vislearn.images import load_digits

    digits = load_digits()
    images = torch.cat([digits.x_train, digits.x_test])  # (1797, 1, 8, 8), counts / 16
    labels = torch.cat([digits.y_train, digits.y_test])
    pixels = bytes((images * 16).round().to(torch.uint8).flatten().tolist()).hex()
    return f"""
PIXELS = "{pixels}"
DIGIT_LABELS = torch.tensor([int(c) for c in "{"".join(map(str, labels.tolist()))}"])
DIGITS = torch.tensor(list(bytes.fromhex(PIXELS)), dtype=torch.float32).view(-1, 1, 8, 8) / 16
"""
