"""The built-in `shapes_video` clips: one shape (sometimes beside a still second one) moving, turning or
changing colour over a few frames, 5 true captions each (see `shapes_clips`). As a DataModule for the
any-to-any stages, or written out as animated GIFs:

    python -m supra.data.shapes_video out=DIR n=100 [frames=4] [seed=0] [size=64] [split=train] [duration_ms=250]

writes DIR/clip_00000.gif ... (looping, `frames` frames of `duration_ms` each) and DIR/captions.jsonl, one
line {"file": "clip_00000.gif", "caption": "..."} per caption (5 per clip): the layout data=media_folder
reads (data.mode=clips). The GIFs are exact: their frames decode to the generated pixels (a clip has
under 256 colours, written with its own palette). Clip i of split=S is clip i of the DataModule's split S
with the same seed and frames; files of the same names in DIR are replaced, other files are left alone.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import Progress

from supra.data.media_datamodule import SPLITS, MediaDataModule, MediaItems
from supra.data.shapes import SPLIT_SEED_OFFSET
from supra.data.shapes_clips import Clip, generate_clips
from supra.utils.cli import parse_key_values
from supra.utils.errors import SupraUserError, exit_on_user_error
from supra.utils.files import atomic_path, check_writable_dir, write_text_atomic

log = logging.getLogger(__name__)


class ShapesVideoDataModule(MediaDataModule):
    """Shapes clips drawn at `image_size`: pixels uint8 [N, frames, 3, S, S]; split i of a seed is the
    same on every machine."""

    def __init__(
        self, num_train: int = 5000, num_val: int = 250, num_test: int = 250, frames: int = 4, seed: int = 0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        for split, n in self.sizes.items():
            if n < 1:
                raise SupraUserError(f"data.num_{split}={n}: every split needs at least 1 clip")
        if frames < 2:
            raise SupraUserError(f"data.frames={frames}: a clip needs at least 2 frames to show a change")
        if seed < 0:
            raise SupraUserError(f"data.seed={seed} must be >= 0")
        if self.image_size < 32:
            raise SupraUserError(f"data.image_size={self.image_size} is too small to draw shapes: use 32 or more")
        self.frames, self.seed = frames, seed
        self.clips: dict[str, list[Clip]] = {}  # records of the loaded splits (motion, objects per frame)

    def load_split(self, split: str) -> MediaItems:
        start = time.perf_counter()
        pixels, clips = generate_clips(self.sizes[split], self.seed + SPLIT_SEED_OFFSET[split], self.frames, self.image_size)
        self.clips[split] = clips
        log.info("shapes_video %s: %d clips of %d frames at %dpx (%.1fs)", split, len(clips), self.frames,
                 self.image_size, time.perf_counter() - start)
        return MediaItems(torch.from_numpy(pixels).permute(0, 1, 4, 2, 3).contiguous(),
                          [list(c.captions) for c in clips], [f"{split}_{i:05d}" for i in range(len(clips))])


# -- exact GIFs -------------------------------------------------------------------------------------

def write_gif(frames: np.ndarray, path: str | os.PathLike, duration_ms: int = 250) -> Path:
    """uint8 [T, H, W, 3] -> a looping animated GIF of T frames that decode to exactly these pixels,
    written atomically. ValueError if the frames hold more colours than one GIF palette (256).

    Pillow merges a frame identical to the one before into it (one frame, summed delay); to keep every
    frame, such a frame draws its top-left pixel with a twin palette entry of the same colour."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {list(frames.shape)}")
    packed = (frames[..., 0].astype(np.uint32) << 16) | (frames[..., 1].astype(np.uint32) << 8) | frames[..., 2]
    colours, indices = np.unique(packed, return_inverse=True)
    indices = indices.reshape(packed.shape).astype(np.int64)
    twins: dict[int, int] = {}  # palette index -> the index of its twin entry
    for t in range(1, len(frames)):
        if np.array_equal(packed[t], packed[t - 1]) and indices[t - 1, 0, 0] == indices[t, 0, 0]:
            indices[t, 0, 0] = twins.setdefault(int(indices[t, 0, 0]), len(colours) + len(twins))
    if len(colours) + len(twins) > 256:
        raise ValueError(f"the frames hold {len(colours)} colours: too many for an exact GIF (256 at most, "
                         "with one spare per colour in the top-left corner of repeated frames)")
    palette = [*colours.tolist(), *(int(colours[i]) for i in twins)]
    rgb = bytes(b for c in palette for b in ((c >> 16) & 255, (c >> 8) & 255, c & 255))
    indices = indices.astype(np.uint8)
    images = []
    for frame in indices:
        image = Image.frombytes("P", (frame.shape[1], frame.shape[0]), frame.tobytes())
        image.putpalette(rgb)
        images.append(image)
    with atomic_path(path) as tmp:
        # optimize=False: Pillow would otherwise rebuild each frame's palette and drop the twin entries.
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms,
                       loop=0, optimize=False)
    return Path(path)


