"""Small copies of COCO, Flickr30k and a captioned folder in their exact published layouts, with the traps
real copies have. Each writer returns what a correct reader must find: images per split and the skip
counts by reason (and, for COCO, which id each image file has)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.flickr8k_fixtures import write_images


def coco_caption(i: int, n: int) -> str:
    return f"A photo number {i} of a cat on a sofa, take {n}."


def write_coco_official(root: Path, year: str = "2014", under_images: bool = False) -> dict:
    """annotations/captions_{train,val}<year>.json + train<year>/, val<year>/ (or under images/).

    Traps: ids out of order, an image listed with no caption, a caption for an unknown image id, an
    image whose file is missing, captions ending in a newline or spaces, a blank caption.
    """
    def file_name(part: str, image_id: int) -> str:
        return f"COCO_{part}{year}_{image_id:012d}.jpg" if year == "2014" else f"{image_id:012d}.jpg"

    images_root = root / "images" if under_images else root
    files: dict[str, int] = {}
    for part, ids in (("train", range(101, 113)), ("val", range(201, 217))):
        images, annotations = [], []
        for image_id in reversed(ids):  # out of order, as the real files are not sorted either
            images.append({"id": image_id, "file_name": file_name(part, image_id), "width": 60, "height": 40,
                           "license": 1, "coco_url": "", "flickr_url": "", "date_captured": ""})
            if image_id == 101:
                continue  # trap: an image with no caption
            for n in range(5):
                caption = coco_caption(image_id, n) + ("\n" if n == 1 else "  " if n == 2 else "")
                annotations.append({"image_id": image_id, "id": image_id * 10 + n, "caption": caption})
        if part == "train":
            annotations.append({"image_id": 999, "id": 99990, "caption": "A caption of no image."})  # trap
            annotations.append({"image_id": 105, "id": 10599, "caption": "   "})  # trap: blank
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{part}{year}.json").write_text(json.dumps(
            {"info": {"year": int(year)}, "licenses": [], "images": images, "annotations": annotations}))
        on_disk = [im["file_name"] for im in images if im["id"] != 102]  # trap: image 102's file is missing
        write_images(images_root / f"{part}{year}", on_disk)
        files.update({f"{part}{year}/{im['file_name']}": im["id"] for im in images})
    return {
        # train file: 12 - 101 (no caption) - 102 (no file); val file: 16 = 2 val + 2 test + 12 trained on
        "images": {"train": 10 + 12, "val": 2, "test": 2},
        "skipped": {"caption for an unknown image id": 1, "blank caption": 1, "no caption": 1, "no image file": 1},
        "ids": files,
    }


def write_coco_karpathy(root: Path) -> dict:
    """dataset_coco.json (train / restval / val / test, filepath + filename, cocoid) + train2014/, val2014/."""
    splits = ["train"] * 6 + ["restval"] * 4 + ["val"] * 3 + ["test"] * 3
    images = []
    for k, split in enumerate(splits):
        part = "train2014" if split == "train" else "val2014"
        cocoid = 500 + k
        images.append({"filepath": part, "filename": f"COCO_{part}_{cocoid:012d}.jpg", "cocoid": cocoid,
                       "imgid": k, "split": split, "sentids": [],
                       "sentences": [{"raw": coco_caption(cocoid, n), "tokens": [], "imgid": k} for n in range(5)]})
    (root).mkdir(parents=True, exist_ok=True)
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    for part in ("train2014", "val2014"):
        write_images(root / part, [im["filename"] for im in images if im["filepath"] == part])
    return {"images": {"train": 10, "val": 3, "test": 3}, "skipped": {},
            "ids": {f"{im['filepath']}/{im['filename']}": im["cocoid"] for im in images}}


def flickr30k_names(n: int = 20) -> list[str]:
    return [f"{1000092795 + 7 * i}.jpg" for i in range(n)]


def flickr30k_caption(i: int, n: int) -> str:
    return f"Two young guys number {i} look at their hands , take {n}"


def write_flickr30k(root: Path, layout: str) -> dict:
    """karpathy: dataset_flickr30k.json + flickr30k_images/; token: results_20130124.token +
    flickr30k_images/; csv: the Kaggle copy, flickr30k_images/results.csv beside the nested
    flickr30k_images/flickr30k_images/ that holds the pictures, with the published file's broken row."""
    names = flickr30k_names()
    if layout == "karpathy":
        splits = ["train"] * 14 + ["val"] * 3 + ["test"] * 3
        images = [{"filename": name, "split": split, "sentences": [{"raw": flickr30k_caption(i, n) + " ."}
                   for n in range(5)]} for i, (name, split) in enumerate(zip(names, splits, strict=True))]
        root.mkdir(parents=True, exist_ok=True)
        (root / "dataset_flickr30k.json").write_text(json.dumps({"images": images, "dataset": "flickr30k"}))
        write_images(root / "flickr30k_images", names)
        return {"images": {"train": 14, "val": 3, "test": 3}, "skipped": {}}
    if layout == "token":
        lines = [f"{name}#{n}\t{flickr30k_caption(i, n)} ." for i, name in enumerate(names) for n in range(5)]
        root.mkdir(parents=True, exist_ok=True)
        (root / "results_20130124.token").write_text("\n".join(lines) + "\n")
        write_images(root / "flickr30k_images", names)
        return {"images": {"train": 16, "val": 2, "test": 2}, "skipped": {}}
    lines = ["image_name| comment_number| comment"]
    for i, name in enumerate(names):
        for n in range(5):
            if i == 3 and n == 4:  # trap: the published row 19999 lost its second '|'
                lines.append(f"{name}| {n}   {flickr30k_caption(i, n)} .")
            else:
                lines.append(f"{name}| {n}| {flickr30k_caption(i, n)} .")
    lines.append(f"{names[0]}| 5| ")  # trap: a blank caption
    folder = root / "flickr30k_images"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.csv").write_text("\n".join(lines) + "\n")
    write_images(folder / "flickr30k_images", names)
    return {"images": {"train": 16, "val": 2, "test": 2}, "skipped": {"blank caption": 1}}


