"""Karpathy's split files (`dataset_flickr8k.json`, `dataset_flickr30k.json`, `dataset_coco.json`), the
splits most captioning papers report on: `images[]` with `filename`, `split` (train / val / test /
restval) and `sentences[].raw`; COCO's also `filepath` (train2014 / val2014) and `cocoid`.

`restval` (COCO's 30k val images outside Karpathy's val and test) is trained on, as everyone does.
"""

from __future__ import annotations

import json
from pathlib import Path

from supra.data.caption_sources.index import SPLIT_NAMES, CaptionIndex
from supra.utils.errors import SupraUserError


def read_karpathy(path: Path, image_dir: Path) -> CaptionIndex:
    """The index of a Karpathy split file; keys are `filepath/filename` when the file gives a filepath."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        images = data["images"]
    except (ValueError, KeyError, TypeError) as err:
        raise SupraUserError(f"{path} is not a Karpathy split file (no readable images[]: {err}): "
                             "use the dataset_*.json of Karpathy's caption_datasets.zip") from None
    index = CaptionIndex("karpathy", image_dir, {s: [] for s in SPLIT_NAMES}, {})
    for image in images:
        key = f"{image['filepath']}/{image['filename']}" if image.get("filepath") else image["filename"]
        split = "train" if image.get("split") == "restval" else image.get("split")
        if split not in index.splits:
            index.skip("in no split", key)
            continue
        index.splits[split].append(key)
        if "cocoid" in image:
            index.ids[key] = int(image["cocoid"])
        for sentence in image.get("sentences", []):
            raw = sentence.get("raw", "")
            index.add_caption(key, raw, f"{key}: {raw!r}")
    return index
