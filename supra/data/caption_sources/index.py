"""What every image-caption source reads its annotations into: which images each split holds, the captions
each is trained on and the references each is scored against, the dataset's own id where it has one, and what
was dropped and why.

Readers (flickr8k.py, flickr30k.py, coco.py, karpathy.py, folder.py) only parse their layout; `finish`
then drops, with the same reasons everywhere, what cannot be used: a caption for no image file, an image
in no split or with no caption. Nothing is decoded here: unreadable image files are found by the image
cache and counted there.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from supra.data.captions import clean_caption, without_final_stop
from supra.data.folder_index import file_named, reason_counted
from supra.data.image_cache import StoredImage
from supra.data.images import recorded_too_large
from supra.utils.folder_walk import VisibleFiles, listed_path, walk_visible
from supra.utils.numbers import counted

SPLIT_NAMES = ("train", "val", "test")
# a caption line of a text file given again (Flickr8k's `name#n` twice): one caption
DUPLICATE_LINE = "duplicate line"


@dataclass
class CaptionIndex:
    """Images by split as keys (paths relative to `image_dir`, posix), with their captions.

    `captions`: what each image is trained on (final full stop dropped, each once: training_captions).
    `references`: what each is scored against, as the source publishes them (whitespace collapsed alone), a
    caption the image has twice (two annotations, two lines) twice, as COCOEvalCap counts it for CIDEr.
    `ids`: the dataset's own id of an image where it has one (COCO's integer ids); otherwise the key is its
    id. `stored`: images kept inside a dataset's files rather than as files of their own. `layout` names the annotation format read, for the summary line.
    """

    layout: str
    image_dir: Path
    splits: dict[str, list[str]]
    captions: dict[str, list[str]]
    references: dict[str, list[str]] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few names/lines
    nouns: dict[str, str] = field(default_factory=dict)  # reason -> the noun its count takes (folder_index.Tally's)
    ids: dict[str, int | str] = field(default_factory=dict)
    # images that are not files under image_dir (rows of a dataset's Arrow / parquet files), by key
    stored: dict[str, StoredImage] = field(default_factory=dict)
    # the file a stored image is read from, relative to image_dir (a dataset's column of paths), by key
    stored_files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said at the end of the summary line
    _seen: set = field(default_factory=set, repr=False)  # (key, training caption) pairs
    _records: set = field(default_factory=set, repr=False)  # (key, record) pairs: a source's own caption ids

    def skip(self, reason: str, what: str, count: int = 1) -> None:
        """Count `count` things skipped for `reason`, `what` (a name, a line) among the first few named."""
        self.skipped[reason] += count
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(what)

    def add_caption(self, key: str, caption: str, where: str, record: Hashable | None = None,
                    record_again: str = DUPLICATE_LINE) -> None:
        """A caption of image `key`: a reference as published (whitespace collapsed), and trained on with its
        final full stop dropped, once (a repeat is counted, as REPEATED_CAPTION: scored, not trained on again).
        Blank ones are counted, not kept; so is a record listed again, as `record_again`: `record`, the source's
        own id of the caption where it has one (COCO's annotation id, Flickr8k's `#n`), names one caption, not
        two, whatever the text of the second."""
        reference = clean_caption(caption)  # once: a set-up reads hundreds of thousands of captions
        trained = without_final_stop(reference)
        if not trained:
            self.skip("blank caption", where.strip() or key)
        elif record is not None and (key, record) in self._records:
            self.skip(record_again, where.strip())
        else:
            if record is not None:
                self._records.add((key, record))
            self.references.setdefault(key, []).append(reference)
            self._train_on_clean(key, trained, where)

    def train_on(self, key: str, caption: str, where: str) -> None:
        """Add `caption` (final stop dropped) to what image `key` is trained on, unless it is there (counted)."""
        self._train_on_clean(key, clean_caption(caption, drop_final_stop=True), where)

    def _train_on_clean(self, key: str, caption: str, where: str) -> None:
        """train_on for a caption cleaned already, its final stop dropped."""
        if (key, caption) in self._seen:
            self.skip(REPEATED_CAPTION, where.strip())
        else:
            self._seen.add((key, caption))
            self.captions.setdefault(key, []).append(caption)

    def files(self, root: Path, keys: list[str]) -> list[str | None]:
        """Each image's file as predictions.json names it, relative to the dataset's `root` (posix:
        `Flicker8k_Dataset/123.jpg`; a dataset's column of paths: the path it gives, absolute where it is
        outside the dataset), or None for one stored inside a dataset's files. Shards written by
        write_shards keep it, so an image is scored under the same file read either way."""
        folder = self.image_dir.relative_to(root).as_posix()

        def file(key: str) -> str | None:
            name = self.stored_files.get(key) if key in self.stored else key
            if name is None or folder == "." or name.startswith("/"):
                return name
            return f"{folder}/{name}"

        return [file(k) for k in keys]


def files_under(folder: Path, walk: VisibleFiles | None = None) -> Callable[[str], str | None]:
    """The file under `folder` a posix path relative to it names (the keys images are looked up by), or None;
    linked folders followed (walk_visible). A folder reached by two paths is walked once, but its files
    answer to either: a dataset's annotations may name it by a link (`images/train2014` linked to
    `train2014`, `latest/raw/b.jpg` through two of them), which keeps the name it is given. A name in the other
    Unicode form than the file's (COCO's json writing `café.jpg` as one character, the file unzipped on a Mac
    as e + a combining accent) answers with the file's own name (folder_index.file_named), to open it by.
    `walk`: walk_visible(folder) where the reader listed it already (a caption folder), not listed again."""
    walk = walk if walk is not None else walk_visible(folder)
    files = set(walk.files)
    in_other_form = file_named(walk.files, walk.aliases)
    return lambda name: name if name in files or listed_path(name, walk.aliases) in files else in_other_form(name)


def _rename_to_files(index: CaptionIndex, listed: Callable[[str], str | None]) -> None:
    """Key each image by its file's own name where its annotation names it in the other Unicode form, so it is
    opened, written and scored under the name it has on disk; two keys naming one file become one image."""
    keys = {key for keys in index.splits.values() for key in keys} | set(index.captions)
    renamed = {key: found for key in sorted(keys - set(index.stored))
               if (found := listed(key)) is not None and found != key}
    for split, keys_of_split in index.splits.items():
        index.splits[split] = [renamed.get(key, key) for key in keys_of_split]
    for key, found in renamed.items():
        for caption in index.captions.pop(key, []):
            index.train_on(found, caption, key)
        if key in index.references:
            index.references.setdefault(found, []).extend(index.references.pop(key))
        if key in index.ids:
            index.ids.setdefault(found, index.ids.pop(key))


def split_sizes(n: int, published: dict[str, int | None]) -> dict[str, int]:
    """train/val/test sizes for `n` images without published split lists. `published`: the sizes the
    dataset's usual split has. A fixed train size (Flickr8k's 6,000) is taken when the copy holds the whole
    split, else val and test are 1/8 each and the rest trains (a partial copy). Without one (train None: all
    the rest), val and test are each the published size or 1/8 of the images, whichever is smaller: a copy
    of 2,001 Flickr30k images trains on 1,501 of them, not on the one left after 1,000 val and 1,000 test."""
    val, test = published["val"], published["test"]
    if published["train"] is not None and n >= published["train"] + val + test:
        return {"train": published["train"], "val": val, "test": test}
    eighth = max(1, n // 8) if n >= 3 else 0
    if published["train"] is None:
        val, test = min(val, eighth), min(test, eighth)
    else:
        val = test = eighth
    return {"train": n - val - test, "val": val, "test": test}


def seeded_split(keys: list[str], sizes: dict[str, int], seed: int) -> dict[str, list[str]]:
    """A seeded shuffle of the sorted keys, cut into `sizes`: the same split on any machine."""
    order = sorted(keys)
    random.Random(seed).shuffle(order)
    out, start = {}, 0
    for split in SPLIT_NAMES:
        out[split] = order[start:start + sizes[split]]
        start += sizes[split]
    return out


# a caption an image has twice (two annotations or lines): both are references, one is trained on
REPEATED_CAPTION = "repeated caption (scored as each reference, trained on once)"
LISTED_TWICE = "image listed twice (kept once, in test before val before train)"
ID_OF_TWO_FILES = "image whose id another file has too (neither kept)"
CAPTION_OF_TWO_FILES = "caption for an id of two files"
NOT_TEXT = "caption that is not text"  # null, a number, a list where a caption's text should be
# a second COCO annotation with an earlier one's id (on the same image): one caption, whatever its text
ANNOTATION_ID_TWICE = "annotation id listed twice (first kept)"
# a second Karpathy sentence with an earlier one's sentid (on the same image), likewise
SENTID_TWICE = "sentid listed twice (first kept)"
# each reason the sources count, as said of more than one ("1 blank caption", "2 blank captions"); a reason not
# here reads after any count ("2 in no split", "2 too large (resize them)"), or takes the noun the folder's tally
# gave it (a caption folder's)
PLURALS = {
    "blank caption": "blank captions",
    "no caption": "no captions",
    "no image file": "no image files",
    "unreadable image": "unreadable images",
    "unreadable line": "unreadable lines",
    DUPLICATE_LINE: "duplicate lines",
    REPEATED_CAPTION: "repeated captions (scored as each reference, trained on once)",
    LISTED_TWICE: "images listed twice (kept once, in test before val before train)",
    ID_OF_TWO_FILES: "images whose id another file has too (neither kept)",
    CAPTION_OF_TWO_FILES: "captions for an id of two files",
    NOT_TEXT: "captions that are not text",
    ANNOTATION_ID_TWICE: "annotation ids listed twice (first kept)",
    SENTID_TWICE: "sentids listed twice (first kept)",
    "caption for an unknown image id": "captions for an unknown image id",
    "sentence with neither raw nor tokens": "sentences with neither raw nor tokens",
    "no usable image (empty, or a path that is not there)": "no usable images (empty, or a path that is not there)",
    "row of a split that is not train, validation or test": "rows of a split that is not train, validation or test",
    "image of a split without captions (cut from train instead)": "images of a split without captions (cut from train instead)",
}


def drop_ids_of_two_files(index: CaptionIndex) -> None:
    """Drop, counting each, the image files that share a dataset id with another file (COCO's train and val
    files both listing an id, a Karpathy file giving two files one cocoid): which picture the id's captions
    describe is unknown, so neither is kept and no caption moves to another picture. Rows of a dataset's
    files (`stored`, keyed by row) are not files: rows repeating an id are one image (a row per caption)."""
    files_of_id: dict[int | str, dict[str, None]] = {}  # id -> its file keys, each once, in split order
    for keys in index.splits.values():
        for key in keys:
            if key in index.ids and key not in index.stored:
                files_of_id.setdefault(index.ids[key], {})[key] = None
    dropped = {key for keys in files_of_id.values() if len(keys) > 1 for key in keys}
    for image_id, keys in files_of_id.items():
        if len(keys) < 2:
            continue
        for key in keys:
            index.skip(ID_OF_TWO_FILES, f"id {image_id} {key}")
            for _ in index.captions.pop(key, []):
                index.skip(CAPTION_OF_TWO_FILES, f"id {image_id}")
            index.references.pop(key, None)
            index.ids.pop(key)
    for split, keys in index.splits.items():
        index.splits[split] = [key for key in keys if key not in dropped]


def finish(index: CaptionIndex, walk: VisibleFiles | None = None) -> CaptionIndex:
    """Drop what cannot be used, counting each by reason: captioned images in no split ("in no split", or
    "no image file" when the file is missing too), split images without a file or without a caption, and
    an image listed again (under a second id, in a second split list, or one id under a second key), kept
    once: in test before val before train, so no picture is trained on and scored (one id's captions joined,
    where the id is a dataset's row-per-caption one); files sharing an id are dropped (drop_ids_of_two_files).

    After this every split key has >= 1 caption and a file on disk, and is in one split once. `walk`: the
    image folder as its reader listed it (files_under), where it did.
    """
    listed = files_under(index.image_dir, walk)
    _rename_to_files(index, listed)
    drop_ids_of_two_files(index)
    placed: set[str] = set()
    key_of_id: dict[int | str, str] = {}  # an id under two keys (a dataset's row-per-caption id in two splits)
    for split in sorted(index.splits, key=lambda s: SPLIT_NAMES[::-1].index(s) if s in SPLIT_NAMES else 3):
        once = []
        for key in index.splits[split]:
            first = key_of_id.setdefault(index.ids[key], key) if key in index.ids else key
            if key in placed:
                index.skip(LISTED_TWICE, f"{split}: {key}")
            elif first != key:  # one image: kept with the captions of both
                index.skip(LISTED_TWICE, f"{split}: {key} (id {index.ids[key]!r}, kept as {first})")
                for caption in index.captions.pop(key, []):
                    index.train_on(first, caption, key)
                index.references.setdefault(first, []).extend(index.references.pop(key, []))
                index.stored.pop(key, None)
                index.stored_files.pop(key, None)
                index.ids.pop(key)
            else:
                placed.add(key)
                once.append(key)
        index.splits[split] = once

    def on_disk(key: str) -> bool:
        return key in index.stored or listed(key) is not None

    in_splits = {key for keys in index.splits.values() for key in keys}
    for key in sorted(set(index.captions) - in_splits):
        index.skip("in no split" if on_disk(key) else "no image file", key)
    for split, keys in index.splits.items():
        kept = []
        for key in keys:
            if not on_disk(key):
                index.skip("no image file", key)
            elif not index.captions.get(key):
                index.skip("no caption", key)
            else:
                kept.append(key)
        index.splits[split] = kept
    return index


def summary_line(source: str, index: CaptionIndex, unreadable: dict[str, str]) -> str:
    """One line: images/captions per split, and what was skipped and why (with examples)."""
    parts = [f"{split} {counted(len(keys), 'image')} / {counted(sum(len(index.captions[k]) for k in keys), 'caption')}"
             for split, keys in index.splits.items()]
    notes = "".join(f"; {note}" for note in index.notes)
    return f"{source} ({index.layout} layout): {'; '.join(parts)}; skipped: {skipped_reasons(index, unreadable)}{notes}"


def skipped_reasons(index: CaptionIndex, unreadable: dict[str, str]) -> str:
    """What was skipped and why, with examples ("nothing" when nothing was)."""
    skipped, examples = dict(index.skipped), dict(index.examples)
    too_large = sorted(key for key, reason in unreadable.items() if recorded_too_large(reason))
    # named as caption names them; sorted, so that the image cache and write_shards give the same examples
    for reason, keys in (("unreadable image", sorted(set(unreadable) - set(too_large))),
                         ("too large (resize them)", too_large)):
        if keys:
            skipped[reason], examples[reason] = len(keys), keys
    reasons = ", ".join(f"{skipped_counted(n, reason, index.nouns)} (e.g. {', '.join(examples[reason][:2])})"
                        for reason, n in skipped.items())
    return reasons or "nothing"


def skipped_counted(n: int, reason: str, nouns: dict[str, str]) -> str:
    """`n` things skipped for `reason`, singular for one: "1 blank caption", "2 blank captions" (PLURALS), or
    as a folder's tally says it, by the noun it gave the reason (`nouns`: reason_counted)."""
    if reason in PLURALS:
        return f"{n} {reason if n == 1 else PLURALS[reason]}"
    return reason_counted(n, reason, nouns.get(reason))