def write_caption_folder(root: Path) -> dict:
    """Photos in subfolders (two of them named alike) with captions from every kind of file: photo.txt
    beside a photo (BOM, CRLF), captions.jsonl, captions.tsv; traps: photos with no caption, a blank
    caption, a caption for a file that is not there."""
    captioned = [f"park/{i}.jpg" for i in range(4)] + [f"beach/{i}.jpg" for i in range(4)] + ["dogs/a.png", "dogs/b.jpg"]
    uncaptioned = ["park/extra.jpg", "beach/extra.jpg"]
    for folder in ("park", "beach", "dogs"):
        write_images(root / folder, [Path(n).name for n in captioned + uncaptioned if n.startswith(folder + "/")])
    for n in ("park/0", "park/1", "park/2", "park/3"):
        (root / f"{n}.txt").write_bytes(("\ufeff" + f"a green park {n}\r\nchildren playing in {n}\r\n").encode())
    (root / "captions.jsonl").write_text("\n".join(json.dumps({"file": f"beach/{i}.jpg", "caption": f"waves on beach {i}"})
                                                    for i in range(4))
                                         + "\n" + json.dumps({"file": "beach/gone.jpg", "caption": "no such file"}) + "\n")
    (root / "captions.tsv").write_text("file\tcaption\ndogs/a.png\ta dog, running\ndogs/b.jpg\ta dog asleep\ndogs/b.jpg\t  \n")
    return {"images": {"train": 7, "val": 1, "test": 2},  # by the names' draws (split_by_file, seed 0)
            "skipped": {"for no media file": 1, "blank caption": 1, "no caption": 2}}


