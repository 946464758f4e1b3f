"""Lightning's ModelCheckpoint, with last.ckpt always written at the final step and the best model carried
into a resumed run's folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from supra.utils.files import atomic_path
from supra.utils.private_apis import last_step_saved, save_last_checkpoint

log = logging.getLogger(__name__)


class LastStepModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt holds the state where training stopped, and whose best survives a
    resume.

    Lightning writes last.ckpt at validation ends and, at train end, only if none was written yet; when
    max_steps is not a multiple of val_check_interval the final steps would be lost to a resume.

    A resumed run writes a new folder (runner/training.py), and Lightning forgets the best score when the
    folder changes: the resumed run's first validation became "best" however much worse, and was tested.
    Here the earlier run's best checkpoint is copied into the new folder with its score (a copy, not a
    link: Lightning rewrites best.ckpt in place, which would change the earlier run's file through a link).
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        earlier = Path(state_dict.get("best_model_path") or "")
        moved = self.dirpath is not None and state_dict.get("dirpath") not in (None, self.dirpath)
        if not moved or state_dict.get("best_model_score") is None:
            super().load_state_dict(state_dict)
            return
        if not earlier.is_file():
            log.warning("the resumed run's best checkpoint %s is gone: the best of this run is picked anew", earlier)
            super().load_state_dict({**state_dict, "best_model_path": ""})
            return
        here = Path(self.dirpath) / earlier.name
        with atomic_path(here) as tmp:  # every rank may copy: each writes its own temp file, then renames
            shutil.copyfile(earlier, tmp)
        score = state_dict["best_model_score"]
        super().load_state_dict({**state_dict, "dirpath": self.dirpath, "best_model_path": str(here),
                                 "kth_best_model_path": str(here), "kth_value": score,
                                 "best_k_models": {str(here): score}, "last_model_path": ""})
        log.info("resumed run: the best so far (%s = %.4g) carried into %s", self.monitor, float(score), here)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_last and last_step_saved(self) != trainer.global_step:
            save_last_checkpoint(self, trainer)
        super().on_train_end(trainer, pl_module)
