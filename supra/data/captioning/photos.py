"""Captioned photos from disk for the captioner: any caption source (Flickr8k, Flickr30k, COCO, a folder)
in its published layout at `root`, images decoded once into a memory-mapped cache at the model's size.

Which images and captions each split holds is the source reader's (data/caption_sources/); decoding and
the cache are caption_sources/decoded.py's; this module adds the batches and the split lists of the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from supra.data.base import SPLITS
from supra.data.caption_sources.decoded import DecodedPhotos
from supra.data.caption_sources.folder import (
    CIDER_OF_ONE_IMAGE,
    folder_split_fractions,
    one_image_split_warnings,
)
from supra.data.caption_sources.index import CaptionIndex
from supra.data.captioning.datamodule import CaptionDataModule, CaptionedImages, ImageRows
from supra.utils.files import ONE_LINE, write_text_atomic

log = logging.getLogger(__name__)


class PhotoCaptionsDataModule(CaptionDataModule):
    """`source` (flickr8k, flickr30k, coco, folder or hf_disk) read from `root`; `layout` forces one of its
    layouts (null: detected); `split_seed` draws the split of layouts that publish none; the *_column
    settings name a Hugging Face dataset's columns (hf_disk only); `val_fraction` and `test_fraction` size a
    folder's held-out splits (folder only; null: 0.1 each)."""

    def __init__(
        self, source: str, root: str, layout: str | None = None, split_seed: int = 0, output_dir: str | None = None,
        show_progress: bool = True, image_column: str = "image", caption_column: str = "caption",
        id_column: str | None = None, val_fraction: float | None = None, test_fraction: float | None = None,
        **common: Any,
    ) -> None:
        super().__init__(show_progress=show_progress, **common)
        self.root = Path(root)
        columns = {"image_column": image_column, "caption_column": caption_column, "id_column": id_column}
        # data=caption_folder data.source=coco carries the folder config's shares: its own data= has none
        fractions = folder_split_fractions(source, val_fraction, test_fraction,
                                           instead=f" (data=caption_folder sets it: read {source} with data={source})")
        self.photos = DecodedPhotos(source, root, self.image_size, layout, split_seed, self.cache_dir, columns,
                                    fractions)
        self.output_dir = Path(output_dir) if output_dir else None

    @property
    def index(self) -> CaptionIndex | None:
        """The source's index once set up: which images each split holds, and what was skipped."""
        return self.photos.index

    @property
    def summary(self) -> str:
        return self.photos.summary

    def split_source(self, split: str) -> str:
        return f"the {split} split of data.root={self.root} (data.source={self.photos.source})"

    def prepare_data(self) -> None:
        # Lightning calls this on one process only, before the others set up: the cache is built once.
        super().prepare_data()
        self.photos.prepare(self.show_progress)

    def setup(self, stage: str | None = None) -> None:
        if self.photos.index is None:
            self.photos.load(self.shows_progress)
            self._write_split_lists()
            if stage in (None, "fit"):
                self._say_one_image_splits()
        # training checks the test split too (before the training it follows); scoring, its own split only
        self.photos.check_splits(SPLITS if stage in (None, "fit") else self.splits_for(stage))
        super().setup(stage)

    def _say_one_image_splits(self) -> None:
        """Warn of a folder's val or test split of one image (a folder of a few dozen photos, split 10% / 10%),
        naming the option that sizes it: CIDEr over one image is 0 whatever the caption."""
        if self.photos.source != "folder" or (self.trainer is not None and not self.trainer.is_global_zero):
            return
        for line in one_image_split_warnings(self.photos.index.splits, self.root, self.photos.split_fractions, "data.",
                                             CIDER_OF_ONE_IMAGE):
            log.warning(line)

    def _write_split_lists(self) -> None:
        """The image lists actually used (a seeded split included), for reproducibility: one name a line, a
        line break in a name written as an escape (\\n, a backslash \\\\: files.ONE_LINE), so each stays one record."""
        if self.output_dir is None or (self.trainer is not None and not self.trainer.is_global_zero):
            return
        for split, keys in self.photos.index.splits.items():
            write_text_atomic(self.output_dir / "splits" / f"{split}.txt", "\n".join(key.translate(ONE_LINE) for key in keys) + "\n")

    def load_split(self, split: str) -> CaptionedImages:
        if self.photos.index is None:
            self.setup(None)
        part = self.photos.split(split)
        return CaptionedImages(ImageRows(self.photos.store, part.rows), part.captions, part.ids, part.files,
                               part.references)