def jpeg_bytes(i: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(i).integers(0, 256, (36 + i % 5, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_hf_dataset(root: Path, layout: str) -> dict:
    """A Hugging Face dataset as `datasets` writes it: save_to_disk (a DatasetDict with train / validation /
    test) or parquet files as the Hub ships them (data/train-0000x-of-00002.parquet, data/test-...; no
    validation: it is cut from train). Image column with the Image feature; captions a string in some rows
    and a list in others. Traps: an image that is null, one given as a path (the file beside the dataset),
    one as a path that is not there, a blank caption, a caption list holding a non-string."""
    import datasets

    def rows(split: str, n: int, start: int) -> dict:
        images, captions = [], []
        for k in range(n):
            i = start + k
            images.append({"bytes": jpeg_bytes(i), "path": None})
            captions.append([f"a {split} picture {i}", f"another view {i}"] if i % 2 else f"a {split} picture {i}")
        return {"image": images, "caption": captions, "image_id": list(range(start, start + n))}

    parts = {"train": rows("train", 16, 0), "validation": rows("validation", 3, 100), "test": rows("test", 3, 200)}
    for part in parts.values():  # one column type: every caption a list
        part["caption"] = [c if isinstance(c, list) else [c] for c in part["caption"]]
    train = parts["train"]
    train["image"][1] = None  # trap: no image
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "photos" / "two.jpg").write_bytes(jpeg_bytes(2))
    (root / "photos" / "gone.jpg").write_bytes(jpeg_bytes(3))  # deleted once saved: datasets stats it
    train["image"][2] = {"bytes": None, "path": "photos/two.jpg"}  # trap: a path, and the file is there
    train["image"][3] = {"bytes": None, "path": "photos/gone.jpg"}  # trap: a path to nothing
    train["caption"][4] = ["   "]  # trap: a blank caption (the image then has none)
    train["caption"][5] = [f"a train picture {5}", None]  # trap: a caption that is not text
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.List(datasets.Value("string")),
                                  "image_id": datasets.Value("int64")})
    made = {name: datasets.Dataset.from_dict(part, features=features) for name, part in parts.items()}
    cwd = os.getcwd()
    os.chdir(root)  # image paths are relative to the dataset, as on the Hub
    try:
        write_hf_layout(root, layout, made)
    finally:
        os.chdir(cwd)
    (root / "photos" / "gone.jpg").unlink()
    # save_to_disk embeds the files that image paths name (both were there when it ran), so only the null
    # image is unusable there; parquet keeps the paths, and one of them leads nowhere by now
    unusable = 1 if layout == "save_to_disk" else 2
    sizes = {"train": 14, "val": 3, "test": 3} if layout == "save_to_disk" else {"train": 12, "val": 1, "test": 3}
    skipped = {"no usable image (empty, or a path that is not there)": unusable, "blank caption": 1,
               "caption that is not text": 1, "no caption": 1}
    return {"images": sizes, "skipped": skipped}


def write_hf_layout(root: Path, layout: str, made: dict) -> None:
    import datasets

    if layout == "save_to_disk":
        datasets.DatasetDict(made).save_to_disk(str(root))
    else:
        half = len(made["train"]) // 2
        (root / "data").mkdir(parents=True, exist_ok=True)
        made["train"].select(range(half)).to_parquet(str(root / "data" / "train-00000-of-00002.parquet"))
        made["train"].select(range(half, 16)).to_parquet(str(root / "data" / "train-00001-of-00002.parquet"))
        made["test"].to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
        # no validation file: val is cut from train's 13 images with an image and a caption: 13 // 8 = 1


def img2dataset_key(shard: int, index: int) -> str:
    """img2dataset's sample key: the shard number in 5 digits, then the sample number in 4."""
    return f"{shard:05d}{index:04d}"


