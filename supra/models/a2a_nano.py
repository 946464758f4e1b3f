"""Supra-A2A-Nano-Exp's GPT: one decoder over one stream of text ids, control tokens and VQ-VAE codes.

The card (docs/releases.md, Supra-A2A-Nano-Exp): 4 pre-norm blocks, d 256, 4 heads of 64, MLP 256 -> 1024
-> 256 with GELU, context 384, fused QKV, causal SDPA, learned positions; text and codes share the
embedding table and the output head's rows (one vocabulary, laid out by supra.tokens.a2a_layout.TokenLayout).

Size. At the release vocabulary (50,520) the parts are:

    token embedding   50,520 x 256            12,933,120
    positions            384 x 256                98,304
    4 blocks             4 x 789,760           3,159,040   (LN 512, QKV 197,376, proj 65,792, LN 512,
                                                            fc1 263,168, fc2 262,400; with biases)
    final LayerNorm                                   512
    output head       50,520 x 256 (untied)   12,933,120
    ------------------------------------------------------
    untied head (tie_head=False, the default)  29,124,096  ~29.1M
    tied head   (tie_head=True)                16,190,976  ~16.2M

The card says ~29.7M, "most of it the 50k-row embedding and head": only an untied head comes near it,
so untied is the default. The remaining ~0.58M (2%) is in no shape the card states: an output bias
(+50,520) or dropping all biases (bias=False: -11,520, 29,112,576) moves it far less, and the VQ-VAE's
0.22M the card counts separately. 0.58M would be ~2,250 more rows of 256 (e.g. a longer position
table), which the card's context of 384 rules out; so we keep the shapes the card states and take its
figure as rounded from a slightly different build.

Not recoverable from the weights: the head count and the activation, hence config fields with the
card's defaults (4 heads, exact GELU). Read top to bottom: config, model; the blocks are models/gpt.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supra.models.gpt import (
    ACTIVATIONS,
    DROPOUT_RANGE,
    Block,
    BlockConfig,
    init_gpt_weights,
    run_blocks,
    weight_decay_groups,
)
from supra.models.kv_cache import KVCache
from supra.tokens.a2a_layout import A2A_CONTEXT
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_number, is_whole


@dataclass
class A2AConfig:
    vocab_size: int = 50_520  # the release's; a trained BPE makes it text_size + 7 + 256
    context: int = A2A_CONTEXT  # the card's
    n_layers: int = 4
    d_model: int = 256
    n_heads: int = 4  # not recoverable from the weights; the card's default
    d_mlp: int = 1024
    activation: str = "gelu"  # exact GELU, the card's; also "gelu_tanh", "relu"
    dropout: float = 0.0
    tie_head: bool = False  # untied: 29.1M, the nearest to the card's ~29.7M (see the module docstring)
    bias: bool = True  # biases in LayerNorms and linear layers of the blocks

    def __post_init__(self) -> None:
        """Values as typed on a command line (model.net.X), each refused in one line: n_heads=3 was a
        ValueError traceback, dropout=1.5 torch's, both only once the model was built after the data work."""
        for name in ("vocab_size", "context", "n_layers", "d_model", "n_heads", "d_mlp"):
            value = getattr(self, name)
            if not is_whole(value, 1):
                raise SupraUserError(f"model.net.{name}={value!r} must be a whole number >= 1")
        if self.d_model % self.n_heads:
            raise SupraUserError(f"model.net.d_model={self.d_model} must be divisible by model.net.n_heads="
                                 f"{self.n_heads} (each head a d_model / n_heads slice)")
        if self.activation not in ACTIVATIONS:
            raise SupraUserError(f"model.net.activation={self.activation!r} is unknown: choose one of "
                                 f"{', '.join(sorted(ACTIVATIONS))}")
        if not is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise SupraUserError(f"model.net.dropout={self.dropout!r} {DROPOUT_RANGE}")

    def to_dict(self) -> dict:
        """The settings as plain data (a release's config.json "gpt"); A2ANano(A2AConfig(**it)) builds the model."""
        return asdict(self)

    @property
    def block(self) -> BlockConfig:
        return BlockConfig(d_model=self.d_model, n_heads=self.n_heads, d_mlp=self.d_mlp, activation=self.activation,
                           dropout=self.dropout, attn_bias=self.bias, mlp_bias=self.bias, norm_bias=self.bias)


