"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display)
into PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

WIDTH = 7.0  # inches, at DPI: 700 pixels, beside a narrow table in a 1280-pixel window
DPI = 100
VISIBLE, HIDDEN = "#4c72b0", "#dd8452"


def _figure(height: float) -> Figure:
    return Figure(figsize=(WIDTH, height), layout="constrained")


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    return path


def score_histogram(scores: list[float], max_score: float, path: Path) -> Path:
    """How many submissions scored each number of points."""
    figure = _figure(3.2)
    axes = figure.add_subplot()
    step = max(1.0, np.ceil(max_score / 25))
    edges = np.arange(0, max_score + step, step) - step / 2
    axes.hist(scores, bins=np.append(edges, edges[-1] + step), color=VISIBLE, edgecolor="white")
    axes.set(
        xlabel="score (points)",
        ylabel="submissions",
        title=f"Scores of {len(scores)} submissions (out of {max_score:g})",
    )
    axes.set_xlim(-step, max_score + step)
    return _save(figure, path)


def pass_rates(labels: list[str], rates: list[float], hidden: list[bool], path: Path) -> Path:
    """The share of submissions that scored each test cell in full, visible and hidden
    tests in two colours, in the notebook's order from the top."""
    figure = _figure(1.0 + 0.28 * len(labels))
    axes = figure.add_subplot()
    y = np.arange(len(labels))[::-1]
    axes.barh(y, [100 * r for r in rates], color=[HIDDEN if h else VISIBLE for h in hidden])
    axes.set_yticks(y, labels, fontsize=8)
    axes.set(
        xlim=(0, 100),
        xlabel="submissions with full points (%)",
        title="Pass rate of each test cell",
    )
    legend = [Patch(color=VISIBLE, label="visible test"), Patch(color=HIDDEN, label="hidden test")]
    axes.legend(handles=legend, loc="lower right", fontsize=8)
    return _save(figure, path)


def time_histogram(seconds: list[float], path: Path) -> Path:
    """How long the gradings took."""
    figure = _figure(3.0)
    axes = figure.add_subplot()
    axes.hist(seconds, bins=min(40, max(5, len(seconds) // 5)), color=VISIBLE, edgecolor="white")
    axes.set(
        xlabel="seconds to grade one submission",
        ylabel="submissions",
        title=f"Grading time of {len(seconds)} submissions",
    )
    return _save(figure, path)


def score_boxes(names: list[str], percents: list[list[float]], path: Path) -> Path:
    """The spread of each assignment's scores, as a share of its points."""
    figure = _figure(0.9 + 0.45 * len(names))
    axes = figure.add_subplot()
    axes.boxplot(percents[::-1], orientation="horizontal", tick_labels=names[::-1])
    axes.set(
        xlim=(-2, 102), xlabel="score (% of the assignment's points)", title="Scores per assignment"
    )
    return _save(figure, path)
