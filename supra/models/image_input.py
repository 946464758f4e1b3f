"""What a vision encoder expects of its pixels: the data pipeline reads it from the model (never the
user twice), so a pretrained backbone's own size and normalisation are the ones applied."""

from __future__ import annotations

from dataclasses import dataclass

from supra.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class ImageInput:
    """Square side in pixels, and the per-channel mean and std applied to [0, 1] values."""

    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
