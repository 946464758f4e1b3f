"""Photos with captions from any caption source (flickr8k, flickr30k, coco, folder, hf_disk: the captioner's
sources, data/caption_sources/) as images for the a2a mixture: decoded once into a cache at `image_size`
(squashed to a square, as the captioner sees them), with their captions (trained on) and references (image2text
scored against them as the captioner is: as the source publishes them, CaptionIndex.references); no objects (only the shapes
scenes know theirs, so the shapes judges are not run on photos).

    data.sources.coco: {_target_: supra.data.media.photo_captions.PhotoCaptionsMediaDataModule,
                        source: coco, root: /path/to/coco, image_size: 64}

The decoded images are cached in the mixture's cache folder (data.cache_dir/coco/), or `cache_dir` when set;
a newer cache of the same photos at the same size replaces an older one once complete (data/image_cache.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from supra.data.caption_sources.decoded import DecodedPhotos
from supra.data.caption_sources.folder import folder_split_fractions, one_image_split_warnings
from supra.data.media.datamodule import ONE_IMAGE_SCORED, MediaDataModule, MediaItems

log = logging.getLogger(__name__)


class PhotoCaptionsMediaDataModule(MediaDataModule):
    """`source` at `root` as images [N, 3, S, S] with captions; `layout`, `split_seed`, and a folder's
    `val_fraction` and `test_fraction` (null: 0.1 each), as for the captioner. `cache_dir`: its decoded images
    (in the a2a mixture: data.cache_dir/<source name>/ unless set)."""

    serving_options = MediaDataModule.serving_options | {"cache_dir"}  # where images are cached changes none

    def __init__(self, source: str, root: str, layout: str | None = None, split_seed: int = 0,
                 cache_dir: str | None = None, show_progress: bool = True, image_column: str = "image",
                 caption_column: str = "caption", id_column: str | None = None, val_fraction: float | None = None,
                 test_fraction: float | None = None, **common: Any) -> None:
        super().__init__(**common)
        columns = {"image_column": image_column, "caption_column": caption_column, "id_column": id_column}
        fractions = folder_split_fractions(source, val_fraction, test_fraction, folder="source: folder")
        self.photos = DecodedPhotos(source, root, self.image_size, layout, split_seed,
                                    Path(cache_dir) if cache_dir else None, columns, fractions)
        self.show_progress = show_progress
        self.options = "data."  # how warnings name its options: data.sources.<name>. in the a2a mixture (check_inputs)

    @property
    def items_version(self) -> int:  # type: ignore[override]
        # 2 for hf_disk: an image given as a path is filed under it (1 filed it as None). Then one more for
        # every source: items carry their references as published (codes cached before scored against the
        # training captions, final stop dropped and repeats once)
        return 3 if self.photos.source == "hf_disk" else 2

    def inputs_stamp(self) -> str:
        return self.photos.inputs_stamp(self.show_progress) if self.photos.root.exists() else ""

    def check_inputs(self, options: str = "data", warn: bool = True) -> None:
        # a folder's split of one image is counted once it is decoded (_load_photos); here, how the mixture names it
        self.options = f"{options}."

    def _load_photos(self) -> None:
        """The photos decoded, once; then a warning of a folder's val or test split of one image, counted as the
        captioner counts it: after decoding, an image that failed to decode left out of its split."""
        if self.photos.index is not None:
            return
        self.photos.load(self.show_progress)
        if self.photos.source == "folder":
            for line in one_image_split_warnings(self.photos.index.splits, self.photos.root, self.photos.split_fractions,
                                                 self.options, ONE_IMAGE_SCORED):
                log.warning(line)

    def prepare_data(self) -> None:
        self.photos.prepare(self.show_progress)

    def split_items(self, split: str) -> MediaItems:
        # a copy without train or val images (COCO's Karpathy test images alone, test-only parquets) is encoded
        # with that split empty: refused by the mixture where it trains on or scores it, not here
        self._load_photos()
        if not self.photos.index.splits[split]:
            return MediaItems(torch.empty((0, 3, self.image_size, self.image_size), dtype=torch.uint8))
        return self.items(split)

    def load_split(self, split: str) -> MediaItems:
        self._load_photos()
        part = self.photos.split(split)
        # trained on the captions, scored against the references as published, as the captioner is
        return MediaItems(self.photos.store[part.rows], part.captions, [str(i) for i in part.ids], None, part.files,
                          part.references)
