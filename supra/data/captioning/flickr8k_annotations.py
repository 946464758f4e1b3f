"""Reading Flickr8k's annotations in every layout people have, traps included, into one index.

Layouts (detected from the files present, or forced):
- original:  Flickr8k.token.txt (`<image>.jpg#<n>\\t<caption>`), Flickr_8k.{train,dev,test}Images.txt,
             images in Flicker8k_Dataset/ (sic), Flickr8k_Dataset/ or Images/; text files possibly in Flickr8k_text/
- kaggle:    captions.txt (CSV, header `image,caption`, quoted captions with commas) and Images/;
             no split lists: a seeded shuffle of the sorted names gives 6000/1000/1000
- karpathy:  dataset_flickr8k.json (images[].filename, .split in train/val/test/restval, .sentences[].raw)

Traps handled and counted: CRLF line ends, a UTF-8 BOM, a space instead of the tab, ids naming an image
with no file, images in no split list, blank captions, duplicate lines, trailing spaces or " .".
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from supra.data.captions import clean_caption
from supra.utils.errors import SupraUserError

LAYOUTS = ("original", "kaggle", "karpathy")
IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")
TEXT_DIRS = ("", "Flickr8k_text")
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"}
KAGGLE_SPLIT_SIZES = {"train": 6000, "val": 1000, "test": 1000}


@dataclass
class Flickr8kIndex:
    """Which images each split holds and the cleaned captions of every image."""

    layout: str
    image_dir: Path
    splits: dict[str, list[str]]
    captions: dict[str, list[str]]
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few names/lines

    def skip(self, reason: str, what: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(what)


def _read_text(path: Path) -> list[str]:
    # utf-8-sig drops a BOM; splitlines handles \r\n and \r.
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()


def _find(root: Path, names: tuple[str, ...], subdirs: tuple[str, ...] = TEXT_DIRS) -> Path | None:
    for sub in subdirs:
        for name in names:
            candidate = root / sub / name if sub else root / name
            if candidate.exists():
                return candidate
    return None


def _image_dir(root: Path) -> Path:
    found = _find(root, IMAGE_DIRS, ("",))
    if found is None or not found.is_dir():
        raise SupraUserError(f"no images folder in {root}: looked for {', '.join(IMAGE_DIRS)}")
    return found


def detect_layout(root: Path) -> str:
    """The layout of the Flickr8k copy at `root`, or a one-line error listing what was looked for."""
    if not root.is_dir():
        raise SupraUserError(f"data.root={root} does not exist: point it at your Flickr8k folder")
    if _find(root, ("dataset_flickr8k.json",)):
        return "karpathy"
    if _find(root, ("Flickr8k.token.txt",)):
        return "original"
    if _find(root, ("captions.txt",)):
        return "kaggle"
    raise SupraUserError(
        f"data.root={root} holds no known Flickr8k layout: looked for Flickr8k.token.txt (original), "
        "captions.txt (Kaggle) or dataset_flickr8k.json (Karpathy), also under Flickr8k_text/"
    )


def _add_caption(index: Flickr8kIndex, seen: set, name: str, caption: str, line: str) -> None:
    caption = clean_caption(caption, drop_final_stop=True)  # Flickr8k's captions end in ' .'
    if not caption:
        index.skip("blank caption", line.strip() or name)
    elif (name, caption) in seen:
        index.skip("duplicate line", line.strip())
    else:
        seen.add((name, caption))
        index.captions.setdefault(name, []).append(caption)


def _read_original(root: Path) -> Flickr8kIndex:
    index = Flickr8kIndex("original", _image_dir(root), {}, {})
    seen: set = set()
    for line in _read_text(_find(root, ("Flickr8k.token.txt",))):
        if not line.strip():
            continue
        # `<image>#<n>` then a tab, or in some copies a space
        match = re.match(r"^\s*([^#\s]+)#\d+\s+(.*)$", line)
        if match is None:
            index.skip("unreadable line", line)
            continue
        _add_caption(index, seen, match.group(1), match.group(2), line)
    for split, filename in SPLIT_FILES.items():
        path = _find(root, (filename,))
        if path is None:
            raise SupraUserError(f"{root} has Flickr8k.token.txt but no {filename}: copy the split lists beside it")
        names = [n.strip() for n in _read_text(path) if n.strip()]
        index.splits[split] = list(dict.fromkeys(names))
    return index


def _read_kaggle(root: Path, seed: int) -> Flickr8kIndex:
    index = Flickr8kIndex("kaggle", _image_dir(root), {}, {})
    seen: set = set()
    text = (_find(root, ("captions.txt",))).read_text(encoding="utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text.replace("\r\n", "\n")))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header[:2]] != ["image", "caption"]:
        raise SupraUserError(f"{root / 'captions.txt'} does not start with the header 'image,caption'")
    for row in reader:
        if not row or not "".join(row).strip():
            continue
        name, caption = row[0].strip(), ",".join(row[1:])  # an unquoted caption with commas splits: rejoin
        _add_caption(index, seen, name, caption, ",".join(row))
    names = sorted(index.captions)
    random.Random(seed).shuffle(names)
    sizes = KAGGLE_SPLIT_SIZES if len(names) >= sum(KAGGLE_SPLIT_SIZES.values()) else _scaled_sizes(len(names))
    index.splits = {"train": names[: sizes["train"]], "val": names[sizes["train"] : sizes["train"] + sizes["val"]],
                    "test": names[sizes["train"] + sizes["val"] : sizes["train"] + sizes["val"] + sizes["test"]]}
    for name in names[sum(sizes.values()):]:
        index.skip("in no split", name)
    return index


def _scaled_sizes(n: int) -> dict[str, int]:
    """6000/1000/1000 scaled down for a partial copy (75% / 12.5% / 12.5%)."""
    val = test = max(1, n // 8) if n >= 3 else 0
    return {"train": n - val - test, "val": val, "test": test}


def _read_karpathy(root: Path) -> Flickr8kIndex:
    index = Flickr8kIndex("karpathy", _image_dir(root), {"train": [], "val": [], "test": []}, {})
    seen: set = set()
    data = json.loads(_find(root, ("dataset_flickr8k.json",)).read_text(encoding="utf-8-sig"))
    for image in data.get("images", []):
        name = image["filename"]
        split = "train" if image.get("split") == "restval" else image.get("split")
        if split not in index.splits:
            index.skip("in no split", name)
            continue
        index.splits[split].append(name)
        for sentence in image.get("sentences", []):
            _add_caption(index, seen, name, sentence.get("raw", ""), f"{name}: {sentence.get('raw', '')!r}")
    return index


def read_flickr8k(root: str | Path, layout: str | None = None, seed: int = 0) -> Flickr8kIndex:
    """Parse the annotations at `root` (layout detected unless given); drop what cannot be used.

    After this, every split name has >= 1 caption and an image file on disk; everything dropped is
    counted in `skipped` by reason.
    """
    root = Path(root)
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise SupraUserError(f"data.layout={layout!r} is unknown: choose one of {', '.join(LAYOUTS)} (or null to detect)")
    index = {"original": _read_original, "karpathy": _read_karpathy}.get(layout, lambda r: _read_kaggle(r, seed))(root)
    on_disk = {p.name for p in index.image_dir.iterdir()}
    in_splits = {n for names in index.splits.values() for n in names}
    for name in sorted(set(index.captions) - in_splits):
        index.skip("in no split" if name in on_disk else "no image file", name)
    for split, names in index.splits.items():
        kept = []
        for name in names:
            if name not in on_disk:
                index.skip("no image file", name)
            elif not index.captions.get(name):
                index.skip("no caption", name)
            else:
                kept.append(name)
        index.splits[split] = kept
    return index
