"""Drawing the next token from logits: top-k / top-p filtering and temperature, shared by both models'
generation (greedy decoding is an argmax and needs neither)."""

from __future__ import annotations

import torch


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Mask [B, V] logits outside the top-k and outside the smallest set with probability >= top_p."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None, allowed: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """logits [B, V] -> token ids int64 [B]. allowed bool [V] or [B, V]: tokens outside it are never
    drawn (applied before top-k/top-p, so those choose among allowed tokens). temperature 0 = argmax.
    uniforms float [B] in [0, 1): row b's draw, taken from its own random stream (then `generator` is not
    used), so a row's token does not depend on the other rows."""
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
    if uniforms is not None:  # inverse transform: the token whose share of the cumulative mass holds the draw
        cumulative = probs.cumsum(-1)
        points = (uniforms.to(cumulative) * cumulative[:, -1]).unsqueeze(1)
        # right=True: a token of probability 0 spans no interval, so it is never drawn
        return torch.searchsorted(cumulative, points, right=True).squeeze(1).clamp(max=probs.shape[-1] - 1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
