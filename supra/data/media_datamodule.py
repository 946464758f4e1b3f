"""What every image/clip DataModule of the any-to-any stages shares (VQ-VAE training, code caching):
splits held as uint8 tensors at `image_size`, batched datasets, and scaling to [-1, 1] on the device.

A subclass only says how to load a split (`load_split`); the built-in shapes, shapes_video and
media folders differ there alone.

Batches (dicts) the task receives, already on its device:
- pixels: float [B, 3, S, S] (images) or [B, T, 3, S, S] (clips of T frames), in [-1, 1];
- index: int64 [B], the row of each item in its split (captions and names are looked up by it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from supra.utils.errors import SupraUserError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PATCH = 8  # the VQ-VAE downsamples by 8: sides must be multiples of it


def check_image_size(size: int, key: str = "data.image_size") -> int:
    """`size` if it is a positive multiple of 8, else a one-line error naming the nearest valid sizes."""
    if isinstance(size, bool) or not isinstance(size, int) or size < PATCH or size % PATCH:
        try:
            below = int(size) // PATCH * PATCH
        except (TypeError, ValueError):
            raise SupraUserError(f"{key}={size!r} must be an integer multiple of {PATCH}, e.g. 64") from None
        nearest = " or ".join(str(s) for s in (below, below + PATCH) if s >= PATCH)
        raise SupraUserError(f"{key}={size} must be a positive multiple of {PATCH} (the VQ-VAE's patch): use {nearest}")
    return size


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1], the VQ-VAE's input range."""
    return pixels.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 in [0, 255] (for pictures and GIFs)."""
    return ((images.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass
class MediaItems:
    """One split: pixels uint8 [N, 3, S, S] (images) or [N, T, 3, S, S] (clips), captions and names."""

    pixels: torch.Tensor
    captions: list[list[str]] = field(default_factory=list)  # per item; an item may have none
    names: list[str] = field(default_factory=list)  # file names (with frame/clip suffix) or generated ids

    def __post_init__(self) -> None:
        n = len(self.pixels)
        if self.pixels.dtype != torch.uint8 or self.pixels.ndim not in (4, 5):
            raise ValueError(f"pixels must be uint8 [N, 3, S, S] or [N, T, 3, S, S], got {self.pixels.dtype} {list(self.pixels.shape)}")
        self.captions = self.captions or [[] for _ in range(n)]
        self.names = self.names or [str(i) for i in range(n)]
        if len(self.captions) != n or len(self.names) != n:
            raise ValueError(f"{n} items but {len(self.captions)} caption lists and {len(self.names)} names")

    @property
    def is_clips(self) -> bool:
        return self.pixels.ndim == 5

    def __len__(self) -> int:
        return len(self.pixels)

    def subset(self, rows: list[int] | range) -> MediaItems:
        rows = list(rows)
        return MediaItems(self.pixels[rows], [self.captions[i] for i in rows], [self.names[i] for i in rows])


def _batch_is_ready(batch: dict[str, Any]) -> dict[str, Any]:
    # MediaSamples builds whole batches in __getitems__, so collation has nothing left to do.
    return batch


class MediaSamples(Dataset):
    """Items of one split, fetched a batch at a time (one indexing op, no per-item Python)."""

    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return {"pixels": self.pixels[idx], "index": idx}


class MediaDataModule(L.LightningDataModule):
    """Base of image/clip DataModules. Subclasses implement `load_split`."""

    def __init__(
        self,
        image_size: int = 64,
        split: str = "test",
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise SupraUserError(f"data.split={split!r} is unknown: choose one of {', '.join(SPLITS)}")
        if batch_size < 1 or eval_batch_size < 1:
            raise SupraUserError(f"data.batch_size={batch_size} and eval_batch_size={eval_batch_size} must be >= 1")
        self.image_size = check_image_size(image_size)
        self.split = split  # the split `trainer.test` and tokenize_media's default read
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.data: dict[str, MediaItems] = {}

    # -- what subclasses provide ------------------------------------------------------------------

    def load_split(self, split: str) -> MediaItems:
        """Pixels uint8 at image_size (and captions, names) of `split`."""
        raise NotImplementedError

    # -- Lightning hooks --------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ["train", "val"], "validate": ["val"], "test": [self.split], "predict": [self.split]}
        for split in needed.get(stage or "fit", list(SPLITS)):
            self.items(split)

    def items(self, split: str) -> MediaItems:
        """The split, loaded once."""
        if split not in SPLITS:
            raise SupraUserError(f"split {split!r} is unknown: choose one of {', '.join(SPLITS)}")
        if split not in self.data:
            items = self.load_split(split)
            if len(items) == 0:
                raise SupraUserError(f"the {split} split of {type(self).__name__} has 0 items: check its size/path settings")
            self.data[split] = items
        return self.data[split]

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            MediaSamples(self.items(split).pixels), batch_size=batch_size, shuffle=shuffle,
            collate_fn=_batch_is_ready, num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0, drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split, self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.split, self.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        # Scale on the device: uint8 crosses the host->device copy at a quarter of float's size.
        return {**batch, "pixels": to_unit_range(batch["pixels"])}

    # -- for pictures -----------------------------------------------------------------------------

    def sample_items(self, split: str, n: int) -> MediaItems:
        """The first n items of a split (fixed samples for reconstruction grids)."""
        items = self.items(split)
        return items.subset(range(min(n, len(items))))
