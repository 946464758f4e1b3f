"""How well a VQ codebook is used over a whole evaluation set: the share of codes that occur at least
once, and the perplexity of the code distribution (exp of its entropy; 256 = all codes equally often).

A torchmetrics Metric so that counts from every batch and every DDP rank are summed before the two
numbers are computed (averaging per-batch perplexities would understate both). Codes picked from latents
that are not finite (a diverged model's NaN: every distance NaN, every vector code 0) mean nothing: one such
batch makes both numbers NaN, not a "valid" usage of one code.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric


class CodebookUsage(Metric):
    full_state_update = False

    def __init__(self, num_codes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_codes = num_codes
        self.add_state("counts", default=torch.zeros(num_codes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("not_finite", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, codes: torch.Tensor, finite: torch.Tensor | bool = True) -> None:
        """codes: int tensor of any shape, values in [0, num_codes); `finite`: whether the latents they were picked
        from were finite (a tensor, so that checking it waits on no device)."""
        self.counts += torch.bincount(codes.flatten(), minlength=self.num_codes)
        self.not_finite += (~torch.as_tensor(finite, device=self.not_finite.device)).long()

    def compute(self) -> dict[str, torch.Tensor]:
        counts = self.counts.float()
        probs = counts / counts.sum().clamp_min(1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
        meaningless = torch.where(self.not_finite > 0, float("nan"), 0.0)  # NaN + x: NaN, written as null
        return {"codebook_usage": (counts > 0).float().mean() + meaningless, "perplexity": entropy.exp() + meaningless}
