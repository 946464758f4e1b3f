"""What every image/clip DataModule of the any-to-any stages shares (VQ-VAE training, code caching):
splits held as uint8 tensors at `image_size`, batched datasets, and scaling to [-1, 1] on the device.

A subclass only says how to load a split (`load_split`); the built-in shapes, shapes_video and
media folders differ there alone (data/base.py holds the rest).

Batches (dicts) the task receives, already on its device:
- pixels: float [B, 3, S, S] (images) or [B, T, 3, S, S] (clips of T frames), in [-1, 1];
- index: int64 [B], the row of each item in its split (captions and names are looked up by it);
- repeated (val / test under DDP only): list[bool] [B], True for a row repeated to keep the ranks in step,
  not to be scored again (data/base.py RankBatches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from supra.data.base import SPLITS, SplitDataModule
from supra.data.images import to_unit_range
from supra.tokens.a2a_layout import VQVAE_DOWNSAMPLE
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_whole

# what the scores of a folder's val or test split of one image are (a VQ-VAE's, the a2a mixture's beside the other
# sources'): that image's
ONE_IMAGE_SCORED = {"val": "every validation scores one of its images", "test": "the test scores one of its images"}

__all__ = ["ONE_IMAGE_SCORED", "SPLITS", "MediaDataModule", "MediaItems", "MediaSamples", "check_image_size"]


def check_image_size(size: int, key: str = "data.image_size", least: int = VQVAE_DOWNSAMPLE) -> int:
    """`size` if it is a positive multiple of the VQ-VAE's downsampling (8), else a one-line error naming the
    nearest valid sizes of at least `least` (a shapes source's drawing minimum: 16 suggested there was refused next)."""
    if not is_whole(size, VQVAE_DOWNSAMPLE) or size % VQVAE_DOWNSAMPLE:
        try:
            below = int(size) // VQVAE_DOWNSAMPLE * VQVAE_DOWNSAMPLE
        except (TypeError, ValueError):
            raise SupraUserError(f"{key}={size!r} must be an integer multiple of {VQVAE_DOWNSAMPLE}, e.g. 64") from None
        fits = [side for side in (below, below + VQVAE_DOWNSAMPLE) if side >= max(least, VQVAE_DOWNSAMPLE)] or [least]
        nearest = " or ".join(map(str, fits))
        raise SupraUserError(f"{key}={size} must be a positive multiple of {VQVAE_DOWNSAMPLE} (the VQ-VAE's patch): "
                             f"use {nearest}")
    return size


@dataclass
class MediaItems:
    """One split: pixels uint8 [N, 3, S, S] (images) or [N, T, 3, S, S] (clips), captions and names, and the
    references each is scored against (image2text): the source's captions as published, a caption an item has
    twice twice, where they differ from those trained on (a photo source's, a folder's; default: the captions)."""

    pixels: torch.Tensor
    captions: list[list[str]] = field(default_factory=list)  # per item; an item may have none
    names: list[str] = field(default_factory=list)  # file names (with frame/clip suffix) or generated ids
    # (colour, shape) of each item's objects when the source drew them (shapes; a clip's first frame):
    # the truth the a2a judges score generated pictures and captions against
    objects: list[list[tuple[str, str]]] | None = None
    # the file each item came from, relative to the data root (None for generated items)
    files: list[str | None] = field(default_factory=list)
    references: list[list[str]] = field(default_factory=list)
    # clips: the frames of each that are its file's own, the rest its last frame repeated (a GIF shorter than a
    # clip); None: every frame of every clip is real. Video scores leave the repeats out (tasks/a2a.py).
    real_frames: list[int] | None = None

    def __post_init__(self) -> None:
        n = len(self.pixels)
        if self.pixels.dtype != torch.uint8 or self.pixels.ndim not in (4, 5):
            raise ValueError(f"pixels must be uint8 [N, 3, S, S] or [N, T, 3, S, S], got {self.pixels.dtype} {list(self.pixels.shape)}")
        self.captions = self.captions or [[] for _ in range(n)]
        self.names = self.names or [str(i) for i in range(n)]
        self.files = self.files or [None] * n
        self.references = self.references or self.captions
        if len(self.captions) != n or len(self.names) != n or len(self.references) != n:
            raise ValueError(f"{n} items but {len(self.captions)} caption lists, {len(self.references)} reference "
                             f"lists and {len(self.names)} names")
        if self.real_frames is not None and len(self.real_frames) != n:
            raise ValueError(f"{n} items but {len(self.real_frames)} counts of real frames")

    @property
    def is_clips(self) -> bool:
        return self.pixels.ndim == 5

    def __len__(self) -> int:
        return len(self.pixels)

    def subset(self, rows: list[int] | range) -> MediaItems:
        rows = list(rows)
        objects = None if self.objects is None else [self.objects[i] for i in rows]
        return MediaItems(self.pixels[rows], [self.captions[i] for i in rows], [self.names[i] for i in rows], objects,
                          [self.files[i] for i in rows], [self.references[i] for i in rows],
                          None if self.real_frames is None else [self.real_frames[i] for i in rows])


class MediaSamples(Dataset):
    """Items of one split, fetched a batch at a time (one indexing op, no per-item Python)."""

    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return {"pixels": self.pixels[idx], "index": idx}


class MediaDataModule(SplitDataModule):
    """Base of image/clip DataModules. Subclasses implement `load_split`."""

    # Options that only say how the items are served or shown, never what they are (DataLoaders, a progress
    # bar, the split trainer.test scores): a cache of the items (the a2a code cache) is keyed without them.
    serving_options = frozenset({"split", "batch_size", "eval_batch_size", "num_workers", "pin_memory", "show_progress"})
    # Raised when a source's items change (their names, files) for the same config and inputs: caches of
    # them written before are not read. Per source, so the other sources' caches stay valid.
    items_version = 1
    min_image_size = VQVAE_DOWNSAMPLE  # the least side its items can have (the shapes sources draw at 32 px or more)

    def __init__(self, image_size: int = 64, **common: Any) -> None:
        super().__init__(**common)
        self.image_size = check_image_size(image_size, least=self.min_image_size)

    @classmethod
    def gives_clips(cls, options: Mapping[str, Any]) -> bool:
        """Whether a source of these config options gives clips, not images: known from its config alone,
        before anything is read (a run checks from it what its items will need)."""
        return False

    def items(self, split: str) -> MediaItems:
        """The split's pixels, captions and names, loaded once."""
        return self.loaded(split)

    def split_items(self, split: str) -> MediaItems:
        """`items` for a cache of every split (the a2a codes): a split the source lets be turned off may be
        empty here (a media folder's val_fraction=0), for the user of the cache to refuse if it scores it."""
        return self.items(split)

    def inputs_stamp(self) -> str:
        """What the source reads from disk, as a stamp that changes when it does (a cache of its items
        keys on it): "" for a procedural source, whose config is all of its content."""
        return ""

    def check_inputs(self, options: str = "data", warn: bool = True) -> None:
        """What the source reads, checked before any split of it is decoded: one line for what is not there,
        and (warn) a warning for what is doubtful. `options`: how its options are named in them (data, or
        data.sources.<name> for a source of the a2a mixture). Nothing to check for most sources."""

    def dataset(self, split: str) -> Dataset:
        return MediaSamples(self.items(split).pixels)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        # Scale on the device: uint8 crosses the host->device copy at a quarter of float's size. Lightning's
        # precision converted the batch while it was uint8: the floats get its dtype here (64-true, bf16-true)
        pixels = to_unit_range(batch["pixels"])
        return {**batch, "pixels": self.trainer.precision_plugin.convert_input(pixels) if self.trainer else pixels}

    # -- for pictures -----------------------------------------------------------------------------

    def sample_items(self, split: str, n: int) -> MediaItems:
        """The first n items of a split (fixed samples for reconstruction grids)."""
        items = self.items(split)
        return items.subset(range(min(n, len(items))))
