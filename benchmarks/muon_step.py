"""Seconds per training step of the a2a GPT (the card's 4 x d256, at experiment=a2a_shapes's batch of 16
sequences of 80 tokens and its 684-id vocabulary, fp32) with (a) AdamW, as the recipe trained before, against
(b) MuonWithAdamW as the recipe trains now (Muon's Newton-Schulz iteration in float32, in its Gram form where
that pays) and (c) the same with torch's own Muon, whose plain iteration runs in bfloat16; and the iteration
alone for the GPT's 16 matrices: as the recipe runs it, plain in float32, plain in bfloat16. Interleaved
rounds, medians, ratios to a baseline of the same round: a training step to (a), the iteration alone to
the recipe's iteration. A line on stderr as each round ends (each row's seconds in it) shows the run going on
before the table.

    python benchmarks/muon_step.py [--rounds 5] [--steps 20]

To see what a CPU without AVX-512 and native bf16 does, cap torch's kernels at AVX2 (MKL's too):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python benchmarks/muon_step.py

There bf16 matmuls are emulated and (c) takes seconds a step: why supra.tasks.optimizers has Float32Muon.
"""

from __future__ import annotations

import os
import statistics
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
)

from supra.models.a2a_nano import A2AConfig, A2ANano  # noqa: E402
from supra.tasks.optimizers import MuonWithAdamW, orthogonalize  # noqa: E402
from supra.utils.hardware import cpu_description  # noqa: E402

BATCH, TOKENS, VOCAB = 16, 80, 684
NS = (3.4445, -4.775, 2.0315)  # torch's Muon coefficients


class TorchMuonWithAdamW(MuonWithAdamW):
    """(c): the same split, with torch's Muon (bf16 Newton-Schulz) for the matrices."""

    def __init__(self, params, hidden_matrices, lr: float) -> None:
        super().__init__(params, hidden_matrices, lr=lr)
        self._muon = torch.optim.Muon(self._muon.param_groups[0]["params"], lr=lr, weight_decay=0.1,
                                      adjust_lr_fn="match_rms_adamw")
        self.param_groups = self._adamw.param_groups + self._muon.param_groups
        self._link()


def training_step(optimizer_name: str) -> Callable[[], None]:
    torch.manual_seed(0)
    net = A2ANano(A2AConfig(vocab_size=VOCAB))
    groups = net.optimizer_groups(0.1)
    optimizer = {"adamw": lambda: torch.optim.AdamW(groups, lr=1.5e-3, betas=(0.9, 0.95)),
                 "muon32": lambda: MuonWithAdamW(groups, net.hidden_matrices(), lr=1.5e-3),
                 "muon_bf16": lambda: TorchMuonWithAdamW(groups, net.hidden_matrices(), lr=1.5e-3)}[optimizer_name]()
    idx = torch.randint(0, VOCAB, (BATCH, TOKENS), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        logits, _ = net(idx)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), idx[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def iteration_alone(dtype: torch.dtype, gram: bool | None) -> Callable[[], None]:
    """Newton-Schulz on the GPT's 16 matrices; `gram`: None as the recipe picks (the Gram form for the
    MLP and qkv matrices), False the plain iteration on every matrix, as torch's Muon runs it."""
    matrices = [p.detach().to(dtype) for p in A2ANano(A2AConfig(vocab_size=VOCAB)).hidden_matrices()]
    return lambda: [orthogonalize(m, NS, 5, 1e-7, gram=gram) for m in matrices]


def seconds(fn: Callable[[], object], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds; medians and paired ratios")
    parser.add_argument("--steps", type=positive_int, default=20, help="timed steps per round and candidate")
    args = parser.parse_args()
    print_machine_load("at start")
    step_baseline, iteration_baseline = ("(a) AdamW, every parameter (the recipe before)",
                                         "(d) Newton-Schulz alone, 16 matrices, float32 (the recipe)")
    # name -> (what it times, the row its paired ratio divides by): a step by a step, an iteration by an iteration
    candidates = {
        step_baseline: (training_step("adamw"), step_baseline),
        "(b) MuonWithAdamW, float32 Newton-Schulz (the recipe)": (training_step("muon32"), step_baseline),
        "(c) the same with torch's Muon: bfloat16 Newton-Schulz": (training_step("muon_bf16"), step_baseline),
        iteration_baseline: (iteration_alone(torch.float32, None), iteration_baseline),
        "(e) the same, plain iteration on every matrix, float32": (iteration_alone(torch.float32, False),
                                                                   iteration_baseline),
        "(f) the same, plain iteration, bfloat16 (torch's Muon)": (iteration_alone(torch.bfloat16, False),
                                                                   iteration_baseline),
    }
    for fn, _ in candidates.values():  # warm-up: allocations, kernel choice
        seconds(fn, 2)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for done in range(1, args.rounds + 1):
        for name, (fn, _) in candidates.items():
            times[name].append(seconds(fn, args.steps))
        # the table comes after every round, a minute or more on a CPU: a line each shows the run going on
        say_progress(progress_line(done, args.rounds, {name[:3]: f"{runs[-1]:.4f} s" for name, runs in times.items()}))
    print(f"\na2a GPT, batch {BATCH} x {TOKENS} tokens, fp32, {args.rounds} interleaved rounds of {args.steps} "
          f"steps, {cpu_description()}, torch kernels {torch.backends.cpu.get_cpu_capability()}, "
          f"MKL_ENABLE_INSTRUCTIONS={os.environ.get('MKL_ENABLE_INSTRUCTIONS', '(unset)')}")
    print("| what (seconds per training step, or per call of the iteration) | median s | paired ratio | vs  |")
    print("|-----------------------------------------------------------------|---------:|-------------:|-----|")
    for name, runs in times.items():
        base = candidates[name][1]
        ratio = statistics.median(paired_ratios(runs, times[base]))
        print(f"| {name:<63} | {statistics.median(runs):8.4f} | {ratio:11.2f}x | {base[:3]} |")
    print_machine_load("at end")


if __name__ == "__main__":
    main()
