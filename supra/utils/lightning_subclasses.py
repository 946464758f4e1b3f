"""The subclasses of Lightning's classes that private_apis.py lists (which see for why each is needed): apart from
it, since defining them imports Lightning, and a command's --help and its checks of the command line (which use
private_apis.hydra_args_parser) run without it."""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

from supra.utils.private_apis import batches_done_in_epoch, steps_the_optimizer


class _FolderRemovingLauncher(_MultiProcessingLauncher):
    """Lightning's spawn launcher, which also removes the temp folder rank 0 handed the last weights back in (and
    the weights, where reading them failed) once the main process has read them."""

    def _recover_results_in_main_process(self, worker_output: Any, trainer: L.Trainer) -> None:
        try:
            super()._recover_results_in_main_process(worker_output, trainer)
        finally:
            if worker_output.weights_path is not None:
                weights = Path(worker_output.weights_path)
                weights.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # rmdir: only the folder made for them, empty
                    weights.parent.rmdir()


class FolderRemovingSpawnDDP(DDPStrategy):
    """DDPStrategy whose ranks started by spawn leave no temp folder behind (_FolderRemovingLauncher)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _MultiProcessingLauncher:
            self._launcher = _FolderRemovingLauncher(self, start_method=self._start_method)


# -- lightning.pytorch.callbacks.RichProgressBar ------------------------------------------------------------

class StepsProgressBar(RichProgressBar):
    """RichProgressBar whose training bar says "Epoch N" alone where the epochs are unbounded (max_epochs=-1:
    the run stops at max_steps), not "Epoch N/-2", and whose total is in the unit it counts: the epoch's batches,
    from its first (also in a fit resumed within it) to where the run stops. Lightning's total is the optimizer
    steps left to max_steps, which ended a fit of 3 steps of 3 batches at "9/3", and a resumed one at "6/1"."""

    @property
    def total_train_batches(self) -> int | float:
        """The epoch's batches where it begins: those a resumed fit trained in it before, and as many again as the
        optimizer steps left to max_steps take (on_train_batch_end keeps it true as the epoch goes)."""
        loop = self.trainer.fit_loop.epoch_loop
        return self._epoch_batches(batches_done_in_epoch(self.trainer) if loop.restarting else 0, batches_pending=0)

    def _epoch_batches(self, batches_done: int, batches_pending: int) -> int | float:
        """The batches the epoch has when `batches_done` are done and `batches_pending` of them wait for their
        optimizer step: its loader's, or fewer where max_steps stops the run within it."""
        trainer = self.trainer
        if trainer.max_steps is None or trainer.max_steps < 0:  # -1: bounded by epochs alone
            return trainer.num_training_batches
        batches_left = (trainer.max_steps - trainer.global_step) * trainer.accumulate_grad_batches - batches_pending
        return min(trainer.num_training_batches, batches_done + batches_left)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.progress is None or self.train_progress_bar_id is None:
            return
        # the batches since the last optimizer step, whose step is still to come (a step never spans an epoch's end)
        pending = 0 if steps_the_optimizer(trainer) else (batch_idx + 1) % trainer.accumulate_grad_batches
        self.progress.update(self.train_progress_bar_id, total=self._epoch_batches(batch_idx + 1, pending))
        self.refresh()

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is None or self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        # as wide as the validation bar's description, as Lightning's: the bars do not flicker
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"


# -- lightning.pytorch.loggers.CSVLogger ------------------------------------------------------------------

class ColumnKeepingWriter(ExperimentWriter):
    """An ExperimentWriter that adds the columns a metrics.csv already has to the ones it knows."""

    def _record_new_keys(self) -> set[str]:
        # Another process (or an earlier writer) may have added columns to the file since we looked.
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(set(self.metrics_keys) | set(header))
        return super()._record_new_keys()
