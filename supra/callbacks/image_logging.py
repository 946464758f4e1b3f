"""Send one picture to every active logger, and keep it as a PNG in the run directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image


def save_image_atomic(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG through a temp file in the same directory and os.replace: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def log_image(trainer: L.Trainer, key: str, image: Image.Image, path: str | os.PathLike | None = None) -> None:
    """Log `image` under `key` at the trainer's global step, on global rank 0 only: TensorBoard gets an
    image summary (CHW uint8), W&B an image; CSV and other loggers rely on the PNG already at `path`."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            chw = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)  # uint8 [3, H, W], a copy
            logger.experiment.add_image(key, chw, global_step=trainer.global_step)
        elif isinstance(logger, WandbLogger):  # WandbLogger imports wandb itself, only when used
            logger.log_image(key=key, images=[image], step=trainer.global_step)
