"""A caption source's images decoded once, at one size, into a memory-mapped cache, with the rows each
split keeps: what the captioner's DataModule (112 px) and the a2a mixture's photo source (64 px) share.

Images the cache could not decode are dropped from their split and counted in the summary line; a split
left empty stops the run with that line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from supra.data.caption_sources.index import SPLIT_NAMES, CaptionIndex, summary_line
from supra.data.caption_sources.sources import SOURCES, read_caption_source
from supra.data.image_cache import ImageCache
from supra.utils.errors import SupraUserError

log = logging.getLogger(__name__)


@dataclass
class SplitPhotos:
    """One split: rows of the decoded store, and per image its captions (trained on), own id, file
    (root-relative) and references (scored against: CaptionIndex)."""

    rows: torch.Tensor
    captions: list[list[str]]
    ids: list[int | str]
    files: list[str | None]  # None: the image is inside a dataset's files, not a file of its own
    references: list[list[str]]


class DecodedPhotos:
    """`source` at `root` (`layout` forced or detected, `seed` for layouts without splits), decoded to
    `image_size` in `cache_dir` (default `<root>/.supra_cache`); `columns` for a Hugging Face dataset,
    `split_fractions` for a folder (read_caption_source)."""

    def __init__(self, source: str, root: str | Path, image_size: int, layout: str | None = None, seed: int = 0,
                 cache_dir: str | Path | None = None, columns: dict[str, str | None] | None = None,
                 split_fractions: dict[str, float] | None = None) -> None:
        if source not in SOURCES:
            raise SupraUserError(f"data.source={source!r} is unknown: choose one of {', '.join(SOURCES)}")
        self.source, self.root, self.image_size, self.layout, self.seed = source, Path(root), image_size, layout, seed
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".supra_cache"
        self.columns = columns  # a Hugging Face dataset's image / caption / id columns
        self.split_fractions = split_fractions  # a folder's val_fraction / test_fraction
        self.index: CaptionIndex | None = None
        self.store: torch.Tensor | None = None
        self.rows: dict[str, torch.Tensor] = {}
        self.summary = ""
        self._read: tuple[CaptionIndex, ImageCache] | None = None

    def _cache(self, show_progress: bool = True) -> tuple[CaptionIndex, ImageCache]:
        """The annotations and the cache of their images, read once per process (prepare, then load)."""
        if self._read is None:
            index = read_caption_source(self.source, self.root, self.layout, self.seed, self.columns, self.cache_dir,
                                        self.split_fractions, show_progress)
            keys = sorted({k for split in index.splits.values() for k in split})
            items = [index.stored.get(k) or index.image_dir / k for k in keys]
            # the origin: a newer cache of this source, at this root, layout and columns, replaces an older one
            origin = json.dumps([self.source, str(self.root.resolve()), self.layout, self.columns], default=str)
            self._read = index, ImageCache(self.cache_dir, items, self.image_size, keys, origin)
        return self._read

    def inputs_stamp(self, show_progress: bool = True) -> str:
        """What the photos are read from: the annotations' splits and captions, and each image's name, size
        and modification time (the decoded cache's key), wherever the images are (a symlinked folder too)."""
        index, cache = self._cache(show_progress)
        digest = hashlib.sha256(cache.array_path.name.encode())
        digest.update(json.dumps([index.splits, index.captions], sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def prepare(self, show_progress: bool = True) -> None:
        """Decode into the cache unless it is there (Lightning's prepare_data: one process does it)."""
        self._cache(show_progress)[1].ensure(show_progress)

    def load(self, show_progress: bool = True) -> None:
        """Read the annotations and the cache (building it if missing or unreadable); once."""
        if self.index is not None:
            return
        index, cache = self._cache(show_progress)
        cache.ensure(show_progress)
        self.store, failed = cache.load()
        row_of = {k: i for i, k in enumerate(cache.names)}
        for split, keys in index.splits.items():
            index.splits[split] = [k for k in keys if k not in failed]
            self.rows[split] = torch.tensor([row_of[k] for k in index.splits[split]], dtype=torch.long)
        self.index, self.summary, self._read = index, summary_line(self.source, index, failed), None
        log.info(self.summary)

    def check_splits(self, splits: Iterable[str] = SPLIT_NAMES) -> None:
        """One line when one of `splits` has no usable image (only those a run reads: scoring a test-only
        copy needs no train images)."""
        self.load()
        empty = [s for s in splits if not self.index.splits[s]]
        if empty:
            raise SupraUserError(f"the {empty[0]} split has 0 usable images: {self.summary}")

    def split(self, split: str) -> SplitPhotos:
        self.check_splits([split])
        keys = self.index.splits[split]
        return SplitPhotos(
            self.rows[split], [self.index.captions[k] for k in keys],
            [self.index.ids.get(k, k) for k in keys],  # the dataset's own id (COCO's integers), else the key
            self.index.files(self.root, keys),
            [self.index.references[k] for k in keys],
        )
