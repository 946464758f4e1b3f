"""Flickr8k for the captioner: any published layout at `root`, images decoded once into a cache."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from supra.data.captioning.datamodule import SPLITS, CaptionDataModule, CaptionedImages, ImageRows
from supra.data.captioning.flickr8k_annotations import Flickr8kIndex, read_flickr8k
from supra.data.image_cache import ImageCache
from supra.utils.errors import SupraUserError
from supra.utils.files import write_text_atomic

log = logging.getLogger(__name__)


def summary_line(index: Flickr8kIndex, failed: dict[str, str]) -> str:
    """One line: images/captions per split, and what was skipped and why (with examples)."""
    parts = [f"{split} {len(names)} images / {sum(len(index.captions[n]) for n in names)} captions"
             for split, names in index.splits.items()]
    skipped = dict(index.skipped)
    if failed:
        skipped["unreadable image"] = len(failed)
    reasons = ", ".join(
        f"{n} {reason} (e.g. {', '.join((index.examples.get(reason) or list(failed))[:2])})" for reason, n in skipped.items()
    )
    return f"flickr8k ({index.layout} layout): {'; '.join(parts)}; skipped: {reasons or 'nothing'}"


class Flickr8kDataModule(CaptionDataModule):
    """Flickr8k from `root` in the original, Kaggle or Karpathy layout (detected unless `layout` is set)."""

    def __init__(
        self, root: str, layout: str | None = None, split_seed: int = 0, output_dir: str | None = None,
        show_progress: bool = True, **common,
    ) -> None:
        super().__init__(**common)
        self.root, self.layout, self.split_seed = Path(root), layout, split_seed
        self.output_dir = Path(output_dir) if output_dir else None
        self.show_progress = show_progress
        self.index: Flickr8kIndex | None = None
        self.store: torch.Tensor | None = None
        self.rows: dict[str, torch.Tensor] = {}
        self.summary = ""

    def _read(self) -> tuple[Flickr8kIndex, ImageCache]:
        index = read_flickr8k(self.root, self.layout, self.split_seed)
        names = sorted({n for split in index.splits.values() for n in split})
        cache_dir = self.cache_dir or self.root / ".supra_cache"
        return index, ImageCache(cache_dir, [index.image_dir / n for n in names], self.image_size)

    def prepare_data(self) -> None:
        # Lightning calls this on one process only, before the others set up: the cache is built once.
        _, cache = self._read()
        cache.ensure(self.show_progress)

    def setup(self, stage: str | None = None) -> None:
        if self.index is None:
            self.index, cache = self._read()
            cache.ensure(self.show_progress)  # no-op after prepare_data; rebuilds a cache found unreadable
            self.store, failed = cache.load()
            row_of = {p.name: i for i, p in enumerate(cache.paths)}
            for split, names in self.index.splits.items():
                kept = [n for n in names if n not in failed]
                self.index.splits[split] = kept
                self.rows[split] = torch.tensor([row_of[n] for n in kept], dtype=torch.long)
            self.summary = summary_line(self.index, failed)
            log.info(self.summary)
            empty = [s for s in SPLITS if not self.index.splits[s]]
            if empty:
                raise SupraUserError(f"the {empty[0]} split has 0 usable images: {self.summary}")
            self._write_split_lists()
        super().setup(stage)

    def _write_split_lists(self) -> None:
        """The image lists actually used (the Kaggle layout's seeded split included), for reproducibility."""
        if self.output_dir is None or (self.trainer is not None and not self.trainer.is_global_zero):
            return
        for split, names in self.index.splits.items():
            write_text_atomic(self.output_dir / "splits" / f"{split}.txt", "\n".join(names) + "\n")

    def load_split(self, split: str) -> CaptionedImages:
        if self.index is None:
            self.setup(None)
        names = self.index.splits[split]
        folder = self.index.image_dir.relative_to(self.root).as_posix()  # e.g. Flicker8k_Dataset
        files = [f"{folder}/{n}" if folder != "." else n for n in names]
        return CaptionedImages(ImageRows(self.store, self.rows[split]), [self.index.captions[n] for n in names], names, files)
