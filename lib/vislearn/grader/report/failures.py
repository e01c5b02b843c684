"""Failure messages, grouped: what kind of failure a test cell's message reports, and the
message with its numbers blanked, so that the failures of many students on other inputs
count as one.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

# The first rule whose pattern the message matches (case-insensitive) gives its kind. The order
# matters: "softmax raised ... shape" is the student's exception, and "softmax for x of shape
# (2, 3): 4 values are off" a wrong value, not a wrong shape.
KINDS = (
    ("forbidden name", r"not allowed in this exercise"),
    ("reach-around construct", r"not allowed in graded code|reaches around the grader"),
    ("protocol", r"malformed data|broke the protocol"),
    ("timeout", r"did not finish within|time budget|timed out"),
    ("crash", r"ended the sandbox|exited with code|killed by sig|died"),
    ("not run", r"^not graded: |^not run: "),
    ("missing function", r"is not defined in your notebook"),
    ("exception", r"\braised\b|^\w+(?:Error|Exception): "),
    ("NaN or infinite", r"\bnan\b|\binf\b|infinite"),
    ("weights", r"keys differ|dict of tensors|\[['\"][\w.]+['\"]\]: expected shape"),
    ("shape", r"expected shape|wrong shape|\bhas shape\b|returned \w+ of shape"),
    ("dtype", r"expected dtype|must be torch\.\w+, got"),
    ("device", r"expected the result on|\bis on (?:cpu|cuda|mps)"),
    ("below the threshold", r"^measured |\baccuracy\b"),
    ("gradient", r"gradient"),
    ("wrong values", r"values are off|\bexpected\b|\bmust\b|\bneeds?\b|\brule\b|\bgot\b"),
)
_COMPILED = [(kind, re.compile(pattern, re.I)) for kind, pattern in KINDS]
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?(?![\w.])", re.I)
MAX_MESSAGE = 300


def kind(message: str) -> str:
    """The kind of failure ``message`` reports (``other`` if no rule matches)."""
    return next((name for name, pattern in _COMPILED if pattern.search(message)), "other")


def pattern(message: str) -> str:
    """``message`` with every number replaced by ``#`` (shapes, values, indices, seconds)."""
    text = _NUMBER.sub("#", message)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


@dataclass
class Group:
    """The failures of one test cell with one message pattern."""

    kind: str
    message: str
    count: int = 0
    examples: list = field(default_factory=list)  # the first submissions that failed so


def failure_groups(submissions, examples: int = 3) -> dict[str, list[Group]]:
    """grade id -> the failure groups of that test cell, most frequent first, each with the
    first ``examples`` submissions that failed so."""
    groups: dict[str, dict[str, Group]] = defaultdict(dict)
    for submission in submissions:
        for cell in submission.cells:
            if cell["points"] >= cell["max_points"]:
                continue
            text = pattern(cell["message"])
            group = groups[cell["grade_id"]].setdefault(text, Group(kind(cell["message"]), text))
            group.count += 1
            if len(group.examples) < examples:
                group.examples.append(submission)
    return {
        grade_id: sorted(found.values(), key=lambda g: (-g.count, g.kind, g.message))
        for grade_id, found in groups.items()
    }


def kind_counts(groups: list[Group]) -> Counter:
    """How many failures of each kind ``groups`` hold."""
    counts: Counter = Counter()
    for group in groups:
        counts[group.kind] += group.count
    return counts
