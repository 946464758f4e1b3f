"""A warning before training when the run will never validate (train.py adds it to every run)."""

from __future__ import annotations

import logging
import math

import lightning as L

log = logging.getLogger(__name__)


class ValidationWithinRun(L.Callback):
    """Says before training when the run ends before its first validation (e.g. trainer.max_epochs=1 over fewer
    batches than trainer.val_check_interval=500): no validation, no best checkpoint, the test scores the last
    weights. The run's length is known only once the data is (here, at the start of fit)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        interval = trainer.val_check_interval
        if (trainer.fast_dev_run or not trainer.is_global_zero or not trainer.limit_val_batches
                or trainer.check_val_every_n_epoch is not None or not isinstance(interval, int)):
            return
        budgets = []  # (training batches, the option that ends the run there)
        if trainer.max_steps > 0:  # steps are optimizer steps, each of accumulate_grad_batches batches
            budgets.append((trainer.max_steps * trainer.accumulate_grad_batches, f"trainer.max_steps={trainer.max_steps}"))
        epoch = trainer.num_training_batches
        if trainer.max_epochs is not None and trainer.max_epochs > 0 and math.isfinite(epoch):
            budgets.append((int(epoch) * trainer.max_epochs, f"trainer.max_epochs={trainer.max_epochs}, {int(epoch)} "
                                                             "batches each"))
        if not budgets:
            return
        batches, reason = min(budgets)
        if batches < interval:
            log.warning("this run ends after %d training batches (%s), before its first validation at "
                        "trainer.val_check_interval=%d: no validation and no best checkpoint (the test scores the last "
                        "weights). Validate each epoch's end with trainer.val_check_interval=1.0 "
                        "trainer.check_val_every_n_epoch=1, or set a smaller trainer.val_check_interval",
                        batches, reason, interval)
