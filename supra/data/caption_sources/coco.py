"""COCO captions at `root`, in either published form:

- official: `annotations/captions_{train,val}2014.json` (or `2017`), with `train2014/`, `val2014/` (or
  `train2017/`, `val2017/`) beside `annotations/` or under `images/`. Each file holds `images[]` (`id`,
  `file_name`) and `annotations[]` (`image_id`, `caption`): about five captions per image, some images
  with none, captions with a trailing newline or space. COCO publishes no test captions, so the val file
  is cut to the sizes of Karpathy's split, not to his images: a seeded 5,000 val and 5,000 test images, the
  rest trained on (1/8 each
  on a partial copy of under 40,000 images). With only one of the two files, that file is split so; with neither (a
  `data.layout=2014` over a Karpathy-only copy), one line names them.
- karpathy: `dataset_coco.json` (train / val / test / restval, `filepath` + `filename`, `cocoid`).

Every image keeps COCO's integer id (`cocoid` / `id`): predictions.json then holds the ids COCO's results
format expects.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from supra.data.caption_sources.index import (
    ANNOTATION_ID_TWICE,
    CAPTION_OF_TWO_FILES,
    ID_OF_TWO_FILES,
    NOT_TEXT,
    CaptionIndex,
    finish,
    seeded_split,
    split_sizes,
)
from supra.data.caption_sources.karpathy import read_karpathy
from supra.utils.errors import SupraUserError
from supra.utils.files import parse_json

LAYOUTS = ("karpathy", "2014", "2017")
KARPATHY_VAL_TEST = {"train": None, "val": 5000, "test": 5000}


def _annotation_file(root: Path, part: str, year: str) -> Path | None:
    for folder in (root / "annotations", root):
        if (folder / f"captions_{part}{year}.json").is_file():
            return folder / f"captions_{part}{year}.json"
    return None


def detect_layout(root: Path) -> str:
    if not root.is_dir():
        raise SupraUserError(f"data.root={root} does not exist: point it at your COCO folder")
    if (root / "dataset_coco.json").is_file():
        return "karpathy"
    for year in ("2014", "2017"):
        if any(_annotation_file(root, part, year) for part in ("train", "val")):
            return year
    raise SupraUserError(
        f"data.root={root} holds no COCO captions: looked for annotations/captions_{{train,val}}{{2014,2017}}.json "
        "(the official files) and dataset_coco.json (Karpathy's split)"
    )


def _images_root(root: Path, year: str) -> Path:
    """The folder that holds train<year>/ and val<year>/: root itself or root/images."""
    for candidate in (root, root / "images"):
        if any((candidate / f"{part}{year}").is_dir() for part in ("train", "val")):
            return candidate
    raise SupraUserError(f"no COCO image folder in {root}: looked for train{year}/ and val{year}/, also under images/")


def _check_image(path: Path, i: int, image: object) -> None:
    """One line naming the entry of `images[]` that is not an image with an integer id and a file name."""
    if not isinstance(image, dict):
        problem = f"is {image!r:.60}, not an object with id and file_name"
    elif "id" not in image or "file_name" not in image:
        problem = f"has no {'id' if 'id' not in image else 'file_name'}"
    elif not isinstance(image["file_name"], str):
        problem = f"has file_name {image['file_name']!r:.60}, not text"
    else:
        try:
            int(image["id"])
            return
        except (ValueError, TypeError):
            problem = f"has id {image['id']!r:.60}, not an integer"
    raise SupraUserError(f"{path}: images[{i}] {problem}")


def _read_official_file(index: CaptionIndex, path: Path, folder: str) -> list[str]:
    """Add one official captions file's images and captions to `index`; its image keys, in id order."""
    try:
        data = parse_json(path.read_text(encoding="utf-8-sig"))
        images, annotations = data["images"], data["annotations"]
    except (ValueError, KeyError, TypeError) as err:
        raise SupraUserError(f"{path} is not a COCO captions file (needs images[] and annotations[]: {err})") from None
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise SupraUserError(f"{path} is not a COCO captions file: its images and annotations must be lists")
    for i, image in enumerate(images):
        _check_image(path, i, image)
    for i, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise SupraUserError(f"{path}: annotations[{i}] is {annotation!r:.60}, not an object with image_id and caption")
    try:
        images = sorted(images, key=lambda im: im["id"])
    except TypeError:  # ids of numbers and of text together
        raise SupraUserError(f"{path}: the images' ids mix numbers and text: COCO's are integers") from None
    files_of: dict[int | str, dict[str, None]] = {}  # id -> its files, each once
    for image in images:
        files_of.setdefault(image["id"], {})[f"{folder}/{image['file_name']}"] = None
    key_of: dict[int | str, str | None] = {}
    for image_id, keys in files_of.items():
        if len(keys) > 1:  # which picture the id's captions describe is unknown: neither is kept, none moves
            for key in keys:
                index.skip(ID_OF_TWO_FILES, f"{path.name}: id {image_id} {key}")
            key_of[image_id] = None
            continue
        key_of[image_id] = key = next(iter(keys))
        index.ids[key] = int(image_id)
    for annotation in annotations:
        image_id = annotation.get("image_id")
        known = isinstance(image_id, Hashable) and image_id in key_of
        key = key_of[image_id] if known else None
        caption = annotation.get("caption")
        if key is None:
            reason = CAPTION_OF_TWO_FILES if known else "caption for an unknown image id"
            index.skip(reason, f"{path.name}: image_id {annotation.get('image_id')}")
        elif not isinstance(caption, str):  # null, a number, or none at all: as Karpathy's and HF's readers say
            index.skip(NOT_TEXT, f"{key}: {caption!r}"[:80])
        else:
            annotation_id = annotation.get("id")  # the caption's own id: an annotation listed twice is one caption
            index.add_caption(key, caption, f"{key}: {caption!r}", record_again=ANNOTATION_ID_TWICE,
                              record=annotation_id if isinstance(annotation_id, Hashable) else None)
    return [key for key in key_of.values() if key is not None]


