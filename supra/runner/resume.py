"""A resumed fit goes on in the epoch where its checkpoint stopped, however the resumed run is bounded, and
in the next epoch's first batch when that epoch's batches were all trained (the rest of it at another
data.batch_size than the checkpoint's, where the run's loader can); the epochs a checkpoint has
trained, as its resumed fit counts them against trainer.max_epochs; and the warning of a resumed fit bounded by
trainer.max_epochs that trains past its checkpoint's learning-rate schedule."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from supra.data.epoch_loader import ShuffledLoader
from supra.utils.private_apis import (
    batches_trained_in_epoch,
    begin_epoch_afresh,
    count_batches_trained_in_epoch,
)

log = logging.getLogger(__name__)


class EpochWhereStopped(L.Callback):
    """A run that stops before its epoch's data ran out (trainer.max_steps, or a stop asked for) ends that
    epoch as it ends: its last.ckpt, written at train end, counts the epoch as done. Lightning then resumes it
    mid-epoch only in a run bounded by steps (trainer.max_steps set); a run bounded by epochs began the next
    epoch, and the rest of the interrupted one was never trained. Here such a checkpoint's epoch is counted
    as begun but not done, as a checkpoint written during the epoch (at a validation, at Ctrl-C) counts it,
    so that either run trains the batches an uninterrupted one would.

    A run stopped at its epoch's last batch (Ctrl-C there, or a checkpoint written at that epoch's end) holds
    all the epoch's batches as done: a resumed run bounded by steps went on from that progress, trained one more
    batch counted in the finished epoch (on data drawn for no epoch) and began the next one a batch late. Here
    its epoch is counted as done and the next begins at its first batch, as in an uninterrupted run."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # called with the checkpoint Lightning restores the loops from next (Trainer._run: callbacks, then loops)
        fit_loop = (checkpoint.get("loops") or {}).get("fit_loop")
        if trainer.state.fn != TrainerFn.FITTING or not isinstance(fit_loop, dict):
            return
        if stopped_mid_epoch(fit_loop):
            for counts in fit_loop["epoch_progress"].values():  # as an epoch begun (started), not yet processed
                counts["processed"] = counts["completed"] = counts["started"] - 1
            epoch = fit_loop["epoch_progress"]["current"]["completed"]
            batches = fit_loop["epoch_loop.batch_progress"]["current"]["completed"]
            log.info("the checkpoint stopped within epoch %d, after %d of its batches: training goes on there", epoch, batches)
        elif stopped_at_epoch_end(fit_loop):
            for counts in fit_loop["epoch_progress"].values():  # its end hooks ran, whether or not counted yet
                counts["completed"] = counts["processed"]
            # no batch of the next epoch trained: a loader that asks the progress before the epoch begins (one
            # of unknown length, prefetching) starts it at its first batch too
            batch_progress = fit_loop["epoch_loop.batch_progress"]
            batch_progress["current"] = dict.fromkeys(batch_progress["current"], 0)
            batch_progress["is_last_batch"] = False
            log.info("the checkpoint stopped at the end of epoch %d: training goes on with epoch %d",
                     fit_loop["epoch_progress"]["current"]["completed"] - 1, fit_loop["epoch_progress"]["current"]["completed"])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # an epoch begins here (a run resumed mid-epoch goes on in it without this hook): from its first batch,
        # not from the restored progress of the epoch before
        begin_epoch_afresh(trainer)


