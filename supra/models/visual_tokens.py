"""Encoder features -> the N_VIS visual tokens a decoder reads, for the encoders beyond the release's
CNN (which pools inside VisualEncoder, under the release's names).

features [B, N, width] on a square grid are either average-pooled to a sqrt(N_VIS) grid (as the
release pools its CNN map) or read by a Perceiver resampler's N_VIS latents; then projected to D_MODEL.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from supra.models.resampler import PerceiverResampler


def pool_tokens(tokens: torch.Tensor, n_vis: int) -> torch.Tensor:
    """[B, g*g, C] tokens of a square grid -> [B, n_vis, C]: the grid average-pooled to sqrt(n_vis) a side."""
    B, N, C = tokens.shape
    side = math.isqrt(N)
    if side * side != N:
        raise ValueError(f"{N} encoder tokens are not a square grid: use a resampler (resampler_layers > 0)")
    grid = tokens.transpose(1, 2).reshape(B, C, side, side)
    return nn.functional.adaptive_avg_pool2d(grid, math.isqrt(n_vis)).flatten(2).transpose(1, 2)


class VisualTokens(nn.Module):
    """images -> [B, N_VIS, D_MODEL] through `features` (a module with `.width`), then pool or resampler."""

    def __init__(self, features: nn.Module, n_vis: int, d_model: int, resampler_layers: int, n_heads: int) -> None:
        super().__init__()
        self.features = features
        self.n_vis = n_vis
        if resampler_layers:
            self.resampler = PerceiverResampler(features.width, n_vis, resampler_layers, n_heads)
        self.proj = nn.Linear(features.width, d_model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.features(images)
        tokens = self.resampler(tokens) if hasattr(self, "resampler") else pool_tokens(tokens, self.n_vis)
        return self.proj(tokens)
