"""Lightning's ModelCheckpoint, with last.ckpt always written at the final step."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from supra.utils.private_apis import last_step_saved, save_last_checkpoint


class LastStepModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt holds the state where training stopped.

    Lightning writes last.ckpt at validation ends and, at train end, only if none was written yet; when
    max_steps is not a multiple of val_check_interval the final steps would be lost to a resume.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_last and last_step_saved(self) != trainer.global_step:
            save_last_checkpoint(self, trainer)
        super().on_train_end(trainer, pl_module)
