"""The one image pipeline every captioning dataset shares: RGB -> resize (no crop) -> uint8, then
ImageNet normalisation on the device, so procedural shapes and real photos reach the model alike."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def channels_first(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] (numpy, as decoders give) -> a contiguous uint8 torch tensor [..., 3, H, W].

    The transpose is copied by numpy: torch's permute().contiguous() on uint8 takes a slow strided path
    (~200x slower for one 160x120 frame on a busy 2-core machine), the largest cost of the GIF pipeline.
    """
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(pixels, -1, -3)))


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> uint8 [..., 3, size, size]: squashed to a square, no crop (as the release)."""
    if images.shape[-2:] == (size, size):
        return images
    return TF.resize(images, [size, size], antialias=True)


def normalize_imagenet(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 [B, 3, H, W], scaled to [0, 1] then ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def denormalize_imagenet(images: torch.Tensor) -> torch.Tensor:
    """Inverse of normalize_imagenet, for display: float [B, 3, H, W] -> uint8."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return ((images * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
