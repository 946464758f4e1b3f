"""Images per second delivered to the model: (a) PIL decode + resize per sample every epoch, as the
release notebook does, against (b) Supra's decoded-once, memory-mapped cache; same DataLoader workers,
interleaved rounds (each round one epoch of (a), then one of (b)): medians, and the median of each round's
ratio b/a, so that a busy spell of a shared machine slows both.

    python benchmarks/image_pipeline.py [--root /path/to/Flickr8k/Images] [--images 1024] [--workers 2] [--rounds 3]

Without --root it writes synthetic 500x375 JPEGs (Flickr8k's typical size) to a temp folder. Files of --root
that PIL cannot read are skipped, said in one line, before any timing: both pipelines read the same files.
A line on stderr as each round ends (its images/s of each) shows the run going on before the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's supra (README, Benchmarks)

from bench_common import (  # noqa: E402
    at_most,
    jpeg_folder,
    non_negative_int,
    paired_ratios,
    parser_for,
    positive_int,
    print_machine_load,
    progress_line,
    readable_jpegs,
    say_progress,
    short_passes_warning,
)

from supra.data.captioning.datamodule import ImageRows  # noqa: E402
from supra.data.image_cache import ImageCache  # noqa: E402
from supra.data.images import normalize_images  # noqa: E402
from supra.utils.hardware import cpu_description  # noqa: E402

# The captioner reads 112 px (224 with a pretrained tower); past 512 px the run times the copying of pixels no
# model here reads, and the cache of 1,024 images already takes 0.8 GB of the temp folder.
MAX_SIZE = 512
# What lengthens a timed pass (an epoch over --images) or gives the medians more of them.
SHORT_PASS_ADVICE = "raise --images (longer passes) or --rounds (more of them for the medians)"


class DecodeEveryEpoch(Dataset):
    """The release notebook's way: open, convert, resize and normalise each image when it is asked for."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths = paths
        self.transform = transforms.Compose([
            transforms.Resize((size, size)), transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(Image.open(self.paths[i]).convert("RGB"))


class CachedImages(Dataset):
    def __init__(self, rows: ImageRows) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self.rows[torch.as_tensor(indices)]


def _identity(batch):
    return batch


def images_per_second(loader: DataLoader, normalise: bool) -> float:
    start, n = time.perf_counter(), 0
    for batch in loader:
        if normalise:
            batch = normalize_images(batch)
        n += len(batch)
    return n / (time.perf_counter() - start)


def synthetic_jpegs(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.roll(base, i * 7, axis=1)).save(path, quality=90)
        paths.append(path)
    return paths


def pipeline_arguments(description: str, rounds: int) -> argparse.ArgumentParser:
    """The options every image-pipeline benchmark takes (shard_pipeline.py adds its own)."""
    parser = parser_for(description)
    parser.add_argument("--root", type=jpeg_folder, default=None,
                        help="a folder of *.jpg files, e.g. Flickr8k's Images/ (default: synthetic JPEGs); files "
                        "that cannot be read are skipped, said in one line")
    parser.add_argument("--images", type=positive_int, default=1024, help="JPEGs to read (the first readable, by name)")
    parser.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader workers (0: the main process)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per batch")
    parser.add_argument("--size", default=112, help=f"side of the square images delivered, 1 to {MAX_SIZE}",
                        type=at_most(MAX_SIZE, "the captioner reads 112 px, 224 with a pretrained tower"))
    parser.add_argument("--rounds", type=positive_int, default=rounds, help="interleaved rounds; medians and paired ratios")
    return parser


def baseline_loaders(paths: list[Path], cache_dir: Path, args: argparse.Namespace) -> tuple[DataLoader, DataLoader, float]:
    """(a) PIL decode per sample and (b) the memory-mapped cache over `paths`, and the cache's build seconds."""
    loader_args = {"batch_size": args.batch_size, "num_workers": args.workers, "shuffle": True,
                   "persistent_workers": args.workers > 0}
    plain = DataLoader(DecodeEveryEpoch(paths, args.size), **loader_args)
    start = time.perf_counter()
    cache = ImageCache(cache_dir, paths, args.size)
    cache.build(show_progress=False)
    build_s = time.perf_counter() - start
    store, _ = cache.load()
    cached = DataLoader(CachedImages(ImageRows(store, torch.arange(len(paths)))), collate_fn=_identity, **loader_args)
    return plain, cached, build_s


def main() -> None:
    args = pipeline_arguments(__doc__, rounds=3).parse_args()
    root_jpegs = readable_jpegs(args.root, args.images) if args.root else None
    print_machine_load("at start", cores=max(args.workers, 1))  # the decoding runs in the workers
    with tempfile.TemporaryDirectory() as tmp:
        paths = root_jpegs or synthetic_jpegs(Path(tmp), args.images)
        plain, cached, build_s = baseline_loaders(paths, Path(tmp) / "cache", args)
        images_per_second(plain, False)  # warm-up: worker start-up, page cache
        images_per_second(cached, True)
        rounds = []
        for done in range(1, args.rounds + 1):
            rounds.append((images_per_second(plain, False), images_per_second(cached, True)))
            # the table comes after every round: a line each shows the run going on
            say_progress(progress_line(done, args.rounds, {"(a)": f"{rounds[-1][0]:,.0f} images/s",
                                                           "(b)": f"{rounds[-1][1]:,.0f} images/s"}))
    a, b = statistics.median(a for a, _ in rounds), statistics.median(b for _, b in rounds)
    ratio = statistics.median(paired_ratios([b for _, b in rounds], [a for a, _ in rounds]))
    print(f"\n{len(paths)} images -> {args.size}px, batch {args.batch_size}, {args.workers} DataLoader workers, "
          f"{args.rounds} interleaved rounds, {cpu_description()}")
    print("| pipeline                                       | median images/s |")
    print("|------------------------------------------------|----------------:|")
    print(f"| (a) PIL decode + resize per sample, each epoch | {a:15.0f} |")
    print(f"| (b) memory-mapped uint8 cache                  | {b:15.0f} |")
    print(f"speed-up b/a: {ratio:.1f}x, the median of the rounds' ratios (per round: "
          f"{', '.join(f'{b / a:.1f}x' for a, b in rounds)}); one-off cache build: {build_s:.1f}s, "
          f"{len(paths) / build_s:.0f} images/s")
    if warning := short_passes_warning([len(paths) / rate for pair in rounds for rate in pair], SHORT_PASS_ADVICE):
        print(warning)
    print_machine_load("at end", cores=max(args.workers, 1))


if __name__ == "__main__":
    main()
