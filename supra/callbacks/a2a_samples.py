"""Sample pictures of a2a_nano while it trains: prompts with the images it generates (text2image), images
with the captions it writes (image2text), and clips as GIF strips (true clip over the predicted
continuation for video, over the clip generated from its caption for text2video). Written into the run
directory and logged to every logger (image_logging)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image, ImageDraw

from supra.callbacks.caption_grid import LINE_HEIGHT, TILE, _font, _wrap, render_caption_grid
from supra.callbacks.image_logging import log_animation, log_image, save_gif_atomic, save_image_atomic
from supra.callbacks.reconstruction_grid import render_reconstruction_frames, render_reconstructions


def render_prompt_grid(images: torch.Tensor, prompts: list[str], columns: int = 4, title: str | None = None) -> Image.Image:
    """uint8 [N, 3, H, W] generated images, each under its prompt -> one RGB picture."""
    font = _font()
    blocks = [_wrap(f"prompt: {p}", font, TILE - 8) for p in prompts]
    text_height = max(map(len, blocks)) * LINE_HEIGHT + 8
    rows = -(-len(images) // columns)
    title_height = LINE_HEIGHT + 8 if title else 0
    grid = Image.new("RGB", (columns * TILE, title_height + rows * (text_height + TILE)), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 4), title, fill=(0, 0, 0), font=font)
    for i, (image, lines) in enumerate(zip(images, blocks, strict=True)):
        x, y = (i % columns) * TILE, title_height + (i // columns) * (text_height + TILE)
        for j, line in enumerate(lines):
            draw.text((x + 4, y + 4 + j * LINE_HEIGHT), line, fill=(20, 20, 20), font=font)
        tile = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((TILE - 8, TILE - 8), Image.NEAREST)
        grid.paste(tile, (x + 4, y + text_height))
    return grid


class A2ASamplesCallback(L.Callback):
    """After each validation (not the sanity check) and after a test, on global rank 0: generate for the
    first `num_samples` items of each trained task of the split and write, under `<output_dir>/<dirname>/`,
    `<split>_step_XXXXXX_<kind>.png` (+ `.gif` for clips), and the latest as `a2a_<kind>.png/.gif` in the
    run directory; logged as `<split>/a2a_<kind>`. Kinds: text2image, image2text, video, text2video.

    Needs `trainer.datamodule.sample_batch(split, task, n)` (A2AMixtureDataModule) and the task's
    `images_for`, `captions_for`, `frames_for`, `decode_codes` (A2ATask), which use no collectives.
    """

    def __init__(self, num_samples: int = 8, columns: int = 4, dirname: str = "a2a_samples",
                 output_dir: str | None = None, gif_frame_ms: int = 400) -> None:
        self.num_samples, self.columns, self.dirname = num_samples, columns, dirname
        self.output_dir, self.gif_frame_ms = output_dir, gif_frame_ms
        self.written: list[Path] = []

    def _save(self, trainer: L.Trainer, root: Path, stem: str, kind: str, split: str, picture: Image.Image,
              frames: list[Image.Image] | None = None) -> None:
        path = save_image_atomic(picture, root / self.dirname / f"{stem}_{kind}.png")
        save_image_atomic(picture, root / f"a2a_{kind}.png")
        self.written.append(path)
        log_image(trainer, f"{split}/a2a_{kind}", picture, path)
        if frames:
            gif = save_gif_atomic(frames, root / self.dirname / f"{stem}_{kind}.gif", self.gif_frame_ms)
            save_gif_atomic(frames, root / f"a2a_{kind}.gif", self.gif_frame_ms)
            self.written.append(gif)
            log_animation(trainer, f"{split}/a2a_{kind}_video", gif)

    @staticmethod
    def _prompts(batch: dict[str, Any]) -> list[list[int]]:
        return [row[:n].tolist() for row, n in zip(batch["ids"], batch["prompt_lengths"].tolist(), strict=True)]

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        if not trainer.is_global_zero or self.num_samples < 1:
            return
        datamodule = trainer.datamodule
        if getattr(datamodule, "sample_batch", None) is None:
            rank_zero_warn("A2ASamplesCallback needs an A2AMixtureDataModule (sample_batch): no samples written")
            return
        root = Path(self.output_dir or trainer.default_root_dir)
        stem = f"{split}_step_{trainer.global_step:06d}"
        title = f"{split}, step {trainer.global_step}"
        was_training = pl_module.training
        pl_module.eval()
        generator = torch.Generator(device=pl_module.device).manual_seed(0)
        try:
            with torch.no_grad():
                batch = datamodule.sample_batch(split, "text2image", self.num_samples)
                if batch is not None:
                    codes = pl_module.images_for(self._prompts(batch), tuple(batch["codes"].shape[-2:]), generator)
                    picture = render_prompt_grid(pl_module.decode_codes(codes), batch["prompts_text"], self.columns,
                                                 f"text2image, {title}")
                    self._save(trainer, root, stem, "text2image", split, picture)
                batch = datamodule.sample_batch(split, "image2text", self.num_samples)
                if batch is not None:
                    captions = pl_module.captions_for(self._prompts(batch), generator)
                    images = batch["pixels"] if "pixels" in batch else pl_module.decode_codes(batch["codes"])
                    picture = render_caption_grid(images, captions, [r[0] for r in batch["references"]], self.columns,
                                                  title=f"image2text, {title}")
                    self._save(trainer, root, stem, "image2text", split, picture)
                for task in ("video", "text2video"):
                    batch = datamodule.sample_batch(split, task, min(self.num_samples, 4))
                    if batch is None:
                        continue
                    truth = batch["codes"]  # [B, T, h, w]
                    prompts = self._prompts(batch)
                    if task == "video":  # the given frames, then the prediction
                        given = sum(1 for t in prompts[0] if t == pl_module.vocab.layout.frame) - 1
                        new = pl_module.frames_for(prompts, truth.shape[1] - given, tuple(truth.shape[-2:]), True)
                        generated = torch.cat([truth[:, :given], new], dim=1)
                    else:
                        generated = pl_module.frames_for(prompts, truth.shape[1], tuple(truth.shape[-2:]), False,
                                                         temperature=pl_module.generation["image_temperature"], generator=generator)
                    originals = batch["pixels"] if "pixels" in batch else pl_module.decode_codes(truth)
                    fakes = pl_module.decode_codes(generated)
                    self._save(trainer, root, stem, task, split, render_reconstructions(originals, fakes),
                               render_reconstruction_frames(originals, fakes, columns=len(originals)))
        finally:
            pl_module.train(was_training)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, getattr(trainer.datamodule, "split", "test"))