class RestOfEpochAtBatchSize(L.Callback):
    """A fit resumed within an epoch at another data.batch_size than its checkpoint's `checkpoint_batch_size`: the
    batches done, of the old size, went by as many of the new one, skipping or training again samples of the
    epoch's shuffle. Here the loader skips the samples those batches held, on each rank, and batches the rest at
    the new size; Lightning, which ends the epoch by counting batches, counts as many done as the epoch at the new
    size has before that rest, so that the epoch ends (and validates) after the rest's last batch."""

    def __init__(self, checkpoint_batch_size: int) -> None:
        self.checkpoint_batch_size = checkpoint_batch_size

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the loader is made (under DDP, around Lightning's sampler) and before the epoch goes on
        loader, trained = trainer.train_dataloader, batches_trained_in_epoch(trainer)
        if not isinstance(loader, ShuffledLoader) or not trained:
            return
        rest = loader.resume_after(trained * self.checkpoint_batch_size)
        count_batches_trained_in_epoch(trainer, max(0, trainer.num_training_batches - rest))


def stopped_within_epoch(fit_loop: Any) -> bool:
    """Whether a checkpoint's Lightning fit loop state (loops.fit_loop) has batches of an epoch trained, not its
    last: its resumed fit goes on in that epoch (EpochWhereStopped)."""
    try:
        batches = fit_loop["epoch_loop.batch_progress"]
        return batches["current"]["processed"] > 0 and not batches["is_last_batch"]
    except (KeyError, TypeError):  # another Lightning's layout (or none): its own rules apply
        return False


def epochs_trained(fit_loop: dict[str, Any]) -> int | None:
    """The epochs of which a checkpoint's run trained every batch, from its Lightning fit loop state
    (loops.fit_loop): those begun, less the last unless its last batch ran. As Lightning counts them once it has
    restored that state (as EpochWhereStopped gives it): a resumed fit trains no batch when they reach
    trainer.max_epochs. A checkpoint written mid-epoch (at a validation, or at a trainer.max_steps stop, whose
    last.ckpt counts its epoch as processed) goes on in that epoch; one written at or after an epoch's last batch
    (at its validation, its end, or the run's) has that epoch done. None for another Lightning's layout."""
    try:
        begun = int(fit_loop["epoch_progress"]["current"]["started"])
        last_batch_ran = bool(fit_loop["epoch_loop.batch_progress"]["is_last_batch"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(0, begun - 1 + last_batch_ran)


def stopped_mid_epoch(fit_loop: dict[str, Any]) -> bool:
    """Whether Lightning's fit loop state (a checkpoint's loops.fit_loop) ended an epoch whose last batch was
    never reached: the epoch counted processed (its end hooks ran: the checkpoint was written there, or at
    train end after them), with batches of it trained but not its last."""
    try:
        batches = fit_loop["epoch_loop.batch_progress"]
        ended = all(epochs["ready"] == epochs["started"] == epochs["processed"] > 0
                    and epochs["completed"] in (epochs["processed"], epochs["processed"] - 1)
                    for epochs in fit_loop["epoch_progress"].values())
        return ended and not batches["is_last_batch"] and batches["current"]["completed"] > 0
    except (KeyError, TypeError):  # another Lightning's layout: its own rules apply
        return False


def stopped_at_epoch_end(fit_loop: dict[str, Any]) -> bool:
    """Whether Lightning's fit loop state (a checkpoint's loops.fit_loop) holds an epoch whose batches all ran,
    written in the epoch's end hooks or after them, before the next epoch began."""
    try:
        batches = fit_loop["epoch_loop.batch_progress"]
        ended = all(epochs["ready"] == epochs["started"] == epochs["processed"] > 0
                    and epochs["completed"] in (epochs["processed"], epochs["processed"] - 1)
                    for epochs in fit_loop["epoch_progress"].values())
        done = batches["current"]
        return ended and batches["is_last_batch"] and done["ready"] == done["started"] == done["processed"] \
            == done["completed"] > 0
    except (KeyError, TypeError):  # another Lightning's layout: its own rules apply
        return False


class PastScheduleByEpochs(L.Callback):
    """Says, once on rank 0 as the fit starts, whether a resumed fit bounded by trainer.max_epochs (with
    trainer.max_steps=-1) trains past its checkpoint's learning-rate schedule: the run's steps are known only
    then, from its train loader (Lightning's estimate, which allows for gradient accumulation,
    limit_train_batches and DDP). `say(total_steps, max_epochs=...)` says it, or nothing where the run ends
    within it."""

    def __init__(self, say: Callable[..., None]) -> None:
        self.say = say

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total_steps = trainer.estimated_stepping_batches
        if trainer.is_global_zero and math.isfinite(total_steps):
            self.say(int(total_steps), max_epochs=trainer.max_epochs)
