"""A Hugging Face dataset on disk, read with `datasets` and nothing downloaded:

- save_to_disk: a DatasetDict folder (`dataset_dict.json` + one folder per split) or a Dataset folder
  (`state.json` + `data-*.arrow`);
- parquet, as datasets on the Hub ship: `*.parquet` anywhere under root, the split named by the file or its
  folder (`data/train-00000-of-00002.parquet`, `validation/0000.parquet`).

`image_column` holds the image: the Hub's Image feature ({"bytes", "path"}), raw bytes, or (a trap) a path
instead of bytes, read relative to root when the file is there (and named in predictions.json's `file`,
where an image held as bytes has none) and skipped otherwise. `caption_column`
holds one caption (a string) or several (a list of strings). Split names: train, validation / valid / val /
dev, test (and Karpathy's restval: train), as a word anywhere in a save_to_disk split's name or a parquet file's
(`train2014`), the parts of one split joined; what no split word names is left out and counted, except parquet files
none of which names one (train). A folder of several configs (`<config>/<split>/*.parquet`) is refused, naming
them. Splits the dataset lacks, or holds without one caption, are cut from train by a seeded 1/8 each (at most
1,000 images). Each image is keyed `<split>/<row>`. With `id_column`, the dataset's own id goes to
predictions.json, and rows that repeat an id (datasets with a row per caption) are one image with all their
captions: otherwise the same picture would be in train and test, scored against one reference. Rows of one id must
hold the same image (bytes, or the file named): a column several pictures share (an album) is one line naming it.
Without `id_column`, rows holding identical bytes (or naming one file) are joined the same way, across splits too
(kept in test before val before train), said in the summary line: a row per caption read without its id column
would otherwise be split by row. Joined rather than refused, since the rows say plainly that they are one picture;
the image keeps its first row's key and
no id (the dataset's ids are id_column's alone).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Hashable
from pathlib import Path
from typing import Any, NamedTuple

from supra.data.caption_sources.index import (
    NOT_TEXT,
    SPLIT_NAMES,
    CaptionIndex,
    finish,
    seeded_split,
    split_sizes,
)
from supra.data.image_cache import StoredImage
from supra.utils.disk_room import no_room_reason, room_to_write
from supra.utils.errors import SupraUserError
from supra.utils.folder_walk import file_stamp
from supra.utils.numbers import counted

# Karpathy's restval (COCO val2014 images outside his val and test) is trained on, as dataset_coco.json's is
SPLIT_ALIASES = {"train": "train", "training": "train", "restval": "train", "validation": "val", "valid": "val",
                 "val": "val", "dev": "val", "test": "test", "testing": "test"}
CARVED_SIZES = {"train": None, "val": 1000, "test": 1000}
SPLIT_WORDS = {"val": "validation", "test": "test"}  # as a dataset names them
LEFT_OUT = "row of a split that is not train, validation or test"
SPLIT_WITHOUT_CAPTIONS = "image of a split without captions (cut from train instead)"


class Loaded(NamedTuple):
    """A dataset on disk as load_splits reads it."""

    layout: str
    splits: dict[str, Any]  # our split name -> datasets.Dataset (every part of that split joined)
    left_out: dict[str, int]  # each split or file no split word names -> its rows (counted, not read)
    files: list[Path]  # the files read (their stamps key the caches)


def _named_split(name: str) -> str | None:
    """The split a name says, a split word anywhere in it as `datasets` finds it (`train-00000-of-00002`,
    `partial-test`, `coco_val2014`, `validation2014-0`), or None."""
    return next((SPLIT_ALIASES[w] for w in re.findall(r"[a-z]+", name.lower()) if w in SPLIT_ALIASES), None)


def _parquet_split(path: Path, root: Path) -> str | None:
    """The split a parquet file belongs to, from its name or else its folders, nearest first, or None where
    none says: the Hub's converted `partial-test/0000` is test."""
    for part in (path.stem, *reversed(path.relative_to(root).parent.parts)):
        split = _named_split(part)
        if split is not None:
            return split
    return None


