"""A look inside: where each generated token attended, for the captioner and for a2a_nano.

The model first generates as it always does (fused attention, its own decoding); then one teacher-forced
pass over what it generated runs with `recorded_attention`, which keeps every layer's and head's
weights. A token's map is the attention of the position that predicted it: for the captioner, over the
visual tokens (a sqrt(N_VIS) x sqrt(N_VIS) grid); for a2a_nano, over the input image's codes
(image2text) or, for each generated code, over the prompt's words (text2image).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from supra.models import a2a_generation as gen
from supra.models.a2a_nano import A2ANano
from supra.models.cross_attention import CrossAttention
from supra.models.eval_mode import eval_mode
from supra.models.gpt import CausalSelfAttention, recorded_attention
from supra.models.vlm_generation import DecodeConfig, generate
from supra.models.vlm_nano import VLMNano, VLMNanoConfig
from supra.tokens.a2a_layout import TokenLayout
from supra.utils.errors import SupraUserError

TOP_ALTERNATIVES = 5


@dataclass
class TokenAttention:
    """One generated token: its text, its probability and the likeliest alternatives at that step, and
    its attention over the `grid` positions: maps float [layers, heads, grid_h * grid_w] (each head's
    weights on those positions; a row of the full attention, which also covers the text before it)."""

    token: str
    probability: float
    alternatives: list[tuple[str, float]]
    maps: torch.Tensor

    @property
    def mean_map(self) -> torch.Tensor:
        """The map averaged over layers and heads, [grid positions]."""
        return self.maps.mean(dim=(0, 1))


def _steps(logits: torch.Tensor, chosen: Sequence[int], label: Callable[[int], str]) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """Per generated token: (its label, its probability, the top alternatives) from the logits [n, V] that
    predicted it; `label` names one id (a tokenizer's token_label)."""
    probs = logits.float().softmax(-1)
    out = []
    for row, token in zip(probs, chosen, strict=True):
        top = row.topk(min(TOP_ALTERNATIVES, row.numel()))
        alternatives = [(label(int(i)), float(p)) for p, i in zip(top.values, top.indices, strict=True)]
        out.append((label(int(token)), float(row[token]), alternatives))
    return out


def why_no_places(config: VLMNanoConfig) -> str | None:
    """Why a captioner's visual tokens are no places on the image, or None where they are a grid over it. One
    token (N_VIS=1) is a 1x1 grid: its map has one cell, drawn at full heat for every word whatever its weight."""
    if config.resampler_layers:
        return "a resampler's latent tokens are not places on the image"
    if config.N_VIS == 1:
        return "its one visual token (N_VIS=1) is the whole image, not a place on it"
    return None


def why_codes_are_no_places(grid: tuple[int, int]) -> str | None:
    """Why an a2a image's `grid` of VQ-VAE codes (h, w) is no places on it, or None where it is. One code (an 8 px
    image) is a 1x1 grid: its map has one cell, drawn at full heat for every token whatever its weight."""
    if math.prod(grid) == 1:
        return "its one VQ-VAE code (a 1x1 grid) is the whole image, not a place on it"
    return None


def check_maps_are_places(net: VLMNano) -> None:
    """Refuses a captioner whose visual tokens are no places on the image (why_no_places)."""
    if why := why_no_places(net.config):
        raise SupraUserError(f"attention maps show where on the image each word looked, but {why}: explain a model "
                             "whose visual tokens are a grid (resampler_layers=0 and N_VIS of 4 or more)")


@torch.no_grad()
def explain_caption(net: VLMNano, image: torch.Tensor, bos_id: int, eos_id: int, token_label: Callable[[int], str],
                    decode: DecodeConfig | None = None) -> tuple[list[int], list[TokenAttention]]:
    """A normalised image float [3, H, W] -> its caption's ids (as `generate` writes them with `decode`)
    and one TokenAttention per token over the N_VIS visual tokens, raster order."""
    check_maps_are_places(net)
    with eval_mode(net):
        ids = generate(net, image[None], bos_id, eos_id, decode or DecodeConfig())[0]
        idx = torch.tensor([[bos_id, *ids]], device=image.device)
        # prefix fusion: the decoder's self-attention from each text position to the visual prefix;
        # cross_attention fusion: the gated layers' attention over the visual tokens
        cross = net.config.fusion == "cross_attention"
        n_vis = 0 if cross else net.config.N_VIS
        with recorded_attention(net.xattn if cross else net, CrossAttention if cross else CausalSelfAttention) as maps:
            logits, _ = net(image[None], idx)
        weights = torch.stack([layer[0][0] for layer in maps])  # [L, H, T, T or N_VIS], one call per layer
        steps = _steps(logits[0, : len(ids)], ids, token_label)
        return ids, [TokenAttention(text, p, alternatives, weights[:, :, n_vis + k, : net.config.N_VIS].cpu())
                     for k, (text, p, alternatives) in enumerate(steps)]


@torch.no_grad()
def explain_image2text(net: A2ANano, layout: TokenLayout, image_codes: torch.Tensor, caption_prefix: Sequence[int],
                       max_new_tokens: int, token_label: Callable[[int], str]) -> tuple[list[int], list[TokenAttention]]:
    """Codes int64 [h, w] of an image (and text ids that start the caption) -> the caption's new ids that
    a2a_nano writes (greedy) and one TokenAttention per token over the h * w codes of the image block."""
    prompt = [*layout.image_block(image_codes), layout.text_open, *caption_prefix]
    new = gen.generate_texts(net, layout, [prompt], max_new_tokens, temperature=0.0)[0]
    sequence = torch.tensor([[*prompt, *new]], device=net.tok_emb.weight.device)
    with recorded_attention(net) as maps:
        logits, _ = net(sequence)
    weights = torch.stack([layer[0][0] for layer in maps])  # [L, H, T, T]
    first_code, grid = 1, image_codes.numel()  # after <IMAGE>
    start = len(prompt) - 1  # the position that predicts the first new token
    steps = _steps(logits[0, start : start + len(new)], new, token_label)
    return new, [TokenAttention(text, p, alternatives, weights[:, :, start + k, first_code : first_code + grid].cpu())
                 for k, (text, p, alternatives) in enumerate(steps)]


@dataclass
class ImageAttention:
    """A generated image's codes int64 [h, w] and, for each of the prompt's words, how much each code
    attended to it: maps float [layers, heads, words, h * w]."""

    codes: torch.Tensor
    words: list[str]
    maps: torch.Tensor

    @property
    def mean_map(self) -> torch.Tensor:
        """[words, h * w], averaged over layers and heads."""
        return self.maps.mean(dim=(0, 1))


@torch.no_grad()
def explain_text2image(net: A2ANano, layout: TokenLayout, caption_ids: Sequence[int], grid: tuple[int, int],
                       token_label: Callable[[int], str], **sampling: object) -> ImageAttention:
    """Caption ids -> the image a2a_nano draws for `<TEXT> caption </TEXT><IMAGE>` (with `sampling`:
    temperature, guidance, best_of, generator, ...) and, per caption token, the attention each code paid it."""
    prompt = [layout.text_open, *caption_ids, layout.text_close, layout.image_open]
    codes = gen.generate_images(net, layout, [prompt], grid, **sampling)[0]
    sequence = torch.tensor([[*prompt, *layout.code_ids(codes).flatten().tolist()]], device=net.tok_emb.weight.device)
    with recorded_attention(net) as maps:
        net(sequence[:, :-1])  # the position before each code is the one that drew it
    weights = torch.stack([layer[0][0] for layer in maps])  # [L, H, T, T]
    start = len(prompt) - 1
    queries = weights[:, :, start : start + math.prod(grid)]  # [L, H, h*w, T]
    words = queries[..., 1 : 1 + len(caption_ids)]  # the caption's tokens, after <TEXT>
    return ImageAttention(codes, [token_label(i) for i in caption_ids], words.transpose(-1, -2).cpu())
