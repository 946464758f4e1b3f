"""Pictures written to disk: an animated GIF keeps every frame it is given, repeated ones included."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from PIL import Image, ImageSequence

from supra.pictures.files import save_gif_atomic

RNG = np.random.default_rng(0)
NOISE = [Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
RED = Image.new("RGB", (32, 32), (255, 0, 0))


@pytest.mark.parametrize("frames", [[RED] * 4, [NOISE[0], NOISE[0], NOISE[0], NOISE[1]], [NOISE[0], NOISE[1], NOISE[1]]],
                         ids=["a still video", "a frame three times", "the last frame twice"])
def test_a_gif_keeps_every_frame_even_one_identical_to_the_frame_before(tmp_path, frames):
    path = save_gif_atomic(frames, tmp_path / "video.gif", duration_ms=100)
    with Image.open(path) as gif:
        read = [np.asarray(f.convert("RGB"), dtype=np.int16) for f in ImageSequence.Iterator(gif)]
        durations = [f.info["duration"] for f in ImageSequence.Iterator(gif)]
    assert len(read) == len(frames) and durations == [100] * len(frames)
    for got, frame in zip(read, frames, strict=True):  # each frame in its own palette: close, exact for few colours
        error = np.abs(got - np.asarray(frame, dtype=np.int16)).mean()
        assert error == 0 if frame is RED else error < 16
    assert all(np.array_equal(a, b) for (a, b), (f, g) in zip(pairwise(read), pairwise(frames), strict=True) if f is g)
