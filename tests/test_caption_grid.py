"""Sample grids: readable tiles with captions, written atomically, sent to the loggers."""

import numpy as np
import torch

from supra.callbacks.caption_grid import TILE, render_caption_grid
from supra.callbacks.image_logging import save_image_atomic


def images(n: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_grid_has_one_tile_per_image_in_rows_of_columns():
    grid = render_caption_grid(images(6), ["a red circle"] * 6, ["a small red circle"] * 6, columns=4)
    assert grid.mode == "RGB" and grid.width == 4 * TILE
    two_rows = grid.height
    one_row = render_caption_grid(images(4), ["a red circle"] * 4, ["a small red circle"] * 4, columns=4).height
    assert two_rows > one_row


def test_captions_are_drawn_under_the_tiles_and_long_ones_wrap():
    short = render_caption_grid(images(1), ["a red circle"], columns=1)
    long = render_caption_grid(images(1), ["a very long caption " * 10], columns=1)
    assert long.width == short.width and long.height > short.height  # wrapped onto more lines, not wider
    text_band = np.asarray(short)[TILE:, :, :]
    assert (text_band < 128).any(), "dark caption text under the image"


def test_title_is_optional():
    assert render_caption_grid(images(1), ["x"], title="step 5", columns=1).height > \
        render_caption_grid(images(1), ["x"], columns=1).height


def test_save_is_atomic_and_creates_directories(tmp_path):
    grid = render_caption_grid(images(2), ["a", "b"], columns=2)
    path = save_image_atomic(grid, tmp_path / "samples" / "grid.png")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["grid.png"]
