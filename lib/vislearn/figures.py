"""Figures for the static book: legible at page width, and an interactive explorer's states
as one animated image.

- :func:`book_figures`: the chapters' figures are shown as PNGs at a fixed resolution that
  record, in a ``tEXt`` chunk (:data:`TEXT_SIZE_KEY`), the height in pixels of their
  smallest text. The reader's gate (``tests/reader_gate.js``) reads it back and fails on a
  figure whose smallest text, as shown on the page, is smaller than its caption's.
- :func:`animation`: a chapter's ``ipywidgets`` explorer runs only in a live notebook. For
  the published page, it draws the states the widget would show, one per frame, into a
  single animated PNG (APNG), which every current browser plays and which needs no
  JavaScript, with the same record of its smallest text.

It needs matplotlib, Pillow (a dependency of matplotlib) and IPython, as the chapters do.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from typing import Any

# The PNG text chunk holding the height, in the image's pixels, of the figure's smallest text.
TEXT_SIZE_KEY = "Smallest-text-px"
# Resolution of the book's figures: a figure W inches wide is 100 W pixels wide, and a font
# of s points is s * 100 / 72 pixels high before the page scales the image to its column.
BOOK_DPI = 100
# The page: the article column is 680 px wide at 1280 px, and captions are 14 px
# (_static/book.css). A book figure is drawn at most that wide, its text at least 15 px.
COLUMN_PX = 680
SMALLEST_TEXT_PX = 15.0


def fit_to_column(figure, dpi: float = BOOK_DPI) -> None:
    """Resize ``figure`` to at most the column's width (keeping its aspect ratio, so that the
    page does not scale it down) and enlarge any text below :data:`SMALLEST_TEXT_PX`."""
    from matplotlib.text import Text

    width, height = figure.get_size_inches()
    column = COLUMN_PX / dpi
    if width > column:
        figure.set_size_inches(column, height * column / width)
    smallest_pt = SMALLEST_TEXT_PX * 72 / dpi
    for text in figure.findobj(Text):
        if text.get_fontsize() < smallest_pt:
            text.set_fontsize(smallest_pt)


def smallest_text_px(figure, dpi: float) -> float:
    """The height in pixels, at ``dpi``, of the smallest non-empty visible text that
    ``figure`` draws (titles, labels, tick labels, legends, annotations); 0 if none."""
    figure.draw_without_rendering()  # places the ticks and their labels, draws no pixels
    return _drawn_text_px(figure, dpi)


def _drawn_text_px(figure, dpi: float) -> float:
    """:func:`smallest_text_px` of a figure as it was last drawn."""
    from matplotlib.text import Text

    sizes = [
        text.get_fontsize()
        for text in figure.findobj(Text)
        if text.get_visible()
        and text.get_text().strip()
        and text.get_window_extent().overlaps(figure.bbox)
    ]
    return min(sizes) * dpi / 72 if sizes else 0.0


def figure_png(figure, dpi: float = BOOK_DPI) -> bytes | None:
    """``figure`` as PNG bytes at ``dpi``, cropped to its content and at most the column's
    width, recording its smallest text's height in pixels; None for an empty figure (as
    IPython's own formatter)."""
    import matplotlib

    if not figure.axes and not figure.texts:
        return None
    fit_to_column(figure, dpi)
    padding = 2 * matplotlib.rcParams["savefig.pad_inches"]  # around the tight box
    for _ in range(3):  # text outside the axes can make the cropped image wider: shrink
        smallest = smallest_text_px(figure, dpi)  # lays the figure out
        width = (figure.get_tightbbox().width + padding) * dpi  # the cropped image's
        if width <= COLUMN_PX:
            break
        figure.set_size_inches(figure.get_size_inches() * COLUMN_PX / width)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight",
                   metadata={TEXT_SIZE_KEY: f"{smallest:.2f}"})  # fmt: skip
    return buffer.getvalue()


def book_figures(dpi: float = BOOK_DPI) -> None:
    """Show this notebook's matplotlib figures as :func:`figure_png` PNGs. Call it once,
    after importing pyplot; outside IPython it does nothing."""
    from IPython import get_ipython
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    shell = get_ipython()
    if shell is None:
        return
    plt.close(plt.figure())  # load the inline backend, which registers its formatter first
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, functools.partial(figure_png, dpi=dpi))


def animation(
    draw: Callable[[Any, Any], None],
    states: Sequence[Any],
    *,
    figsize: tuple[float, float],
    dpi: int = 72,
    seconds_per_frame: float = 1.0,
    layout: str | None = None,
    fit: bool = False,
):
    """Draw ``draw(figure, state)`` for each state on a cleared figure of size ``figsize``
    (inches, with matplotlib's ``layout`` engine) and return the frames as an animated PNG,
    looping forever, for display in a notebook (an ``IPython.display.Image``; its ``data``
    holds the PNG's bytes). The PNG records its frames' smallest text (:data:`TEXT_SIZE_KEY`);
    ``fit=True`` draws each frame as :func:`fit_to_column` does."""
    import matplotlib.pyplot as plt
    from IPython.display import Image
    from PIL import Image as PillowImage
    from PIL.PngImagePlugin import PngInfo

    if not states:
        raise ValueError("an animation needs at least one state")
    figure = plt.figure(figsize=figsize, dpi=dpi, layout=layout)
    frames, smallest = [], []
    try:
        for state in states:
            figure.clear()
            draw(figure, state)
            if fit:
                fit_to_column(figure, dpi)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=dpi)  # every frame the same size
            smallest.append(_drawn_text_px(figure, dpi))
            frames.append(PillowImage.open(buffer).convert("RGB"))
    finally:
        plt.close(figure)
    info = PngInfo()
    info.add_text(TEXT_SIZE_KEY, f"{min((s for s in smallest if s), default=0.0):.2f}")
    out = io.BytesIO()
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:], pnginfo=info,
                   duration=round(1000 * seconds_per_frame), loop=0)  # fmt: skip
    return Image(data=out.getvalue(), format="png")


def shell_command(command: str, width: int = 88) -> str:
    """``command`` as a shell prompt line, wrapped at ``width`` columns with ``\\``
    continuations, for a printed record of how a result was made."""
    import textwrap

    lines = textwrap.wrap(command, width - 6, break_long_words=False, break_on_hyphens=False)
    return "$ " + " \\\n    ".join(lines)
