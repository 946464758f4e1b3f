"""Images per second through the VQ-VAE tokenizer (encode and decode at batch 256, 64x64) and clips per
second through the GIF clip pipeline, each against a plain baseline measured in the same run.

    python benchmarks/vqvae_throughput.py [--ckpt logs/train/runs/<run>/checkpoints/best.ckpt] [--threads 2]

- encode: (a) encoder forward, then torch.cdist to the codebook and argmin per position, autograd on, as a
  notebook would write it; (b) Supra's `VQVAE.encode` under torch.inference_mode. Both must give the same codes.
- decode: (a) decoder(codebook[codes].permute(...)) with autograd on; (b) `VQVAE.decode` under inference_mode.
  Both must give the same images.
- GIF clips: a temp folder of generated animated GIFs (transparency, disposal methods 1/2/3, Pillow's
  frame-difference sub-rectangles; deterministic from --seed) cut into clips of 4 frames at 64x64:
  (a) Pillow: Image.open + ImageSequence + convert("RGB") + resize of the centre square; (b) Supra's
  browser-exact `read_gif_frames` + `fit` + `clips_of`; (c) `MediaFolderDataModule(mode="clips")` setup
  (adds scanning, captions and the split by file).

The model is randomly initialised unless --ckpt names a VQ-VAE checkpoint from train.py; its weights do
not change the work done, only which codes come out. Timings are medians of --repeats runs after a
warm-up, plain and Supra runs interleaved so that noise from other processes hits both alike. Codes that
differ between (a) and (b) (beyond a tie of two codes at one distance within float32's rounding), decoded images
that differ between (a) and (b) beyond float32's rounding, clips of another shape between (a) and (b), or clips (c)
does not give as (b) does end the run, after the table, with one line and exit status 1.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image, ImageSequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's supra (README, Benchmarks)

from bench_common import (  # noqa: E402
    at_least,
    at_most,
    exit_if_sides_differ,
    one_line_errors,
    paired_ratios,
    parser_for,
    positive_int,
    print_machine_load,
    seed,
)

from supra.data.base import SPLITS  # noqa: E402
from supra.data.gif_frames import read_gif_frames  # noqa: E402
from supra.data.images import fit, to_unit_range  # noqa: E402
from supra.data.media.folder import MediaFolderDataModule, clips_of  # noqa: E402
from supra.models.vqvae import VQVAE  # noqa: E402
from supra.utils.errors import SupraUserError  # noqa: E402
from supra.utils.hardware import cpu_description  # noqa: E402

IMAGE_SIZE = 64
CLIP_FRAMES = 4
MIN_GIF_SIDE = 40  # the moving rectangles are 12-39 px: the banded background then shows, and moves, in each frame
DECODE_TOLERANCE = 1e-5  # a few hundred float32 steps at 1: rounding, where a decoder that differs moves pixels by far more
MAX_GIF_SIDE = 1024  # the clips are 64 px: a larger GIF only adds pixels to decode (100,000 px ran out of memory)


# -- the model ----------------------------------------------------------------------------------------

def load_vqvae(ckpt: str | None, seed: int) -> tuple[VQVAE, str]:
    """A VQ-VAE in eval mode and a few words on where it came from."""
    if ckpt is None:
        torch.manual_seed(seed)
        return VQVAE().eval(), "randomly initialised"
    from supra.artifacts.checkpoints import load_vqvae as load_vqvae_checkpoint

    # as evaluate.py and tokenize_media load it: an older run config brought up to date, settings the model does not
    # take and weights that do not fit it said in one line naming the file (they were tracebacks)
    return load_vqvae_checkpoint(ckpt)[0], f"from {ckpt}"


def plain_encode(model: VQVAE, images: torch.Tensor) -> torch.Tensor:
    """As a notebook would: encoder, then the nearest codebook entry of every position by cdist + argmin."""
    z = model.encoder(images)
    B, D, H, W = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, D)
    return torch.cdist(flat, model.quantizer.codebook).argmin(dim=1).view(B, H, W)


def codes_not_nearest(model: VQVAE, images: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> int:
    """How many positions where codes `a` and `b` differ have codes at distances that differ beyond rounding.
    cdist and VQVAE's expanded distance round differently, so a position between two codes at (almost) one
    distance may go either way on both sides: a tie, not a wrong code. The distances here are in float64."""
    with torch.inference_mode():
        z = model.encoder(images)
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
    codebook = model.quantizer.codebook.double()
    apart = (a.flatten() != b.flatten()).nonzero().flatten()
    distance_a = (flat[apart] - codebook[a.flatten()[apart]]).pow(2).sum(1)
    distance_b = (flat[apart] - codebook[b.flatten()[apart]]).pow(2).sum(1)
    scale = flat[apart].pow(2).sum(1) + codebook[b.flatten()[apart]].pow(2).sum(1)  # what float32's rounding is of
    return int(((distance_a - distance_b).abs() > 1e-5 * scale.clamp_min(1e-12)).sum())


def plain_decode(model: VQVAE, codes: torch.Tensor) -> torch.Tensor:
    return model.decoder(model.quantizer.codebook[codes].permute(0, 3, 1, 2))


def images_not_matching(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many of the images `a` and `b` ([B, 3, H, W] in [-1, 1], the same codes decoded) differ anywhere beyond
    float32's rounding: the two run the same layers, autograd on or off, so only rounding may set them apart."""
    close = torch.isclose(a.detach(), b, rtol=DECODE_TOLERANCE, atol=DECODE_TOLERANCE)
    return int((~close).flatten(1).any(dim=1).sum())


