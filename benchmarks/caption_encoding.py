"""Seconds to encode a split's captions into the [N, L] int64 tensor training reads: (a) each caption's ids
encoded by the tokenizers library's batch call and written into the tensor one row at a time, the way before,
against (b) CaptionTokenizer.encode_batch (the batch call without offsets, where tokenizers has it, and every row
placed at once by numpy), in interleaved rounds: medians, and the median of the rounds' ratios a/b. The tensors must be identical (else one line and exit status 1).

    python benchmarks/caption_encoding.py [--captions 200000] [--max-len 32] [--rounds 3]

The captions are seeded shapes-like sentences of 3 to 40 words, some past --max-len tokens (cut) and some
non-ASCII; the tokenizer is trained on the first 5,000 of them.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's supra (README, Benchmarks)

from bench_common import (  # noqa: E402
    at_least,
    exit_if_sides_differ,
    paired_ratios,
    parser_for,
    positive_int,
    print_machine_load,
    progress_line,
    say_progress,
    short_passes_warning,
)

from supra.tokens.caption_bpe import BOS_ID, EOS_ID, PAD_ID, CaptionTokenizer  # noqa: E402
from supra.utils.hardware import cpu_description  # noqa: E402

WORDS = ("a", "small", "large", "red", "blue", "green", "purple", "circle", "square", "triangle", "on", "the", "left",
         "right", "above", "below", "of", "picture", "crème", "brûlée", "猫", "ΟΔΟΣ", "naïve")


def messy_captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(3, 41))) for _ in range(n)]


def per_row(tokenizer: CaptionTokenizer, captions: list[str], max_len: int) -> torch.Tensor:
    """The way before: the same batch call, then a tensor per row copied into the output."""
    encoded = [e.ids for e in tokenizer.hf.encode_batch([caption.lower() for caption in captions])]
    rows = [[BOS_ID, *ids[: max_len - 2], EOS_ID] for ids in encoded]
    out = torch.full((len(rows), max(map(len, rows), default=2)), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def timed(encode, *args) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = encode(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--captions", type=positive_int, default=200_000, help="captions to encode")
    parser.add_argument("--max-len", type=at_least(3, "BOS, one token and EOS"), default=32,
                        help="most tokens of a row, BOS and EOS included")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds; medians and paired ratios")
    args = parser.parse_args()
    print_machine_load("at start")
    captions = messy_captions(args.captions)
    tokenizer = CaptionTokenizer.train(captions[:5000], vocab_size=2048)
    rounds, differing = [], 0
    for done in range(1, args.rounds + 1):
        a_s, a = timed(per_row, tokenizer, captions, args.max_len)
        b_s, (b, _) = timed(tokenizer.encode_batch, captions, args.max_len)
        differing += not torch.equal(a, b)
        rounds.append((a_s, b_s))
        say_progress(progress_line(done, args.rounds, {"(a)": f"{a_s:.2f} s", "(b)": f"{b_s:.2f} s"}))
    a_med, b_med = statistics.median(a for a, _ in rounds), statistics.median(b for _, b in rounds)
    ratio = statistics.median(paired_ratios([a for a, _ in rounds], [b for _, b in rounds]))
    print(f"\n{args.captions:,} captions -> [N, {b.shape[1]}] int64, {args.rounds} interleaved rounds, "
          f"{cpu_description()}")
    print("| way                                      | median s |")
    print("|------------------------------------------|---------:|")
    print(f"| (a) a tensor per row                     | {a_med:8.2f} |")
    print(f"| (b) encode_batch (numpy, at once)        | {b_med:8.2f} |")
    print(f"speed-up a/b: {ratio:.2f}x, the median of the rounds' ratios (per round: "
          f"{', '.join(f'{a / b:.2f}x' for a, b in rounds)})")
    if warning := short_passes_warning([s for pair in rounds for s in pair], "raise --captions or --rounds"):
        print(warning)
    print_machine_load("at end")
    exit_if_sides_differ("rounds' tensors", differing, args.rounds, "(a) and (b)", "encode_batch must match (a)")


if __name__ == "__main__":
    main()
