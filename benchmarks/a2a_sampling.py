"""Sampling speed of a2a_nano: KV-cached decoding against recomputing the whole sequence every step.

    python benchmarks/a2a_sampling.py [--vocab 4359 50520] [--repeats 3] [--threads N] [--device cpu] [--cached-only]

For each vocabulary size (default: a 4,096-id trained BPE + 7 + 256 = 4,359, and the release's 50,520)
a GPT at the card's shapes (4 blocks, d 256, context 384, untied head; random weights: speed does not
depend on them) generates, after an 8-token text prompt, one 64x64 image (64 codes, text2image), one as
experiment=a2a_shapes samples it (guidance 2 and best of 4: 256 codes drawn, each from two streams) and a
4-frame video (260 tokens, text2video), with the modality constraints on. Prints the median of
`--repeats` rounds per cell (each round times both paths in turn), tokens/s, the speed-up of the cache
(the median of the rounds' ratios), and checks both paths draw the same tokens (any cell where they do
not: one line, exit status 1, after the table); a line on stderr as each cell is measured (the table comes
at the end, minutes later on a CPU). --cached-only times the KV-cached path alone: recomputing takes most
of the run (four fifths at --vocab 280 on a CPU).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's supra (README, Benchmarks)

from bench_common import (  # noqa: E402
    at_least,
    exit_if_sides_differ,
    parser_for,
    positive_int,
    print_machine_load,
    say_progress,
    torch_device,
)

from supra.models.a2a_generation import generate_image, generate_video  # noqa: E402
from supra.models.a2a_nano import A2AConfig, A2ANano  # noqa: E402
from supra.tokens.a2a_layout import TokenLayout  # noqa: E402
from supra.utils.hardware import cpu_description  # noqa: E402

PROMPT_TEXT = [11, 12, 13, 14, 15, 16]  # 6 text ids: <TEXT> + 6 + </TEXT> = an 8-token prompt
MIN_VOCAB = 263 + max(PROMPT_TEXT) + 1  # 7 control tokens + 256 codes, then the text ids the prompt uses


def _seconds(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def interleaved(plain, cached, repeats: int) -> tuple[float, float, float, object, object]:
    """Both paths timed in turn in each of `repeats` rounds (after one warm-up call of each), so that a
    busy spell of a shared machine slows both: their median seconds, the median of the rounds' ratios
    plain / cached, and the last results."""
    plain(), cached()
    rounds = []
    for _ in range(repeats):
        (plain_s, plain_out), (cached_s, cached_out) = _seconds(plain), _seconds(cached)
        rounds.append((plain_s, cached_s))
    return (statistics.median(p for p, _ in rounds), statistics.median(c for _, c in rounds),
            statistics.median(p / c for p, c in rounds), plain_out, cached_out)


def cached_alone(cached, repeats: int) -> float:
    """The KV-cached path alone (--cached-only): its median seconds over `repeats` runs after a warm-up call."""
    cached()
    return statistics.median(_seconds(cached)[0] for _ in range(repeats))


OUTPUTS_PER_VOCAB = 3  # the 64x64 image, the image as experiment=a2a_shapes samples it, the video


def progress_line(done: int, total: int, vocab_size: int, what: str, cached_s: float, plain_s: float | None) -> str:
    """The line said on stderr as cell `done` of `total` is measured: which it is and its median seconds
    (`plain_s` None: the recompute path was not timed, --cached-only)."""
    recompute = "" if plain_s is None else f", recompute {plain_s:.3f} s"
    return f"measured {done}/{total}: vocab {vocab_size:,}, {what}: KV cache {cached_s:.3f} s{recompute}"


@torch.no_grad()  # inference only; undone as main returns or raises (the tests call it in-process)
def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--vocab", nargs="+", default=[4359, 50_520],
                        type=at_least(MIN_VOCAB, f"263 ids, 7 control tokens and 256 codes, then the prompt's text ids "
                                                 f"0-{max(PROMPT_TEXT)}"),
                        help=f"total vocabulary sizes, each {MIN_VOCAB} or more")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed rounds per cell (medians)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--cached-only", action="store_true",
                        help="time the KV-cached path alone, a quick look: recomputing takes most of the run (four "
                             "fifths at --vocab 280 on a CPU); no speed-up or same-tokens check then")
    parser.add_argument("--device", type=torch_device, default="cpu", help="where the GPT runs: cpu, or cuda / cuda:N")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print_machine_load("at start")
    device = args.device
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    rows = []
    for vocab_size in args.vocab:
        layout = TokenLayout(text_size=vocab_size - 263)
        torch.manual_seed(0)
        model = A2ANano(A2AConfig(vocab_size=vocab_size)).to(device).eval()
        prompt = [layout.text_open, *PROMPT_TEXT, layout.text_close]
        for what, tokens, call in (
            ("64x64 image", 64, lambda c, m=model, lay=layout, p=prompt: generate_image(
                m, lay, p, (8, 8), generator=torch.Generator(device).manual_seed(0), use_cache=c)),
            # experiment=a2a_shapes's text2image: two streams (guidance) for each of 4 candidates, then scoring
            ("image, g2 best4", 64 * 4, lambda c, m=model, lay=layout, p=prompt: generate_image(
                m, lay, p, (8, 8), generator=torch.Generator(device).manual_seed(0), use_cache=c, guidance=2.0,
                best_of=4)),
            ("4-frame video", 4 * 65, lambda c, m=model, lay=layout, p=prompt: generate_video(
                m, lay, p, 4, (8, 8), generator=torch.Generator(device).manual_seed(0), use_cache=c)),
        ):
            if args.cached_only:
                rows.append((vocab_size, model.get_num_params(), what, tokens, None,
                             cached_alone(lambda call=call: call(True), args.repeats), None, None))
            else:
                plain_s, cached_s, ratio, plain, cached = interleaved(lambda call=call: call(False),
                                                                     lambda call=call: call(True), args.repeats)
                rows.append((vocab_size, model.get_num_params(), what, tokens, plain_s, cached_s, ratio,
                             bool(torch.equal(cached, plain))))
            # the table comes after every cell, minutes on a CPU: a line as each is measured shows the run going on
            say_progress(progress_line(len(rows), len(args.vocab) * OUTPUTS_PER_VOCAB, vocab_size, what,
                                       cached_s=rows[-1][5], plain_s=rows[-1][4]))

    timed = (f"median of {args.repeats} runs of the KV-cached path alone (--cached-only)" if args.cached_only else
             f"median of {args.repeats} interleaved rounds (speed-up: the median of the rounds' ratios)")
    print(f"\na2a_nano sampling, batch 1, {where}, {timed}")
    print("| vocab  | GPT params | output          | tokens | recompute s | tok/s | KV cache s | tok/s | speed-up | same tokens |")
    print("|-------:|-----------:|-----------------|-------:|------------:|------:|-----------:|------:|---------:|:-----------:|")
    for vocab_size, params, what, tokens, plain_s, cached_s, ratio, same in rows:
        recompute = f"{'-':>11} | {'-':>5}" if plain_s is None else f"{plain_s:11.3f} | {tokens / plain_s:5.0f}"
        speed_up = f"{'-':>8}" if ratio is None else f"{ratio:7.1f}x"
        same_tokens = "-" if same is None else "yes" if same else "NO"
        print(f"| {vocab_size:6,} | {params / 1e6:8.1f}M | {what:15} | {tokens:6} | {recompute} | "
              f"{cached_s:10.3f} | {tokens / cached_s:5.0f} | {speed_up} | {same_tokens} |")
    print_machine_load("at end")
    compared = [same for *_, same in rows if same is not None]  # none with --cached-only
    exit_if_sides_differ("outputs", compared.count(False), len(compared), "recompute and KV cache",
                         "tests/test_a2a_generation.py checks that the two paths sample alike: run it")


if __name__ == "__main__":
    main()
