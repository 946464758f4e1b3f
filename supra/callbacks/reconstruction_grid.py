"""Reconstruction pictures of a VQ-VAE during training: originals over their reconstructions, so image
quality can be watched as it trains (pictures/grids.py draws them)."""

from __future__ import annotations

import lightning as L

from supra.callbacks.sample_grid import Sample, SampleGridCallback
from supra.data.images import to_uint8, to_unit_range
from supra.pictures.grids import render_reconstruction_frames, render_reconstructions


class ReconstructionGridCallback(SampleGridCallback):
    """`<split>_step_XXXXXX.png` under `reconstructions/` and `reconstructions.png` (plus `.gif` animations
    when the items are clips), logged as `<split>/reconstructions`.

    Needs `trainer.datamodule.sample_items(split, n)` (a MediaDataModule) and
    `pl_module.reconstruct(pixels in [-1, 1]) -> same shape`.
    """

    needs = "sample_items"

    def __init__(self, num_images: int = 16, columns: int = 8, dirname: str = "reconstructions",
                 output_dir: str | None = None, gif_frame_ms: int = 250) -> None:
        super().__init__(num_images, columns, dirname, output_dir, gif_frame_ms)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> list[Sample]:
        originals = trainer.datamodule.sample_items(split, self.num_samples).pixels
        pixels = trainer.precision_plugin.convert_input(to_unit_range(originals.to(pl_module.device)))  # weights' dtype
        reconstructions = to_uint8(pl_module.reconstruct(pixels)).cpu()
        title = f"reconstructions, {split}, step {step}"
        frames = render_reconstruction_frames(originals, reconstructions, self.columns, title) \
            if originals.ndim == 5 else None
        return [Sample("reconstructions", render_reconstructions(originals, reconstructions, self.columns, title),
                       frames)]
