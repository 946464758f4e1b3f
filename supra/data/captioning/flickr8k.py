"""Flickr8k for the captioner: the original, Kaggle or Karpathy layout at `root` (photos.py does the rest)."""

from __future__ import annotations

from typing import Any

from supra.data.captioning.photos import PhotoCaptionsDataModule


class Flickr8kDataModule(PhotoCaptionsDataModule):
    """Flickr8k from `root` in the original, Kaggle or Karpathy layout (detected unless `layout` is set)."""

    def __init__(self, root: str, **settings: Any) -> None:
        super().__init__(source="flickr8k", root=root, **settings)
