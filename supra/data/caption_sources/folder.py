"""A folder tree of images with captions as a caption source, read as data/folder_index.py reads it for
the VQ-VAE: `photo.txt` beside `photo.jpg` (one caption per line), or a root `captions.jsonl` /
`captions.csv` / `captions.tsv`. Images without a caption are counted and left out; the split is by file,
seeded, about 10% val and 10% test by default (at least one each; `val_fraction` / `test_fraction` size
them), a file's split following from its name alone (but for a file lent to a split no name falls in, said
in the summary line: split_by_file)."""

from __future__ import annotations

from pathlib import Path

from supra.data.caption_sources.index import CaptionIndex, finish
from supra.data.folder_index import ALIAS, SPECIAL, lent_files, lent_note, scan_folder, split_by_file
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_number

VAL_FRACTION = TEST_FRACTION = 0.1


def read_caption_folder(root: str | Path, layout: str | None = None, seed: int = 0,
                        val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION) -> CaptionIndex:
    """The captioned images under `root`, split by file: a file is in val, test or train by a seeded hash of
    its name (`seed`) against `val_fraction` and `test_fraction` (folder_index.split_by_file)."""
    if layout not in (None, "folder"):
        raise SupraUserError(f"data.layout={layout!r} is unknown for a folder: leave it null")
    check_split_fractions(val_fraction, test_fraction)
    folder = scan_folder(root)
    # the layout the set-up line names: the caption files read (all there are: a folder may hold several)
    index = CaptionIndex(" + ".join(folder.caption_sources) or "no caption file", folder.root, {}, {})
    for reason, n in folder.caption_problems.counts.items():
        index.skipped[reason] += n
        index.examples[reason] = folder.caption_problems.examples[reason]
    for reason in (ALIAS, SPECIAL):  # said in the summary: a link the user made was not followed, a pipe not read
        if folder.ignored.counts[reason]:
            index.skipped[reason] = folder.ignored.counts[reason]
            index.examples[reason] = folder.ignored.examples[reason]
    for name in folder.media:
        for caption in folder.captions[name]:
            index.add_caption(name, caption, f"{name}: {caption!r}")
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
    return finish(index)


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """One line unless each held-out share is above 0 (the captioner validates and tests on its own split)
    and below 1, leaving files for train."""
    if not (is_number(val_fraction) and is_number(test_fraction)) or not (
            0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise SupraUserError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must each be "
                             "above 0 and below 1, and leave some files for train (their sum below 1)")
