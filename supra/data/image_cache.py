"""Decode a list of image files once into one memory-mapped uint8 array at the model's size.

Decoding JPEGs every epoch is what makes small captioners slow on 2-core machines; this cache is built
once (progress bar), keyed by a hash of the file list and the transform, written atomically, and read
by every later run and every DDP rank without copying it into memory. A cache given its `origin` (what the
images are of: a source at its root) replaces, once complete, the older caches of that origin at that size
in its folder: a touched image does not leave a full stale copy behind (a 64 px COCO is ~1.5 GB). An older
Supra's cache, which records no origin, is left in place; one of the same names and size is named as removable.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import Progress

from supra.data.images import (
    DAMAGED,
    TOO_LARGE_PREFIX,
    UNREADABLE,
    PixelRangeError,
    image_to_uint8,
    load_rgb,
    why_bytes_unreadable,
    why_unreadable,
)
from supra.utils.disk_room import reserve_space, room_to_write
from supra.utils.errors import first_line
from supra.utils.files import (
    atomic_path,
    require_writable_dir,
    some_names,
    stale_temp_files,
    write_json_atomic,
)
from supra.utils.folder_walk import file_stamp
from supra.utils.numbers import counted

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when decoding or resizing changes (2: a GIF's first frame as shown, PNG colour keys)
STALE_TEMP = r"\.images_[0-9a-f]{16}\.[a-z0-9_]{8}\.npy"  # atomic_path's temp name of images_<key>.npy


@dataclass(frozen=True)
class StoredImage:
    """An encoded image that is not a file of its own (a row of a dataset's Arrow or parquet files): its
    bytes, read on demand, and a stamp that changes when they may have (the container's file_stamp)."""

    read: Callable[[], bytes]
    stamp: str


def unreadable_reason(image: Path | StoredImage, err: BaseException) -> str:
    """Why `image` could not be read, in the words caption and explain use (why_unreadable: "not a picture file",
    "empty file (0 bytes)", "damaged or cut short"), the same each run: Pillow's own text names an in-memory copy
    by its address (`<_io.BytesIO object at 0x...>`), so two builds of one cache (or write_shards' parquets) differed.
    A picture too large keeps the loader's reason, which says what to do, and is marked so that the set-up summaries
    count it apart (resize it), as caption says it."""
    if isinstance(err, Image.DecompressionBombError):
        return TOO_LARGE_PREFIX + first_line(err)
    if isinstance(err, PixelRangeError):
        return first_line(err)
    if isinstance(image, StoredImage):
        try:
            start = image.read()[:8]
        except OSError:  # its container gone meanwhile: nothing to tell it by
            return DAMAGED
        return why_bytes_unreadable(start, err)
    return why_unreadable(image, err)


def cache_key(paths: Sequence[Path | StoredImage], names: Sequence[str], size: int) -> str:
    """Hash of file names and stamps (file_stamp: a changed, replaced or renamed file rebuilds) plus the
    transform."""
    digest = hashlib.sha256(f"v{CACHE_VERSION} squash-resize {size} antialias".encode())
    for path, name in zip(paths, names, strict=True):
        stamp = path.stamp if isinstance(path, StoredImage) else file_stamp(path)
        digest.update(f"{name}|{stamp}\n".encode())
    return digest.hexdigest()[:16]


class ImageCache:
    """`<cache_dir>/images_<key>.npy` (uint8 [N, 3, S, S]) + `images_<key>.json` (which files failed).

    `names`: what each file is called in the cache's records (default its file name; sources whose images
    sit in several folders pass their relative paths, which are unique). An item of `paths` may also be a
    StoredImage, an image inside a dataset's files."""

    def __init__(self, cache_dir: str | Path, paths: Sequence[Path | StoredImage], size: int,
                 names: Sequence[str] | None = None, origin: str | None = None) -> None:
        self.paths, self.size, self.origin = list(paths), size, origin
        self.names = list(names) if names is not None else [p.name for p in self.paths]
        key = cache_key(self.paths, self.names, size)
        self.array_path = Path(cache_dir) / f"images_{key}.npy"
        self.meta_path = Path(cache_dir) / f"images_{key}.json"

    def is_valid(self) -> bool:
        """Both files present and consistent; anything unreadable is rebuilt, never trusted."""
        try:
            meta = json.loads(self.meta_path.read_text())
            array = np.load(self.array_path, mmap_mode="r")
            return meta.get("names") == self.names and array.shape == (len(self.paths), 3, self.size, self.size)
        except (OSError, ValueError, json.JSONDecodeError):
            return False

    def build(self, show_progress: bool = True) -> None:
        """Decode every file (failures recorded, not fatal) into a temp .npy, then rename into place; then
        remove the caches it replaces (`origin`)."""
        folder = self.array_path.parent  # a data set's own folder may be read-only (/kaggle/input)
        require_writable_dir(folder, f"the decoded-image cache {folder}", "set data.cache_dir to a writable folder")
        self._remove_stale_temp_files()
        failed: dict[str, str] = {}
        # a full disk (or a file size limit) is one line naming the folder, as a read-only one is
        with room_to_write(f"the decoded-image cache {folder}",
                           "free space there, or set data.cache_dir to a folder with room"):
            with atomic_path(self.array_path) as tmp:
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                                  shape=(len(self.paths), 3, self.size, self.size))
                reserve_space(tmp)  # before writing through the map: a full disk is an error here, not a SIGBUS
                with Progress(disable=not show_progress, transient=True) as progress:
                    task = progress.add_task(f"decoding {len(self.paths)} images to {self.size}px", total=len(self.paths))
                    for i, (path, name) in enumerate(zip(self.paths, self.names, strict=True)):
                        try:
                            source = io.BytesIO(path.read()) if isinstance(path, StoredImage) else path
                            array[i] = image_to_uint8(load_rgb(source), self.size).numpy()
                        except UNREADABLE as err:
                            array[i] = 0
                            failed[name] = unreadable_reason(path, err)
                        progress.advance(task)
                array.flush()
                del array
            origin = {"origin": self.origin} if self.origin is not None else {}
            write_json_atomic(self.meta_path, {"names": self.names, "failed": failed, "size": self.size, **origin})
        self._remove_replaced()

    def _remove_stale_temp_files(self) -> None:
        """The temp arrays of builds killed before they finished (each the size of a whole cache): removed, where
        this run may (a valid cache is read from a folder it may not write)."""
        stale = []
        for path in stale_temp_files(self.array_path.parent, STALE_TEMP):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                continue
            stale.append(path)
        if stale:
            log.info("removed %s that killed cache builds left in %s: %s", counted(len(stale), "temp file"),
                     self.array_path.parent, some_names([p.name for p in stale]))

    def _remove_replaced(self) -> None:
        """The other caches in this folder of the same origin and size: older versions of these images
        (a file touched, added or removed), never read again. One without an origin (an older Supra's) is
        nobody's to remove: another data set's files may share this folder and their names. One of these very
        names and size is named in a line, as likely this origin's, left for the user to remove."""
        if self.origin is None:
            return
        for meta_path in self.meta_path.parent.glob("images_*.json"):
            if meta_path == self.meta_path:
                continue
            try:
                meta = json.loads(meta_path.read_text())
                if meta.get("origin") == self.origin and meta.get("size") == self.size:
                    meta_path.with_suffix(".npy").unlink(missing_ok=True)  # the array first: a record alone is no cache
                    meta_path.unlink()
                elif "origin" not in meta and meta.get("size") == self.size and meta.get("names") == self.names:
                    log.info("%s (+ .json), a cache of %s of these names at %dpx written by an older Supra, which "
                             "did not record whose they are, is left in place: if they are these files, it is no "
                             "longer read and can be removed", meta_path.with_suffix(".npy"),
                             counted(len(self.names), "image"), self.size)
            except (OSError, ValueError):  # unreadable, or removed by another run just now: not ours to fix
                continue

    def ensure(self, show_progress: bool = True) -> None:
        if not self.is_valid():
            self.build(show_progress)
        else:  # a valid cache is never built again: a killed build's temp array would stay as long as it is read
            self._remove_stale_temp_files()

    def load(self) -> tuple[torch.Tensor, dict[str, str]]:
        """The images as a memory-mapped uint8 tensor [N, 3, S, S] and {name: error} of files that failed."""
        array = np.load(self.array_path, mmap_mode="c")  # copy-on-write: a writable tensor, no copy made
        failed = json.loads(self.meta_path.read_text())["failed"]
        return torch.from_numpy(array), failed
