"""What every benchmark's command line shares: the help layout, argument types that refuse a bad value in
one line (argparse's "error: ...", exit status 2) before any work starts, and Supra's own errors as one line.

Imported by the scripts after they put their checkout first on sys.path (see README, Benchmarks), so the
supra imported here is that checkout's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from supra.data.images import UNREADABLE
from supra.utils.errors import user_error_in
from supra.utils.files import check_writable_dir
from supra.utils.numbers import counted


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each option's default after its help (none where it is None:
    those options say in their help what leaving them out does)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def parser_for(description: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)


def whole_number(text: str, minimum: int, maximum: int | None = None, why: str = "", why_maximum: str = "") -> int:
    """`text` as a whole number from `minimum` (to `maximum`), else argparse's one-line error (saying `why` that
    minimum, and `why_maximum` that maximum, if given)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is too small: it must be {minimum} or more"
                                         + (f" ({why})" if why else ""))
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"{value} is too large: it must be {maximum} or less"
                                         + (f" ({why_maximum})" if why_maximum else ""))
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more (0 rounds, steps or images would time nothing)."""
    return whole_number(text, 1)


def at_least(minimum: int, why: str) -> Callable[[str], int]:
    """An argparse type: a whole number of `minimum` or more, refused with that minimum and `why` (positive_int's
    "it must be 1 or more" sent a user to a value the script then refused as well)."""

    def whole_number_at_least(text: str) -> int:
        return whole_number(text, minimum, why=why)

    return whole_number_at_least


def at_most(maximum: int, why: str) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to `maximum`, refused above it with `why` (a side of 100,000 px
    was an out-of-memory traceback from deep inside once the work had started)."""

    def whole_number_at_most(text: str) -> int:
        return whole_number(text, 1, maximum, why_maximum=why)

    return whole_number_at_most


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of 0 or more (e.g. DataLoader workers, 0 = the main process)."""
    return whole_number(text, 0)


def seed(text: str) -> int:
    """An argparse type: a seed, 0 to 2**64 - 1 (what both numpy's default_rng and torch.manual_seed take)."""
    return whole_number(text, 0, 2**64 - 1)


def jpeg_folder(text: str) -> Path:
    """An argparse type: a folder holding *.jpg files (as Flickr8k's Images/ does)."""
    folder = Path(text)
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    if next(folder.glob("*.jpg"), None) is None:
        raise argparse.ArgumentTypeError(f"{text} holds no *.jpg files")
    return folder


def readable_jpegs(folder: Path, n: int) -> list[Path]:
    """The first `n` *.jpg files of `folder` by name that PIL reads, before any timing: one it cannot read was a
    traceback from a DataLoader worker once the cache was built. The others are skipped, said in one line on
    stderr, so that every pipeline times the same files; none readable is a one-line error. A file is checked
    from its header and its last bytes (~0.05 ms); only one that does not end in a JPEG's end marker (cut short,
    or not a JPEG) is decoded to know (~2 ms)."""
    readable: list[Path] = []
    unreadable: list[str] = []
    for path in sorted(folder.glob("*.jpg")):
        if len(readable) == n:
            break
        try:
            with Image.open(path) as image:
                if not _ends_like_a_jpeg(path):
                    image.load()
        except UNREADABLE as err:
            unreadable.append(f"{path.name}: {str(err).splitlines()[0][:100] if str(err) else type(err).__name__}")
            continue
        readable.append(path)
    if not readable:
        raise SystemExit(f"error: none of the {len(unreadable)} *.jpg files of --root {folder} can be read (first: "
                         f"{unreadable[0]}): give a folder of readable JPEGs")
    if unreadable:
        print(f"skipped {counted(len(unreadable), '*.jpg file')} of --root {folder} that cannot be read (first: "
              f"{unreadable[0]}); every pipeline reads the same {counted(len(readable), 'readable one')}",
              file=sys.stderr)
    return readable


def _ends_like_a_jpeg(path: Path) -> bool:
    with open(path, "rb") as file:
        file.seek(0, 2)
        if file.tell() < 2:
            return False
        file.seek(-2, 2)
        return file.read() == b"\xff\xd9"  # EOI


def output_file(text: str) -> Path:
    """An argparse type: a file to write the figures to, in a folder that exists and can be written (checked
    before the timing: a bad path was a traceback after it, the figures lost)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: give a file's path (e.g. {path / 'figures.json'})")
    try:
        check_writable_dir(path.parent if str(path.parent) else ".", create=False)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot write {text} ({err.strerror or err}): give a file in a folder "
                                         "that exists and can be written") from None
    return path


def torch_device(text: str) -> torch.device:
    """An argparse type: cpu, or a CUDA device this machine has. Others (mps, meta, xpu) are refused: the
    benchmarks synchronise only CUDA before reading the clock, and torch may not be built for them."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text}: the benchmarks run on cpu or a CUDA GPU (cuda, cuda:1, ...)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text} needs a CUDA GPU but this machine has none: use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {counted(torch.cuda.device_count(), 'CUDA GPU')}, "
                                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def paired_ratios(candidate: list[float], baseline: list[float]) -> list[float]:
    """Each round's `candidate` figure over the same round's `baseline` one: their median is the benchmarks' ratio,
    where a busy spell of a shared machine lands on both sides of a pair (a ratio of two medians mixes rounds)."""
    return [c / b for c, b in zip(candidate, baseline, strict=True)]


# A timed pass shorter than this gives a ratio that is mostly noise: 8 cached images, a few ms a pass, gave b/a
# of 81.8x, 12.5x and 94.7x in three runs.
SHORT_PASS_S = 0.2


def short_passes_warning(pass_seconds: list[float], advice: str, figures: str = "ratios") -> str:
    """A warning line where the shortest timed pass lasted under SHORT_PASS_S, saying its `figures` (what the run
    prints: "ratios", or "milliseconds" where it compares nothing) are mostly noise, with `advice` (the options that
    lengthen a pass or add rounds); "" where every pass was long enough."""
    shortest = min(pass_seconds)
    if shortest >= SHORT_PASS_S:
        return ""
    return (f"warning: the shortest timed pass lasted {shortest * 1000:.0f} ms, under {SHORT_PASS_S * 1000:.0f} ms: "
            f"its {figures} are mostly noise; {advice}")


def progress_line(done: int, total: int, figures: dict[str, str]) -> str:
    """The line said as round `done` of `total` ends: each side's figure of that round, by its name in the table
    ("round 2/5: (a) 1.23 s, (b) 0.45 s")."""
    return f"round {done}/{total}: " + ", ".join(f"{name} {figure}" for name, figure in figures.items())


def say_progress(line: str) -> None:
    """`line` on stderr at once: the table comes only after every round (minutes on a CPU), and a run silent that
    long looks stuck; stdout keeps the table alone."""
    print(line, file=sys.stderr, flush=True)


def load_report(when: str, load: float, cores: int) -> str:
    """One line on the machine's 1-minute load average `load` at `when`, with a note where it is above the `cores`
    the benchmark uses: other work then shares them, and its figures are not comparable with an idle machine's."""
    line = f"machine load {when}: {load:.1f} (1-minute average), for the {counted(cores, 'core')} this run uses"
    if load > cores:
        line += ": busy, so these figures are not comparable with an idle machine's"
    return line


def print_machine_load(when: str, cores: int | None = None) -> float:
    """Prints load_report of os.getloadavg() now, and returns that load; `cores` defaults to torch's threads. Each
    benchmark calls it at the start and the end of its run: the table alone looks the same on an idle and a loaded
    machine."""
    load = os.getloadavg()[0]
    print(load_report(when, load, cores or torch.get_num_threads()), flush=True)
    return load


def machine_load_figures(at_start: float, at_end: float, cores: int) -> dict[str, float | int | bool]:
    """The machine-load lines of a run as a benchmark's --json file records them, under "machine_load": the loads
    printed at its start and end, the cores it used, and whether either load was above them (busy)."""
    return {"at_start": at_start, "at_end": at_end, "cores": cores, "busy": max(at_start, at_end) > cores}


def exit_if_sides_differ(items: str, differing: int, total: int, sides: str, advice: str) -> None:
    """Ends a benchmark whose compared sides disagree: `differing` of its `total` `items` differ between `sides`,
    said in one line on stderr with exit status 1 (called after the table, which stays printed); nothing where
    none differ. Their speed-up then weighs different work, and a count in the table ("identical: 250/256") was
    easy to miss behind exit status 0."""
    if differing:
        raise SystemExit(f"error: {differing} of {total} {items} differ between {sides}, so the speed-up compares "
                         f"different work; {advice}")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Supra's SupraUserError (a missing or wrong checkpoint, a setting the machine cannot run), also when
    Hydra wrapped it, as one line and exit status 1, as train.py reports it, rather than a traceback."""
    try:
        yield
    except Exception as err:
        user_error = user_error_in(err)
        if user_error is None:
            raise
        raise SystemExit(f"error: {user_error}") from None

