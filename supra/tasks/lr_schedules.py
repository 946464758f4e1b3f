"""Learning-rate schedules, built from torch's own schedulers."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


class CosineToMin(CosineAnnealingLR):
    """torch's cosine decay, held at `eta_min` past `T_max`, where torch's climbs back to the peak (it is
    periodic). A run resumed with a higher trainer.max_steps keeps its checkpoint's schedule, so its steps
    past the old end train at min_lr rather than at a learning rate that oscillates."""

    def get_lr(self) -> list[float]:
        if self.last_epoch >= self.T_max:
            return [self.eta_min for _ in self.optimizer.param_groups]
        return super().get_lr()


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 100, min_lr: float = 3e-5) -> LRScheduler:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr` at `total_steps` (one step per batch),
    held there after."""
    total_steps = int(total_steps)
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    cosine = CosineToMin(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=min_lr)
    if warmup_steps == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
