"""Caption sample grids: fixed images of the split with the model's caption and a reference under each,
so captions can be watched improving (pictures/grids.py draws them)."""

from __future__ import annotations

import lightning as L

from supra.callbacks.sample_grid import Sample, SampleGridCallback
from supra.pictures.grids import render_caption_grid


class CaptionGridCallback(SampleGridCallback):
    """`<split>_step_XXXXXX.png` under `samples/` and `samples.png`, logged as `<split>/samples`.

    Needs `trainer.datamodule.sample_images(split, n) -> (uint8 [n, 3, H, W], [[reference, ...], ...])` and
    `.normalize(uint8 images) -> float` (as the model expects them), and
    `pl_module.generate_captions(normalised float [n, 3, H, W]) -> list[str]`.
    """

    needs = "sample_images"

    def __init__(self, num_images: int = 8, columns: int = 4, dirname: str = "samples",
                 output_dir: str | None = None) -> None:
        super().__init__(num_images, columns, dirname, output_dir)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> list[Sample]:
        images, references = trainer.datamodule.sample_images(split, self.num_samples)
        captions = pl_module.generate_captions(trainer.datamodule.normalize(images.to(pl_module.device)))
        first_refs = [refs[0] if refs else "" for refs in references]
        grid = render_caption_grid(images, captions, first_refs, self.columns,
                                   title=f"{split} images, step {step}")
        return [Sample("samples", grid)]
