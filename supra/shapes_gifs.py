"""`python -m supra.shapes_gifs out=DIR n=100`: the built-in shapes_video clips as animated GIFs
(conf/shapes_gifs.yaml).

Writes DIR/clip_00000.gif ... (looping, `frames` frames of `duration_ms` each) and DIR/captions.jsonl, one
line {"file": "clip_00000.gif", "caption": "..."} per caption (5 per clip): the layout data=media_folder
reads (data.mode=clips). The GIFs are exact: their frames decode to the generated pixels (a clip has
under 256 colours, written with its own palette). Clip i of split=S is clip i of the DataModule's split S
with the same seed and frames. DIR/.shapes_gifs.json records the clips a run wrote: an earlier run's clips
in DIR are replaced (its extra ones removed), every other file is left alone (and its lines in an existing
captions.jsonl kept), and a file of yours that a clip would write over (your own clip_00000.gif) is refused
in one line before any clip is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.progress import Progress

from supra.data.base import check_split
from supra.data.captions import read_caption_text
from supra.pictures.files import write_exact_gif
from supra.procedural.shapes_clips import generate_clips
from supra.procedural.shapes_scenes import MIN_DRAWING_SIZE, SPLIT_SEED_OFFSET
from supra.utils.cli import check_paths_given, count_as_typed, hydra_command
from supra.utils.errors import SupraUserError
from supra.utils.files import (
    outputs_record,
    refuse_folders_in_the_way,
    refuse_replacing_others,
    remove_earlier_outputs,
    require_local_folder,
    require_writable_dir,
    write_json_atomic,
    write_text_atomic,
)
from supra.utils.numbers import counted, is_whole
from supra.utils.seeds import check_seed

# the clips a run wrote into out (hidden: data=media_folder passes it over, as it is no media and no captions);
# what a later run may replace, so a user's own clip_00000.gif there is never taken for one
RECORD = ".shapes_gifs.json"
# Clips are drawn whole in memory, frames x size x size x 3 bytes each (a GIF's side could be up to 65,535 px):
# a size or frame count past these was numpy's out-of-memory traceback, with the folder's record left incomplete
MAX_SIZE = 1024  # 12 MiB a clip of 4 frames
MAX_CLIP_BYTES = 1 << 30  # also what one chunk of clips drawn together may take
INCOMPLETE = "a shapes_gifs run stopped while writing these clips: run it again to replace them"


def check_clip_settings(n: int, frames: int, seed: int, size: int, split: str, duration_ms: int) -> int:
    """One line for each setting write_clips cannot draw; returns the bytes one clip takes in memory."""
    for key, value in (("n", n), ("frames", frames), ("seed", seed), ("size", size), ("duration_ms", duration_ms)):
        if not is_whole(value):
            raise SupraUserError(f"{count_as_typed(key, value)} must be a whole number")
    for key, value, least in (("n", n, 1), ("frames", frames, 2)):
        if value < least:
            raise SupraUserError(f"{key}={value} must be >= {least}")
    check_seed("seed", seed)  # data.seed's range: numpy reads a larger seed as words, aliasing another seed's clips
    check_split(split, "split")
    if duration_ms < 20 or duration_ms % 10:
        raise SupraUserError(f"duration_ms={duration_ms} must be a multiple of 10 (GIFs count hundredths of a "
                             "second) and >= 20 (browsers play shorter frames at 100 ms)")
    if size < MIN_DRAWING_SIZE:
        raise SupraUserError(f"size={size} is too small to draw shapes: use {MIN_DRAWING_SIZE} or more")
    if size > MAX_SIZE:
        raise SupraUserError(f"size={size} is too large: use {MAX_SIZE} or less (each clip is drawn in memory, "
                             "frames x size x size x 3 bytes)")
    clip_bytes = frames * size * size * 3
    if clip_bytes > MAX_CLIP_BYTES:
        raise SupraUserError(f"frames={frames} of size={size} would take {clip_bytes / 2**30:.1f} GiB a clip in memory: "
                             f"use at most {MAX_CLIP_BYTES // (size * size * 3)} frames of that size, or a smaller size")
    return clip_bytes


def write_clips(
    out: str | os.PathLike, n: int, frames: int = 4, seed: int = 0, size: int = 64, split: str = "train",
    duration_ms: int = 250, chunk: int = 256, show_progress: bool = True,
) -> Path:
    """Clips 0..n-1 of `split` as out/clip_NNNNN.gif and their captions as out/captions.jsonl (returned)."""
    clip_bytes = check_clip_settings(n, frames, seed, size, split, duration_ms)
    chunk = max(1, min(chunk, MAX_CLIP_BYTES // clip_bytes))  # each clip is seeded alone: chunks change no pixel
    digits = max(5, len(str(n - 1)))
    names = [f"clip_{i:0{digits}d}.gif" for i in range(n)]
    out = require_writable_dir(out, f"out={out}")
    existing = listed_captions(out)  # read (or refused) before any clip is written
    record = earlier_record(out)
    earlier = earlier_clips(record)  # by the record, never by name: a clip_00000.gif of the user's is theirs
    refuse_folders_in_the_way(out, [*names, RECORD])
    refuse_replacing_others(out, [*names, RECORD], {*earlier, RECORD} if record else set(),
                            f"shapes_gifs run wrote (its {RECORD} does not list them)")
    # listing every clip that may be there from now on: a run killed part-way leaves clips the next one replaces
    write_json_atomic(out / RECORD, {"incomplete": INCOMPLETE, "files": sorted({*earlier, *names})})
    # the user's own captions of their own pictures in the same folder are kept, as their pictures are; the
    # earlier clips' go first, so a run killed part-way leaves clips without captions (skipped by
    # data=media_folder, and counted), never a new clip under an old clip's caption
    kept = [line for name, line in existing if name not in earlier]
    if earlier:
        write_text_atomic(out / "captions.jsonl", "".join(f"{line}\n" for line in kept))
    lines = []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"writing {counted(n, 'clip')} of {counted(frames, 'frame')} as GIFs", total=n)
        for first in range(0, n, chunk):  # in chunks: n clips at once might not fit in memory
            pixels, clips = generate_clips(min(chunk, n - first), seed + SPLIT_SEED_OFFSET[split], frames, size, first)
            for i, (clip_pixels, clip) in enumerate(zip(pixels, clips, strict=True)):
                name = names[first + i]
                write_exact_gif(clip_pixels, out / name, duration_ms)
                lines += [json.dumps({"file": name, "caption": caption}) for caption in clip.captions]
            progress.advance(task, len(clips))
    # an earlier run's extra clips would be left without captions in a media folder read from `out`
    written = set(names)
    remove_earlier_outputs(out, earlier, written)
    kept = [line for name, line in existing if name not in earlier | written]
    captions = write_text_atomic(out / "captions.jsonl", "\n".join(kept + lines) + "\n")
    write_json_atomic(out / RECORD, {"command": "shapes_gifs", "n": n, "frames": frames, "seed": seed, "size": size,
                                     "split": split, "duration_ms": duration_ms, "files": names})
    return captions


def earlier_record(out: Path) -> dict[str, Any] | None:
    """out/.shapes_gifs.json when an earlier shapes_gifs run wrote it; None when there is none, or it is not one."""
    return outputs_record(out / RECORD)


def earlier_clips(record: dict[str, Any] | None) -> set[str]:
    """The clips an earlier shapes_gifs run wrote, by its record (none without one). Only names directly in
    out: a record edited to name sub/x.gif or ../x.gif names nothing there."""
    return {name for name in record["files"] if name == Path(name).name} if record else set()


def listed_captions(out: Path) -> list[tuple[str | None, str]]:
    """Each line of `out`'s captions.jsonl with the file it captions (None where it names none), read as
    data=media_folder reads it (any encoding it reads); a file that cannot be read is refused, not replaced."""
    try:
        text = read_caption_text(out / "captions.jsonl")
    except FileNotFoundError:
        return []
    except OSError as err:
        raise SupraUserError(f"{out / 'captions.jsonl'} cannot be read ({err.strerror or err}), so its captions "
                             "could not be kept: fix it or choose another out=") from None
    listed = []
    for line in text.splitlines():
        try:
            name = json.loads(line).get("file") if line.strip() else None
        except (ValueError, AttributeError):
            name = None
        if line.strip():
            listed.append((name if isinstance(name, str) else None, line))
    return listed


def run(cfg: DictConfig) -> Path:
    check_paths_given(cfg, {"out": "the folder to write the clips to"})
    out = require_local_folder(str(cfg.out), "out")  # a URL would become a folder named `s3:` in the current one
    captions = write_clips(out, cfg.n, cfg.frames, cfg.seed, cfg.size, cfg.split, cfg.duration_ms)
    print(f"wrote {counted(cfg.n, 'clip')} ({counted(cfg.frames, 'frame')}, {cfg.size}px) to {out} and "
          f"{5 * cfg.n} captions to {captions}")
    return captions


def clips_left(cfg: DictConfig) -> str:
    """What a shapes_gifs run stopped by Ctrl-C leaves (write_clips says why it is so)."""
    return (f"out={cfg.out} may hold some of this run's clips without captions (data=media_folder skips them): "
            "run it again to write them all")


main = hydra_command("shapes_gifs", run, interrupted=clips_left)

if __name__ == "__main__":
    main()
