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


def log_image(trainer: L.Trainer, key: str, image: Image.Image) -> None:
    """TensorBoard gets an image summary, W&B an image; CSV and others rely on the PNG on disk."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            chw = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
            logger.experiment.add_image(key, chw, global_step=trainer.global_step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=trainer.global_step)
