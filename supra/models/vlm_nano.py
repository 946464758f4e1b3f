"""SupraVL-Nano-900k: a CNN image encoder feeding 16 visual tokens to a 3-layer GPT captioner.

Every layer shape and state-dict name follows the release (SPEC.md section 1), so a checkpoint
of this module loads into the release's inference code and back. Read top to bottom:
config, encoder, attention, MLP, block, model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supra.models.kv_cache import KVCache


@dataclass
class VLMNanoConfig:
    """The release's config.json keys (upper case, as published) plus the choices the card leaves open."""

    D_MODEL: int = 128
    N_HEADS: int = 4
    N_LAYERS: int = 3
    D_FF: int = 256
    VIS_CH: int = 64
    N_VIS: int = 16
    VOCAB_SIZE: int = 2048
    MAX_SEQ: int = 48  # text positions, BOS and EOS included
    IMG_SIZE: int = 112
    # The card's diagram says GELU, its code ReLU; the code made the weights, so ReLU is the default.
    encoder_activation: str = "relu"
    dropout: float = 0.0
    # NHWC weights for the encoder (GPU tensor cores like it); off by default: on 2 CPU cores training
    # measured 1.5x slower with it once, no different in benchmarks/train_throughput.py. No effect on values.
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.D_MODEL % self.N_HEADS:
            raise ValueError(f"D_MODEL={self.D_MODEL} must be divisible by N_HEADS={self.N_HEADS}")
        if self.VIS_CH % 4:
            raise ValueError(f"VIS_CH={self.VIS_CH} must be divisible by 4 (stages use VIS_CH/4, VIS_CH/2)")
        if math.isqrt(self.N_VIS) ** 2 != self.N_VIS:
            raise ValueError(f"N_VIS={self.N_VIS} must be a square number (the encoder pools to a square grid)")
        if self.encoder_activation not in ("relu", "gelu"):
            raise ValueError(f"encoder_activation={self.encoder_activation!r}: choose 'relu' or 'gelu'")

    @property
    def release_config(self) -> dict[str, int]:
        """The keys of the release's config.json, exactly."""
        return {k: v for k, v in asdict(self).items() if k.isupper()}


