"""Small Flickr8k copies in the three published layouts, with the traps real copies have.

Each writer returns what a correct reader must find: images per split, captions per split, and the
skip counts by reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

N_IMAGES = {"train": 12, "val": 4, "test": 4}
CAPTION = "a dog number {i} runs on the grass"


def names() -> dict[str, list[str]]:
    out, i = {}, 0
    for split, n in N_IMAGES.items():
        out[split] = [f"{1000 + j:06d}_{split}.jpg" for j in range(i, i + n)]
        i += n
    return out


def write_images(folder: Path, image_names: list[str], corrupt: str | None = None) -> None:
    """JPEGs of varied sizes in the modes real copies hold (RGB, L, CMYK), some with an EXIF rotation;
    `corrupt` gets junk bytes instead."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(image_names):
        if name == corrupt:
            (folder / name).write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
            continue
        h, w = (40 + 7 * (k % 5), 60 + 5 * (k % 3))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        mode = ("RGB", "L", "CMYK")[k % 3]
        image = image.convert(mode)
        exif = Image.Exif()
        if k % 4 == 1:
            exif[0x0112] = 6  # orientation: rotate 90 degrees
        image.save(folder / name, format="JPEG", exif=exif.tobytes())


def captions_for(i: int) -> list[str]:
    return [CAPTION.format(i=i) + f" variant {n}" for n in range(5)]


def write_original(root: Path, with_text_subdir: bool = True) -> dict:
    """Flickr8k.token.txt + split lists (+ traps) + Flicker8k_Dataset/ (the published misspelling)."""
    split_names = names()
    all_names = [n for ns in split_names.values() for n in ns]
    text = root / "Flickr8k_text" if with_text_subdir else root
    text.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, name in enumerate(all_names):
        for n, caption in enumerate(captions_for(i)):
            sep = " " if (i == 2 and n == 0) else "\t"  # trap: a space instead of the tab
            tail = " ." if n == 1 else ("   " if n == 2 else "")  # traps: ' .' and trailing spaces
            lines.append(f"{name}#{n}{sep}{caption}{tail}")
    lines.append(lines[3])  # trap: a duplicate line (the same #n twice: one caption)
    lines.append(f"{all_names[4]}#5\t   ")  # trap: a blank caption
    lines.append("2258277193_586949ec62.jpg.1#0\tA dog with no image file .")  # trap: the real copy's bad id
    lines.append("999999_nosplit.jpg#0\tan image in no split list")  # trap: in no split
    (text / "Flickr8k.token.txt").write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))  # BOM + CRLF
    for split, filename in (("train", "trainImages"), ("val", "devImages"), ("test", "testImages")):
        (text / f"Flickr_8k.{filename}.txt").write_text("\r\n".join(split_names[split]) + "\r\n")
    write_images(root / "Flicker8k_Dataset", all_names + ["999999_nosplit.jpg"])
    return {
        "images": {s: len(n) for s, n in split_names.items()},
        "captions": {s: 5 * len(n) for s, n in split_names.items()},
        "skipped": {"duplicate line": 1, "blank caption": 1, "no image file": 1, "in no split": 1},
    }


def write_kaggle(root: Path, n_images: int = 24, corrupt_one: bool = True) -> dict:
    """captions.txt (CSV with header, quoted captions with commas) + Images/; no split lists."""
    all_names = [f"{2000 + i:06d}.jpg" for i in range(n_images)]
    rows = ["image,caption"]
    for i, name in enumerate(all_names):
        for n, caption in enumerate(captions_for(i)):
            if n == 0:
                caption = f'"{caption}, with a comma"'  # trap: quoted caption with a comma
            rows.append(f"{name},{caption}")
    rows.append(f"{all_names[0]},   ")  # trap: blank caption
    rows.append(rows[2])  # trap: a repeated row (two references: the rows have no caption numbers)
    rows.append("missing_file.jpg,a caption for an image that is not there")  # trap: no image file
    (root).mkdir(parents=True, exist_ok=True)
    (root / "captions.txt").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    corrupt = all_names[5] if corrupt_one else None
    write_images(root / "Images", all_names, corrupt=corrupt)
    return {"n_images": n_images, "corrupt": corrupt}


def write_karpathy(root: Path) -> dict:
    """dataset_flickr8k.json (train/val/test/restval) + images folder."""
    split_names = names()
    images = []
    for i, (split, name) in enumerate((s, n) for s, ns in split_names.items() for n in ns):
        json_split = "restval" if (split == "train" and i % 4 == 0) else split
        images.append({"filename": name, "split": json_split, "sentences": [{"raw": c} for c in captions_for(i)]})
    images[0]["sentences"].append({"raw": "  "})  # trap: blank caption
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_flickr8k.json").write_text(json.dumps({"images": images, "dataset": "flickr8k"}))
    write_images(root / "Images", [n for ns in split_names.values() for n in ns])
    return {"images": {s: len(n) for s, n in split_names.items()}}
