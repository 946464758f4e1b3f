"""Sample grids: fixed validation images with the model's caption and a reference under each, saved as
PNG in the run directory and logged to every logger, so captions can be watched improving."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image, ImageDraw, ImageFont

from supra.callbacks.image_logging import log_image, save_image_atomic
from supra.data.image_transforms import normalize_imagenet

TILE = 192  # pixels per image tile: small images are upscaled so captions stay readable beside them
FONT_SIZE = 13
LINE_HEIGHT = 16
MAX_LINES = 8  # per caption


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)  # Pillow >= 10.1: a scalable bundled font
    except TypeError:
        return ImageFont.load_default()


def _split_long_word(word: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """A word wider than the tile, cut into pieces that fit (or it would spill into the next tile)."""
    pieces = [""]
    for char in word:
        if pieces[-1] and font.getlength(pieces[-1] + char) > width:
            pieces.append("")
        pieces[-1] += char
    return pieces


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap by measured width (the font is proportional), at most MAX_LINES lines."""
    lines = [""]
    for word in text.split():
        for piece in _split_long_word(word, font, width):
            trial = f"{lines[-1]} {piece}".strip()
            if lines[-1] and font.getlength(trial) > width:
                lines.append(piece)
            else:
                lines[-1] = trial
    if len(lines) > MAX_LINES:  # an untrained model's endless caption must not make the grid endless
        last = lines[MAX_LINES - 1]
        while last and font.getlength(last + " ...") > width:
            last = last[:-1]
        lines = lines[: MAX_LINES - 1] + [last + " ..."]
    return lines


def render_caption_grid(
    images: torch.Tensor, captions: Sequence[str], references: Sequence[str] | None = None,
    columns: int = 4, title: str | None = None,
) -> Image.Image:
    """images uint8 [N, 3, H, W] -> one RGB picture: each image with 'model: ...' (and 'ref: ...') under it.

    Tiles are TILE px square (images resized, bicubic) in rows of `columns`; the picture is
    columns * TILE px wide whatever the captions, which wrap onto more lines instead.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {list(images.shape)}")
    n = len(images)
    if n == 0 or len(captions) != n or (references is not None and len(references) != n):
        raise ValueError(f"{n} images need as many captions (got {len(captions)}) and references "
                         f"(got {None if references is None else len(references)}), at least one")
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
    """After each validation (not the sanity check) and after a test, on global rank 0: caption the first
    `num_images` images of the split and write `<dirname>/<split>_step_XXXXXX.png` and `samples.png` (the
    latest) into the run directory (`output_dir`, else `trainer.default_root_dir`), and log the grid as
    `<split>/samples`. The split prefix keeps a test grid from overwriting the last validation one.

    Needs `trainer.datamodule.sample_images(split, n) -> (uint8 [n, 3, H, W], [[reference, ...], ...])` and
    `pl_module.generate_captions(normalised float [n, 3, H, W]) -> list[str]`, which must not use
    collectives: the other ranks do not take part.
    """

    def __init__(self, num_images: int = 8, columns: int = 4, dirname: str = "samples",
                 output_dir: str | None = None) -> None:
        self.num_images, self.columns, self.dirname = num_images, columns, dirname
        self.output_dir = output_dir
        self.last_path: Path | None = None

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        if not trainer.is_global_zero or self.num_images < 1:
            return  # rank 0 alone captions; the others go on to their next collective and wait there
        sample_images = getattr(trainer.datamodule, "sample_images", None)
        if sample_images is None:
            rank_zero_warn("CaptionGridCallback needs a datamodule with sample_images(split, n): no grid written")
            return
        images, references = sample_images(split, self.num_images)
        was_training = pl_module.training
        pl_module.eval()  # BatchNorm and dropout in inference behaviour, as in validation itself
        try:
            with torch.no_grad():
                captions = pl_module.generate_captions(normalize_imagenet(images.to(pl_module.device)))
        finally:
            pl_module.train(was_training)
        first_refs = [refs[0] if refs else "" for refs in references]
        grid = render_caption_grid(images, captions, first_refs, self.columns,
                                   title=f"{split} images, step {trainer.global_step}")
        root = Path(self.output_dir or trainer.default_root_dir)
        path = root / self.dirname / f"{split}_step_{trainer.global_step:06d}.png"
        self.last_path = save_image_atomic(grid, path)
        save_image_atomic(grid, root / "samples.png")
        log_image(trainer, f"{split}/samples", grid, path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, getattr(trainer.datamodule, "split", "test"))
