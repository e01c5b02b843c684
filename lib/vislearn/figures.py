"""Figures for the static book: an interactive explorer's states as one animated image.

A chapter's ``ipywidgets`` explorer runs only in a live notebook. For the published page,
:func:`animation` draws the states the widget would show, one per frame, into a single
animated PNG (APNG), which every current browser plays and which needs no JavaScript. It
needs matplotlib, Pillow (a dependency of matplotlib) and IPython, as the chapters do.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any


def animation(
    draw: Callable[[Any, Any], None],
    states: Sequence[Any],
    *,
    figsize: tuple[float, float],
    dpi: int = 72,
    seconds_per_frame: float = 1.0,
    layout: str | None = None,
):
    """Draw ``draw(figure, state)`` for each state on a cleared figure of size ``figsize``
    (inches, with matplotlib's ``layout`` engine) and return the frames as an animated PNG,
    looping forever, for display in a notebook (an ``IPython.display.Image``; its ``data``
    holds the PNG's bytes)."""
    import matplotlib.pyplot as plt
    from IPython.display import Image
    from PIL import Image as PillowImage

    if not states:
        raise ValueError("an animation needs at least one state")
    figure = plt.figure(figsize=figsize, dpi=dpi, layout=layout)
    frames = []
    try:
        for state in states:
            figure.clear()
            draw(figure, state)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=dpi)  # every frame the same size
            frames.append(PillowImage.open(buffer).convert("RGB"))
    finally:
        plt.close(figure)
    out = io.BytesIO()
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:],
                   duration=round(1000 * seconds_per_frame), loop=0)  # fmt: skip
    return Image(data=out.getvalue(), format="png")