def write_img2dataset_shards(folder: Path, shards: int = 4, per_shard: int = 8, traps: bool = False,
                             truncate_last: bool = False, repeated_ids: bool = False) -> dict:
    """`00000.tar` ... with `{key}.jpg`, `{key}.txt`, `{key}.json` per sample, `00000_stats.json` and
    `00000.parquet` beside each, as img2dataset writes them. With `traps`, shard 0 also holds a corrupt
    JPEG, a sample whose download failed (status failed_to_download, no image), a sample with no caption
    and one with a blank caption; `truncate_last` cuts the last tar in the middle of a sample;
    `repeated_ids` gives each json the `id` img2dataset copies from a parquet with a row per caption
    (save_additional_columns=["id"]): 0, 0, 1, 1, ... each shared by two samples."""
    import io
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    usable, complete = [], True
    for shard in range(shards):
        rows, buffer = [], io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            def add(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(name)
                # a float mtime, as webdataset's TarWriter (img2dataset's) stores: a PAX header per file
                info.size, info.mtime = len(data), 1_700_000_000.25
                tar.addfile(info, io.BytesIO(data))

            for index in range(per_shard):
                key = img2dataset_key(shard, index)
                caption = f"photo {shard} {index} of a red bus"
                meta = {"url": f"https://example.com/{key}.jpg", "caption": caption, "key": key, "status": "success",
                        "error_message": None, "width": 48, "height": 36, "original_width": 480,
                        "original_height": 360, "exif": "{}", "sha256": "0" * 64}
                if repeated_ids:
                    meta["id"] = (shard * per_shard + index) // 2
                add(f"{key}.jpg", jpeg_bytes(shard * 100 + index))
                add(f"{key}.txt", caption.encode())
                add(f"{key}.json", json.dumps(meta).encode())
                rows.append(meta)
                usable.append(f"{shard:05d}.tar/{key}")
            if traps and shard == 0:
                for index, kind in enumerate(("corrupt", "failed", "no caption", "blank"), start=per_shard):
                    key = img2dataset_key(shard, index)
                    meta = {"url": f"https://example.com/{key}.jpg", "caption": "x", "key": key, "status": "success",
                            "error_message": None}
                    if kind == "no caption":  # img2dataset writes no .txt and a null caption in the json
                        meta["caption"] = None
                    if kind == "failed":
                        meta.update(status="failed_to_download", error_message="HTTP Error 404")
                    else:
                        add(f"{key}.jpg", b"\xff\xd8\xff\xe0 not a jpeg" if kind == "corrupt" else jpeg_bytes(index))
                    if kind != "no caption":
                        add(f"{key}.txt", b"   " if kind == "blank" else b"a trap")
                    add(f"{key}.json", json.dumps(meta).encode())
                    rows.append(meta)
        data = buffer.getvalue()
        if truncate_last and shard == shards - 1:  # the samples before the cut stay readable
            data = data[: len(data) // 2 + 100]
            usable = [k for k in usable if not k.startswith(f"{shard:05d}.tar/")]
            complete = False
        (folder / f"{shard:05d}.tar").write_bytes(data)
        successes = sum(r["status"] == "success" for r in rows)
        (folder / f"{shard:05d}_stats.json").write_text(json.dumps({
            "count": len(rows), "successes": successes, "failed_to_download": len(rows) - successes,
            "failed_to_resize": 0, "duration": 1.0, "start_time": 0.0, "end_time": 1.0,
            "status_dict": {"success": successes}}))
        columns = ("url", "caption", "key", "status", "error_message")
        pq.write_table(pa.table({c: [r.get(c) for r in rows] for c in columns}), folder / f"{shard:05d}.parquet")
    # usable: every sample of the intact shards (the truncated one's are not listed)
    return {"usable": usable, "spec": str(folder / f"{{00000..{shards - 1:05d}}}.tar"), "complete": complete}


def hf_split(split: str, n: int, **columns: list):
    """n rows of a Hugging Face dataset split: an Image column (pictures of that split's own, as a dataset's
    splits have), a caption naming the split, and `columns`."""
    import zlib

    import datasets

    pictures = [jpeg_bytes(zlib.crc32(f"{split}/{i}".encode())) for i in range(n)]
    return datasets.Dataset.from_dict({"image": [{"bytes": picture, "path": None} for picture in pictures],
                                       "caption": [f"a {split} picture {i}" for i in range(n)], **columns}
                                      ).cast_column("image", datasets.Image())


def write_row_per_caption_parquet(root, pictures: list[int], columns: dict | None = None) -> None:
    """A Hub-style parquet with a row per caption: row i holds picture `pictures[i]` and a caption naming it."""
    import datasets

    table = datasets.Dataset.from_dict({"image": [{"bytes": jpeg_bytes(i), "path": None} for i in pictures],
                                        "caption": [f"picture {i} row {row}" for row, i in enumerate(pictures)],
                                        **(columns or {})})
    table = table.cast_column("image", datasets.Image())
    (root / "data").mkdir(parents=True)
    table.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
