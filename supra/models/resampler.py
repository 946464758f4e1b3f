"""A Perceiver resampler (Flamingo): a fixed number of learned latent queries read any number of
encoder tokens, so the decoder sees N_VIS visual tokens whatever the encoder's grid.

Attention alone does not know where a token lies, and a CNN's features carry little of it, so the
tokens get fixed 2D sine-cosine positions of their grid first (as Perceiver IO gives its inputs Fourier
positions); without them, captions lose every "left of" and "at the top" (docs/study.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from supra.models.cross_attention import CrossAttention
from supra.models.gpt import MLP, BlockConfig


def grid_positions(side: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """[side * side, width] fixed 2D sine-cosine positions of a square grid in raster order: the first
    half of the channels encodes the row, the second the column (width must be divisible by 4)."""
    if width % 4:
        raise ValueError(f"grid positions need a width divisible by 4, got {width}")
    freqs = 1.0 / 10_000 ** (torch.arange(width // 4, device=device, dtype=torch.float32) / (width // 4))
    coords = torch.arange(side, device=device, dtype=torch.float32)[:, None] * freqs  # [side, width/4]
    axis = torch.cat([coords.sin(), coords.cos()], dim=1)  # [side, width/2]
    rows, cols = axis[:, None, :].expand(side, side, -1), axis[None, :, :].expand(side, side, -1)
    return torch.cat([rows, cols], dim=2).reshape(side * side, width)


class ResamplerLayer(nn.Module):
    """latents += attn(latents -> [tokens; latents]); latents += mlp(latents). Pre-norm."""

    def __init__(self, width: int, n_heads: int) -> None:
        super().__init__()
        self.ln_tokens = nn.LayerNorm(width)
        self.ln_latents = nn.LayerNorm(width)
        self.attn = CrossAttention(width, n_heads)
        self.ln_mlp = nn.LayerNorm(width)
        self.mlp = MLP(BlockConfig(d_model=width, n_heads=n_heads, d_mlp=4 * width))

    def forward(self, latents: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        latents_n = self.ln_latents(latents)
        # Flamingo lets the latents attend to themselves too: keys are the tokens and the latents.
        context = torch.cat([self.ln_tokens(tokens), latents_n], dim=1)
        latents = latents + self.attn(latents_n, self.attn.context_kv(context))
        return latents + self.mlp(self.ln_mlp(latents))


class PerceiverResampler(nn.Module):
    """tokens [B, N, width] of a square grid -> [B, n_latents, width]."""

    def __init__(self, width: int, n_latents: int, n_layers: int, n_heads: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_latents, width) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(width, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        side = math.isqrt(tokens.shape[1])
        if side * side != tokens.shape[1]:
            raise ValueError(f"{tokens.shape[1]} encoder tokens are not a square grid")
        tokens = tokens + grid_positions(side, tokens.shape[2], tokens.device).to(tokens.dtype)
        latents = self.latents.expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, tokens)
        return self.ln(latents)
