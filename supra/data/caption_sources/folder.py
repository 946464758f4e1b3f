"""A folder tree of images with captions as a caption source, read as data/folder_index.py reads it for
the VQ-VAE: `photo.txt` beside `photo.jpg` (one caption per line), or a root `captions.jsonl` /
`captions.csv` / `captions.tsv`. Images without a caption are counted and left out; the split is by file,
seeded, about 10% val and 10% test by default (at least one each; `val_fraction` / `test_fraction` size
them), a file's split following from its name alone (but for a file lent to a split no name falls in, said
in the summary line: split_by_file). A folder's captions have no ids: each line (of a photo.txt, a captions
file) is one reference, so a caption written twice for a file is scored twice, trained on once, and counted in
the set-up line as a repeated caption."""

from __future__ import annotations

import math
from pathlib import Path

from rich.progress import Progress

from supra.data.caption_sources.index import CaptionIndex, finish
from supra.data.folder_index import CAPTION_FOLDER, lent_files, lent_note, scan_folder, split_by_file
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted, is_number

VAL_FRACTION = TEST_FRACTION = 0.1
# what a captioner's scores of a split of one image do (train.py on the folder, or on its shards)
CIDER_OF_ONE_IMAGE = {"val": "CIDEr over one image is 0 at every validation, so best.ckpt (chosen by val/CIDEr) "
                             "stays the first validation's and a sweep's trials all tie",
                      "test": "CIDEr over one image is 0 whatever the model"}


def read_caption_folder(root: str | Path, layout: str | None = None, seed: int = 0,
                        val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
                        show_progress: bool = False) -> CaptionIndex:
    """The captioned images under `root`, split by file: a file is in val, test or train by a seeded hash of
    its name (`seed`) against `val_fraction` and `test_fraction` (folder_index.split_by_file). `show_progress`:
    bars while the caption files are read and indexed (seconds for 200,000 captions)."""
    if layout not in (None, "folder"):
        raise SupraUserError(f"data.layout={layout!r} is unknown for a folder: leave it null")
    check_split_fractions(val_fraction, test_fraction)
    folder = scan_folder(root, CAPTION_FOLDER, show_progress)
    # the layout the set-up line names: the caption files read (all there are: a folder may hold several)
    index = CaptionIndex(" + ".join(folder.caption_sources) or "no caption file", folder.root, {}, {})
    for reason, n in folder.caption_problems.counts.items():
        index.skipped[reason] += n
        index.examples[reason] = folder.caption_problems.examples[reason]
    # every file left out, by kind: a file of no picture format, its caption file, a link not followed, a pipe
    for reason, n in folder.ignored.counts.items():
        index.skipped[reason] = n
        index.examples[reason] = folder.ignored.examples[reason]
    index.nouns.update(folder.caption_problems.nouns | folder.ignored.nouns)
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"indexing the captions of {counted(len(folder.media), 'file', grouped=True)}",
                                 total=len(folder.media))
        for name in folder.media:
            # every line: a folder's captions have no ids, so a caption written twice is two references
            for caption in folder.references[name]:
                index.add_caption(name, caption, f"{name}: {caption!r}")
            progress.advance(task)
    captioned = sorted(index.captions)
    for name in folder.media:
        if name not in index.captions:
            index.skip("no caption", name)
    if len(captioned) < 3:
        # what the caption files held that matched no image says why far better than the general advice
        problems = f"; the caption files had {folder.caption_problems.describe()}" if folder.caption_problems else ""
        raise SupraUserError(f"data.root={root} has {len(captioned)} images with captions: train, val and test need "
                             f"at least 3 (add photo.txt beside photo.jpg, or a captions.jsonl / .csv / .tsv){problems}")
    index.splits = split_by_file(captioned, val_fraction, test_fraction, seed)
    lent = lent_files(index.splits, val_fraction, test_fraction, seed)
    if lent:  # the one file a later, larger folder moves: said where the split is
        index.notes.append(lent_note(lent))
    return finish(index, folder.walk)


def check_split_fractions(val_fraction: float, test_fraction: float, may_be_off: bool = False) -> None:
    """One line unless each held-out share is above 0 (the captioner validates and tests on its own split) and
    below 1, leaving files for train. `may_be_off`: 0 turns that split off (a media folder's VQ-VAE or a2a run
    may train without validating, or without a test)."""
    shares = (val_fraction, test_fraction)
    in_range = all(is_number(share) and (0 <= share < 1 if may_be_off else 0 < share < 1) for share in shares)
    if not in_range or sum(shares) >= 1:
        least = "0 (that split off) or above" if may_be_off else "above 0"
        raise SupraUserError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must each be "
                             f"{least} and below 1, and leave some files for train (their sum below 1)")


def folder_split_fractions(source: str, val_fraction: float | None, test_fraction: float | None,
                           folder: str = "data=caption_folder", instead: str = "") -> dict[str, float]:
    """The held-out shares given (None: the default 0.1), checked as the options are read, not once the folder
    has been walked: refused for another source than a folder (`folder` names how to read one; `instead`, how
    to read that source without them), whose splits are published or cut by size."""
    fractions = {k: v for k, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)) if v is not None}
    if fractions and source != "folder":
        key = next(iter(fractions))
        raise SupraUserError(f"data.{key}={fractions[key]} sizes a folder's split ({folder}), not "
                             f"data.source={source}'s: leave it out{instead}")
    if source == "folder":
        check_split_fractions(fractions.get("val_fraction", VAL_FRACTION), fractions.get("test_fraction", TEST_FRACTION))
    return fractions


def one_image_split_warnings(splits: dict[str, list[str]], root: str | Path, fractions: dict[str, float] | None,
                             options: str, outcomes: dict[str, str]) -> list[str]:
    """A line for each split of `outcomes` (val, test) of the folder at `root` that holds one image (a folder of
    a few dozen photos, split 10% / 10%): what scoring one image does (`outcomes`), and the share that holds about 5, named as
    the command line gives it (`options`: "data.", "data.sources.photos.", or "" for a command's bare ones)."""
    total = sum(len(keys) for keys in splits.values())
    lines = []
    for split, outcome in outcomes.items():
        if len(splits[split]) != 1:
            continue
        option = f"{options}{split}_fraction"
        now = (fractions or {}).get(f"{split}_fraction", VAL_FRACTION if split == "val" else TEST_FRACTION)
        wider = wider_fraction(total, now)
        lines.append(f"the {split} split of {options}root={root} holds 1 of its {total} images ({option}={now:g}): {outcome}; "
                     f"set {option}={wider:g} (about {round(wider * total)} images)")
    return lines


def wider_fraction(images: int, fraction: float) -> float:
    """A held-out share of `images` that holds about 5 of them (at least twice `fraction`), below 0.5 so that
    val and test still leave files for train."""
    return min(0.45, max(math.ceil(500 / images) / 100, round(2 * fraction, 2)))