class VisualEncoder(nn.Module):
    """3 x (Conv 3x3 stride 2 -> BatchNorm -> act), pool to a sqrt(N_VIS) grid, project to D_MODEL."""

    def __init__(self, cfg: VLMNanoConfig) -> None:
        super().__init__()
        act = nn.ReLU if cfg.encoder_activation == "relu" else nn.GELU
        channels = [3, cfg.VIS_CH // 4, cfg.VIS_CH // 2, cfg.VIS_CH]
        for i in range(3):
            # nn.Sequential indices 0/1 give the release's names conv{i}.0 (conv) and conv{i}.1 (bn).
            stage = nn.Sequential(
                nn.Conv2d(channels[i], channels[i + 1], kernel_size=3, stride=2, padding=1),
                nn.BatchNorm2d(channels[i + 1]),
                act(),
            )
            self.add_module(f"conv{i + 1}", stage)
        self.pool = nn.AdaptiveAvgPool2d(math.isqrt(cfg.N_VIS))
        self.proj = nn.Linear(cfg.VIS_CH, cfg.D_MODEL)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for stage in (self.conv1, self.conv2, self.conv3):
            stage.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 3, H, W] (normalised) -> visual tokens [B, N_VIS, D_MODEL]."""
        # Without gradients (captioning) NHWC input is ~1.25x faster on CPU whatever the weights' format;
        # with them, oneDNN's NHWC backward is the slow part, so training keeps the configured format.
        memory_format = self.memory_format if torch.is_grad_enabled() else torch.channels_last
        x = self.conv3(self.conv2(self.conv1(images.contiguous(memory_format=memory_format))))
        x = self.pool(x).flatten(2).transpose(1, 2)  # [B, N_VIS, VIS_CH], raster order
        return self.proj(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: VLMNanoConfig) -> None:
        super().__init__()
        self.n_heads = cfg.N_HEADS
        self.qkv = nn.Linear(cfg.D_MODEL, 3 * cfg.D_MODEL, bias=False)
        self.proj = nn.Linear(cfg.D_MODEL, cfg.D_MODEL, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if cache is None:
            causal = True
        else:
            # New positions see everything cached before them plus themselves causally; for one new
            # token (the decode step) that is all of the cache, so no mask is needed.
            causal = T > 1 and cache.length == 0
            if cache.length and T > 1:
                raise ValueError("KV cache: append several tokens only to an empty cache")
            k, v = cache.append(layer, k, v)
        if T == 1 and cache is not None:
            # One query over a short, strided cache: plain matmuls beat the CPU SDPA kernels ~2x here.
            y = ((q @ k.transpose(-2, -1)) * (C // self.n_heads) ** -0.5).softmax(-1) @ v
        else:
            dropout = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: VLMNanoConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.D_MODEL, cfg.D_FF)
        self.fc2 = nn.Linear(cfg.D_FF, cfg.D_MODEL)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(F.gelu(self.fc1(x))))  # exact GELU, as the release


class Block(nn.Module):
    def __init__(self, cfg: VLMNanoConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.D_MODEL)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.D_MODEL)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class VLMNano(nn.Module):
    """Image -> caption tokens. Sequence = N_VIS visual tokens, then BOS, caption, EOS.

    All release config keys are constructor arguments with the release values as defaults.
    """

    def __init__(self, **config: object) -> None:
        super().__init__()
        self.config = cfg = VLMNanoConfig(**config)  # type: ignore[arg-type]
        self.vis_enc = VisualEncoder(cfg)
        self.tok_emb = nn.Embedding(cfg.VOCAB_SIZE, cfg.D_MODEL)
        self.pos_emb = nn.Embedding(cfg.N_VIS + cfg.MAX_SEQ, cfg.D_MODEL)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.N_LAYERS))
        self.ln_f = nn.LayerNorm(cfg.D_MODEL)
        self.lm_head = nn.Linear(cfg.D_MODEL, cfg.VOCAB_SIZE, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying, as the release
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layers) so the residual stream stays O(1).
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.fc2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.N_LAYERS))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-2 init for the decoder and projection; convolutions keep PyTorch's Kaiming default,
        # which suits ReLU stages, and BatchNorm starts at identity.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # -- sizes and optimiser groups -------------------------------------------------------------

    def get_num_params(self) -> int:
        """Distinct parameters (the tied head counted once): 698,624 at the release config."""
        return sum(p.numel() for p in self.parameters())

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """Two AdamW groups: conv/linear weights decay; biases, norms and embeddings (hence the
        tied head) do not."""
        no_decay_ids: set[int] = set()
        for module in self.modules():
            if isinstance(module, nn.Embedding | nn.LayerNorm | nn.BatchNorm2d):
                no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
        decay, no_decay = [], []
        for name, p in self.named_parameters():  # named_parameters yields the tied weight once
            (no_decay if id(p) in no_decay_ids or name.endswith("bias") else decay).append(p)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    # -- forward ----------------------------------------------------------------------------------

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 3, IMG_SIZE, IMG_SIZE] -> visual tokens [B, N_VIS, D_MODEL] (embedded, with positions)."""
        visual = self.vis_enc(images)
        return visual + self.pos_emb.weight[: self.config.N_VIS]

    def embed_tokens(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """idx int64 [B, T] of text positions start..start+T-1 -> embeddings [B, T, D_MODEL]."""
        T = idx.shape[1]
        if start + T > self.config.MAX_SEQ:
            raise ValueError(f"caption of {start + T} tokens exceeds MAX_SEQ={self.config.MAX_SEQ}")
        pos = self.pos_emb.weight[self.config.N_VIS + start : self.config.N_VIS + start + T]
        return self.tok_emb(idx) + pos

    def transformer(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.advance(x.shape[1])
        return self.ln_f(x)

    def forward(
        self,
        images: torch.Tensor,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        image_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced pass.

        images float [B_img, 3, H, W]; idx int64 [B, T] text tokens starting with BOS; targets int64
        [B, T] (ignore_index -100) or None; image_index int64 [B] maps each caption row to its image
        (default: row i uses image i), so several captions share one encoder pass.
        Returns logits [B, T, VOCAB_SIZE] over the text positions only, and the mean cross-entropy.
        """
        visual = self.encode_images(images)
        if image_index is not None:
            visual = visual[image_index]
        x = torch.cat([visual, self.embed_tokens(idx)], dim=1)
        h = self.transformer(x)[:, self.config.N_VIS :]  # the head only runs where text is predicted
        logits = self.lm_head(h)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    # -- incremental decoding (used by supra.models.caption_generation) ---------------------------

    def new_cache(self, batch_size: int, device: torch.device | None = None) -> KVCache:
        cfg = self.config
        p = self.tok_emb.weight
        return KVCache(
            n_layers=cfg.N_LAYERS, batch_size=batch_size, n_heads=cfg.N_HEADS,
            max_len=cfg.N_VIS + cfg.MAX_SEQ, head_dim=cfg.D_MODEL // cfg.N_HEADS,
            device=device or p.device, dtype=p.dtype,
        )

    def prefill(self, images: torch.Tensor, bos_id: int) -> tuple[torch.Tensor, KVCache]:
        """Run visual prefix + BOS; returns next-token logits [B, VOCAB_SIZE] and the filled cache."""
        B = images.shape[0]
        bos = torch.full((B, 1), bos_id, dtype=torch.long, device=images.device)
        cache = self.new_cache(B, images.device)
        x = torch.cat([self.encode_images(images), self.embed_tokens(bos)], dim=1)
        h = self.transformer(x, cache)
        return self.lm_head(h[:, -1]), cache

    def decode_step(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """tokens int64 [B] at the next text position -> next-token logits [B, VOCAB_SIZE]."""
        text_pos = cache.length - self.config.N_VIS
        x = self.embed_tokens(tokens[:, None], start=text_pos)
        return self.lm_head(self.transformer(x, cache)[:, -1])