def _check_one_schema(split: str, schemas: dict[str, Any], where: str) -> None:
    """One line where the parts of one split (its parquet files, or save_to_disk splits of one split word) type
    a column otherwise: `datasets` would end in a cast error's traceback. A column of nulls alone fits any type."""
    import pyarrow as pa

    (first, schema), *rest = schemas.items()
    for name, other in rest:
        for column in dict.fromkeys([*schema.names, *other.names]):
            kinds = [s.field(column).type if column in s.names else None for s in (schema, other)]
            if kinds[0] is not None and kinds[1] is not None and _offsets_aside(kinds[0]) == _offsets_aside(kinds[1]):
                continue  # string and large_string (pandas and polars write either) hold the same text
            if kinds[0] != kinds[1] and not any(kind is not None and pa.types.is_null(kind) for kind in kinds):
                raise SupraUserError(f"{where}'s {split} split is {first} and {name}, which differ in column {column!r} "
                                     f"({kinds[0] or 'not there'} against {kinds[1] or 'not there'}): write them with "
                                     "one type, or move one out of data.root")


def _offsets_aside(kind: Any) -> Any:
    """An Arrow type with its 64-bit-offset variants (large_string, large_binary, large_list) made plain, at
    every depth: the same values either way, which `datasets` casts to the first part's type as it joins them."""
    import pyarrow as pa

    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(_offsets_aside(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([kind.field(i).with_type(_offsets_aside(kind.field(i).type)) for i in range(kind.num_fields)])
    return kind


def _joined(parts: list[Any]) -> Any:
    """save_to_disk splits of one split word as one dataset: concatenate_datasets refuses string beside
    large_string (which _check_one_schema lets through), so each part is cast to the first's features."""
    import datasets

    first = parts[0].features
    return datasets.concatenate_datasets([part if part.features == first else part.cast(first) for part in parts])


def load_splits(root: Path, cache_dir: Path) -> Loaded:
    """The dataset at root, each split's parts joined: the same split word rules both layouts (a save_to_disk
    split's name, a parquet file's name or folders), and what no split word names is left out and counted;
    parquet files none of which names a split are train (a dataset of one file)."""
    import datasets  # imported here: a second or two of start-up that only this source needs

    datasets.disable_progress_bars()  # its "Generating train split" bars: the summary line says what was read
    if root.is_file():
        raise SupraUserError(f"data.root={root} is a file, not a folder: point it at the folder holding it "
                             f"({root.parent}), or at a folder holding this file alone to read it alone")
    if not root.is_dir():
        raise SupraUserError(f"data.root={root} does not exist: point it at a save_to_disk folder or a folder of parquet files")
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        loaded = datasets.load_from_disk(str(root))
        files = list(root.rglob("*.arrow"))
        if not isinstance(loaded, datasets.DatasetDict):
            return Loaded("save_to_disk", {"train": loaded}, {}, files)
        parts: dict[str, dict[str, Any]] = {}
        for name, dataset in loaded.items():
            parts.setdefault(_named_split(name) or "", {})[name] = dataset
        left_out = {name: len(dataset) for name, dataset in parts.pop("", {}).items()}
        if not parts:
            raise SupraUserError(f"data.root={root} has no train/validation/test split (it has "
                                 f"{', '.join(loaded) or 'none'}): name them train, validation, test, or with those words (train2014)")
        for split, named in parts.items():
            _check_one_schema(split, {name: dataset.data.schema for name, dataset in named.items()}, str(root))
        return Loaded("save_to_disk", {split: _joined(list(named.values())) for split, named in parts.items()},
                      left_out, files)
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise SupraUserError(f"data.root={root} holds no Hugging Face dataset: looked for dataset_dict.json or "
                             "state.json (save_to_disk) and *.parquet files")
    return _read_parquet(root, files, cache_dir)


def _read_parquet(root: Path, files: list[Path], cache_dir: Path) -> Loaded:
    import datasets
    import pyarrow.parquet as pq
    from datasets.exceptions import DatasetGenerationError

    # the Hub's refs/convert/parquet holds a folder per config (`<config>/<split>/0000.parquet`): their rows are
    # not one dataset's, and their columns may differ
    configs = sorted({p.relative_to(root).parts[0] for p in files
                      if len(p.relative_to(root).parts) > 1 and _named_split(p.relative_to(root).parts[0]) is None})
    if len(configs) > 1:
        raise SupraUserError(f"data.root={root} holds the parquet files of {counted(len(configs), 'config')} "
                             f"({', '.join(configs)}): point data.root at one of them ({root / configs[0]})")
    named = {path: _parquet_split(path, root) for path in files}
    if not any(named.values()):
        named = dict.fromkeys(files, "train")  # no file names a split: one dataset, train (val and test cut from it)
    by_split: dict[str, list[Path]] = {}
    for path, split in named.items():
        if split is not None:
            by_split.setdefault(split, []).append(path)
    left_out = {p.relative_to(root).as_posix(): pq.read_metadata(p).num_rows for p, split in named.items() if split is None}
    for split, paths in by_split.items():
        _check_one_schema(split, {p.relative_to(root).as_posix(): pq.read_schema(p) for p in paths}, str(root))
    # datasets copies the parquet files into Arrow files there, keyed by each file's path and mtime alone: a file
    # rewritten with its mtime kept (cp -p, rsync -a, tar x) would be read from the old copy, so the folder is
    # keyed by the files' stamps. A full disk is one line naming the folder
    arrow = cache_dir / "hf_datasets" / _stamp(files, root)
    splits = {}
    with room_to_write(f"the Arrow copy of {root}'s parquet files in {arrow.parent}",
                       "free space there, or set data.cache_dir to a folder with room"):
        for split, paths in by_split.items():
            try:
                splits[split] = datasets.Dataset.from_parquet([str(p) for p in paths], cache_dir=str(arrow))
            except DatasetGenerationError as error:  # what the schema check does not foresee
                if no_room_reason(error) is not None:
                    raise  # a full disk: room_to_write's line
                cause = str(error.__cause__ or error).splitlines()[0]
                raise SupraUserError(f"{root}'s {split} split ({', '.join(p.relative_to(root).as_posix() for p in paths)}) "
                                     f"could not be read: {cause}") from error
    return Loaded("parquet", splits, left_out, files)


def _stamp(files: list[Path], root: Path) -> str:
    """The file_stamp of each of `files`: the cache keys of what is read from them change when one does."""
    stats = [(p.relative_to(root).as_posix(), file_stamp(p)) for p in sorted(files)]
    return hashlib.sha256(repr(stats).encode()).hexdigest()[:16]


def _is_binary(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _is_string(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _record_field(dataset: Any, column: str) -> tuple[str, str] | None:
    """`sentences.raw` as (column, field) where `column` is not itself a column's name: the text field of a
    column of records, or of lists of them (Karpathy's sentences as the Hub ships them); else None."""
    top, dot, field = column.partition(".")
    return (top, field) if dot and column not in dataset.column_names else None


def _record_kind(kind: Any) -> Any:
    """A column's record type, in a list or alone."""
    import pyarrow as pa

    return kind.value_type if pa.types.is_list(kind) or pa.types.is_large_list(kind) else kind


def _check_caption_type(dataset: Any, column: str, where: str) -> None:
    """One line where the caption column holds records (`{"raw": ...}`, a list of them, as Karpathy's
    sentences are) rather than text, or a record field named (`sentences.raw`) that is not text: each row
    would be skipped as a caption that is not text."""
    import pyarrow as pa

    named = _record_field(dataset, column)
    kind = dataset.data.schema.field(named[0] if named else column).type
    record = _record_kind(kind)
    if named:
        field = record.field(named[1]) if pa.types.is_struct(record) and record.get_field_index(named[1]) >= 0 else None
        if field is None or not _is_string(field.type):
            raise SupraUserError(f"data.caption_column={column!r} of {where} names no text field: {named[0]!r} holds "
                                 f"{kind}; name a text column, or a record's text field as column.field")
        return
    if pa.types.is_struct(record):
        texts = [field.name for field in record if _is_string(field.type)]
        raise SupraUserError(f"data.caption_column={column!r} of {where} holds {kind}, not text: captions are a string "
                             "or a list of strings per row" + (f"; name its text field as data.caption_column={column}."
                                                               f"{texts[0]}" if texts else ""))


def _caption_values(dataset: Any, column: str) -> list:
    """Per row, its caption or captions: the column's values, or the named field of its records."""
    named = _record_field(dataset, column)
    if named is None:
        return dataset[column]
    top, field = named
    return [[item.get(field) for item in value if item] if isinstance(value, list)
            else value.get(field) if isinstance(value, dict) else None for value in dataset[top]]


def _image_fields(dataset: Any, column: str, where: str) -> tuple[Any, list[int], list[str | None]]:
    """The image column's bytes (an Arrow array, or None), and per row their length (0: none) and the path it
    names, read without copying the images (their bytes are decoded once, when the image cache is built).
    `where` names the split, for the error when the column holds something else."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = dataset.with_format("arrow")[column]
    kind = values.type
    if (pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0 and kind.get_field_index("path") >= 0
            and _is_binary(kind.field("bytes").type) and _is_string(kind.field("path").type)):  # the Image feature
        data, paths = pc.struct_field(values, "bytes"), pc.struct_field(values, "path")
    elif _is_string(kind):  # paths instead of bytes
        data, paths = None, values
    elif _is_binary(kind):  # raw bytes
        data, paths = values, None
    else:  # e.g. the caption column named by mistake: nothing here is an image
        raise SupraUserError(f"data.image_column={column!r} of {where} holds {kind}, not images: name the column "
                             "holding the Image feature, image bytes or image file paths")
    n = len(values)
    lengths = pc.fill_null(pc.binary_length(data), 0).to_pylist() if data is not None else [0] * n
    named = paths.to_pylist() if paths is not None else [None] * n
    return data, lengths, named


def _identities(data: Any, lengths: list[int], paths: list[str | None], root: Path,
                shared_lengths: set[int]) -> list[Hashable | None]:
    """Per row, what tells its image apart: rows of one identity hold the same picture. Bytes are known by
    their length, and by their hash where another row's, of any split, are as long (`shared_lengths`: so only
    those are read); a path by the file it names; a row with neither has None (no image: like no other)."""
    out: list[Hashable | None] = []
    for row, (length, path) in enumerate(zip(lengths, paths, strict=True)):
        if length in shared_lengths:
            out.append(("bytes", length, hashlib.sha256(data[row].as_buffer()).hexdigest()))
        elif length:
            out.append(("bytes", length))
        elif path:
            out.append(("file", os.path.normpath(root / path)))
        else:
            out.append(None)
    return out


def _image_reader(dataset: Any, row: int, column: str, has_bytes: bool, path: str | None, root: Path,
                  stamp: str) -> StoredImage | None:
    """How to read row `row`'s image: bytes inside the dataset, a file it names, or None (nothing usable)."""
    if has_bytes:
        def read() -> bytes:
            value = dataset[row][column]
            return bytes(value["bytes"] if isinstance(value, dict) else value)

        return StoredImage(read, f"{stamp}:{row}")
    if path:
        file = Path(path) if Path(path).is_absolute() else root / path
        if file.is_file():
            return StoredImage(file.read_bytes, f"{file}:{file_stamp(file)}")
    return None


def _check_same_image(identities: list[Hashable | None], first_row: int, row: int, id_column: str | None, image_id: Any,
                      where: str) -> None:
    """One line where a row repeating an id holds another picture than the id's first row: the id column
    names something several pictures share (an album, a category), and joining their captions would give
    each picture the others' captions."""
    if identities[row] is not None and identities[row] != identities[first_row]:  # a row without an image: its captions join
        raise SupraUserError(f"data.id_column={id_column!r} gives id {image_id!r} to rows {first_row} and {row} of {where}, "
                             "which hold different images: name the column that identifies each picture, or leave "
                             "data.id_column null")


def _file_name(path: str, root: Path) -> str:
    """An image column's path as predictions.json's `file`: relative to root (posix), or absolute where
    the file is outside the dataset."""
    file, root = Path(path), root.absolute()
    return (file.relative_to(root) if file.is_absolute() and file.is_relative_to(root) else file).as_posix()


def read_hf_disk(root: str | Path, image_column: str = "image", caption_column: str = "caption",
                 id_column: str | None = None, seed: int = 0, cache_dir: str | Path | None = None) -> CaptionIndex:
    """The captioned images of a Hugging Face dataset at `root` (saved with `save_to_disk`, or parquet files): each
    split's columns checked; rows of one image joined into one image with all their captions (by `id_column`, else
    by identical bytes or one file, across splits too, kept in test before val before train so that no picture is
    trained on and scored); a val or test split the dataset lacks (none of its rows captioned) cut from train's
    captioned images by `seed`. `cache_dir`: where parquet files are converted to Arrow (default root/.supra_cache)."""
    root = Path(root)
    layout, splits, left_out, files = load_splits(root, Path(cache_dir) if cache_dir else root / ".supra_cache")
    _check_columns(splits, root, image_column, caption_column, id_column)
    index = CaptionIndex(layout, root, {s: [] for s in SPLIT_NAMES}, {})
    for name, rows in left_out.items():
        index.skip(LEFT_OUT, name, rows)
    stamp = _stamp(files, root)
    fields, shared_lengths = _undecoded_images(splits, image_column, root)
    joined = _rows_into_index(index, root, splits, fields, shared_lengths, image_column, caption_column, id_column,
                              stamp)
    _note_joined(index, joined)
    _carve_missing_splits(index, seed)
    return finish(index)


def _check_columns(splits: dict[str, Any], root: Path, image_column: str, caption_column: str,
                   id_column: str | None) -> None:
    """Each split's columns as the options name them (a test file may name its columns unlike train's), and its
    captions' type."""
    for split, dataset in splits.items():
        for key, column in (("image_column", image_column), ("caption_column", caption_column), ("id_column", id_column)):
            named = _record_field(dataset, column) if key == "caption_column" else None  # sentences.raw: sentences
            if column is not None and (named[0] if named else column) not in dataset.column_names:
                raise SupraUserError(f"data.{key}={column!r} is not a column of {root}'s {split} split "
                                     f"(it has {', '.join(dataset.column_names)})")
        _check_caption_type(dataset, caption_column, f"{root}'s {split} split")


def _undecoded_images(splits: dict[str, Any], image_column: str, root: Path) -> tuple[dict[str, Any], set[int]]:
    """Each split's image column read as bytes, not PIL images (`splits` changed in place), its image fields, and
    the byte lengths more than one row holds (where rows may hold one image)."""
    import datasets

    fields = {}
    for split, dataset in splits.items():
        if isinstance(dataset.features[image_column], datasets.Image):
            splits[split] = dataset.cast_column(image_column, datasets.Image(decode=False))  # bytes, not PIL
        fields[split] = _image_fields(splits[split], image_column, f"{root}'s {split} split")
    lengths = Counter(length for _, split_lengths, _ in fields.values() for length in split_lengths)
    return fields, {length for length, rows in lengths.items() if length and rows > 1}


def _rows_into_index(index: CaptionIndex, root: Path, splits: dict[str, Any], fields: dict[str, Any],
                     shared_lengths: set[int], image_column: str, caption_column: str, id_column: str | None,
                     stamp: str) -> Counter:
    """Every row into `index`: its image once, its captions added to it. The rows whose image an earlier row holds
    (no id column), counted by "own" split and "other" split."""
    # without an id column, rows of one image (identical bytes, or one file) are one image all the same: a row per
    # caption split by row would put one picture in train and in the val or test cut from it. Across splits too,
    # kept in test before val before train (as finish keeps an id), so no picture is trained on and scored
    key_of_image: dict[Hashable, str] = {}
    joined = Counter()  # rows whose image an earlier row holds (no id column): of their split, of another
    for split in sorted(splits, key=SPLIT_NAMES[::-1].index):
        dataset, (data, lengths_of_rows, paths) = splits[split], fields[split]
        captions = _caption_values(dataset, caption_column)  # the text alone, without the images
        ids = dataset[id_column] if id_column else None
        has_bytes = [length > 0 for length in lengths_of_rows]
        identities = _identities(data, lengths_of_rows, paths, root, shared_lengths)
        key_of_id: dict[Any, str] = {}  # a dataset with a row per caption repeats the image's id
        first_row_of_id: dict[Any, int] = {}
        for row, caption in enumerate(captions):
            image_id = ids[row] if ids is not None else None  # a null id is no id: the row's own image
            key = key_of_id.get(image_id) if image_id is not None else None
            if id_column is None and identities[row] is not None:
                key = key_of_image.get(identities[row])
                if key is not None:
                    joined["own" if key.startswith(f"{split}/") else "other"] += 1
            elif key is not None:
                _check_same_image(identities, first_row_of_id[image_id], row, id_column, image_id,
                                  f"{root}'s {split} split")
            if key is None:
                key = f"{split}/{row}"
                image = _image_reader(dataset, row, image_column, has_bytes[row], paths[row], root, stamp)
                if image is None:
                    index.skip("no usable image (empty, or a path that is not there)", key)
                    continue
                index.stored[key] = image
                if not has_bytes[row]:  # read from the file it names: predictions.json names that file
                    index.stored_files[key] = _file_name(paths[row], root)
                index.splits[split].append(key)
                if image_id is not None:
                    index.ids[key], key_of_id[image_id], first_row_of_id[image_id] = image_id, key, row
                if id_column is None and identities[row] is not None:
                    key_of_image[identities[row]] = key
            texts = caption if isinstance(caption, list) else [caption]
            for text in texts:
                if isinstance(text, str):
                    index.add_caption(key, text, f"{key}: {text!r}")
                elif text is not None or len(texts) > 1:  # a null caption alone: the image has no caption, said so once
                    index.skip(NOT_TEXT, f"{key}: {text!r}"[:80])
    return joined


def _note_joined(index: CaptionIndex, joined: Counter) -> None:
    """The notes on rows joined to an earlier row's image, of their split and of another."""
    if joined["own"]:
        hold, their = ("holds", "its") if joined["own"] == 1 else ("hold", "their")
        index.notes.append(f"{counted(joined['own'], 'row')} {hold} the image of an earlier row of {their} split (a row "
                           "per caption): joined to it as one image with all their captions (data.id_column names them "
                           "by the dataset's ids)")
    if joined["other"]:
        hold = "holds" if joined["other"] == 1 else "hold"
        index.notes.append(f"{counted(joined['other'], 'row')} {hold} the image of a row of another split: joined to it, "
                           "kept in test before val before train, so no picture is trained on and scored")


def _carve_missing_splits(index: CaptionIndex, seed: int) -> None:
    """A val or test split without one caption (a hidden test split's captions held back) is one the dataset lacks:
    cut from train's captioned images (CARVED_SIZES, by `seed`), its own rows skipped."""
    missing = [split for split in ("val", "test") if not any(index.captions.get(k) for k in index.splits[split])]
    for split in missing:
        for key in index.splits[split]:
            index.skip(SPLIT_WITHOUT_CAPTIONS, key)
    if missing:  # cut from train's captioned images, only the splits the dataset lacks
        keys = [k for k in index.splits["train"] if index.captions.get(k)]
        sizes = split_sizes(len(keys), CARVED_SIZES)
        for split in ("val", "test"):
            if split not in missing:
                sizes["train"], sizes[split] = sizes["train"] + sizes[split], 0
        short = [split for split in missing if not sizes[split]]
        if keys and short:  # said where a run reads that split ("the val split has 0 usable images: <summary>")
            index.notes.append(f"train's {counted(len(keys), 'captioned image')} are too few to cut "
                               f"{' and '.join(short)} from (1/8 each, of 3 images or more): give the dataset "
                               f"{' and '.join(SPLIT_WORDS[split] for split in short)} splits, or more captioned rows")
        carved = seeded_split(keys, sizes, seed)
        index.splits["train"] = carved["train"] + [k for k in index.splits["train"] if not index.captions.get(k)]
        for split in missing:
            index.splits[split] = carved[split]
