"""Attention maps while a model trains: for a few fixed images of the split, where each word of the
model's caption looked (supra/models/attention_maps.py), one strip per image, to watch attention form."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image

from supra.callbacks.sample_grid import Sample, SampleGridCallback
from supra.data.media.codes import decode_codes
from supra.models.attention_maps import (
    explain_caption,
    explain_image2text,
    why_codes_are_no_places,
    why_no_places,
)
from supra.pictures.attention import (
    DECODED_INPUT,
    INPUT_PICTURE,
    probability_text,
    render_token_strip,
    square_grid,
)


def _stack(strips: list[Image.Image]) -> Image.Image:
    picture = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips)), "white")
    y = 0
    for strip in strips:
        picture.paste(strip, (0, y))
        y += strip.height
    return picture


class AttentionMapsCallback(SampleGridCallback):
    """`<split>_step_XXXXXX.png` under `attention_maps/` and `attention_maps.png`, logged as
    `<split>/attention_maps`: per image, its caption's tokens each with its attention over the image.

    A captioner needs `trainer.datamodule.sample_images(split, n)` and the task's `net` and `tokenizer`;
    an a2a_nano task, `trainer.datamodule.sample_batch(split, "image2text", n)` and its `net` and `vocab`."""

    def __init__(self, num_images: int = 2, dirname: str = "attention_maps", output_dir: str | None = None) -> None:
        super().__init__(num_images, 1, dirname, output_dir)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> None:
        self.needs = "sample_batch" if hasattr(pl_module, "vocab") else "sample_images"
        # a captioner's resampler latents, or its one visual token, are no places on the image
        if self.needs == "sample_images" and (why := why_no_places(pl_module.net.config)):
            rank_zero_warn(f"attention_maps: not drawn, as {why}; callbacks.attention_maps=null silences this")
            return
        super()._write(trainer, pl_module, split, step)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> list[Sample]:
        title = f"{split}, step {step}"
        if self.needs == "sample_images":
            images, _ = trainer.datamodule.sample_images(split, self.num_samples)
            tokenizer, grid = pl_module.tokenizer, square_grid(pl_module.net.config.N_VIS)
            strips = []
            for image in images:
                ids, tokens = explain_caption(pl_module.net, trainer.datamodule.normalize(image[None].to(pl_module.device))[0],
                                              tokenizer.bos_id, tokenizer.eos_id,
                                              tokenizer.token_label, pl_module.decode)
                strips.append(render_token_strip(image, [t.token for t in tokens], [t.mean_map for t in tokens],
                                                 [f"p={probability_text(t.probability)}" for t in tokens], grid,
                                                 title=f"{tokenizer.decode(ids)!r} ({title})", picture_label=INPUT_PICTURE))
        else:
            batch = trainer.datamodule.sample_batch(split, "image2text", self.num_samples)
            if batch is None:
                return []
            # 8 px pictures are one code each: every token's map would be one cell at full heat
            if why := why_codes_are_no_places(tuple(batch["codes"].shape[-2:])):
                rank_zero_warn(f"attention_maps: not drawn, as {why}; callbacks.attention_maps=null silences this")
                return []
            layout, strips = pl_module.vocab.layout, []
            for codes in batch["codes"]:
                ids, tokens = explain_image2text(pl_module.net, layout, codes, [], 16, pl_module.vocab.token_label)
                strips.append(render_token_strip(decode_codes(pl_module.vqvae, codes), [t.token for t in tokens],
                                                 [t.mean_map for t in tokens], [f"p={probability_text(t.probability)}" for t in tokens],
                                                 tuple(codes.shape), title=f"{pl_module.vocab.decode_generated(ids).strip()!r} ({title})",
                                                 picture_label=DECODED_INPUT))
        return [Sample("attention_maps", _stack(strips))] if strips else []
