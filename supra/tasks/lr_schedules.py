"""Learning-rate schedules, built from torch's own schedulers."""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted


class CosineToMin(CosineAnnealingLR):
    """torch's cosine decay, held at `eta_min` past `T_max`, where torch's climbs back to the peak (it is
    periodic). A run resumed with a higher trainer.max_steps keeps its checkpoint's schedule, so its steps
    past the old end train at min_lr rather than at a learning rate that oscillates."""

    def get_lr(self) -> list[float]:
        if self.last_epoch >= self.T_max:
            return [self.eta_min for _ in self.optimizer.param_groups]
        return super().get_lr()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # a warm-up's SequentialLR: no cosine alone can go on with it (a resumed fit of train.py builds its
        # checkpoint's schedule, runner/training.py keep_resumed_schedule: this is for other uses)
        if "_schedulers" in state_dict:
            raise SupraUserError("the checkpoint's learning-rate schedule starts with a warm-up, this run's has none "
                                 "(model.scheduler.warmup_steps=0): resume it without changing warmup_steps")
        super().load_state_dict(state_dict)


class WarmupThenCosine(SequentialLR):
    """The warm-up, then CosineToMin. Resuming a checkpoint of a schedule without warm-up (warmup_steps=0,
    or a run of a single step, whose warm-up is clamped away) goes on with its cosine alone, as a resumed
    run keeps its checkpoint's schedule; torch's SequentialLR would fail on the cosine's state."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "_schedulers" in state_dict:
            super().load_state_dict(state_dict)
            return
        self._schedulers[1].load_state_dict(state_dict)
        # the warm-up is over from step 0: every step after the resumed one is the cosine's
        self.last_epoch, self._milestones, self._last_lr = state_dict["last_epoch"], [0], state_dict["_last_lr"]


def schedule_length(checkpoint: dict[str, Any]) -> int | None:
    """The steps of the warm-up and cosine schedule (warmup_cosine) the checkpoint's run set out, which goes on when
    it is resumed, read from the state WarmupThenCosine or CosineToMin saved; None for another schedule (or none)."""
    try:
        state = checkpoint["lr_schedulers"][0]
        if "_schedulers" in state:  # warm-up, then the cosine
            return int(state["_milestones"][0] + state["_schedulers"][1]["T_max"])
        return int(state["T_max"])
    except (KeyError, IndexError, TypeError):
        return None


def schedule_min_lr(checkpoint: dict[str, Any]) -> float | None:
    """The learning rate the checkpoint's warm-up and cosine schedule holds past its end (its min_lr), read from the
    state WarmupThenCosine or CosineToMin saved; None for another schedule (or none)."""
    try:
        state = checkpoint["lr_schedulers"][0]
        cosine = state["_schedulers"][1] if "_schedulers" in state else state
        return float(cosine["eta_min"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 100, min_lr: float = 3e-5) -> LRScheduler:
    """Linear warm-up over `warmup_steps` (lr / warmup_steps at the first step, the peak lr at step warmup_steps + 1),
    then cosine decay towards `min_lr`, one scheduler step per optimizer step: the lr reaches min_lr one step after the
    run's last (step total_steps + 1), so the last step trains just above it (by (lr - min_lr) x (1 - cos(pi / (
    total_steps - warmup_steps))) / 2: 1e-5 + 1.2e-9 for the default run), and any step past the run at min_lr. A warm-up not shorter than the run is squeezed into it (warmup_within), as it always was:
    every recipe's numbers stay; the task says so before training (SupraTask.say_squeezed_warmup)."""
    if not math.isfinite(total_steps):  # Lightning's count for trainer.max_steps=-1 with trainer.max_epochs=-1
        raise SupraUserError("the cosine learning-rate schedule needs a finite run: set trainer.max_steps or "
                             "trainer.max_epochs (with both -1 the run trains without end)")
    if total_steps < 0:  # Lightning's count for a train loader of unknown length with trainer.max_steps=-1
        raise SupraUserError("the cosine learning-rate schedule needs the run's length in steps, unknown here: the "
                             "train loader has no length (shards without their _stats.json, or read through a pipe:) "
                             "and trainer.max_steps=-1: set trainer.max_steps=N (or give the shards their _stats.json)")
    total_steps = int(total_steps)
    warmup_steps = warmup_within(total_steps, warmup_steps)
    cosine = CosineToMin(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=min_lr)
    if warmup_steps == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps)
    return WarmupThenCosine(optimizer, [warmup, cosine], milestones=[warmup_steps])


def warmup_within(total_steps: int, warmup_steps: int) -> int:
    """The warm-up a run of `total_steps` gets: `warmup_steps`, squeezed to total_steps - 1 where it is not shorter
    than the run (its last step is then at the peak learning rate), none for a run of a single step."""
    return max(0, min(warmup_steps, total_steps - 1))


def squeezed_warmup(total_steps: int, warmup_steps: int) -> str | None:
    """The warning for a warm-up that warmup_within squeezes into the run (its slope steeper than configured, the
    run ending at the peak learning rate); None where the run gets the warm-up it was given."""
    used = warmup_within(total_steps, warmup_steps)
    if used == warmup_steps:
        return None
    return (f"model.scheduler.warmup_steps={warmup_steps} is not below the run's {total_steps} steps: the warm-up "
            f"used is {counted(used, 'step')}, so the learning rate climbs to its peak faster than configured and "
            f"the run ends at it; set model.scheduler.warmup_steps below {total_steps} for a warm-up of its own length")
