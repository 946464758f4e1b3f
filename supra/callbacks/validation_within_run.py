"""A warning before training when the run will never validate, a refusal when it would not train at all or
would validate inside an optimizer step (train.py adds it to every run)."""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from supra.callbacks.warnings_off import WarningsOffForFit
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted

log = logging.getLogger(__name__)

# what Lightning's ModelCheckpoint says at the end of a run that never validated, with a hint to call log() in the
# LightningModule, which is not at fault: turned off once ours has said why there is no validation
MONITORED_KEY_MISSING = r"`ModelCheckpoint\(monitor=.*\)` could not find the monitored key"


class ValidationWithinRun(WarningsOffForFit):
    """Says before training when the run ends before its first validation (e.g. trainer.max_epochs=1 over fewer
    batches than trainer.val_check_interval=500): no validation, no best checkpoint, the test scores the last
    weights; a run of no training batch at all (trainer.limit_train_batches=0) is refused. The run's length is
    known only once the data is (here, at the start of fit). A resumed run counts from its checkpoint's batches
    (validations fall every val_check_interval batches since the first run began), and its test scores the best
    checkpoint carried over with it, if there is one. Validations counted within each epoch (the release recipes'
    at each epoch's end) are checked at the start of training, when a run bounded by steps alone has loaded its
    data: a trainer.max_steps, or a trainer.max_epochs below trainer.check_val_every_n_epoch, that ends the run
    before the first one is warned of (a fresh run's only).

    With trainer.accumulate_grad_batches > 1, a validation that falls inside an optimizer step (its batches'
    gradients gathered so far) is refused at the start of training, before the first batch: the checkpoints written
    there cannot keep those gradients, so a run resumed from one would train other weights. The config check refuses
    an interval of batches that is not a multiple of the accumulation; what only the epoch's length tells is checked
    here: a share of an epoch, and an interval counted across epochs whose length is not a multiple (Lightning steps
    on the batches left at an epoch's end, and the next epoch's steps start anew).

    Where it warns, Lightning's own warning at the run's end that the checkpoint's monitored key was never logged is
    not said as well (MONITORED_KEY_MISSING).
    """

    _resumed: tuple[int, int] | None = None  # (step, training batches) of the checkpoint resumed

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        step = checkpoint.get("global_step") or 0
        try:  # Lightning's count of the batches trained (an accumulating run steps once per several)
            batches = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"]
        except (KeyError, TypeError):
            batches = step * trainer.accumulate_grad_batches
        self._resumed = (step, batches)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.limit_train_batches == 0:  # on every rank: Lightning skips training and the run exits 0
            raise SupraUserError(trains_no_batch("trainer.limit_train_batches=0"))
        if _validates(trainer) and trainer.check_val_every_n_epoch is None and isinstance(trainer.val_check_interval, int):
            self._warn_if_run_ends_before_interval(trainer)

    def _warn_if_run_ends_before_epoch_validation(self, trainer: L.Trainer) -> None:
        """Validations counted within each epoch (trainer.check_val_every_n_epoch, the release recipes' epoch end):
        a trainer.max_steps, or a trainer.max_epochs below trainer.check_val_every_n_epoch, that ends the run before
        the first one. At the start of training, when the epoch's length is known (a run bounded by steps alone
        loads its data only then). Not for a resumed run, which validates where the epoch it goes on in ends."""
        epoch, every, interval = trainer.num_training_batches, trainer.check_val_every_n_epoch, trainer.val_check_interval
        if not _validates(trainer) or every is None or self._resumed or not math.isfinite(epoch) or epoch < 1:
            return
        epoch = int(epoch)
        first = (every - 1) * epoch + int(trainer.val_check_batch)  # val_check_batch: the batch of its epoch
        by_steps = (batches_for_steps(trainer.max_steps, trainer.accumulate_grad_batches, epoch)
                    if trainer.max_steps > 0 else math.inf)
        by_epochs = trainer.max_epochs * epoch if trainer.max_epochs is not None and trainer.max_epochs > 0 else math.inf
        if min(by_steps, by_epochs) >= first:  # it validates (or is not bounded)
            return
        at = ("at the epoch's end" if first == epoch else
              f"at the end of epoch {every} (trainer.check_val_every_n_epoch={every})" if first == every * epoch else
              f"at batch {first} (trainer.val_check_interval={interval}, trainer.check_val_every_n_epoch={every})")
        if by_epochs <= by_steps:
            log.warning("this run ends after %s of %s (trainer.max_epochs=%d), before its first "
                        "validation %s: no validation and no best checkpoint (the test scores the last weights). Raise "
                        "trainer.max_epochs to %d or more, or lower trainer.check_val_every_n_epoch to %d",
                        counted(trainer.max_epochs, "epoch"), counted(epoch, "batch", plural="batches"),
                        trainer.max_epochs, at, every,
                        trainer.max_epochs)
            self.ignore(MONITORED_KEY_MISSING)
            return
        batches = int(by_steps)
        length = (f"{batches} of an epoch's {epoch} batches (trainer.max_steps={trainer.max_steps})" if batches < epoch
                  else f"{counted(batches, 'training batch', plural='training batches')} ({epoch} an epoch; "
                  f"trainer.max_steps={trainer.max_steps})")
        log.warning("this run ends after %s, before its first validation %s: no validation "
                    "and no best checkpoint (the test scores the last weights). Raise trainer.max_steps to %d or more, "
                    "or validate by steps with an integer trainer.val_check_interval (of at most %s) and "
                    "trainer.check_val_every_n_epoch=null", length, at,
                    steps_for_batches(first, trainer.accumulate_grad_batches, epoch),
                    counted(batches, "batch", plural="batches"))
        self.ignore(MONITORED_KEY_MISSING)

    def _warn_if_run_ends_before_interval(self, trainer: L.Trainer) -> None:
        """Validations every trainer.val_check_interval batches of the run: a run that ends before the next."""
        interval = trainer.val_check_interval
        step, done = self._resumed or (0, 0)
        resumed = f", resumed at step {step}" if self._resumed else ""
        budgets = []  # (training batches since the first run began, the option that ends the run there)
        epoch = trainer.num_training_batches
        if trainer.max_steps > 0:
            budgets.append((batches_for_steps(trainer.max_steps, trainer.accumulate_grad_batches, epoch),
                            f"trainer.max_steps={trainer.max_steps}{resumed}"))
        if trainer.max_epochs is not None and trainer.max_epochs > 0 and math.isfinite(epoch):
            each = counted(int(epoch), "batch", plural="batches")
            budgets.append((int(epoch) * trainer.max_epochs,
                            f"trainer.max_epochs={trainer.max_epochs}, {each} each{resumed}"))
        if not budgets:
            return
        batches, reason = min(budgets)
        if batches <= done or batches // interval > done // interval:  # nothing to train, or a validation within
            return
        if not self._resumed:
            log.warning("this run ends after %s (%s), before its first validation at "
                        "trainer.val_check_interval=%d: no validation and no best checkpoint (the test scores the last "
                        "weights). %s", counted(batches, "training batch", plural="training batches"), reason, interval,
                        ADVICE)
            self.ignore(MONITORED_KEY_MISSING)
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        outcome = (f"no validation (the test scores the best checkpoint carried over from the resumed run, {best}, "
                   "not this run's weights)" if best else
                   "no validation and no best checkpoint (the test scores the last weights)")
        log.warning("this run ends after %s (%s), before its next validation at batch %d "
                    "(trainer.val_check_interval=%d): %s. %s",
                    counted(batches - done, "more training batch", plural="more training batches"), reason,
                    (done // interval + 1) * interval, interval, outcome, ADVICE)
        self.ignore(MONITORED_KEY_MISSING)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._refuse_validation_inside_a_step(trainer)
        self._warn_if_run_ends_before_epoch_validation(trainer)

    def _refuse_validation_inside_a_step(self, trainer: L.Trainer) -> None:
        accumulate, every, epoch = trainer.accumulate_grad_batches, trainer.val_check_batch, trainer.num_training_batches
        if (accumulate <= 1 or trainer.fast_dev_run or not trainer.limit_val_batches or not isinstance(every, int)
                or not math.isfinite(epoch)):
            return
        budgets = [math.inf]
        if trainer.max_steps > 0:
            budgets.append(batches_for_steps(trainer.max_steps, accumulate, epoch))
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            budgets.append(int(epoch) * trainer.max_epochs)
        per_epoch = trainer.check_val_every_n_epoch is not None
        found = validation_inside_a_step(int(epoch), every, accumulate, per_epoch, min(budgets))
        if found is None:
            return
        interval = trainer.val_check_interval
        if isinstance(interval, float):
            nearest = max(accumulate, every // accumulate * accumulate)
            advice = (f"give it as a whole number of batches that is a multiple of {accumulate} "
                      f"(trainer.val_check_interval={nearest}), or 1.0 (each epoch's end)")
        else:
            advice = (f"an epoch's {int(epoch)} batches are not a multiple of {accumulate} (Lightning steps on the "
                      f"{int(epoch) % accumulate} left at its end), so from the second epoch on the interval falls "
                      "between steps: add trainer.check_val_every_n_epoch=1 (it then counts within each epoch), or make "
                      f"an epoch a multiple of {accumulate} batches (data.batch_size, data.num_train)")
        raise SupraUserError(f"trainer.val_check_interval={interval} validates at batch {found} of an epoch of "
                             f"{int(epoch)} batches, inside an optimizer step of trainer.accumulate_grad_batches="
                             f"{accumulate}, whose gathered gradients a checkpoint cannot keep (a run resumed from "
                             f"the one written there would train other weights): {advice}")


def _validates(trainer: L.Trainer) -> bool:
    """Whether the run's validations are this callback's to check: on rank 0, of a run that validates at all."""
    return bool(not trainer.fast_dev_run and trainer.is_global_zero and trainer.limit_val_batches)


def validation_inside_a_step(epoch: int, every: int, accumulate: int, per_epoch: bool, batches: float) -> int | None:
    """The batch of its epoch (from 1) of the first validation within the run's first `batches` training batches that
    falls inside an optimizer step, or None. Lightning validates after every `every` batches of each epoch
    (`per_epoch`) or of the run, and steps after every `accumulate` batches of an epoch and at its last."""
    # the pattern repeats every epoch (per_epoch), else every lcm(epoch, every) batches
    until = min(batches, epoch if per_epoch else math.lcm(epoch, every))
    for done in range(every, int(until) + 1, every):
        at = (done - 1) % epoch + 1
        if at % accumulate and at != epoch:
            return at
    return None


def steps_for_batches(batches: int, accumulate: int, epoch: int) -> int:
    """The fewest optimizer steps that train `batches` batches over epochs of `epoch` (batches_for_steps's inverse)."""
    epochs, rest = divmod(batches, epoch)
    return epochs * math.ceil(epoch / accumulate) + math.ceil(rest / accumulate)


def batches_for_steps(steps: int, accumulate: int, epoch: float) -> int:
    """The training batches `steps` optimizer steps take: `accumulate` each, except that Lightning also steps at
    an epoch's end on the batches gathered so far (an epoch of 3 batches, accumulating 2: a step after 2, and 1)."""
    if not math.isfinite(epoch) or epoch < 1:  # an epoch of unknown length: ended by max_steps alone
        return steps * accumulate
    epochs, rest = divmod(steps, math.ceil(epoch / accumulate))
    return epochs * int(epoch) + rest * accumulate


ADVICE = ("Validate each epoch's end with trainer.val_check_interval=1.0 trainer.check_val_every_n_epoch=1, or set a "
          "smaller trainer.val_check_interval")


def trains_no_batch(setting: str) -> str:
    """The line that refuses a fit of no training batch (`setting`, e.g. trainer.max_steps=0): Lightning skips
    training, exits 0 and the run saves and tests its initial weights."""
    return (f"{setting} trains no batch: the run would save and test its initial weights: leave it out to train, or "
            "add train=false to only test (with ckpt_path=... to test a checkpoint)")
