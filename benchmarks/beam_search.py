"""Captions per second: per-image beam search recomputing the whole sequence each step (the release's
inference code) against Supra's batched, KV-cached beam search, on the same images.

    python benchmarks/beam_search.py [--ckpt logs/train/runs/<run>/checkpoints/best.ckpt] [--images 256] [--rounds 3]

With --ckpt the trained model captions the shapes test images (realistic caption lengths; one trained on
other data captions them drawn with the shapes defaults at its image size, as the output says); without it
a random model does, which never emits EOS: --max-new-tokens (16 unless given) bounds its captions, else
every one would run to the context length. Prints a table and the speed-up ratio, and checks that
both give identical captions: where any differ it says so in one line and exits with status 1. A line on
stderr as each round ends shows the run going on before the table.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's supra (README, Benchmarks)

from bench_common import (  # noqa: E402
    exit_if_sides_differ,
    one_line_errors,
    parser_for,
    positive_int,
    print_machine_load,
    progress_line,
    say_progress,
)

from supra.models.vlm_generation import beam_search, beam_search_recompute  # noqa: E402
from supra.utils.errors import SupraUserError  # noqa: E402
from supra.utils.hardware import cpu_description  # noqa: E402

RANDOM_MODEL_MAX_NEW_TOKENS = 16  # about a shapes caption's length


def load_model_and_images(ckpt: str | None, n_images: int) -> tuple[torch.nn.Module, torch.Tensor, str]:
    """The model, the shapes test images it captions (normalised) and a few words on which images they are."""
    from supra.artifacts.captioner_release import build_captioner
    from supra.artifacts.checkpoints import (
        load_state_strictly,
        load_supra_checkpoint,
        net_state,
        run_config_of,
    )
    from supra.data.captioning.shapes import ShapesDataModule
    from supra.data.images import normalize_images

    if ckpt is None:
        from supra.models.vlm_nano import VLMNano

        torch.manual_seed(0)
        data = ShapesDataModule(num_test=n_images).load_split("test")
        return VLMNano().eval(), normalize_images(data.images), "shapes test images (defaults)"
    checkpoint = load_supra_checkpoint(ckpt, kind="supra.captioning")
    run_config = run_config_of(checkpoint) or {}
    net_config = (run_config.get("model") or {}).get("net")
    if not isinstance(net_config, dict):
        raise SupraUserError(f"ckpt={ckpt} holds no captioner config (model.net): give a checkpoint written by "
                             "train.py")
    # as the release export rebuilds it: no _target_ of the file is called, a pretrained tower needs not its weights
    # file (the checkpoint brings them), and weights that do not fit are one line, not torch's key list
    net = build_captioner(net_config)
    load_state_strictly(net, net_state(checkpoint), f"ckpt={ckpt}")
    trained_data = OmegaConf.create(run_config.get("data") or {})
    if trained_data.get("_target_") == f"{ShapesDataModule.__module__}.{ShapesDataModule.__qualname__}":
        model_keys = ("image_size", "max_caption_tokens", "vocab_size")  # the data follows the model
        data_cfg = {k: v for k, v in trained_data.items()
                    if k not in ("_target_", "tokenizer_path", "num_test", *model_keys)}
        which = "shapes test images of its data config"
    else:  # its data (photos, COCO, ...) may not be on this machine, and decoding speed needs only images
        trained_on = trained_data.get("source") or str(trained_data.get("_target_")).rsplit(".", 1)[-1]
        data_cfg, which = {}, f"shapes test images (shapes defaults; it was trained on {trained_on} data)"
    data = ShapesDataModule(**data_cfg, num_test=n_images, image_size=net.config.IMG_SIZE).load_split("test")
    return net.eval(), normalize_images(data.images), f"{which}, {net.config.IMG_SIZE}px"


@torch.no_grad()  # inference only; undone as main returns or raises (the tests call it in-process)
def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--ckpt", default=None, help="a captioning checkpoint from train.py, trained on any data: it "
                        "captions the shapes test images (default: random model)")
    parser.add_argument("--images", type=positive_int, default=256, help="shapes test images to caption")
    parser.add_argument("--beam-width", type=positive_int, default=3, help="beams per image")
    parser.add_argument("--max-new-tokens", type=positive_int, default=None,
                        help="caption length cap (default: with --ckpt until EOS or the context length; without, "
                             f"{RANDOM_MODEL_MAX_NEW_TOKENS}, as a random model never emits EOS)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="images per batched search call")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds of both; medians and ratios")
    args = parser.parse_args()
    if args.ckpt is None and args.max_new_tokens is None:
        args.max_new_tokens = RANDOM_MODEL_MAX_NEW_TOKENS
    print_machine_load("at start")
    with one_line_errors():
        model, images, which_images = load_model_and_images(args.ckpt, args.images)
    vocab_size = model.config.VOCAB_SIZE
    if args.beam_width > vocab_size:  # the first step starts a beam from each token: torch's topk raised
        parser.error(f"--beam-width {args.beam_width} is more than the model's {vocab_size} tokens: give "
                     f"--beam-width {vocab_size} or less")
    bos, eos, width, max_new = 1, 2, args.beam_width, args.max_new_tokens
    # warm-up of both paths (oneDNN primitive caches, allocator), then time
    beam_search_recompute(model, images[0], bos, eos, width, max_new_tokens=max_new)
    beam_search(model, images[: args.batch_size], bos, eos, width, max_new_tokens=max_new)

    def per_image() -> list:
        return [beam_search_recompute(model, image, bos, eos, width, max_new_tokens=max_new) for image in images]

    def batched_calls() -> list:
        return [caption for chunk in images.split(args.batch_size)
                for caption in beam_search(model, chunk, bos, eos, width, max_new_tokens=max_new)]

    rounds = []
    for done in range(1, args.rounds + 1):  # both in turn each round: a busy spell of a shared machine slows both
        start = time.perf_counter()
        plain = per_image()
        middle = time.perf_counter()
        batched = batched_calls()
        rounds.append((middle - start, time.perf_counter() - middle))
        # the table comes after every round, minutes with a checkpoint's captions: a line each shows the run going on
        say_progress(progress_line(done, args.rounds, {"(a)": f"{rounds[-1][0]:.2f} s", "(b)": f"{rounds[-1][1]:.2f} s"}))
    plain_s, batched_s = statistics.median(a for a, _ in rounds), statistics.median(b for _, b in rounds)
    ratio = statistics.median(a / b for a, b in rounds)

    same = sum(a == b for a, b in zip(plain, batched, strict=True))
    mean_len = sum(map(len, batched)) / len(batched)
    n = len(images)
    print(f"\nbeam search, width {width}, {n} images, mean caption length {mean_len:.1f} tokens, "
          f"{cpu_description()}")
    cap = "until EOS" if max_new is None else f"at most {max_new} new tokens"
    print(f"{'random model' if args.ckpt is None else args.ckpt} on {which_images}, captions {cap}; median of "
          f"{args.rounds} interleaved rounds")
    print("| method                                   | seconds | captions/s |")
    print("|------------------------------------------|--------:|-----------:|")
    for name, seconds in (("(a) per image, recompute every step", plain_s),
                          (f"(b) batched ({min(args.batch_size, n)}/call), KV cache", batched_s)):
        print(f"| {name:<40} | {seconds:7.2f} | {n / seconds:10.1f} |")
    print(f"speed-up b/a: {ratio:.1f}x (the median of the rounds' ratios); identical captions: {same}/{n}")
    print_machine_load("at end")
    exit_if_sides_differ("captions", n - same, n, "(a) and (b)", "tests/test_caption_generation.py checks that the "
                         "two searches agree: run it")


if __name__ == "__main__":
    main()
