"""Karpathy's split files (`dataset_flickr8k.json`, `dataset_flickr30k.json`, `dataset_coco.json`), the
splits most captioning papers report on: `images[]` with `filename`, `split` (train / val / test /
restval) and `sentences[].raw` (its `tokens` joined by spaces where a trimmed copy dropped `raw`); COCO's also
`filepath` (train2014 / val2014) and `cocoid`. A sentence whose `raw` is not text, or with neither, is skipped and counted.

`restval` (COCO's 30k val images outside Karpathy's val and test) is trained on, as everyone does.
"""

from __future__ import annotations

from pathlib import Path

from supra.data.caption_sources.index import NOT_TEXT, SENTID_TWICE, SPLIT_NAMES, CaptionIndex
from supra.utils.errors import SupraUserError
from supra.utils.files import parse_json


def _check_image(path: Path, i: int, image: object) -> None:
    """One line naming the entry of `images[]` that is not an image with a file name and a list of sentences."""
    if not isinstance(image, dict):
        problem = f"is {image!r:.60}, not an object with filename and sentences"
    elif not isinstance(image.get("filename"), str):
        problem = f"has filename {image['filename']!r:.60}, not text" if "filename" in image else "has no filename"
    elif image.get("filepath") is not None and not isinstance(image["filepath"], str):
        problem = f"has filepath {image['filepath']!r:.60}, not text"
    elif not isinstance(sentences := image.get("sentences", []), list) or not all(isinstance(s, dict) for s in sentences):
        problem = f"has sentences {sentences!r:.60}, not a list of objects with raw"
    else:
        try:
            if "cocoid" in image:
                int(image["cocoid"])
            return
        except (ValueError, TypeError):
            problem = f"has cocoid {image['cocoid']!r:.60}, not an integer"
    raise SupraUserError(f"{path}: images[{i}] {problem}")


def read_karpathy(path: Path, image_dir: Path) -> CaptionIndex:
    """The index of a Karpathy split file; keys are `filepath/filename` when the file gives a filepath."""
    try:
        data = parse_json(path.read_text(encoding="utf-8-sig"))
        images = data["images"]
    except (ValueError, KeyError, TypeError) as err:
        raise SupraUserError(f"{path} is not a Karpathy split file (no readable images[]: {err}): "
                             "use the dataset_*.json of Karpathy's caption_datasets.zip") from None
    if not isinstance(images, list):
        raise SupraUserError(f"{path} is not a Karpathy split file (its images must be a list): "
                             "use the dataset_*.json of Karpathy's caption_datasets.zip")
    index = CaptionIndex("karpathy", image_dir, {s: [] for s in SPLIT_NAMES}, {})
    for i, image in enumerate(images):
        _check_image(path, i, image)
        key = f"{image['filepath']}/{image['filename']}" if image.get("filepath") else image["filename"]
        split = "train" if image.get("split") == "restval" else image.get("split")
        if split not in index.splits:
            index.skip("in no split", key)
            continue
        index.splits[split].append(key)
        if "cocoid" in image:
            index.ids[key] = int(image["cocoid"])
        for sentence in image.get("sentences", []):
            raw = sentence.get("raw")
            tokens = sentence.get("tokens")
            if raw is None and isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
                raw = " ".join(tokens)  # a trimmed copy that kept only the tokens (Karpathy's files have both)
            if raw is None and "raw" not in sentence:
                index.skip("sentence with neither raw nor tokens", f"{key}: {sentence!r}"[:80])
            elif not isinstance(raw, str):
                index.skip(NOT_TEXT, f"{key}: {raw!r}"[:80])
            else:
                sentence_id = sentence.get("sentid")  # the sentence's own id: listed twice, it is one caption
                index.add_caption(key, raw, f"{key}: {raw!r}", record_again=SENTID_TWICE,
                                  record=sentence_id if isinstance(sentence_id, (int, str)) else None)
    return index
