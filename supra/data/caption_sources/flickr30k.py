"""Flickr30k at `root`, in any of its published forms, images in `flickr30k_images/` (the Kaggle copy
nests them once more: `flickr30k_images/flickr30k_images/`), `flickr30k-images/` (the official tarball's,
as many copies unpack) or `Images/`:

- karpathy: `dataset_flickr30k.json` (train / val / test, `filename`, `sentences[].raw`);
- token: the original `results_20130124.token`, `<image>#<n>\\t<caption>` as Flickr8k's;
- csv: the widely shared `results.csv`: header `image_name| comment_number| comment`, columns split by
  `|` with spaces around them, and one row of the published file missing its second `|`
  (`2199200615.jpg| 4   A dog runs across the grass .`), recovered rather than dropped.

token and csv come without splits: a seeded 1,000 val and 1,000 test images (Karpathy's sizes), the rest
train (on a partial copy of under 8,000 images, 1/8 each: index.split_sizes).
"""

from __future__ import annotations

import re
from pathlib import Path

from supra.data.caption_sources.flickr8k import find, read_token_file
from supra.data.caption_sources.index import CaptionIndex, finish, seeded_split, split_sizes
from supra.data.caption_sources.karpathy import read_karpathy
from supra.data.captions import read_lines
from supra.utils.errors import SupraUserError

LAYOUTS = ("karpathy", "token", "csv")
IMAGE_DIRS = ("flickr30k_images/flickr30k_images", "flickr30k_images", "flickr30k-images", "Images", "images")
TEXT_DIRS = ("", "flickr30k_images")
FILES = {"karpathy": "dataset_flickr30k.json", "token": "results_20130124.token", "csv": "results.csv"}
SPLIT_SIZES = {"train": None, "val": 1000, "test": 1000}
NUMBER_THEN_CAPTION = re.compile(r"^\s*(\d+)\s+(.*)$")  # the row whose second '|' is missing


def _image_dir(root: Path) -> Path:
    for name in IMAGE_DIRS:
        # the nested Kaggle folder counts only when it holds the pictures, not just results.csv
        if (root / name).is_dir() and any(p.suffix.lower() == ".jpg" for p in (root / name).iterdir()):
            return root / name
    raise SupraUserError(f"no Flickr30k images folder in {root}: looked for {', '.join(IMAGE_DIRS)}")


def detect_layout(root: Path) -> str:
    if not root.is_dir():
        raise SupraUserError(f"data.root={root} does not exist: point it at your Flickr30k folder")
    for layout, name in FILES.items():
        if find(root, (name,), TEXT_DIRS):
            return layout
    raise SupraUserError(f"data.root={root} holds no known Flickr30k layout: looked for {', '.join(FILES.values())}, "
                         "also under flickr30k_images/")


def _read_csv(index: CaptionIndex, path: Path) -> None:
    lines = read_lines(path)
    header = [h.strip().lower() for h in (lines[0].split("|") if lines else [])]
    if header[:3] != ["image_name", "comment_number", "comment"]:
        raise SupraUserError(f"{path} does not start with the header 'image_name| comment_number| comment'")
    for line in lines[1:]:
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) >= 3:
            name, number, caption = parts[0].strip(), parts[1].strip(), "|".join(parts[2:])
        elif len(parts) == 2 and NUMBER_THEN_CAPTION.match(parts[1]):
            name, (number, caption) = parts[0].strip(), NUMBER_THEN_CAPTION.match(parts[1]).groups()
        else:
            index.skip("unreadable line", line)
            continue
        index.add_caption(name, caption, line, record=number)  # comment_number: the caption's own id


def read_flickr30k(root: str | Path, layout: str | None = None, seed: int = 0) -> CaptionIndex:
    """The Flickr30k captions at `root` (layout detected unless given), unusable entries dropped and counted."""
    root = Path(root)
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise SupraUserError(f"data.layout={layout!r} is unknown for Flickr30k: choose one of {', '.join(LAYOUTS)} (or null)")
    path = find(root, (FILES[layout],), TEXT_DIRS)
    if path is None:
        raise SupraUserError(f"{root} has no {FILES[layout]} (data.layout={layout})")
    if layout == "karpathy":
        return finish(read_karpathy(path, _image_dir(root)))
    index = CaptionIndex(layout, _image_dir(root), {}, {})
    if layout == "token":
        read_token_file(index, path)
    else:
        _read_csv(index, path)
    names = sorted(index.captions)
    index.splits = seeded_split(names, split_sizes(len(names), SPLIT_SIZES), seed)
    return finish(index)
