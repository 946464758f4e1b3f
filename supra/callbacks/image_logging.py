"""Send one picture (or animation) to every active logger; the files themselves are written by the callers
(pictures/files.py), which CSV and other loggers rely on."""

from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

from supra.utils.private_apis import logging_step


def log_animation(trainer: L.Trainer, key: str, gif_path: str | os.PathLike) -> None:
    """W&B gets the GIF as a video; TensorBoard's add_video needs moviepy, so it gets the still logged
    next to it instead (see the callers), and CSV relies on the file on disk."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb  # installed with Supra; imported here so runs without W&B never load it

            logger.experiment.log({key: wandb.Video(str(gif_path), format="gif"), "trainer/global_step": logging_step(trainer)})


def log_image(trainer: L.Trainer, key: str, image: Image.Image) -> None:
    """Log `image` under `key` at the step the loggers put this stage's scalars (a validation's picture
    beside its val/CIDEr: Lightning logs both one below global_step, which names the picture's file), on
    global rank 0 only: TensorBoard gets an image summary (CHW uint8), W&B an image; CSV and other loggers
    rely on the PNG the caller has already written."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            chw = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)  # uint8 [3, H, W], a copy
            logger.experiment.add_image(key, chw, global_step=logging_step(trainer))
        elif isinstance(logger, WandbLogger):  # WandbLogger imports wandb itself, only when used
            logger.log_image(key=key, images=[image], step=logging_step(trainer))
