"""Sample pictures of a2a_nano while it trains: prompts with the images it generates (text2image), images
with the captions it writes (image2text), and clips as GIF strips (true clip over the predicted
continuation for video, over the clip generated from its caption for text2video)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from supra.callbacks.sample_grid import Sample, SampleGridCallback
from supra.pictures.grids import (
    first_frames,
    render_caption_grid,
    render_prompt_grid,
    render_reconstruction_frames,
    render_reconstructions,
)


def _prompts(batch: dict[str, Any]) -> list[list[int]]:
    return [row[:n].tolist() for row, n in zip(batch["ids"], batch["prompt_lengths"].tolist(), strict=True)]


class A2ASamplesCallback(SampleGridCallback):
    """`<split>_step_XXXXXX_<kind>.png` (+ `.gif` for clips) under `a2a_samples/` and the latest as
    `a2a_<kind>.png/.gif`, logged as `<split>/a2a_<kind>`; kinds: text2image, image2text, video, text2video,
    for the tasks the model trains.

    Needs `trainer.datamodule.sample_batch(split, task, n)` (A2AMixtureDataModule) and the task's
    `images_for`, `captions_for`, `frames_for`, `decode_codes` (A2ATask).
    """

    needs = "sample_batch"

    def __init__(self, num_samples: int = 8, columns: int = 4, dirname: str = "a2a_samples",
                 output_dir: str | None = None, gif_frame_ms: int = 400) -> None:
        super().__init__(num_samples, columns, dirname, output_dir, gif_frame_ms)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> list[Sample]:
        datamodule, samples = trainer.datamodule, []
        title = f"{split}, step {step}"
        generator = torch.Generator(device=pl_module.device).manual_seed(0)
        batch = datamodule.sample_batch(split, "text2image", self.num_samples)
        if batch is not None:
            codes = pl_module.images_for(_prompts(batch), tuple(batch["codes"].shape[-2:]), generator)
            picture = render_prompt_grid(pl_module.decode_codes(codes), batch["prompts_text"], self.columns,
                                         f"text2image, {title}")
            samples.append(Sample("a2a_text2image", picture, suffix="_text2image"))
        batch = datamodule.sample_batch(split, "image2text", self.num_samples)
        if batch is not None:
            captions = pl_module.captions_for(_prompts(batch), generator)
            images = batch["pixels"] if "pixels" in batch else pl_module.decode_codes(batch["codes"])
            picture = render_caption_grid(images, captions, [r[0] for r in batch["references"]], self.columns,
                                          title=f"image2text, {title}")
            samples.append(Sample("a2a_image2text", picture, suffix="_image2text"))
        for task in ("video", "text2video"):
            batch = datamodule.sample_batch(split, task, min(self.num_samples, 4))
            if batch is None:
                continue
            truth = batch["codes"]  # [B, T, h, w]
            prompts = _prompts(batch)
            if task == "video":  # the given frames, then the prediction
                given = sum(1 for t in prompts[0] if t == pl_module.vocab.layout.frame) - 1
                new = pl_module.frames_for(prompts, truth.shape[1] - given, tuple(truth.shape[-2:]), True)
                generated = torch.cat([truth[:, :given], new], dim=1)
                roles = ("true clip", f"model: {first_frames(given)} given, the rest predicted")
            else:
                generated = pl_module.frames_for(prompts, truth.shape[1], tuple(truth.shape[-2:]), False,
                                                 temperature=pl_module.generation["image_temperature"], generator=generator)
                roles = ("true clip", "model: generated from the true clip's caption")
            originals = batch["pixels"] if "pixels" in batch else pl_module.decode_codes(truth)
            fakes = pl_module.decode_codes(generated)
            heading = f"{task}, {title}"
            samples.append(Sample(f"a2a_{task}", render_reconstructions(originals, fakes, title=heading, roles=roles),
                                  render_reconstruction_frames(originals, fakes, len(originals), heading, roles),
                                  f"_{task}"))
        return samples
