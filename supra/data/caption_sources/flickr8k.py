"""Reading Flickr8k's annotations in every layout people have, traps included, into one CaptionIndex (index.py).

Layouts (detected from the files present, or forced):
- original:  Flickr8k.token.txt (`<image>.jpg#<n>\\t<caption>`), Flickr_8k.{train,dev,test}Images.txt,
             images in Flicker8k_Dataset/ (sic), Flickr8k_Dataset/ or Images/; text files possibly in Flickr8k_text/
- kaggle:    captions.txt (CSV, header `image,caption`, quoted captions with commas) and Images/;
             no split lists: a seeded shuffle of the sorted names gives 6000/1000/1000
- karpathy:  dataset_flickr8k.json (images[].filename, .split in train/val/test/restval, .sentences[].raw)

Traps handled and counted: CRLF line ends, a UTF-8 BOM, a space instead of the tab, ids naming an image
with no file, images in no split list, blank captions, duplicate lines (the same `#n` twice: one caption;
two `#n` of one text are two references, trained on once), trailing spaces or " ." (trained on without it).
"""

from __future__ import annotations

import re
from pathlib import Path

from supra.data.caption_sources.index import CaptionIndex, finish, seeded_split, split_sizes
from supra.data.caption_sources.karpathy import read_karpathy
from supra.data.captions import read_caption_table, read_lines
from supra.data.folder_index import MEDIA_SUFFIXES
from supra.utils.errors import SupraUserError

LAYOUTS = ("original", "kaggle", "karpathy")
IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")
TEXT_DIRS = ("", "Flickr8k_text")
SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"}
KAGGLE_SPLIT_SIZES = {"train": 6000, "val": 1000, "test": 1000}
# A token line: `<image>#<n>` then a tab, or in some copies a space. Flickr30k's .token file is the same.
TOKEN_LINE = re.compile(r"^\s*([^#\s]+)#(\d+)\s+(.*)$")  # image, caption number, caption


def find(root: Path, names: tuple[str, ...], subdirs: tuple[str, ...] = TEXT_DIRS) -> Path | None:
    for sub in subdirs:
        for name in names:
            candidate = root / sub / name if sub else root / name
            if candidate.exists():
                return candidate
    return None


def image_dir(root: Path, candidates: tuple[str, ...] = IMAGE_DIRS) -> Path:
    found = find(root, candidates, ("",))
    if found is None or not found.is_dir():
        raise SupraUserError(f"no images folder in {root}: looked for {', '.join(candidates)}")
    return found


def detect_layout(root: Path) -> str:
    """The layout of the Flickr8k copy at `root`, or a one-line error listing what was looked for."""
    if not root.is_dir():
        raise SupraUserError(f"data.root={root} does not exist: point it at your Flickr8k folder")
    if find(root, ("dataset_flickr8k.json",)):
        return "karpathy"
    if find(root, ("Flickr8k.token.txt",)):
        return "original"
    if find(root, ("captions.txt",)):
        return "kaggle"
    raise SupraUserError(
        f"data.root={root} holds no known Flickr8k layout: looked for Flickr8k.token.txt (original), "
        "captions.txt (Kaggle) or dataset_flickr8k.json (Karpathy), also under Flickr8k_text/"
    )


def read_token_file(index: CaptionIndex, path: Path) -> None:
    """`<image>#<n>\t<caption>` lines (Flickr8k.token.txt, Flickr30k's results_20130124.token)."""
    for line in read_lines(path):
        if not line.strip():
            continue
        match = TOKEN_LINE.match(line)
        if match is None:
            index.skip("unreadable line", line)
            continue
        # `#n` numbers the image's captions: the same line twice is one caption, two #n with one text two
        index.add_caption(match.group(1), match.group(3), line, record=int(match.group(2)))


def _read_original(root: Path) -> CaptionIndex:
    index = CaptionIndex("original", image_dir(root), {}, {})
    read_token_file(index, find(root, ("Flickr8k.token.txt",)))
    for split, filename in SPLIT_FILES.items():
        path = find(root, (filename,))
        if path is None:
            raise SupraUserError(f"{root} has Flickr8k.token.txt but no {filename}: copy the split lists beside it")
        names = [n.strip() for n in read_lines(path) if n.strip()]
        index.splits[split] = list(dict.fromkeys(names))
    return index


def _read_kaggle(root: Path, seed: int) -> CaptionIndex:
    index = CaptionIndex("kaggle", image_dir(root), {}, {})
    table = find(root, ("captions.txt",))
    for _, name, caption in read_caption_table(table, ("image", "caption"), media_suffixes=MEDIA_SUFFIXES):
        index.add_caption(name.strip(), caption, f"{name},{caption}")
    names = sorted(index.captions)
    index.splits = seeded_split(names, split_sizes(len(names), KAGGLE_SPLIT_SIZES), seed)
    return index


def read_flickr8k(root: str | Path, layout: str | None = None, seed: int = 0) -> CaptionIndex:
    """Parse the annotations at `root` (layout detected unless given); drop what cannot be used.

    After this, every split name has >= 1 caption and an image file on disk; everything dropped is
    counted in `skipped` by reason.
    """
    root = Path(root)
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise SupraUserError(f"data.layout={layout!r} is unknown: choose one of {', '.join(LAYOUTS)} (or null to detect)")
    if layout == "original":
        index = _read_original(root)
    elif layout == "karpathy":
        index = read_karpathy(find(root, ("dataset_flickr8k.json",)), image_dir(root))
    else:
        index = _read_kaggle(root, seed)
    return finish(index)
