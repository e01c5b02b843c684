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
