"""vqvae_f8: the image tokenizer of Supra-A2A-Nano (stage 1; docs/releases.md).

A 64x64 RGB image -> 3 strided convolutions -> an 8x8 grid of vectors -> nearest of 256 codebook
entries -> 3 transposed convolutions -> 64x64 image. Public face (what stage 2 uses):
`encode(images) -> codes [B, H/8, W/8]` and `decode(codes) -> images`.
Read top to bottom: config, quantiser, encoder/decoder, model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supra.tokens.a2a_layout import VQVAE_DOWNSAMPLE
from supra.utils.distributed import all_reduce_sum, broadcast_tensor
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_number, is_whole


@dataclass
class VQVAEConfig:
    num_codes: int = 256
    code_dim: int = 64
    hidden: tuple[int, int] = (32, 64)  # channels after the first and second downsampling
    beta: float = 0.25  # commitment weight
    ema: bool = True  # codebook follows the encoder by exponential moving averages, not by gradients
    ema_decay: float = 0.99
    # training batches without use before a code is re-seeded; 0 turns restarts off. Batches, not optimizer steps:
    # with trainer.accumulate_grad_batches=N a step counts N (the EMA codebook, too, moves at every batch)
    restart_dead_after: int = 100
    # Dead-code restarts alone leave usage lopsided on data where a few patches dominate (plain
    # backgrounds: ~84% of shapes patches), perplexity ~110. Every `rebalance_every` training batches, codes used
    # less than `rebalance_below` x the mean are moved onto encoder outputs of the busiest quarter of
    # codes, splitting their clusters: perplexity ~175 and a slightly better PSNR. 0 turns it off.
    rebalance_every: int = 20
    rebalance_below: float = 0.25

    def __post_init__(self) -> None:
        """Values as typed on a command line (model.net.beta=-1 trained to a negative loss; beta=abc failed
        deep in the quantiser), each refused in one line."""
        for name, least in (("num_codes", 2), ("code_dim", 1), ("restart_dead_after", 0), ("rebalance_every", 0)):
            value = getattr(self, name)
            if not is_whole(value, least):
                raise SupraUserError(f"model.net.{name}={value!r} must be a whole number >= {least}")
        for name, low, high in (("beta", 0.0, None), ("rebalance_below", 0.0, None), ("ema_decay", 0.0, 1.0)):
            value = getattr(self, name)
            if (not is_number(value) or value < low
                    or (high is not None and value >= high)):
                raise SupraUserError(f"model.net.{name}={value!r} must be a number >= {low}" + (f" and < {high}" if high else ""))
        hidden = list(self.hidden) if isinstance(self.hidden, Sequence) and not isinstance(self.hidden, str) else None
        if hidden is None or len(hidden) != 2 or any(not is_whole(h, 1) for h in hidden):
            raise SupraUserError(f"model.net.hidden={self.hidden!r} must be two whole numbers >= 1 (the channels after "
                                 "each downsampling), e.g. [32,64]")
        if not isinstance(self.ema, bool):  # a string such as "maybe" would count as true
            raise SupraUserError(f"model.net.ema={self.ema!r} must be true or false")


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation with straight-through gradients, commitment loss, optional EMA
    codebook updates, restarts of dead codes and rebalancing of rare ones (both re-seeded from encoder
    outputs of the batch)."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.codebook = nn.Parameter(torch.randn(cfg.num_codes, cfg.code_dim) * 0.1, requires_grad=not cfg.ema)
        self.register_buffer("ema_count", torch.ones(cfg.num_codes))
        self.register_buffer("ema_sum", self.codebook.detach().clone())
        self.register_buffer("steps_unused", torch.zeros(cfg.num_codes, dtype=torch.long))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def nearest_codes(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, D] -> index of the nearest codebook entry [N] (squared Euclidean distance)."""
        distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.t() + self.codebook.pow(2).sum(1)
        return distances.argmin(1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z [B, D, H, W] -> (quantised z with straight-through gradient, loss, codes [B, H, W], stats)."""
        B, D, H, W = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, D)
        codes = self.nearest_codes(flat.detach())
        quantised = self.codebook[codes]
        loss = self.cfg.beta * F.mse_loss(flat, quantised.detach())
        if not self.cfg.ema:
            loss = loss + F.mse_loss(quantised, flat.detach())
        if self.training:
            self._update_codebook(flat.detach(), codes)
        counts = torch.bincount(codes, minlength=self.cfg.num_codes).float()
        probs = counts / counts.sum()
        stats = {
            "perplexity": torch.exp(-(probs * (probs + 1e-10).log()).sum()),
            "usage": (counts > 0).float().mean(),
        }
        quantised = flat + (quantised - flat).detach()  # straight-through: gradients skip the argmin
        return quantised.view(B, H, W, D).permute(0, 3, 1, 2), loss, codes.view(B, H, W), stats

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        # Under DDP every rank sums the whole global batch's statistics and re-seeds from rank 0's
        # encoder outputs, so the codebooks (not synced by DDP: no gradients) stay identical on all ranks.
        # Called at every training forward: `updates` and `steps_unused` count training batches (the buffers
        # keep their names, which checkpoints hold), N per optimizer step under accumulation.
        cfg = self.cfg
        one_hot = F.one_hot(codes, cfg.num_codes).type(flat.dtype)
        used, sums = all_reduce_sum(one_hot.sum(0)), all_reduce_sum(one_hot.t() @ flat)
        self.updates += 1
        # ema_count tracks usage with or without EMA codebook updates: rebalancing reads it.
        self.ema_count.mul_(cfg.ema_decay).add_(used, alpha=1 - cfg.ema_decay)
        if cfg.ema:
            self.ema_sum.mul_(cfg.ema_decay).add_(sums, alpha=1 - cfg.ema_decay)
            n = self.ema_count.sum()
            count = (self.ema_count + 1e-5) / (n + cfg.num_codes * 1e-5) * n  # Laplace smoothing
            self.codebook.data.copy_(self.ema_sum / count[:, None])
        if cfg.restart_dead_after > 0:
            self.steps_unused.add_(1).masked_fill_(used > 0, 0)
            dead = (self.steps_unused >= cfg.restart_dead_after).nonzero().squeeze(1)
            if len(dead):
                self._reseed(dead, flat, count=1.0)
        if cfg.rebalance_every > 0 and int(self.updates) % cfg.rebalance_every == 0:
            mean = self.ema_count.mean()
            rare = (self.ema_count < cfg.rebalance_below * mean).nonzero().squeeze(1)
            if len(rare):
                busiest = self.ema_count.argsort(descending=True)[: cfg.num_codes // 4]
                donors = flat[torch.isin(codes, busiest)]
                self._reseed(rare, donors if len(donors) else flat, count=float(cfg.rebalance_below * mean))

    def _reseed(self, which: torch.Tensor, candidates: torch.Tensor, count: float) -> None:
        """Put codes `which` on random rows of `candidates` (encoder outputs), as if used `count` times."""
        seeds = broadcast_tensor(candidates[torch.randint(len(candidates), (len(which),), device=candidates.device)])
        self.codebook.data[which] = seeds
        self.ema_sum[which] = seeds * count
        self.ema_count[which] = count
        self.steps_unused[which] = 0


def _down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1)


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)


class VQVAE(nn.Module):
    """Images in [-1, 1], side a multiple of 8 -> codes on a (side/8)^2 grid and back."""

    config_class = VQVAEConfig  # what **config takes (a config's keys are checked against its fields)
    DOWNSAMPLE = VQVAE_DOWNSAMPLE  # pixels per code along each side: the encoder's three stride-2 convolutions

    def __init__(self, **config: object) -> None:
        super().__init__()
        self.config = cfg = VQVAEConfig(**config)  # type: ignore[arg-type]
        h1, h2 = cfg.hidden
        self.encoder = nn.Sequential(_down(3, h1), nn.ReLU(), _down(h1, h2), nn.ReLU(), _down(h2, cfg.code_dim))
        self.quantizer = VectorQuantizer(cfg)
        self.decoder = nn.Sequential(_up(cfg.code_dim, h2), nn.ReLU(), _up(h2, h1), nn.ReLU(), _up(h1, 3), nn.Tanh())

    def get_num_params(self) -> int:
        """Weights of encoder, decoder and codebook (~0.22M at the defaults)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """images [B, 3, H, W] in [-1, 1] -> (reconstruction, quantiser loss, codes [B, H/8, W/8], stats)."""
        quantised, vq_loss, codes, stats = self.quantizer(self.encoder(images))
        return self.decoder(quantised), vq_loss, codes, stats

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [-1, 1], H and W multiples of 8 -> codes int64 [B, H/8, W/8]."""
        if images.shape[-1] % self.DOWNSAMPLE or images.shape[-2] % self.DOWNSAMPLE:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of {self.DOWNSAMPLE}")
        z = self.encoder(images)
        B, D, H, W = z.shape
        return self.quantizer.nearest_codes(z.permute(0, 2, 3, 1).reshape(-1, D)).view(B, H, W)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes int64 [B, h, w] in [0, num_codes) -> images [B, 3, 8h, 8w] in [-1, 1]."""
        if codes.min() < 0 or codes.max() >= self.config.num_codes:
            raise ValueError(f"codes must lie in [0, {self.config.num_codes}); got {int(codes.min())}..{int(codes.max())}")
        return self.decoder(self.quantizer.codebook[codes].permute(0, 3, 1, 2))
