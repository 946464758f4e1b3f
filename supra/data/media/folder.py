"""`data=media_folder`: your own folder of images and animated GIFs as a VQ-VAE corpus.

Every file is decoded once, at setup, into uint8 tensors at `image_size` (all splits share that pass);
files that cannot be used are skipped, counted by reason and named in one summary line, and the run
goes on. Discovery, captions and the split by file are in data/folder_index.py; decoding stills in
data/images.py, GIFs in data/gif_frames.py.

Modes:
- images: every still, plus the first frame of each GIF: [N, 3, S, S].
- frames: every still, plus every GIF frame (up to max_frames per file) as an image: [N, 3, S, S]. An animated
          WebP or PNG is a still here, its first frame (counted in the summary: convert it to GIF for its frames).
- clips:  GIFs only, as clips [N, T, 3, S, S]: every frame_stride-th frame, cut into consecutive clips
          of `frames` frames. A trailing part shorter than a clip is dropped, unless it is all the GIF has:
          then it is padded by repeating its last frame (counted in the summary). Each clip carries how many
          of its frames are real (MediaItems.real_frames): the a2a video scores leave the repeats out, training
          takes the clip as it is. Stills are not clips: they are passed over and counted, animated WebP and
          PNG apart (convert them to GIF).
A caption is a file's (folder_index.py): every frame or clip of a GIF takes the whole GIF's captions, as no
caption file names a frame or clip; a caption per clip needs the clip as a GIF of its own. An a2a run trains on
each of a file's captions once and scores its image2text captions against every line of them (its references,
a caption written twice twice, as the captioner's folder scores them); the set-up line counts each repeat.
Squaring: `crop` takes the centre square, `pad` puts the picture in the middle of a black square (the
letterbox convention; black also keeps padding apart from the white that transparency turns into);
either is then resized to image_size with antialiasing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from rich.progress import Progress

from supra.data.caption_sources.folder import (
    TEST_FRACTION,
    VAL_FRACTION,
    check_split_fractions,
    one_image_split_warnings,
)
from supra.data.caption_sources.index import REPEATED_CAPTION
from supra.data.folder_index import (
    GIF_SUFFIX,
    FolderIndex,
    Tally,
    lent_files,
    lent_note,
    scan_folder,
    split_by_file,
)
from supra.data.gif_frames import (
    EMPTY,
    EMPTY_FILE,
    TOO_LARGE,
    UNREADABLE,
    MediaDecodeError,
    open_gif,
    starts_like_gif,
)
from supra.data.images import MAX_PIXELS, fit, load_still
from supra.data.images import UNREADABLE as UNREADABLE_STILL
from supra.data.media.datamodule import ONE_IMAGE_SCORED, SPLITS, MediaDataModule, MediaItems
from supra.utils.errors import SupraUserError
from supra.utils.folder_walk import tree_stamp
from supra.utils.numbers import counted

log = logging.getLogger(__name__)

RESIZES = ("crop", "pad")
MODES = ("images", "frames", "clips")
DEFAULT_MODE = "images"
SKIP_REASONS = {UNREADABLE: "unreadable", TOO_LARGE: "over max_pixels", EMPTY: "empty (0 pixels or 0 frames)",
                EMPTY_FILE: "empty files (0 bytes)"}
# The options only some modes read, and their defaults (conf/data/media_folder.yaml's): set to another value
# in a mode that does not read it (data.mode=frames data.frame_stride=2), one would be ignored without a word.
READ_BY = {"frames": ("clips",), "frame_stride": ("clips",), "max_frames": ("frames", "clips")}
DEFAULTS = {"frames": 4, "frame_stride": 1, "max_frames": 256}


def holds_gif(path: Path) -> bool:
    """GIF or still by content, as every other reader (load_rgb, open_gif) decides, not by the name: a PNG saved
    as photo.gif is a still, a GIF saved as anim.png an animation (6 bytes read; a second look only where name
    and content disagree). A .gif that is no picture Pillow knows stays a GIF: skipped as unreadable, as before."""
    if starts_like_gif(path):
        return True
    if path.suffix.lower() != GIF_SUFFIX:
        return False
    try:
        with Image.open(path):
            return False
    except UNREADABLE_STILL:
        return True


def animated_still(path: Path) -> bool:
    """Whether a file that is no GIF holds an animation, as an animated WebP or PNG (APNG) does (its header read):
    decoded as a still, its first frame alone."""
    try:
        with Image.open(path) as picture:
            return bool(getattr(picture, "is_animated", False))
    except UNREADABLE_STILL:  # its decoding says why
        return False


# animated WebP and PNG are read as stills (their first frame): GIFs alone are read frame by frame
ANIMATED_STILLS = "animated WebP/PNG read as stills, their first frame only (convert them to GIF for their frames)"
ANIMATED_STILLS_IGNORED = "animated WebP/PNG (mode=clips takes GIFs only: convert them to GIF)"


def clips_of(frames: list[torch.Tensor], length: int) -> tuple[list[torch.Tensor], int]:
    """Consecutive clips [length, 3, S, S] of already-strided frames, and the real frames of each: `length`, or
    fewer where the only clip was padded by repeating its last frame."""
    if len(frames) < length:
        padded = frames + [frames[-1]] * (length - len(frames))
        return [torch.stack(padded)], len(frames)
    return [torch.stack(frames[i:i + length]) for i in range(0, len(frames) - length + 1, length)], length


def repeated_captions(index: FolderIndex) -> Tally:
    """Each caption line a file has again (the same caption twice), counted for the set-up line as the captioner's
    folder counts it (REPEATED_CAPTION): a reference image2text scores each time, trained on once."""
    repeats = Tally()
    for name in index.media:
        seen: set[str] = set()
        for caption in index.references[name]:
            if caption in seen:
                repeats.add(REPEATED_CAPTION, f"{name}: {caption!r}")
            seen.add(caption)
    return repeats


def refuse_unread(mode: str, values: dict[str, int]) -> None:
    """Those of `values` (READ_BY's options) that `mode` does not read, set to other than their defaults: one
    line naming them and the modes that read them."""
    unread = [key for key, value in values.items() if mode not in READ_BY[key] and value != DEFAULTS[key]]
    if unread:
        them = "it" if len(unread) == 1 else "them"
        readers = " or ".join(m for m in MODES if all(m in READ_BY[key] for key in unread))
        raise SupraUserError(f"{' '.join(f'data.{key}={values[key]}' for key in unread)}: data.mode={mode} does not "
                             f"read {them} (data.mode={readers} reads {them}); leave {them} out")


class MediaFolderDataModule(MediaDataModule):
    """Images and GIFs under `root`, split by file (a GIF's frames and clips stay in one split)."""

    # 2: items carry their references (every caption line, repeats too): codes cached under 1 scored image2text
    # against each caption once; 3: clips carry their real frames (codes cached under 2 scored padding as truth)
    items_version = 3

    def __init__(
        self,
        root: str,
        resize: str = "crop",
        mode: str = DEFAULT_MODE,
        frames: int = DEFAULTS["frames"],
        frame_stride: int = DEFAULTS["frame_stride"],
        max_pixels: int = MAX_PIXELS,
        max_frames: int = DEFAULTS["max_frames"],
        val_fraction: float = VAL_FRACTION,
        test_fraction: float = TEST_FRACTION,
        seed: int = 0,
        show_progress: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if resize not in RESIZES:
            raise SupraUserError(f"data.resize={resize!r} is unknown: choose one of {', '.join(RESIZES)}")
        if mode not in MODES:
            raise SupraUserError(f"data.mode={mode!r} is unknown: choose one of {', '.join(MODES)}")
        counts = {"frames": frames, "frame_stride": frame_stride, "max_pixels": max_pixels, "max_frames": max_frames}
        for key, value in counts.items():
            if value < 1:
                raise SupraUserError(f"data.{key}={value} must be >= 1")
        refuse_unread(mode, {"frames": frames, "frame_stride": frame_stride, "max_frames": max_frames})
        # the captioner folder's rule and words, but 0 turns a split off: a VQ-VAE or a2a run may go without it
        check_split_fractions(val_fraction, test_fraction, may_be_off=True)
        self.root = Path(root)
        self.resize, self.mode = resize, mode
        self.frames, self.frame_stride = frames, frame_stride
        self.max_pixels, self.max_frames = max_pixels, max_frames
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.show_progress = show_progress
        self.options = "data."  # how warnings name its options: data.sources.<name>. in the a2a mixture (check_inputs)
        self.split_files: dict[str, list[str]] = {}
        self.summary = ""
        self._loaded: dict[str, MediaItems] | None = None
        self._gifs: set[str] = set()  # the media files whose content is a GIF
        self._real_frames: dict[str, int] = {}  # item name -> its real frames, for the clips padded alone
        self._stage = "fit"

    @classmethod
    def gives_clips(cls, options: Mapping[str, Any]) -> bool:
        return options.get("mode", DEFAULT_MODE) == "clips"  # an unknown mode: not sure, refused as the source is built

    def inputs_stamp(self) -> str:
        # a folder not there (scoring on a machine that holds only the codes): the codes cached for the config
        return tree_stamp(self.root) if self.root.is_dir() else ""

    # -- decoding one file ------------------------------------------------------------------------

    def _decode(self, path: Path, name: str, animated: bool, notes: Tally) -> list[tuple[str, torch.Tensor]]:
        """(item name, uint8 [3, S, S] or [T, 3, S, S]) for every item of one file (`animated`: its content is a GIF)."""
        if not animated:
            if self.mode == "frames" and animated_still(path):
                notes.add(ANIMATED_STILLS, name)
            return [(name, fit(load_still(path, self.max_pixels), self.image_size, self.resize, self.max_pixels))]
        gif = open_gif(path, self.max_pixels, 1 if self.mode == "images" else self.max_frames)
        stride = self.frame_stride if self.mode == "clips" else 1
        frames = [(i, fit(f, self.image_size, self.resize, self.max_pixels)) for i, f in enumerate(gif.frames()) if i % stride == 0]
        if gif.problem:
            notes.add("cut short (the frames before the cut kept)", name, noun="GIF")
        if gif.capped and self.mode != "images":
            notes.add(f"with more than max_frames={self.max_frames} frames (the rest unused)", name, noun="GIF")
        if self.mode == "images":
            return [(name, frames[0][1])]
        if self.mode == "frames":
            return [(f"{name}#frame {i}", f) for i, f in frames]
        clips, real_frames = clips_of([f for _, f in frames], self.frames)
        if real_frames < self.frames:
            notes.add("padded with repeats of its last frame (GIF shorter than a clip)", name, noun="clip")
            self._real_frames[f"{name}#clip 0"] = real_frames
        return [(f"{name}#clip {k}", clip) for k, clip in enumerate(clips)]

    # -- the whole folder, once -------------------------------------------------------------------

    def _load_all(self) -> dict[str, MediaItems]:
        if self._loaded is not None:
            return self._loaded
        start = time.perf_counter()
        index = scan_folder(self.root, show_progress=self.show_progress)
        self._gifs = {name for name in index.media if holds_gif(self.root / name)}
        wanted = index.media
        if self.mode == "clips":
            wanted = [name for name in index.media if name in self._gifs]
            for name in index.media:
                if name not in self._gifs:
                    animated = animated_still(self.root / name)
                    if animated:
                        index.ignored.add(ANIMATED_STILLS_IGNORED, name)
                    else:
                        index.ignored.add("(mode=clips takes GIFs only)", name, noun="still")
            if not wanted:
                raise SupraUserError(
                    f"data.mode=clips needs animated GIFs but data.root={self.root} holds none (only "
                    f"{len(index.media)} still images): add GIFs, or use data.mode=images"
                )
        skipped, notes = Tally(), Tally()
        items: dict[str, list[tuple[str, torch.Tensor]]] = {}
        with Progress(disable=not self.show_progress, transient=True) as progress:
            task = progress.add_task(f"decoding {len(wanted)} media files to {self.image_size}px", total=len(wanted))
            for name in wanted:
                try:
                    items[name] = self._decode(self.root / name, name, name in self._gifs, notes)
                except MediaDecodeError as err:
                    skipped.add(SKIP_REASONS.get(err.kind, err.kind), name)
                    log.debug("skipped %s: %s", name, err)
                progress.advance(task)
        if not items:
            raise SupraUserError(
                f"none of the {len(wanted)} media files in data.root={self.root} could be used ({skipped.describe()}): "
                "replace them, or raise data.max_pixels if they are only large"
            )
        self.split_files = split_by_file(list(items), self.val_fraction, self.test_fraction, self.seed)
        self._say_one_image_splits()
        self._loaded = {split: self._items(files, items, index) for split, files in self.split_files.items()}
        self.summary = self._summary(index, skipped, notes, time.perf_counter() - start)
        log.info(self.summary)
        return self._loaded

    def _say_one_image_splits(self) -> None:
        """Warn of a val or test split of one image, as the captioner's folder does: drawn from the files that
        decoded (split_by_file), so it is counted after decoding. Mode images alone: there each file is one item,
        where a GIF's frames or clips are many."""
        if self.mode != "images" or (self.trainer is not None and not self.trainer.is_global_zero):
            return
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        for line in one_image_split_warnings(self.split_files, self.root, fractions, self.options, ONE_IMAGE_SCORED):
            log.warning(line)

    def _items(self, files: list[str], items: dict[str, list], index: FolderIndex) -> MediaItems:
        """One split's items, in file order. Each file's pixels are copied into the split's one tensor and
        dropped from `items` as they are (the splits share no file): the folder's pixels are held once, not
        twice, as stacking them all while `items` still held them did."""
        rows = [(name, (*pixels.shape, pixels.dtype), file) for file in files for name, pixels in items[file]]
        shape = ((self.frames,) if self.mode == "clips" else ()) + (3, self.image_size, self.image_size)
        if not rows:
            return MediaItems(torch.empty((0, *shape), dtype=torch.uint8))
        if any(r[1] != (*shape, torch.uint8) for r in rows):  # copying in would broadcast or cast them silently
            raise ValueError(f"decoded items of shapes and types {sorted({str(r[1]) for r in rows})}, not all {shape} uint8")
        pixels = torch.empty((len(rows), *shape), dtype=torch.uint8)
        k = 0
        for file in files:
            for _, decoded in items.pop(file):
                pixels[k] = decoded
                k += 1
        # trained on each caption of its file once, scored (image2text) against every line of them, as the
        # captioner's folder is: a folder's captions have no ids, so a caption written twice is two references
        real_frames = [self._real_frames.get(r[0], self.frames) for r in rows] if self.mode == "clips" else None
        return MediaItems(pixels, [list(index.captions[r[2]]) for r in rows], [r[0] for r in rows],
                          files=[r[2] for r in rows], references=[list(index.references[r[2]]) for r in rows],
                          real_frames=real_frames)

    def _summary(self, index: FolderIndex, skipped: Tally, notes: Tally, seconds: float) -> str:
        n_gifs = len(self._gifs)
        unit = "clip" if self.mode == "clips" else "image"
        splits = "; ".join(f"{split} {counted(len(self._loaded[split]), unit)} from "
                           f"{counted(len(self.split_files[split]), 'file')}" for split in SPLITS)
        found = (f"{len(index.media)} media files found ({counted(len(index.media) - n_gifs, 'still')}, "
                 f"{counted(n_gifs, 'GIF')})")
        line = f"media_folder {self.root}: {found}, mode={self.mode}: {splits}; skipped: {skipped.describe() or 'nothing'}"
        captions = ", ".join(t.describe() for t in (index.caption_problems, repeated_captions(index)) if t)
        for label, described in (("ignored", index.ignored.describe()), ("captions", captions), ("notes", notes.describe())):
            if described:
                line += f"; {label}: {described}"
        lent = lent_files(self.split_files, self.val_fraction, self.test_fraction, self.seed)
        if lent:
            line += f"; {lent_note(lent)}"
        return line + f" ({seconds:.1f}s)"

    # -- MediaDataModule --------------------------------------------------------------------------

    def check_inputs(self, options: str = "data", warn: bool = True) -> None:
        # the folder is checked as it is decoded; here, only how the mixture names its options
        self.options = f"{options}."

    def setup(self, stage: str | None = None) -> None:
        self._stage = stage or "fit"  # which advice an empty split gets
        self._load_all()
        super().setup(stage)

    def splits_for(self, stage: str | None) -> list[str]:
        splits = super().splits_for(stage)
        if stage in (None, "fit") and self.trainer is not None and self.trainer.limit_val_batches == 0:
            # validation turned off: a val split turned off too (data.val_fraction=0) is not asked for
            splits = [split for split in splits if split != "val"]
        return splits

    def split_items(self, split: str) -> MediaItems:
        return self._load_all()[split]

    def load_split(self, split: str) -> MediaItems:
        items = self._load_all()[split]
        if len(items) == 0:
            fraction = {"val": self.val_fraction, "test": self.test_fraction}.get(split)
            # what runs without the split: validation off lets a fit go without val (splits_for), test=false
            # a train.py run without a test; evaluate.py scores the split it is given
            other = ("turn validation off (+trainer.limit_val_batches=0)" if split == "val" and self._stage == "fit"
                     else "do not test it (train.py: test=false; evaluate.py: another data.split)")
            if other.startswith("turn") and self.split != "val" and not self._loaded[self.split]:
                other += f"; the {self.split} split is empty too: add test=false"
            raise SupraUserError(
                f"the {split} split of data.root={self.root} is empty (data.{split}_fraction={fraction}): "
                f"set data.{split}_fraction above 0, or {other}"
            )
        return items
