"""Lightning's ModelCheckpoint, with last.ckpt always written at the final step and the best model carried
into a resumed run's folder; and checkpoint files written whole or not at all."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from supra.utils.disk_room import no_room_reason
from supra.utils.distributed import rank_and_world
from supra.utils.errors import SupraUserError, note_in_run_log
from supra.utils.files import atomic_path
from supra.utils.private_apis import (
    is_last_batch_of_epoch,
    last_step_saved,
    save_last_checkpoint,
    saves_best_at_epoch_end,
    steps_the_optimizer,
    stop_at_end_of_batch,
)

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file beside the target, then renamed over it (utils/files.py).

    Lightning's own writes go to a temp file under $TMPDIR and are moved into place; where that is another
    file system the move is a copy into the target, and a copy cut short (a full disk) left last.ckpt
    truncated: the run's one way to resume was lost. A failed write here leaves the earlier file as it was.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # Lightning's errors and remote file systems
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        try:
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)
        except (OSError, RuntimeError) as err:
            # torch's zip writer reports a full disk as a RuntimeError ("unexpected pos"); any other is no user's
            reason = (err.strerror or str(err)) if isinstance(err, OSError) else no_room_reason(err)
            if reason is None:
                raise
            raise SupraUserError(f"could not write the checkpoint {path.name} into {path.parent} "
                                 f"({reason}): any earlier {path.name} there is intact; free space "
                                 "there (or choose another folder) and resume from it with ckpt_path=...") from err


class LastStepModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt holds the state where training stopped, and whose best survives a
    resume.

    Lightning writes last.ckpt at a validation's end only when it wrote a best checkpoint there too, and at
    train end only if none was written yet; when max_steps is not a multiple of val_check_interval the final
    steps would be lost to a resume. Here it is written at every validation's end (a once-per-epoch one's at the
    epoch's end, after Lightning's save of the best there) and at train end. At every
    validation, not only at train end: Lightning resumes a checkpoint of a step that validated as one written
    at that validation's end, and counts that step's end again (its logging step), so a last.ckpt written
    after that step's end resumed logging one step ahead.

    Ctrl-C during a fit stops it as SIGTERM does, at the end of the batch (during a validation, at its end),
    and last.ckpt is written at the step reached; a second Ctrl-C stops at once, as before. Otherwise every
    step since the last checkpoint was lost: a KeyboardInterrupt never reaches on_train_end. (One process
    only: under DDP each rank would stop at a batch of its own, and Ctrl-C stops the run at once as before.)
    With trainer.accumulate_grad_batches > 1 it stops at the end of the batch that steps the optimizer: the
    gradients gathered before it are in no checkpoint, and a run resumed mid-step trained other weights.
    Stopped at the fit's last step, the line says the training is done (a resume would be refused as training
    nothing more) and names the checkpoint to score.

    A resumed run writes a new folder (runner/training.py), and Lightning forgets the best score when the
    folder changes: the resumed run's first validation became "best" however much worse, and was tested.
    Here the earlier run's best checkpoint is copied into the new folder with its score (a copy, not a
    link: Lightning rewrites best.ckpt in place, which would change the earlier run's file through a link).
    """

    # Ctrl-C during the fit: the handler in place, the one it replaced, and a stop asked, not yet passed on
    _graceful: Callable[[int, FrameType | None], None] | None = None
    _ctrl_c: Any = None
    _stop_asked = False
    # how an interrupted fit goes on where not with ckpt_path= (set by the runner for a multirun's job: ckpt_path=
    # added to the -m command would start every job from this one's checkpoint)
    resume_advice: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._restoring = trainer  # load_state_dict needs the file it restores and whether this is a fit

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        trainer = getattr(self, "_restoring", None)
        fitting = trainer is None or trainer.state.fn == TrainerFn.FITTING
        if not fitting:
            # a test restores the tested checkpoint for its weights: its record of the run's checkpoints (another
            # folder's, for a resumed run's best carried over) is kept by no one after, and Lightning would warn that
            # it "won't be reloaded", as if the carried best were lost
            return
        moved = self.dirpath is not None and state_dict.get("dirpath") not in (None, self.dirpath)
        score = state_dict.get("best_model_score")
        if not moved:
            super().load_state_dict(state_dict)
            return
        if score is None:
            # written before the run's first validation: no best to carry, and Lightning's "dirpath has changed ...
            # won't be reloaded" read as if one were lost; the earlier folder's files are no record of this one's
            super().load_state_dict({**state_dict, "dirpath": self.dirpath, "kth_best_model_path": "",
                                     "best_k_models": {}, "last_model_path": ""})
            return
        earlier = self._earlier_best(state_dict, trainer.ckpt_path if trainer is not None else None)
        said_here = rank_and_world()[0] == 0  # every DDP rank restores the checkpoint alike: said by rank 0 alone
        if earlier is None:
            if said_here:
                log.warning("the resumed run's best checkpoint (%s = %.4g) is neither beside ckpt_path nor at %s: "
                            "the best of this run is picked anew", self.monitor, float(score),
                            state_dict.get("best_model_path"))
            super().load_state_dict({**state_dict, "best_model_path": ""})
            return
        here = Path(self.dirpath) / earlier.name
        with atomic_path(here) as tmp:  # every rank may copy: each writes its own temp file, then renames
            shutil.copyfile(earlier, tmp)
        super().load_state_dict({**state_dict, "dirpath": self.dirpath, "best_model_path": str(here),
                                 "kth_best_model_path": str(here), "kth_value": score,
                                 "best_k_models": {str(here): score}, "last_model_path": ""})
        if said_here:
            log.info("resumed run: the best so far (%s = %.4g) carried into %s", self.monitor, float(score), here)

    def _earlier_best(self, state_dict: dict[str, Any], ckpt_path: str | None) -> Path | None:
        """The resumed run's best checkpoint: beside the file resumed from (a run folder copied or moved
        keeps its checkpoints together), else where the run wrote it; only a file whose own record of the
        best score is the one carried, so that another run's checkpoint since written at that path is not
        taken for it (it would be tested as this run's best)."""
        recorded = Path(state_dict.get("best_model_path") or "")
        candidates = ([Path(ckpt_path).parent / recorded.name] if ckpt_path and recorded.name else []) + [recorded]
        for candidate in candidates:
            if candidate.is_file():
                try:
                    saved = torch.load(candidate, map_location="cpu", weights_only=True, mmap=True)
                    theirs = saved["callbacks"][self.state_key]["best_model_score"]
                except Exception:  # not a checkpoint of this callback: not the best sought
                    continue
                if theirs is not None and float(theirs) == float(state_dict["best_model_score"]):
                    return candidate
        return None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.save_last and trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._ctrl_c = signal.getsignal(signal.SIGINT)
            if self._ctrl_c is signal.SIG_IGN:  # a background job of a script (`python train.py ... &`): Ctrl-C
                return  # at the terminal is not meant for it, and it was started to ignore it

            def stop_gracefully(signum: int, frame: FrameType | None) -> None:
                self._restore_ctrl_c()  # a second Ctrl-C: a KeyboardInterrupt, at once
                # passed on at the end of the batch that steps the optimizer, or of the validation (one cut short is
                # not run again by the resumed run)
                self._stop_asked = True

            self._graceful = stop_gracefully
            signal.signal(signal.SIGINT, stop_gracefully)

    def _restore_ctrl_c(self) -> None:
        if self._graceful is not None and signal.getsignal(signal.SIGINT) is self._graceful:
            signal.signal(signal.SIGINT, self._ctrl_c if self._ctrl_c is not None else signal.default_int_handler)
        self._graceful = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self._restore_ctrl_c()
        if not isinstance(exception, SIGTERMException) or not self.save_last or trainer.state.fn != TrainerFn.FITTING \
                or trainer.fast_dev_run or trainer.world_size > 1:  # DDP ranks may have stopped at other batches
            return
        if trainer.sanity_checking or trainer.global_step == 0:
            message = "interrupted before the first training step: no checkpoint written"
        else:
            if last_step_saved(self) != trainer.global_step:
                save_last_checkpoint(self, trainer)
            advice = self.resume_advice or f"resume with ckpt_path={self.last_model_path}"
            done = None if self.resume_advice else self._fit_done_advice(trainer)  # a sweep's job: run it again
            message = f"interrupted at step {trainer.global_step}" + (done or f": {advice}")
        if trainer.is_global_zero:
            print(message, file=sys.stderr, flush=True)
            note_in_run_log(message)

    def _fit_done_advice(self, trainer: L.Trainer) -> str | None:
        """What to do with a fit stopped at its last step (trainer.max_steps, or the last batch of trainer.max_epochs'
        last epoch), where a resume from last.ckpt is refused as training nothing more: None for one stopped short."""
        epochs_done = trainer.current_epoch + is_last_batch_of_epoch(trainer)  # as a resume counts them
        if 0 <= trainer.max_steps <= trainer.global_step:
            limit = f"trainer.max_steps={trainer.max_steps}"
        elif trainer.max_epochs is not None and 0 <= trainer.max_epochs <= epochs_done:
            limit = f"trainer.max_epochs={trainer.max_epochs}"
        else:
            return None
        scored = self.best_model_path if self.best_model_path and Path(self.best_model_path).is_file() \
            else self.last_model_path
        return (f", the fit's last ({limit}): its training is done, nothing to resume, and its test not run; score it "
                f"with evaluate.py ckpt={scored}, or raise {limit.partition('=')[0]} and resume with "
                f"ckpt_path={self.last_model_path} to train on")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._stop_if_asked(trainer)

    def _stop_if_asked(self, trainer: L.Trainer) -> None:
        """Pass a Ctrl-C on to Lightning where the batch ends an optimizer step: the fit stops as it ends."""
        if self._stop_asked and steps_the_optimizer(trainer):
            self._stop_asked = False
            stop_at_end_of_batch(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # A validation once per epoch has its best saved at the epoch's end, just after this: a last.ckpt
        # written now would mark the step saved, and Lightning would skip that save (no best.ckpt at all).
        if not saves_best_at_epoch_end(self, trainer):
            self._save_last_if_not_yet(trainer)
        self._stop_if_asked(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if saves_best_at_epoch_end(self, trainer):
            self._save_last_if_not_yet(trainer)

    def _save_last_if_not_yet(self, trainer: L.Trainer) -> None:
        """last.ckpt after every validation, improved or not: a resumed run starts where this one stopped."""
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run
        if self.save_last and fitting and last_step_saved(self) != trainer.global_step:
            save_last_checkpoint(self, trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_ctrl_c()
        if trainer.fast_dev_run:  # Lightning's rule, which its own on_train_end forgets: no checkpoint
            return
        if self.save_last and last_step_saved(self) != trainer.global_step:
            save_last_checkpoint(self, trainer)
        super().on_train_end(trainer, pl_module)
