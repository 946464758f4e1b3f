"""A Perceiver resampler (Flamingo): a fixed number of learned latent queries read any number of
encoder tokens, so the decoder sees N_VIS visual tokens whatever the encoder's grid."""

from __future__ import annotations

import torch
from torch import nn

from supra.models.cross_attention import CrossAttention
from supra.models.gpt import MLP, BlockConfig


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
    """tokens [B, N, width] -> [B, n_latents, width]."""

    def __init__(self, width: int, n_latents: int, n_layers: int, n_heads: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_latents, width) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(width, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, tokens)
        return self.ln(latents)
