"""vislearn.figures: an explorer's states as one animated PNG."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from vislearn.figures import animation

matplotlib.use("agg")


def draw_line(figure, slope):
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, slope])
    ax.set(ylim=(-1, 1), title=f"slope {slope}")


def test_every_state_is_one_frame_of_a_looping_png():
    image = animation(draw_line, [-1.0, 0.0, 1.0], figsize=(2, 1.5), dpi=50,
                      seconds_per_frame=0.25)  # fmt: skip
    png = Image.open(io.BytesIO(image.data))
    assert png.format == "PNG" and png.is_animated and png.n_frames == 3
    assert png.size == (100, 75)
    assert png.info["loop"] == 0
    frames = []
    for index in range(png.n_frames):
        png.seek(index)
        assert png.info["duration"] == 250
        frames.append(np.asarray(png.convert("RGB")))
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])


def test_an_animation_needs_a_state():
    with pytest.raises(ValueError, match="at least one state"):
        animation(draw_line, [], figsize=(2, 1.5))


def test_a_book_figure_records_the_height_of_its_smallest_text():
    import matplotlib.pyplot as plt

    from vislearn.figures import TEXT_SIZE_KEY, figure_png

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    ax.tick_params(labelsize=9)
    ax.set_title("a title", fontsize=14)
    png = Image.open(io.BytesIO(figure_png(fig, dpi=144)))
    plt.close(fig)
    assert float(png.info[TEXT_SIZE_KEY]) == pytest.approx(9 * 144 / 72)
    empty = plt.figure()
    assert figure_png(empty) is None
    plt.close(empty)


def test_an_animation_records_its_smallest_text_over_all_frames():
    from vislearn.figures import TEXT_SIZE_KEY

    def draw(figure, size):
        figure.add_subplot().set_title("title", fontsize=size)

    image = animation(draw, [12, 7, 20], figsize=(2, 1.5), dpi=72)
    png = Image.open(io.BytesIO(image.data))
    assert float(png.info[TEXT_SIZE_KEY]) == pytest.approx(7.0)


def test_a_book_figure_fits_the_column_with_legible_text():
    import matplotlib.pyplot as plt

    from vislearn.figures import COLUMN_PX, SMALLEST_TEXT_PX, TEXT_SIZE_KEY, figure_png

    fig, axes = plt.subplots(1, 4, figsize=(16, 3))
    for ax in axes:
        ax.set_title("small", fontsize=6)
    png = Image.open(io.BytesIO(figure_png(fig, dpi=100)))
    plt.close(fig)
    assert png.size[0] <= COLUMN_PX + 20  # tight cropping may add a few pixels of text
    assert float(png.info[TEXT_SIZE_KEY]) >= SMALLEST_TEXT_PX
