"""Attention from one sequence to another: the plain layer, and Flamingo's gated cross-attention block
that lets a decoder read visual tokens (fusion=cross_attention in VLMNano).

Keys and values come from the visual tokens only, so a captioner computes them once per image
(`context_kv`) and every generated token reuses them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supra.models.gpt import MLP, BlockConfig, kept_weights


class CrossAttention(nn.Module):
    """Queries from x [B, T, C], keys and values from context [B, S, C]; no mask (every query sees all)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context [B, S, C] -> keys, values [B, H, S, C/H] each (what a KV cache keeps per image)."""
        B, S, C = context.shape
        k, v = self.kv(context).split(C, dim=2)
        return tuple(t.view(B, S, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (k, v))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        if (kept := kept_weights(self)) is not None:  # gpt.recorded_attention: explicitly, to keep them
            weights = ((q @ kv[0].transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1)
            kept.append(weights.detach())
            y = weights @ kv[1]
        else:
            y = F.scaled_dot_product_attention(q, *kv)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class GatedCrossAttentionBlock(nn.Module):
    """Flamingo's GATED XATTN-DENSE: x += tanh(a) * xattn(ln(x), visual); x += tanh(b) * mlp(ln(x)).

    The gates a, b start at 0, so at initialisation the decoder is exactly the language model it would
    be without the image, and the image's influence grows as the gates open.
    """

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.xattn = CrossAttention(cfg.d_model, cfg.n_heads)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.mlp_gate = nn.Parameter(torch.zeros(1))

    def context_kv(self, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.xattn.context_kv(visual)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn_gate.tanh() * self.xattn(self.ln1(x), kv)
        return x + self.mlp_gate.tanh() * self.mlp(self.ln2(x))
