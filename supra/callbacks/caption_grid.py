"""Sample grids: fixed validation images with the model's caption and a reference under each, saved as
PNG in the run directory and logged to every logger, so captions can be watched improving."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from PIL import Image, ImageDraw, ImageFont

from supra.callbacks.image_logging import log_image, save_image_atomic
from supra.data.image_transforms import normalize_imagenet

TILE = 192  # pixels per image tile: small images are upscaled so captions stay readable beside them
FONT_SIZE = 13
LINE_HEIGHT = 16


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)  # Pillow >= 10.1: a scalable bundled font
    except TypeError:
        return ImageFont.load_default()


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap by measured width (fonts are proportional)."""
    lines: list[str] = []
    for paragraph in textwrap.wrap(text, width=200) or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def render_caption_grid(
    images: torch.Tensor, captions: Sequence[str], references: Sequence[str] | None = None,
    columns: int = 4, title: str | None = None,
) -> Image.Image:
    """images uint8 [N, 3, H, W] -> one RGB picture: each image with 'model: ...' (and 'ref: ...') under it."""
    font = _font()
    blocks = []
    for i, caption in enumerate(captions):
        lines = [("model: ", caption, (20, 20, 20))]
        if references is not None:
            lines.append(("ref: ", references[i], (110, 110, 110)))
        blocks.append([(_wrap(p + t, font, TILE - 8), colour) for p, t, colour in lines])
    text_height = max(sum(len(w) for w, _ in b) for b in blocks) * LINE_HEIGHT + 8
    rows = -(-len(captions) // columns)
    title_height = LINE_HEIGHT + 8 if title else 0
    grid = Image.new("RGB", (columns * TILE, title_height + rows * (TILE + text_height)), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 4), title, fill=(0, 0, 0), font=font)
    for i, block in enumerate(blocks):
        x, y = (i % columns) * TILE, title_height + (i // columns) * (TILE + text_height)
        tile = Image.fromarray(images[i].permute(1, 2, 0).cpu().numpy()).resize((TILE - 8, TILE - 8), Image.BICUBIC)
        grid.paste(tile, (x + 4, y + 4))
        ty = y + TILE
        for wrapped, colour in block:
            for line in wrapped:
                draw.text((x + 4, ty), line, fill=colour, font=font)
                ty += LINE_HEIGHT
    return grid


class CaptionGridCallback(L.Callback):
    """After each validation (and after a test), caption `num_images` fixed images of the split and
    write `samples/step_XXXXXX.png` plus `samples.png` (the latest) to the run directory."""

    def __init__(self, num_images: int = 8, columns: int = 4, output_dir: str | None = None) -> None:
        self.num_images, self.columns = num_images, columns
        self.output_dir = output_dir
        self.last_path: Path | None = None

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        if not trainer.is_global_zero or self.num_images < 1:
            return  # rank 0 alone captions (no collectives in generate_captions), the others go on
        images, references = trainer.datamodule.sample_images(split, self.num_images)
        was_training = pl_module.training
        pl_module.eval()  # BatchNorm must use its running statistics, and not update them
        captions = pl_module.generate_captions(normalize_imagenet(images.to(pl_module.device)))
        pl_module.train(was_training)
        grid = render_caption_grid(images, captions, [r[0] for r in references], self.columns,
                                   title=f"{split} images, step {trainer.global_step}")
        root = Path(self.output_dir or trainer.default_root_dir)
        self.last_path = save_image_atomic(grid, root / "samples" / f"{split}_step_{trainer.global_step:06d}.png")
        save_image_atomic(grid, root / "samples.png")
        log_image(trainer, f"{split}/samples", grid)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, trainer.datamodule.split)