def _read_official(root: Path, year: str, seed: int) -> CaptionIndex:
    train_file, val_file = (_annotation_file(root, part, year) for part in ("train", "val"))
    if train_file is None and val_file is None:  # either file alone gives every split; neither gives none
        if not root.is_dir():
            raise SupraUserError(f"data.root={root} does not exist: point it at your COCO folder")
        karpathy = (" (it holds Karpathy's dataset_coco.json: data.layout=karpathy, or null, reads that)"
                    if (root / "dataset_coco.json").is_file() else "")
        raise SupraUserError(f"{root} has no annotations/captions_train{year}.json or captions_val{year}.json "
                             f"(data.layout={year}){karpathy}")
    index = CaptionIndex(year, _images_root(root, year), {}, {})
    train = _read_official_file(index, train_file, f"train{year}") if train_file else []
    if val_file is None:  # only the train file: split it as the val file would be
        index.splits = seeded_split(train, split_sizes(len(train), KARPATHY_VAL_TEST), seed)
        return index
    val = _read_official_file(index, val_file, f"val{year}")
    index.splits = seeded_split(val, split_sizes(len(val), KARPATHY_VAL_TEST), seed)
    index.splits["train"] = train + index.splits["train"]
    return index


def read_coco(root: str | Path, layout: str | None = None, seed: int = 0) -> CaptionIndex:
    """The COCO captions at `root` (layout detected unless given), unusable entries dropped and counted."""
    root = Path(root)
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise SupraUserError(f"data.layout={layout!r} is unknown for COCO: choose one of {', '.join(LAYOUTS)} (or null)")
    if layout == "karpathy":
        if not (root / "dataset_coco.json").is_file():
            raise SupraUserError(f"{root} has no dataset_coco.json (data.layout=karpathy)")
        images_root = root / "images" if (root / "images").is_dir() else root
        return finish(read_karpathy(root / "dataset_coco.json", images_root))
    return finish(_read_official(root, layout, seed))
