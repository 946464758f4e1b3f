"""Where a VQ-VAE training step spends its time, part by part, on this CPU and, as the baseline of the same
run, with torch's kernels capped at AVX2, to see which part an AVX2-only CPU makes slow.

    python benchmarks/vqvae_step_profile.py [--batch-size 64] [--rounds 3 --repeats 10] [--no-compare-avx2]

The parts of one step of `experiment=vqvae_shapes` (batch 64 of 64x64 shapes images, the model's defaults):
data (uint8 batch -> [-1, 1]), the encoder's strided convolutions and the decoder's transposed ones (each
forward + backward), the quantiser (nearest code, EMA update, restarts), the loss, and Adam's step; then the
whole step as train.py runs it. Each part is timed alone over the same batch, median of --repeats after a
warm-up. The baseline runs in a child process with ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2 and
MKL_ENABLE_INSTRUCTIONS=AVX2 (torch's and MKL's switches: their AVX-512 kernels off; MKL runs the quantiser's
distances). Rounds interleave: each times every part on this CPU, then in the capped child, so that a busy spell
of a shared machine slows both; the table gives medians over the rounds and, per part, the median of the rounds'
ratios b/a (each round's ratio listed), with a warning where a column's pass over the parts lasted under 200 ms
(its ratios are then mostly noise). On a CPU that is AVX2-only already the two columns are the same machine.
--no-compare-avx2: this CPU's column alone, in half the time. A line on stderr as each round ends (each
column's pass over the parts, in seconds) shows the run going on before the table.
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

from bench_common import (  # noqa: E402
    paired_ratios,
    parser_for,
    positive_int,
    print_machine_load,
    progress_line,
    say_progress,
    short_passes_warning,
)

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


def step_parts(batch_size: int) -> dict[str, Callable[[], object]]:
    """Each part of one training step as a call, on one model and batch, named as the table names it."""
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

    return {
        "data: uint8 -> [-1, 1]": lambda: to_unit_range(uint8),
        "encoder: 3 strided convs, fwd + bwd": encoder,
        "decoder: 3 transposed convs, fwd + bwd": decoder,
        "quantiser: nearest code, EMA, restarts": quantiser,
        "loss: MSE, fwd + bwd": loss,
        "Adam step": optimizer.step,
        "whole training step": step,
    }


def measure(parts: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Milliseconds per part, median of `repeats` after a warm-up call each."""
    return {name: 1000 * median_seconds(fn, repeats) for name, fn in parts.items()}


# The capped baseline: torch's own kernels, oneDNN's (the convolutions) and MKL's (the matmuls) at AVX2
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def serve_rounds(batch_size: int, repeats: int) -> None:
    """The capped child: its CPU line, then one line of JSON (ms per part) for each line read on stdin, so that
    its rounds take turns with the parent's."""
    parts = step_parts(batch_size)
    mkl = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "(unset)")
    print(json.dumps({"cpu": f"{cpu_description()}, MKL_ENABLE_INSTRUCTIONS={mkl}"}), flush=True)
    for _ in sys.stdin:
        print(json.dumps(measure(parts, repeats)), flush=True)


class CappedChild:
    """This script in a child process with AVX2_ONLY set, measuring a round each time it is asked."""

    def __init__(self, batch_size: int, repeats: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-rounds", "--batch-size", str(batch_size), "--repeats", str(repeats)],
            env={**os.environ, **AVX2_ONLY}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.cpu = self._reply()["cpu"]

    def round(self) -> dict[str, float]:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self._reply()

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            last = (self.process.stderr.read().strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"error: the run capped at AVX2 failed (exit status {self.process.returncode}): {last}")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


# What lengthens a timed pass (every part, --repeats calls each) or gives the medians more of them.
SHORT_PASS_ADVICE = "raise --repeats or --batch-size (longer passes) or --rounds (more of them for the medians)"


def timed(measure_round: Callable[[], dict[str, float]], pass_seconds: list[float]) -> dict[str, float]:
    """`measure_round()`'s milliseconds per part, its wall seconds appended to `pass_seconds`."""
    start = time.perf_counter()
    milliseconds = measure_round()
    pass_seconds.append(time.perf_counter() - start)
    return milliseconds


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per step (64x64)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds; medians and paired ratios")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed calls of each part per round (median)")
    parser.add_argument("--compare-avx2", action=argparse.BooleanOptionalAction, default=True,
                        help="also run with torch's kernels capped at AVX2, the baseline column")
    parser.add_argument("--serve-rounds", action="store_true", help=argparse.SUPPRESS)  # the capped child
    args = parser.parse_args()
    if args.serve_rounds:
        serve_rounds(args.batch_size, args.repeats)
        return
    print_machine_load("at start")
    parts = step_parts(args.batch_size)
    child = CappedChild(args.batch_size, args.repeats) if args.compare_avx2 else None
    here: list[dict[str, float]] = []
    capped: list[dict[str, float]] = []
    pass_seconds: list[float] = []  # each column's pass over every part, each round: the pair a ratio compares
    columns = ("(a)", "(b)") if child is not None else ("(a)",)
    for done in range(1, args.rounds + 1):  # this CPU, then the capped child: a busy spell lands on both columns
        here.append(timed(lambda: measure(parts, args.repeats), pass_seconds))
        if child is not None:
            capped.append(timed(child.round, pass_seconds))
        # the table comes after every round: a line each, its columns' passes, shows the run going on
        say_progress(progress_line(done, args.rounds, {column: f"{seconds:.2f} s" for column, seconds in
                                                       zip(columns, pass_seconds[-len(columns):], strict=True)}))
    if child is not None:
        child.close()
    print(f"\nVQ-VAE training step, batch {args.batch_size} at 64x64, {args.rounds} interleaved rounds of "
          f"{args.repeats} calls a part (medians); torch {torch.__version__}")
    print(f"(a) {cpu_description()}")
    if child is not None:
        print_compared(here, capped, child.cpu)
    else:
        print(f"| {'part':<40} |     ms |\n|{'-' * 42}|-------:|")
        for name in parts:
            print(f"| {name:<40} | {statistics.median(r[name] for r in here):6.2f} |")
    # --no-compare-avx2 prints no ratio: its milliseconds per part are what a short pass makes noise
    noisy_figures = "ratios" if child is not None else "milliseconds"
    if warning := short_passes_warning(pass_seconds, SHORT_PASS_ADVICE, noisy_figures):
        print(warning)
    print_machine_load("at end")


def print_compared(here: list[dict[str, float]], capped: list[dict[str, float]], capped_cpu: str) -> None:
    """The two columns' medians over the rounds, the median of the rounds' ratios b/a and each round's ratio."""
    print(f"(b) {capped_cpu}")
    print(f"| {'part':<40} | (a) ms | (b) ms |   b/a | b/a per round |\n|{'-' * 42}|-------:|-------:|------:|---|")
    for name in here[0]:
        a, b = [r[name] for r in here], [r[name] for r in capped]
        ratios = paired_ratios(b, a)
        print(f"| {name:<40} | {statistics.median(a):6.2f} | {statistics.median(b):6.2f} | "
              f"{statistics.median(ratios):5.2f}x | {' / '.join(f'{r:.2f}' for r in ratios)} |")


if __name__ == "__main__":
    main()