def supra_encode(model: VQVAE, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.encode(images)


def supra_decode(model: VQVAE, codes: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.decode(codes)


# -- the GIFs -----------------------------------------------------------------------------------------

# (disposal per frame, transparent background?) by GIF number modulo 4
GIF_KINDS = (
    ("keep, opaque", lambda t: 1, False),
    ("clear to background, transparent", lambda t: 2, True),
    ("restore previous, transparent", lambda t: 3, True),
    ("mixed 1/2/3, transparent", lambda t: (1, 2, 3)[t % 3], True),
)


def synthetic_gifs(folder: Path, n: int, frames: int, size: tuple[int, int], seed: int) -> list[Path]:
    """`n` animated GIFs of `frames` frames at `size` (w, h), written by Pillow: banded or transparent
    backgrounds with moving rectangles, disposal and transparency varying from file to file."""
    rng = np.random.default_rng(seed)
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(n):
        _, disposal_of, transparent = GIF_KINDS[i % len(GIF_KINDS)]
        palette = rng.integers(0, 256, (32, 3), dtype=np.uint8)
        sprites = [(rng.integers(0, w), rng.integers(0, h), rng.integers(12, 40), rng.integers(12, 40),
                    rng.integers(-6, 7), rng.integers(-4, 5), rng.integers(9, 32)) for _ in range(3)]
        images = []
        for t in range(frames):
            if transparent:
                indices = np.zeros((h, w), dtype=np.uint8)  # index 0: transparent
            else:
                indices = (1 + (ys // 15 + xs // 40 + t) % 8).astype(np.uint8)
            for x0, y0, sw, sh, dx, dy, colour in sprites:
                x, y = (x0 + dx * t) % w, (y0 + dy * t) % h
                indices[y:y + sh, x:x + sw] = colour
            if images and np.array_equal(indices, np.asarray(images[-1])):  # Pillow would merge the two
                raise SupraUserError(f"--seed {seed}: frame {t} of GIF {i} repeats the one before (its rectangles "
                                     "stand still or hide each other), which Pillow would write as one frame: use "
                                     "another --seed or a larger --gif-size")
            image = Image.fromarray(indices, mode="P")
            image.putpalette(palette.tobytes())
            images.append(image)
        path = folder / f"{i:04d}.gif"
        options = {"transparency": 0} if transparent else {}
        images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0,
                       disposal=[disposal_of(t) for t in range(frames)], **options)
        paths.append(path)
    return paths


def pillow_clips(path: Path) -> torch.Tensor:
    """The plain way: Pillow's own compositing, RGB, centre square resized; not browser-exact."""
    with Image.open(path) as gif:
        frames = []
        for frame in ImageSequence.Iterator(gif):
            w, h = frame.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
            frames.append(np.asarray(frame.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), box=box)))
    pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    n = len(frames) // CLIP_FRAMES * CLIP_FRAMES
    return pixels[:n].reshape(-1, CLIP_FRAMES, 3, IMAGE_SIZE, IMAGE_SIZE)


def supra_clips(path: Path) -> torch.Tensor:
    frames = [fit(frame, IMAGE_SIZE, "crop") for frame in read_gif_frames(path)]
    return torch.stack(clips_of(frames, CLIP_FRAMES)[0])


def datamodule_clips(root: Path) -> dict[str, torch.Tensor]:
    """Every clip of the folder by name ("0003.gif#clip 2"), through the DataModule (all three splits)."""
    data = MediaFolderDataModule(str(root), mode="clips", frames=CLIP_FRAMES, image_size=IMAGE_SIZE, show_progress=False)
    data.setup("fit")
    out = {}
    for split in SPLITS:
        items = data.items(split)
        out.update(zip(items.names, items.pixels, strict=True))
    return out


def clips_not_given(datamodule_out: dict[str, torch.Tensor], paths: list[Path], supra_out: list[torch.Tensor]) -> int:
    """How many of (b)'s clips (`supra_out`, per GIF of `paths`) the DataModule's (`datamodule_out`, by name) does not
    give as they are, and how many it gives that (b) has not."""
    expected = {f"{path.name}#clip {k}": clip for path, clips in zip(paths, supra_out, strict=True)
                for k, clip in enumerate(clips)}
    missing_or_other = sum(name not in datamodule_out or not torch.equal(datamodule_out[name], clip)
                           for name, clip in expected.items())
    return missing_or_other + len(datamodule_out.keys() - expected.keys())


# -- timing -------------------------------------------------------------------------------------------

def interleaved_rounds(fns: list[Callable[[], object]], repeats: int) -> tuple[list[list[float]], list[object]]:
    """One warm-up call of each, then `repeats` rounds calling each in turn: each one's seconds per round and its
    last result."""
    results = [fn() for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            results[k] = fn()
            times[k].append(time.perf_counter() - start)
    return times, results


def speed_ups(seconds: list[float], baseline: list[float]) -> list[float]:
    """Each round's speed against the baseline's in the same round (its seconds over these)."""
    return paired_ratios(baseline, seconds)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--ckpt", default=None, help="a VQ-VAE checkpoint from train.py (default: random init)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="images per encode/decode call")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed runs of each method (median reported)")
    # (c) splits the folder by file: a train, a val and a test file at least
    parser.add_argument("--gifs", default=64, help="generated GIFs in the clip pipeline's folder, 3 or more",
                        type=at_least(3, "the DataModule splits the folder into train, val and test by file"))
    parser.add_argument("--frames-per-gif", default=24, type=at_least(CLIP_FRAMES, "one clip"),
                        help=f"frames of each generated GIF, {CLIP_FRAMES} or more")
    parser.add_argument("--gif-size", nargs=2, default=(160, 120), metavar=("W", "H"),
                        type=at_most(MAX_GIF_SIDE, f"the clips are {IMAGE_SIZE}x{IMAGE_SIZE}: a larger GIF only "
                                     "adds pixels to decode"),
                        help=f"the generated GIFs' width and height, each {MIN_GIF_SIDE} to {MAX_GIF_SIDE}")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the random model and the generated GIFs")
    args = parser.parse_args()
    if min(args.gif_size) < MIN_GIF_SIDE:
        parser.error(f"--gif-size {args.gif_size[0]} {args.gif_size[1]}: each side must be {MIN_GIF_SIDE} or more, "
                     "larger than the moving rectangles, which could else cover a frame and repeat the one before "
                     "(Pillow writes the two as one frame)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print_machine_load("at start")
    with one_line_errors():
        model, origin = load_vqvae(args.ckpt, args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        with one_line_errors():
            paths = synthetic_gifs(root, args.gifs, args.frames_per_gif, tuple(args.gif_size), args.seed)
        write_s = time.perf_counter() - start
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        (plain_gif_s, supra_gif_s, dm_gif_s), (plain_out, supra_out, dm_out) = interleaved_rounds([
            lambda: [pillow_clips(p) for p in paths],
            lambda: [supra_clips(p) for p in paths],
            lambda: datamodule_clips(root),
        ], max(1, args.repeats // 2))  # a pass over the folder is long enough to be steadier than a batch
    n_frames = args.gifs * args.frames_per_gif
    n_clips = sum(len(c) for c in supra_out)
    shapes_differing = sum(a.shape != b.shape for a, b in zip(plain_out, supra_out, strict=True))
    same_shapes = shapes_differing == 0
    clips_differing = clips_not_given(dm_out, paths, supra_out)
    dm_same = clips_differing == 0

    # The tokenizer's inputs: the Supra clips' frames, repeated up to the batch size.
    frames = torch.cat(supra_out).flatten(0, 1)
    images = to_unit_range(frames[torch.arange(args.batch_size) % len(frames)]).contiguous()
    (plain_enc_s, supra_enc_s), (plain_codes, codes) = interleaved_rounds(
        [lambda: plain_encode(model, images), lambda: supra_encode(model, images)], args.repeats)
    codes = codes.clone()  # out of inference mode, for the autograd-on baseline below
    (plain_dec_s, supra_dec_s), (plain_images, decoded) = interleaved_rounds(
        [lambda: plain_decode(model, codes), lambda: supra_decode(model, codes)], args.repeats)
    same_codes = int((plain_codes == codes).sum())
    decode_gap = (plain_images.detach() - decoded).abs().max().item()

    b = args.batch_size
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n{cpu_description()}; torch {torch.__version__}, Pillow {PIL.__version__}; "
          f"{os.cpu_count()} CPUs ({affinity} usable); VQ-VAE {origin}, {model.get_num_params() / 1e6:.2f}M params; "
          f"median of {args.repeats} interleaved rounds (GIFs: {max(1, args.repeats // 2)}) after a warm-up; vs (a): "
          "the median of the rounds' speed-ups")
    print(f"GIF folder: {args.gifs} GIFs x {args.frames_per_gif} frames at {args.gif_size[0]}x{args.gif_size[1]} "
          f"({megabytes:.1f} MB, written in {write_s:.1f}s) -> {n_clips} clips of {CLIP_FRAMES} at {IMAGE_SIZE}x{IMAGE_SIZE}")
    print("| stage                        | method                                        | seconds |     per second | vs (a) |")
    print("|------------------------------|-----------------------------------------------|--------:|---------------:|-------:|")
    rows = [
        (f"encode, batch {b}, 64x64", "(a) encoder + cdist/argmin, autograd on", plain_enc_s, b, "images", plain_enc_s),
        ("", "(b) VQVAE.encode, inference_mode", supra_enc_s, b, "images", plain_enc_s),
        (f"decode, batch {b}, 8x8 codes", "(a) decoder(codebook[codes]), autograd on", plain_dec_s, b, "images", plain_dec_s),
        ("", "(b) VQVAE.decode, inference_mode", supra_dec_s, b, "images", plain_dec_s),
        ("GIF -> 4-frame 64px clips", "(a) Pillow seek + convert + resize [1]", plain_gif_s, n_clips, "clips", plain_gif_s),
        ("", "(b) read_gif_frames + fit + clips_of", supra_gif_s, n_clips, "clips", plain_gif_s),
        ("", "(c) MediaFolderDataModule(mode=clips).setup", dm_gif_s, n_clips, "clips", plain_gif_s),
    ]
    per_round, stage_name = [], ""
    for stage, method, seconds, n, unit, base in rows:
        ratios = speed_ups(seconds, base)
        median_s = statistics.median(seconds)
        print(f"| {stage:28} | {method:45} | {median_s:7.3f} | {n / median_s:7.0f} {unit:6} | "
              f"{statistics.median(ratios):5.2f}x |")
        stage_name = stage.split(",")[0].split(" ->")[0] or stage_name  # "encode", "decode", "GIF"
        if seconds is not base:
            per_round.append(f"{stage_name} {method[:3]} " + " / ".join(f"{r:.2f}x" for r in ratios))
    print(f"vs (a) per round: {'; '.join(per_round)}")
    print(f"GIF frames decoded per second: (a) {n_frames / statistics.median(plain_gif_s):.0f}, "
          f"(b) {n_frames / statistics.median(supra_gif_s):.0f}, (c) {n_frames / statistics.median(dm_gif_s):.0f}")
    print(f"checks: identical codes {same_codes}/{codes.numel()} positions; decode max |a - b| = {decode_gap:.2e}; "
          f"clip shapes equal (a)/(b): {same_shapes}; (c) gives (b)'s clips: {dm_same}")
    print("[1] Pillow composites GIF frames its own way (disposal carried over, background colour instead of "
          "transparency, ...), not as browsers do: its pixels differ from (b)/(c) by design, so only speed is compared.")
    print_machine_load("at end")
    exit_if_sides_differ("code positions", codes_not_nearest(model, images, plain_codes, codes), codes.numel(),
                         "(a) and (b) of encode beyond ties within rounding",
                         "VQVAE.encode no longer picks each position's nearest code")
    exit_if_sides_differ("decoded images", images_not_matching(plain_images, decoded), len(decoded),
                         "(a) and (b) of decode beyond float rounding",
                         "VQVAE.decode no longer gives decoder(codebook[codes]) of the codes it is given")
    exit_if_sides_differ("GIFs' clip shapes", shapes_differing, len(paths), "(a) and (b) of the GIF clips",
                         "the two cut a GIF into a different number of clips")
    exit_if_sides_differ("clips", clips_differing, n_clips, "(b) and (c) of the GIF clips",
                         "MediaFolderDataModule(mode=clips) no longer gives read_gif_frames + fit + clips_of's clips")


if __name__ == "__main__":
    main()