# -- command line -----------------------------------------------------------------------------------

def _whole(args: dict[str, str], key: str) -> int:
    try:
        return int(args[key])
    except ValueError:
        raise SupraUserError(f"{key}={args[key]!r} must be a whole number") from None


def write_clips(
    out: str | os.PathLike, n: int, frames: int = 4, seed: int = 0, size: int = 64, split: str = "train",
    duration_ms: int = 250, chunk: int = 256, show_progress: bool = True,
) -> Path:
    """Clips 0..n-1 of `split` as out/clip_NNNNN.gif and their captions as out/captions.jsonl (returned)."""
    for key, value, least in (("n", n, 1), ("frames", frames, 2), ("seed", seed, 0)):
        if value < least:
            raise SupraUserError(f"{key}={value} must be >= {least}")
    if split not in SPLITS:
        raise SupraUserError(f"split={split!r} is unknown: choose one of {', '.join(SPLITS)}")
    if duration_ms < 20 or duration_ms % 10:
        raise SupraUserError(f"duration_ms={duration_ms} must be a multiple of 10 (GIFs count hundredths of a "
                             "second) and >= 20 (browsers play shorter frames at 100 ms)")
    if size < 32:
        raise SupraUserError(f"size={size} is too small to draw shapes: use 32 or more")
    try:
        out = check_writable_dir(out)
    except OSError as err:
        raise SupraUserError(f"cannot write to out={out} ({err.strerror or err}): choose another folder") from None
    digits = max(5, len(str(n - 1)))
    lines = []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"writing {n} clips of {frames} frames as GIFs", total=n)
        for first in range(0, n, chunk):  # in chunks: n clips at once might not fit in memory
            pixels, clips = generate_clips(min(chunk, n - first), seed + SPLIT_SEED_OFFSET[split], frames, size, first)
            for i, (clip_pixels, clip) in enumerate(zip(pixels, clips, strict=True)):
                name = f"clip_{first + i:0{digits}d}.gif"
                write_gif(clip_pixels, out / name, duration_ms)
                lines += [json.dumps({"file": name, "caption": caption}) for caption in clip.captions]
            progress.advance(task, len(clips))
    return write_text_atomic(out / "captions.jsonl", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_key_values(
        sys.argv[1:] if argv is None else argv, __doc__, required=("out", "n"),
        defaults={"frames": "4", "seed": "0", "size": "64", "split": "train", "duration_ms": "250"},
    )
    with exit_on_user_error():
        n, frames, seed, size, duration_ms = (_whole(args, k) for k in ("n", "frames", "seed", "size", "duration_ms"))
        captions = write_clips(args["out"], n, frames, seed, size, args["split"], duration_ms)
    print(f"wrote {n} clips ({frames} frames, {size}px) to {args['out']} and {5 * n} captions to {captions}")


if __name__ == "__main__":
    main()
