"""Images per second of the streamed shard pipeline (data=shards: tar shards read by libarchive, samples
grouped and shuffled by webdataset's rules, JPEGs decoded in the DataLoader's workers in draft mode by
libjpeg-turbo through simplejpeg, tokenised and batched there, through the ShardLoader training uses)
against (a) PIL decode + resize per sample from files, as the release notebook does, and (c) the
memory-mapped decoded cache of the on-disk sources; the same JPEGs, the same workers, in one run,
interleaved rounds (medians, and ratios to (a) of the same round). Also how far draft-mode decoding is
from a full decode at the model's size.

    python benchmarks/shard_pipeline.py [--root /path/to/Flickr8k/Images] [--images 1024] [--workers 2] [--rounds 5]

Without --root it writes synthetic 500x375 JPEGs (Flickr8k's typical size) that compress like photos
(--noise: image_pipeline.py's noise). Shards are written from the same files in img2dataset's layout, at
least 4 per worker (each worker streams whole shards, shuffled between workers each epoch): so that every
worker holds a batch in every epoch, --images must be at least 4 x --batch-size x --workers. A line on stderr
as each round ends (its images/s of each pipeline) shows the run going on before the table.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's supra (README, Benchmarks)

from bench_common import (  # noqa: E402
    paired_ratios,
    print_machine_load,
    progress_line,
    readable_jpegs,
    say_progress,
    short_passes_warning,
)
from image_pipeline import (  # noqa: E402
    SHORT_PASS_ADVICE,
    baseline_loaders,
    images_per_second,
    pipeline_arguments,
    synthetic_jpegs,
)

from supra.data.caption_sources.shards import decode_image, expand_shards, shard_sizes  # noqa: E402
from supra.data.captioning.shard_stream import ShardLoader, ShardStream  # noqa: E402
from supra.tokens.caption_bpe import CaptionTokenizer  # noqa: E402
from supra.utils.hardware import cpu_features  # noqa: E402
from supra.utils.numbers import counted  # noqa: E402


def photo_like_jpegs(folder: Path, n: int) -> list[Path]:
    """500x375 JPEGs that compress like photos (~85 KB at quality 90: smooth shapes plus grain), unlike
    image_pipeline.py's noise (~400 KB), whose entropy decoding would dominate every decoder alike."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
        pixels = np.clip(np.asarray(coarse, dtype=np.float32) + rng.normal(0, 12, (375, 500, 3)), 0, 255)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def write_shards(paths: list[Path], folder: Path, per_shard: int) -> str:
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    for shard, start in enumerate(range(0, len(paths), per_shard)):
        chunk = paths[start:start + per_shard]
        with wds.TarWriter(str(folder / f"{shard:05d}.tar")) as tar:
            for number, path in enumerate(chunk):
                key = f"{shard:05d}{number:04d}"
                tar.write({"__key__": key, "jpg": path.read_bytes(), "txt": f"a photo number {number}",
                           "json": json.dumps({"key": key, "status": "success"})})
        (folder / f"{shard:05d}_stats.json").write_text(json.dumps({"count": len(chunk), "successes": len(chunk)}))
    return str(folder / f"{{00000..{shard:05d}}}.tar")


def stream_loader(spec: str, size: int, batch_size: int, workers: int, draft: bool) -> ShardLoader:
    """The stream as data=shards trains on it: a ShardLoader, whose workers persist across epochs (as the
    baseline's do); each pass over it is the next epoch."""
    urls = expand_shards(spec)
    tokenizer = CaptionTokenizer.train([f"a photo number {i}" for i in range(100)], 300)
    stream = ShardStream(urls, shard_sizes(urls), batch_size, size, tokenizer, 16, shuffle_buffer=256, draft=draft,
                         workers=workers)
    return ShardLoader(stream, num_workers=workers)


def stream_images_per_second(loader: ShardLoader) -> float:
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch["images"])
    return n / (time.perf_counter() - start)


def draft_difference(paths: list[Path], size: int) -> tuple[float, float]:
    """Mean absolute and mean squared difference (of 0-255 values) of draft-mode against full decoding, at `size`."""
    diffs, errors = [], []
    for path in paths[:200]:
        data = path.read_bytes()
        full, draft = decode_image(data, size, draft=False).float(), decode_image(data, size, draft=True).float()
        diffs.append((full - draft).abs().mean().item())
        errors.append(((full - draft) ** 2).mean().item())
    return float(np.mean(diffs)), float(np.mean(errors))


def difference_text(mean_abs: float, mean_squared: float) -> str:
    """Draft against full decoding in words: "identical" where every pixel agrees (draft mode changes nothing in
    pictures no larger than the target size), else the mean |difference| and the PSNR."""
    if mean_squared == 0:
        return "identical"
    return f"mean |difference| {mean_abs:.2f} of 255, PSNR {10 * np.log10(255 ** 2 / mean_squared):.1f} dB"


def decoding_threads(workers: int) -> str:
    """What decodes, for the CPU line: DataLoader workers run 1 torch thread each (torch sets it in them), and the
    main process is set to 1 here; torch's thread count alone ("1 threads") described neither."""
    return "1 thread per worker" if workers else "1 thread (the main process decodes)"


