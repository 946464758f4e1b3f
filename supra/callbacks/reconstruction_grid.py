"""Reconstruction pictures of a VQ-VAE during training: originals over their reconstructions, written to
the run directory and logged to every logger, so image quality can be watched as it trains."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torchvision.utils import make_grid

from supra.callbacks.image_logging import log_animation, log_image, save_gif_atomic, save_image_atomic
from supra.data.media_datamodule import to_uint8, to_unit_range

TILE = 128  # pixels per image: 64px images are upscaled (nearest) so single codes' patches stay visible


def _rows(originals: torch.Tensor, reconstructions: torch.Tensor, columns: int) -> torch.Tensor:
    """uint8 [N, 3, H, W] x 2 -> one uint8 [3, H', W'] grid: a row of originals, the row of their
    reconstructions under it, and so on."""
    columns = min(columns, len(originals))  # a few images make a narrow picture, not a row of blanks
    tiles = []
    for start in range(0, len(originals), columns):
        for block in (originals[start:start + columns], reconstructions[start:start + columns]):
            pad = columns - len(block)
            tiles.append(F.pad(block, (0, 0, 0, 0, 0, 0, 0, pad), value=255) if pad else block)
    images = torch.cat(tiles)
    scale = max(1, TILE // images.shape[-1])
    images = F.interpolate(images.float(), scale_factor=scale, mode="nearest").to(torch.uint8)
    return make_grid(images, nrow=columns, padding=4, pad_value=255)


def _to_pil(grid: torch.Tensor) -> Image.Image:
    return Image.fromarray(grid.permute(1, 2, 0).numpy())


def render_reconstructions(originals: torch.Tensor, reconstructions: torch.Tensor, columns: int = 8) -> Image.Image:
    """Images uint8 [N, 3, H, W] -> a picture of originals over reconstructions; clips [N, T, 3, H, W]
    -> a film strip per clip (its frames left to right), original strip over reconstructed strip."""
    if originals.ndim == 5:
        strips = lambda clips: torch.cat(clips.unbind(1), dim=-1)  # noqa: E731 - [N, 3, H, T*W]
        return _to_pil(_rows(strips(originals), strips(reconstructions), columns=1))
    return _to_pil(_rows(originals, reconstructions, columns))


def render_reconstruction_frames(originals: torch.Tensor, reconstructions: torch.Tensor, columns: int = 8) -> list[Image.Image]:
    """Clips uint8 [N, T, 3, H, W] -> T pictures (originals over reconstructions), the frames of a GIF."""
    return [_to_pil(_rows(originals[:, t], reconstructions[:, t], columns)) for t in range(originals.shape[1])]


class ReconstructionGridCallback(L.Callback):
    """After each validation (not the sanity check) and after a test, on global rank 0: reconstruct the
    first `num_images` items of the split and write `<dirname>/<split>_step_XXXXXX.png` and
    `reconstructions.png` (the latest), plus `.gif` animations when the items are clips; log them as
    `<split>/reconstructions`.

    Needs `trainer.datamodule.sample_items(split, n)` (a MediaDataModule) and
    `pl_module.reconstruct(pixels in [-1, 1]) -> same shape`, which must not use collectives.
    """

    def __init__(self, num_images: int = 16, columns: int = 8, dirname: str = "reconstructions",
                 output_dir: str | None = None, gif_frame_ms: int = 250) -> None:
        self.num_images, self.columns, self.dirname = num_images, columns, dirname
        self.output_dir, self.gif_frame_ms = output_dir, gif_frame_ms
        self.last_path: Path | None = None

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        if not trainer.is_global_zero or self.num_images < 1:
            return  # rank 0 alone reconstructs; the others go on to their next collective and wait there
        sample_items = getattr(trainer.datamodule, "sample_items", None)
        if sample_items is None:
            rank_zero_warn("ReconstructionGridCallback needs a datamodule with sample_items(split, n): no grid written")
            return
        originals = sample_items(split, self.num_images).pixels
        was_training = pl_module.training
        pl_module.eval()
        try:
            reconstructions = to_uint8(pl_module.reconstruct(to_unit_range(originals.to(pl_module.device)))).cpu()
        finally:
            pl_module.train(was_training)
        root = Path(self.output_dir or trainer.default_root_dir)
        stem = root / self.dirname / f"{split}_step_{trainer.global_step:06d}"
        picture = render_reconstructions(originals, reconstructions, self.columns)
        self.last_path = save_image_atomic(picture, stem.with_suffix(".png"))
        save_image_atomic(picture, root / "reconstructions.png")
        log_image(trainer, f"{split}/reconstructions", picture, self.last_path)
        if originals.ndim == 5:
            frames = render_reconstruction_frames(originals, reconstructions, self.columns)
            gif = save_gif_atomic(frames, stem.with_suffix(".gif"), self.gif_frame_ms)
            save_gif_atomic(frames, root / "reconstructions.gif", self.gif_frame_ms)
            log_animation(trainer, f"{split}/reconstructions_video", gif)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, getattr(trainer.datamodule, "split", "test"))
