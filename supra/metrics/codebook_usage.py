"""How well a VQ codebook is used over a whole evaluation set: the share of codes that occur at least
once, and the perplexity of the code distribution (exp of its entropy; 256 = all codes equally often).

A torchmetrics Metric so that counts from every batch and every DDP rank are summed before the two
numbers are computed (averaging per-batch perplexities would understate both).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class CodebookUsage(Metric):
    full_state_update = False

    def __init__(self, num_codes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_codes = num_codes
        self.add_state("counts", default=torch.zeros(num_codes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, codes: torch.Tensor) -> None:
        """codes: int tensor of any shape, values in [0, num_codes)."""
        self.counts += torch.bincount(codes.flatten(), minlength=self.num_codes)

    def compute(self) -> dict[str, torch.Tensor]:
        counts = self.counts.float()
        probs = counts / counts.sum().clamp_min(1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
        return {"codebook_usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}