def decoder(workers: int) -> str:
    """Where the decoding the table times runs: --workers 0 has no worker, the main process decodes."""
    return "per worker" if workers else "in the main process"


# Each pipeline in a round's progress line, as the table's rows begin
ROUND_NAMES = {"pil": "(a)", "full": "(b) full", "draft": "(b) draft", "cache": "(c)"}


def table_rows(workers: int) -> list[tuple[str, str]]:
    """The table's rows: each pipeline's name, and its key in the rates measured."""
    where = "in the workers" if workers else "in the main process"
    return [("(a) PIL decode + resize per sample, from files", "pil"),
            (f"(b) shards streamed, full JPEG decode {where}", "full"),
            ("(b) shards streamed, draft-mode JPEG decode (data=shards)", "draft"),
            ("(c) memory-mapped decoded cache (on-disk sources)", "cache")]


def main() -> None:
    parser = pipeline_arguments(__doc__, rounds=5)
    parser.add_argument("--noise", action="store_true", help="image_pipeline.py's noise JPEGs instead of photo-like ones")
    args = parser.parse_args()
    # Whole shards, 4 or more per worker, go to the workers in a new order each epoch: with shards of a batch
    # or more, every worker holds a batch in every epoch (else the stream stops: "no usable sample").
    minimum = 4 * args.batch_size * max(args.workers, 1)
    root_jpegs = readable_jpegs(args.root, args.images) if args.root else None
    available = len(root_jpegs) if root_jpegs else args.images
    if available < minimum:
        parser.error(f"{counted(available, 'JPEG')}{' readable in --root' if args.root else ''} "
                     f"{'is' if available == 1 else 'are'} too few: 4 shards per worker, each of a batch "
                     f"({args.batch_size}), for {counted(max(args.workers, 1), 'worker')} need "
                     f"{minimum} or more (--images; or a smaller --batch-size or --workers)")
    torch.set_num_threads(1)  # the work is in the workers; the main process only receives batches
    print_machine_load("at start", cores=max(args.workers, 1))
    with tempfile.TemporaryDirectory() as tmp:
        paths = root_jpegs or (synthetic_jpegs if args.noise else photo_like_jpegs)(Path(tmp), args.images)
        # 4 shards per worker at least: each worker streams whole shards
        spec = write_shards(paths, Path(tmp) / "shards", per_shard=max(1, len(paths) // (4 * max(args.workers, 1))))
        plain, cached, _ = baseline_loaders(paths, Path(tmp) / "cache", args)
        full, draft = (stream_loader(spec, args.size, args.batch_size, args.workers, d) for d in (False, True))
        images_per_second(plain, False)  # warm-up: worker start-up, page cache
        stream_images_per_second(full)
        stream_images_per_second(draft)
        rates: dict[str, list[float]] = {"pil": [], "full": [], "draft": [], "cache": []}
        for done in range(1, args.rounds + 1):  # interleaved, each against (a) of its own round: the machine may be shared
            rates["pil"].append(images_per_second(plain, False))
            rates["full"].append(stream_images_per_second(full))
            rates["draft"].append(stream_images_per_second(draft))
            rates["cache"].append(images_per_second(cached, True))
            # the table comes after every round: a line each shows the run going on
            say_progress(progress_line(done, args.rounds, {ROUND_NAMES[key]: f"{rate[-1]:,.0f} images/s"
                                                           for key, rate in rates.items()}))
        mean_abs, mean_squared = draft_difference(paths, args.size)
    median = {k: float(np.median(v)) for k, v in rates.items()}
    paired = {k: float(np.median(paired_ratios(v, rates["pil"]))) for k, v in rates.items()}
    kind = "--root" if args.root else "500x375 synthetic " + ("noise" if args.noise else "photo-like")
    print(f"\n{len(paths)} JPEGs ({kind}) -> {args.size}px, batch {args.batch_size}, {args.workers} DataLoader "
          f"workers, {args.rounds} interleaved rounds, {cpu_features()}, {decoding_threads(args.workers)}")
    print("| pipeline                                                  | median images/s | paired ratio vs (a) |")
    print("|-----------------------------------------------------------|----------------:|--------------------:|")
    for name, key in table_rows(args.workers):
        print(f"| {name:<57} | {median[key]:15.0f} | {paired[key]:18.2f}x |")
    print("per round, images/s: " + "; ".join(f"{k} " + " / ".join(f"{r:.0f}" for r in v) for k, v in rates.items()))
    per_core = median["draft"] / max(args.workers, 1)
    print(f"draft vs full decode at {args.size}px: {difference_text(mean_abs, mean_squared)}")
    print(f"feeding 50,000 samples/s (the H200 figure) at {per_core:.0f} images/s {decoder(args.workers)}: "
          f"~{50_000 / per_core:.0f} cores of this CPU")
    if warning := short_passes_warning([len(paths) / rate for v in rates.values() for rate in v], SHORT_PASS_ADVICE):
        print(warning)
    print_machine_load("at end", cores=max(args.workers, 1))


if __name__ == "__main__":
    main()
