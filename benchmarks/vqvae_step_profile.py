"""Where a VQ-VAE training step spends its time, part by part, on this CPU and, as the baseline of the same
run, with torch's kernels capped at AVX2, to see which part an AVX2-only CPU makes slow.

    python benchmarks/vqvae_step_profile.py [--batch-size 64] [--repeats 20] [--no-compare-avx2]

The parts of one step of `experiment=vqvae_shapes` (batch 64 of 64x64 shapes images, the model's defaults):
data (uint8 batch -> [-1, 1]), the encoder's strided convolutions and the decoder's transposed ones (each
forward + backward), the quantiser (nearest code, EMA update, restarts), the loss, and Adam's step; then the
whole step as train.py runs it. Each part is timed alone over the same batch, median of --repeats after a
warm-up. Then the same runs in a child process with ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2
(torch's own switches: its AVX-512 kernels off), and both print with their ratio; on a CPU that is AVX2-only
already the two columns are the same machine. --no-compare-avx2: this CPU's column alone, in half the time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's supra (README, Benchmarks)

from bench_common import parser_for, positive_int  # noqa: E402

from supra.data.images import channels_first, to_unit_range  # noqa: E402
from supra.models.vqvae import VQVAE  # noqa: E402
from supra.procedural.shapes_scenes import generate_scenes  # noqa: E402
from supra.utils.hardware import cpu_description  # noqa: E402


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels on first use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(batch_size: int, repeats: int) -> dict[str, float]:
    """Milliseconds per part of one training step, median of `repeats`."""
    torch.manual_seed(0)
    pixels, _ = generate_scenes(batch_size, seed=0, canvas_size=64)
    uint8 = channels_first(pixels)
    model = VQVAE().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    images = to_unit_range(uint8)
    z = model.encoder(images).detach().requires_grad_()
    quantised = model.quantizer(z)[0].detach().requires_grad_()

    def encoder() -> None:
        model.encoder(images).sum().backward()

    def decoder() -> None:
        model.decoder(quantised).sum().backward()

    def quantiser() -> None:
        q, loss, _, _ = model.quantizer(z)
        (q.sum() + loss).backward()

    def loss() -> None:
        reconstruction = model.decoder(quantised).detach().requires_grad_()
        F.mse_loss(reconstruction, images).backward()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        reconstruction, vq_loss, _, _ = model(to_unit_range(uint8))
        (F.mse_loss(reconstruction, to_unit_range(uint8)) + vq_loss).backward()
        optimizer.step()

    parts = {
        "data: uint8 -> [-1, 1]": lambda: to_unit_range(uint8),
        "encoder: 3 strided convs, fwd + bwd": encoder,
        "decoder: 3 transposed convs, fwd + bwd": decoder,
        "quantiser: nearest code, EMA, restarts": quantiser,
        "loss: MSE, fwd + bwd": loss,
        "Adam step": optimizer.step,
        "whole training step": step,
    }
    return {name: 1000 * median_seconds(fn, repeats) for name, fn in parts.items()}


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per step (64x64)")
    parser.add_argument("--repeats", type=positive_int, default=20, help="timed calls of each part (median)")
    parser.add_argument("--compare-avx2", action=argparse.BooleanOptionalAction, default=True,
                        help="also run with torch's kernels capped at AVX2, the baseline column")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the child's output
    args = parser.parse_args()
    here = measure(args.batch_size, args.repeats)
    if args.json:
        print(json.dumps({"cpu": cpu_description(), "ms": here}))
        return
    capped = None
    if args.compare_avx2:
        env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
        child = subprocess.run([sys.executable, __file__, "--json", "--batch-size", str(args.batch_size),
                                "--repeats", str(args.repeats)], env=env, capture_output=True, text=True)
        if child.returncode != 0:
            last = (child.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"error: the run capped at AVX2 failed (exit status {child.returncode}): {last}")
        capped = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"\nVQ-VAE training step, batch {args.batch_size} at 64x64, median of {args.repeats}; torch {torch.__version__}")
    print(f"(a) {cpu_description()}")
    if capped:
        print(f"(b) {capped['cpu']}")
        print(f"| {'part':<40} | (a) ms | (b) ms |   b/a |\n|{'-' * 42}|-------:|-------:|------:|")
        for name, ms in here.items():
            print(f"| {name:<40} | {ms:6.2f} | {capped['ms'][name]:6.2f} | {capped['ms'][name] / ms:4.2f}x |")
    else:
        print(f"| {'part':<40} |     ms |\n|{'-' * 42}|-------:|")
        for name, ms in here.items():
            print(f"| {name:<40} | {ms:6.2f} |")


if __name__ == "__main__":
    main()