class A2ANano(nn.Module):
    """idx int64 [B, T] (T <= context) -> next-token logits [B, T, vocab_size]."""

    def __init__(self, config: A2AConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or A2AConfig()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.block) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_head:
            self.lm_head.weight = self.tok_emb.weight
        init_gpt_weights(self, cfg.n_layers)

    @classmethod
    def from_kwargs(cls, **config: object) -> A2ANano:
        """A2ANano(A2AConfig(**config)): for Hydra `_target_` and config.json."""
        return cls(A2AConfig(**config))  # type: ignore[arg-type]

    # -- sizes and optimiser ----------------------------------------------------------------------

    def get_num_params(self, non_embedding: bool = False) -> int:
        """Distinct parameters (a tied head counted once); non_embedding drops the token and position
        tables (an untied head stays: it is compute, as nanoGPT counts it)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
            if self.config.tie_head:
                n += self.tok_emb.weight.numel()  # the tied table is also the head
        return n

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """2-D weights of linear layers decay; biases, norms and embeddings (hence a tied head) do not."""
        return weight_decay_groups(self, weight_decay)

    def hidden_matrices(self) -> list[nn.Parameter]:
        """The blocks' 2-D weights (attention and MLP projections): what matrix optimizers such as Muon
        are for; embeddings, head, biases and norms are not."""
        return [p for p in self.blocks.parameters() if p.dim() == 2 and p.requires_grad]

    # -- forward ----------------------------------------------------------------------------------

    def _embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        T = idx.shape[1]
        if start + T > self.config.context:
            raise ValueError(f"sequence of {start + T} tokens exceeds the context of {self.config.context}")
        return self.drop(self.tok_emb(idx) + self.pos_emb.weight[start : start + T])

    def _blocks(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        return self.ln_f(run_blocks(self.blocks, x, cache))

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """idx int64 [B, T] -> the final (normed) hidden states [B, T, d_model], before the head."""
        return self._blocks(self._embed(idx, 0))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx int64 [B, T]; targets int64 [B, T] (ignore_index -100) or None.
        Returns logits [B, T, vocab_size] and the mean cross-entropy over non-ignored targets (or None)."""
        logits = self.lm_head(self._blocks(self._embed(idx, 0)))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return logits, loss

    # -- incremental decoding (supra.models.a2a_generation) ----------------------------------------

    def head(self, h: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """Hidden states [..., d_model] -> logits over the vocabulary, or over the ids `rows` only: an image
        step needs 256 of 50,520 (the head is most of the cost at the release's vocabulary)."""
        if rows is None:
            return self.lm_head(h)
        bias = self.lm_head.bias
        return F.linear(h, self.lm_head.weight[rows], None if bias is None else bias[rows])

    def next_logits(self, idx: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """idx int64 [B, T] -> logits [B, vocab_size] (or [B, len(rows)] of head rows `rows`) of the last
        position, without a cache: the whole sequence is recomputed, but the head runs only where it is
        read (nanoGPT's generate does the same)."""
        return self.head(self._blocks(self._embed(idx, 0))[:, -1], rows)

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        cfg, p = self.config, self.tok_emb.weight
        return KVCache(n_layers=cfg.n_layers, batch_size=batch_size, n_heads=cfg.n_heads,
                       max_len=max_len or cfg.context, head_dim=cfg.d_model // cfg.n_heads,
                       device=p.device, dtype=p.dtype)

    def forward_cached(self, idx: torch.Tensor, cache: KVCache, rows: slice | None = None) -> torch.Tensor:
        """idx int64 [B, T] at positions cache.length.. -> logits [B, vocab_size] of the last one (or
        [B, len(rows)]: head rows `rows` only). The keys and values of the T new positions join the
        cache (T may be > 1 on a non-empty cache)."""
        x = self._embed(idx, cache.length)
        return self.head(self._blocks(x, cache)[:, -1], rows)
