"""Every image-caption source by name (`data.source`): a reader of its published layouts at a root into
one CaptionIndex. The captioner's DataModule (data/captioning/photos.py) and the a2a mixture's photo
source (data/media/photo_captions.py) both read through here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from supra.data.caption_sources.coco import read_coco
from supra.data.caption_sources.flickr8k import read_flickr8k
from supra.data.caption_sources.flickr30k import read_flickr30k
from supra.data.caption_sources.folder import read_caption_folder
from supra.data.caption_sources.hf_disk import read_hf_disk
from supra.data.caption_sources.index import CaptionIndex
from supra.utils.errors import SupraUserError

SOURCES: dict[str, Callable[..., CaptionIndex]] = {
    "flickr8k": read_flickr8k,
    "flickr30k": read_flickr30k,
    "coco": read_coco,
    "folder": read_caption_folder,
    "hf_disk": read_hf_disk,
}


def read_caption_source(source: str, root: str | Path, layout: str | None = None, seed: int = 0,
                        columns: dict[str, str | None] | None = None, cache_dir: str | Path | None = None,
                        split_fractions: dict[str, float] | None = None, show_progress: bool = False) -> CaptionIndex:
    """The index of `source` at `root` (`layout` forced or detected; `seed` for layouts without splits).
    A Hugging Face dataset (hf_disk) also takes its `columns` (image_column, caption_column, id_column) and
    a `cache_dir` for the Arrow files `datasets` makes of parquet; its layout is always detected. A folder
    also takes `split_fractions` (val_fraction, test_fraction; None: its default 10% each), and shows progress
    bars while its caption files are read (`show_progress`)."""
    if source not in SOURCES:
        raise SupraUserError(f"source={source!r} is not a source this reads: choose one of {', '.join(sorted(SOURCES))} "
                             "(shards are already shards)")
    if source == "hf_disk":
        return read_hf_disk(root, **(columns or {}), seed=seed, cache_dir=cache_dir)
    if source == "folder":
        return read_caption_folder(root, None if layout is None else str(layout), seed, **(split_fractions or {}),
                                   show_progress=show_progress)
    # Hydra reads data.layout=2014 as the number 2014
    return SOURCES[source](root, None if layout is None else str(layout), seed)
