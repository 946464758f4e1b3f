"""The GPT parts both Supra models are made of: causal self-attention with a fused QKV projection, the
MLP, the pre-norm block, GPT-2's initialisation and the weight-decay split. Read top to bottom.

State-dict names are the SupraVL release's (`attn.qkv`, `attn.proj`, `mlp.fc1`, `mlp.fc2`, `ln1`, `ln2`),
so VLMNano's blocks load the published weights as they are; A2ANano uses the same names.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supra.models.kv_cache import KVCache

# What both models say of a dropout outside [0, 1), after "model.net.dropout=X ": one wording for one setting
DROPOUT_RANGE = "must be a number >= 0 and < 1 (0: none)"
ACTIVATIONS = {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU}


@dataclass(frozen=True)
class BlockConfig:
    """One transformer block's shape and the few choices in which the two models' blocks differ."""

    d_model: int
    n_heads: int
    d_mlp: int
    activation: str = "gelu"  # exact GELU in both releases
    dropout: float = 0.0
    attn_bias: bool = True  # the SupraVL release has no biases in qkv and proj
    mlp_bias: bool = True
    norm_bias: bool = True
    # One new query over the cache computed with plain matmuls instead of SDPA: faster on CPU for
    # VLMNano's short caches. a2a_nano keeps SDPA, the kernel its published figures were sampled with:
    # both are exact up to float rounding, which sampled images would turn into other images.
    decode_with_matmul: bool = False
    causal: bool = True  # False: every position sees every other (a ViT encoder's blocks)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r} is unknown: choose one of {sorted(ACTIVATIONS)}")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.attn_bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.attn_bias)
        self.dropout = cfg.dropout
        self.decode_with_matmul = cfg.decode_with_matmul
        self.causal = cfg.causal

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]. With a cache, the T new positions follow its `cache.length` committed
        ones: each new query sees every cached key and the new keys up to itself."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v)
        # Inside `recorded_attention` the weights are computed explicitly and kept per call; otherwise
        # (training, ordinary generation) the fused SDPA kernel runs and nothing is kept.
        if (kept := kept_weights(self)) is not None:
            weights = explicit_attention(q, k, past)
            kept.append(weights.detach())
            y = weights @ v
        elif past and T == 1 and self.decode_with_matmul:
            y = ((q @ k.transpose(-2, -1)) * (C // self.n_heads) ** -0.5).softmax(-1) @ v
        else:
            # One query after a cache sees all of it (no mask); several see the past and themselves causally.
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past) if past and T > 1 else None
            dropout = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and not past,
                                               dropout_p=dropout)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


def explicit_attention(q: torch.Tensor, k: torch.Tensor, past: int = 0) -> torch.Tensor:
    """The attention weights SDPA computes inside, explicitly: q [B, H, T, d] (positions past..past+T-1)
    and k [B, H, past+T, d] -> [B, H, T, past+T], each row a softmax over the keys its query may see
    (itself and those before it), exactly 0 on the others."""
    T, S = q.shape[-2], k.shape[-2]
    allowed = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=past)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1)


# What `recorded_attention` keeps, per thread: callers sharing one model at once (a demo page's requests)
# each record their own layers' weights, never into another's lists.
_recording = threading.local()


def kept_weights(layer: nn.Module) -> list[torch.Tensor] | None:
    """The list this thread's `recorded_attention` keeps `layer`'s weights in; None when not recording."""
    return getattr(_recording, "lists", {}).get(id(layer))


@contextmanager
def recorded_attention(model: nn.Module, kind: type[nn.Module] = CausalSelfAttention) -> Iterator[list[list[torch.Tensor]]]:
    """Inside the block, every causal self-attention layer of `model` (or every layer of another `kind`
    that keeps weights, e.g. cross-attention) keeps its weights, one tensor [B, H, T_new, T_seen] per call,
    in layer order: `maps[layer][call]`, for this thread's calls only. Outside it, the fused path again."""
    layers = [m for m in model.modules() if isinstance(m, kind) and getattr(m, "causal", True)]
    maps: list[list[torch.Tensor]] = [[] for _ in layers]
    lists = _recording.__dict__.setdefault("lists", {})
    lists.update({id(layer): kept for layer, kept in zip(layers, maps, strict=True)})
    try:
        yield maps
    finally:
        for layer in layers:
            lists.pop(id(layer), None)


class MLP(nn.Module):
    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_mlp, bias=cfg.mlp_bias)
        self.act = ACTIVATIONS[cfg.activation]()
        self.fc2 = nn.Linear(cfg.d_mlp, cfg.d_model, bias=cfg.mlp_bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm: x = x + attn(ln1(x)); x = x + mlp(ln2(x))."""

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.norm_bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.norm_bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


def run_blocks(
    blocks: nn.ModuleList, x: torch.Tensor, cache: KVCache | None = None,
    before: Mapping[int, Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> torch.Tensor:
    """x through every block; the cache commits the new positions once all layers have appended them.
    `before[i]`, where given, runs just before block i (a captioner's gated cross-attention layers)."""
    for layer, block in enumerate(blocks):
        if before and layer in before:
            x = before[layer](x)
        x = block(x, cache, layer)
    if cache is not None:
        cache.advance(x.shape[1])
    return x


def init_gpt_weights(model: nn.Module, n_layers: int, keep: nn.Module | None = None) -> None:
    """GPT-2's initialisation: linear and embedding weights N(0, 0.02), zero biases, and the residual
    projections scaled by 1/sqrt(2 * n_layers) so the residual stream stays O(1). Convolutions keep
    PyTorch's Kaiming default (it suits ReLU stages) and norms start at identity. `keep`: a submodule
    whose weights are left as they are (a pretrained backbone)."""
    kept = {id(m) for m in keep.modules()} if keep is not None else set()
    kept_params = {id(p) for p in keep.parameters()} if keep is not None else set()

    def init(module: nn.Module) -> None:
        if id(module) in kept:
            return
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    model.apply(init)
    for name, p in model.named_parameters():
        if name.endswith(("attn.proj.weight", "mlp.fc2.weight")) and id(p) not in kept_params:
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: every parameter of 2+ dimensions decays (weights of convolutions and linear
    layers, and plain nn.Parameters such as learned positions); biases, norms and nn.Embedding tables (hence
    a head tied to them) do not. Each trainable parameter once, in the model's order
    (frozen ones, e.g. a frozen backbone's, are left out)."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.LayerNorm | nn.BatchNorm2d):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for p in model.parameters():  # a tied weight is yielded once
        if not p.requires_grad:
            continue
        (no_decay if id(p) in no_decay_ids or p.dim() < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
