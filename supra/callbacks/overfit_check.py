"""debug=overfit's answer: did the training loss fall on the batch it fits again and again? (train.py adds it to
a run with trainer.overfit_batches set.)"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch

log = logging.getLogger(__name__)

OVERFIT_BELOW = 0.25  # of the first step's train/loss: a model that can fit one batch ends far below it


class OverfitCheck(L.Callback):
    """At the fit's end, train/loss at its first and last step in one line, and a warning where the last is not
    below OVERFIT_BELOW of the first. Read from each step's loss (training_step's): the logged curve is in
    the loggers every trainer.log_every_n_steps only, and the console's progress bar is not drawn off a terminal."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self.last = float(loss)
            self.first = self.last if self.first is None else self.first

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.first is None or self.last is None or not trainer.is_global_zero:
            return
        line = overfit_line(self.first, self.last, trainer.global_step, trainer.overfit_batches)
        if self.last < OVERFIT_BELOW * self.first:
            log.info(line)
        else:
            log.warning("%s: not below %g of where it started, so the model did not fit what it was shown again and "
                        "again: something is wrong in the model or the data (or it needs more steps: "
                        "trainer.max_steps)", line, OVERFIT_BELOW)


def overfit_line(first: float, last: float, steps: int, batches: int | float) -> str:
    """`overfit: train/loss 6.1 -> 0.19 over 300 steps on 1 batch`."""
    shown = f"{batches} batch{'es' if batches != 1 else ''}" if isinstance(batches, int) else \
        f"{batches:g} of the training batches"
    return f"overfit: train/loss {first:.3g} -> {last:.3g} over {steps} steps on {shown}"
