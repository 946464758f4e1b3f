"""Training throughput of vlm_nano: (a) a plain PyTorch loop as the release notebook writes it, against
(b) Supra's CaptioningTask through Lightning's Trainer built from the real Hydra configs; same model,
same cached batches, same number of timed steps after warm-up. Prints samples/s, step time, the
ratio b/a, model FLOPs per sample (torch.utils.flop_counter) and MFU against a matmul peak measured
in the same run, in the precision's matmul dtype on a GPU and in float32 on a CPU.

    python benchmarks/train_throughput.py                                  # CPU, 32-true, batch 64
    python benchmarks/train_throughput.py --trainer gpu --precision 16-mixed --compile
    python benchmarks/train_throughput.py --trainer gpu --devices 2         # DDP (b) vs one device (a)

Precision: 32-true, 16-mixed or bf16-mixed, which (a) reproduces with autocast (and a GradScaler for
16-mixed); 16-mixed is refused on a CPU, where Lightning would run (b) in bf16-mixed instead.

Both loops do the same work per step: copy a uint8 batch to the device, normalise, forward,
cross-entropy, backward, clip the gradient norm to 1.0, AdamW step, LR schedule step. The AdamW is fused
in both where model.fused_optimizer=auto fuses (b)'s (on CUDA outside mixed precision: fuses_on_auto); a run
whose two optimizers differ in that (model.fused_optimizer=true, or no clipping in mixed precision) stops in one
line at the start of training. (b) keeps what a real run does per step (its logger at
trainer.log_every_n_steps, self.log of the loss, the LR schedule) and drops what both would not share:
validation, checkpoints, progress bar, summary.
Within one fit, windows of --steps steps alternate between b and a (the machine may be shared, and
both then see the same load): the table gives medians over --rounds windows, the ratio the median of
each window pair's b/a. --devices N > 1 runs (b) once with DDP (Lightning starts the other
ranks by re-running this script) after the plain rounds; its ratio is then a scaling figure, each (b)
window's samples/s over (a)'s median, so that its median is the table's b/a. Ranks started
by spawn (trainer=ddp_sim, ddp_spawn) are refused: the windows they time would not come back.
On stderr: a line before the timing saying what runs and how many steps, then one as each round (a window of
each loop) ends, with its seconds; under DDP the line before alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's supra (README, Benchmarks), with this checkout's conf/

from bench_common import (  # noqa: E402
    machine_load_figures,
    one_line_errors,
    output_file,
    parser_for,
    positive_int,
    print_machine_load,
    progress_line,
    say_progress,
)

from supra.data.captioning.shapes import ShapesDataModule  # noqa: E402
from supra.data.images import normalize_images  # noqa: E402
from supra.runner.components import instantiate_group  # noqa: E402
from supra.tasks.captioning import CaptioningTask, fuses_on_auto  # noqa: E402
from supra.tokens.caption_bpe import PAD_ID  # noqa: E402
from supra.utils.errors import SupraUserError  # noqa: E402
from supra.utils.files import write_json_atomic  # noqa: E402
from supra.utils.hardware import check_accelerator, cpu_description  # noqa: E402
from supra.utils.numbers import counted  # noqa: E402
from supra.utils.target_options import check_target_options  # noqa: E402
from supra.utils.unknown_keys import exit_if_unknown_key  # noqa: E402

CONF = ROOT / "conf"
AUTOCAST = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}
PRECISIONS = ("32-true", *AUTOCAST)  # what the plain loop reproduces
EPOCH_PAIRS = {"shapes (default run)": 4000 * 5, "Flickr8k": 6000 * 5}
SHAPES = f"{ShapesDataModule.__module__}.{ShapesDataModule.__qualname__}"
CAPTIONING = f"{CaptioningTask.__module__}.{CaptioningTask.__qualname__}"
# Trainers whose DDP ranks torch's spawn starts: the windows they time would stay in those processes (and the
# plain loop that (b) calls between them does not pickle); --devices N measures DDP with ranks that re-run this script.
SPAWNED_RANKS = ("ddp_sim",)
SPAWN_ADVICE = "use --devices 2 with --trainer cpu (or gpu), this script's DDP measure"


def compose_run_config(overrides: list[str], out_dir: str) -> DictConfig:
    """conf/train.yaml as train.py composes it, with the output paths pointed at out_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"paths.root_dir={out_dir}", f"paths.output_dir={out_dir}", *overrides])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the data both loops read ----------------------------------------------------------------------


def cached_batches(cfg: DictConfig, n_batches: int) -> tuple[list[dict[str, torch.Tensor]], Any]:
    """n_batches training batches of the configured data (uint8 images, tokens) and its tokenizer."""
    n_images = max(64, -(-n_batches * cfg.data.batch_size // 5))  # 5 captions per shapes image
    net = cfg.model.net  # the data follows the model (what the runner passes from task.data_settings())
    data = instantiate(cfg.data, num_train=n_images, num_val=1, num_test=1, tokenizer_path=None,
                       image_size=net.IMG_SIZE, max_caption_tokens=net.MAX_SEQ, vocab_size=net.VOCAB_SIZE)
    data.setup("fit")
    loader = iter(data.train_dataloader())
    batches = [next(loader) for _ in range(n_batches)]
    if data.pin_memory:
        batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
    return batches, data.tokenizer


class Repeat(Dataset):
    """The cached batches, round and round (a DataLoader with batch_size=None hands them out as they are)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]], length: int) -> None:
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batches[i % len(self.batches)]


class CachedBatches(L.LightningDataModule):
    """What the task needs of a CaptionDataModule for training: tokenizer, loader, on-device normalising."""

    def __init__(self, batches: list[dict[str, torch.Tensor]], tokenizer: Any, length: int) -> None:
        super().__init__()
        self.batches, self.tokenizer, self.length = batches, tokenizer, length

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Repeat(self.batches, self.length), batch_size=None, shuffle=False)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        return {**batch, "images": normalize_images(batch["images"])}


# -- (a) the plain loop ----------------------------------------------------------------------------


def targets_of(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, 1:].masked_fill(tokens[:, 1:] == PAD_ID, -100)


def plain_adamw_fused(device: torch.device, precision: str) -> bool:
    """Whether the plain loop's AdamW is fused: where (b)'s is under model.fused_optimizer=auto (this loop always
    clips), so that both loops time the same optimizer step."""
    return fuses_on_auto(device.type, mixed_precision=precision in AUTOCAST, clipping=True)


def check_same_adamw(supra_optimizer: torch.optim.Optimizer, plain_fused: bool) -> None:
    """A one-line error unless (b)'s optimizer is fused as the plain loop's AdamW is (`plain_fused`): else b/a
    would weigh a fused optimizer step against a multi-tensor one, not Lightning's cost."""
    supra_fused = bool(supra_optimizer.defaults.get("fused"))
    if supra_fused != plain_fused:
        raise SupraUserError(
            f"(b)'s optimizer {type(supra_optimizer).__name__} has fused={supra_fused} but the plain loop's AdamW "
            f"fused={plain_fused}, so the loops would time different steps: leave model.fused_optimizer (auto), "
            "model.optimizer and trainer.gradient_clip_val as they are")


class SameAdamW(L.Callback):
    """Stops the run at the start of training unless (b)'s optimizer is fused as the plain loop's is."""

    def __init__(self, plain_fused: bool) -> None:
        self.plain_fused = plain_fused

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        check_same_adamw(trainer.optimizers[0], self.plain_fused)


class PlainLoop:
    """The release notebook's loop, kept between timed windows so it can alternate with (b)'s."""

    def __init__(self, cfg: DictConfig, batches: list, device: torch.device, precision: str, compile_net: bool,
                 total_steps: int) -> None:
        torch.manual_seed(0)
        self.batches, self.device, self.i = batches, device, 0
        self.model = instantiate(cfg.model.net).to(device)
        if compile_net:
            self.model.compile()
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.01,
                                     fused=plain_adamw_fused(device, precision))
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=total_steps, eta_min=3e-5)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
        self.dtype = AUTOCAST.get(precision)

    def step(self) -> None:
        batch = self.batches[self.i % len(self.batches)]
        self.i += 1
        images = normalize_images(batch["images"].to(self.device, non_blocking=True))
        tokens = batch["tokens"].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            _, loss = self.model(images, tokens[:, :-1], targets_of(tokens))
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()

    def window(self, steps: int) -> float:
        """Seconds for `steps` steps, the device synchronised at both ends."""
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync(self.device)
        return time.perf_counter() - start


# -- (b) Supra's task through the Trainer ----------------------------------------------------------


class StepWindows(L.Callback):
    """Times windows of `steps` full training iterations (fetch, transfer, step, hooks) after `warmup`,
    from the end of the previous batch to the end of the window's last. After each window it runs
    `between(its seconds)` untimed: the plain loop's window, so that a and b alternate every few steps."""

    def __init__(self, warmup: int, steps: int, between: Callable[[float], None] | None = None) -> None:
        self.warmup, self.steps, self.between = warmup, steps, between
        self.seconds: list[float] = []
        self._start = 0.0
        self._batches = 0  # not batch_idx: that restarts with each epoch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._batches += 1
        done = self._batches - self.warmup
        if done < 0 or (done % self.steps and done > 0):
            return
        sync(pl_module.device)
        if done > 0:
            self.seconds.append(time.perf_counter() - self._start)
            if self.between is not None:
                self.between(self.seconds[-1])
        self._start = time.perf_counter()


def supra_loop(cfg: DictConfig, batches: list, tokenizer: Any, devices: int, warmup: int, steps: int,
               windows: int, out_dir: str, plain_fused: bool,
               between: Callable[[float], None] | None = None) -> list[float]:
    """Seconds of each window of `steps` steps, through trainer.fit of the composed task and trainer (stopped at
    its start unless its optimizer is fused as the plain loop's is, `plain_fused`)."""
    torch.manual_seed(0)
    total = warmup + steps * windows
    task = instantiate(cfg.model)
    timer = StepWindows(warmup, steps, between)
    loggers = instantiate_group(cfg.get("logger"), "logger")  # the run's logger, writing at log_every_n_steps
    extra = {"strategy": "ddp"} if devices > 1 else {}
    trainer: L.Trainer = instantiate(
        cfg.trainer, devices=devices, max_steps=total, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[SameAdamW(plain_fused), timer], logger=loggers or False, default_root_dir=out_dir, **extra,
    )
    # DDP's sampler gives each rank 1/devices of the data: enough for `total` steps on every rank
    trainer.fit(task, datamodule=CachedBatches(batches, tokenizer, total * devices))
    return timer.seconds


# -- FLOPs and peak --------------------------------------------------------------------------------


def flops_per_sample(cfg: DictConfig, batch: dict[str, torch.Tensor], device: torch.device) -> float:
    """Forward + backward FLOPs of one training sample, counted by torch.utils.flop_counter (fp32)."""
    model = instantiate(cfg.model.net).to(device).train()
    images = normalize_images(batch["images"].to(device))
    tokens = batch["tokens"].to(device)
    with FlopCounterMode(display=False) as counter:
        _, loss = model(images, tokens[:, :-1], targets_of(tokens))
        loss.backward()
    return counter.get_total_flops() / len(tokens)


def peak_dtype(device: torch.device, precision: str) -> torch.dtype:
    """What matmul_peak measures in: the dtype the precision computes its matmuls in on a GPU, float32 on a CPU."""
    if device.type == "cpu":
        return torch.float32  # CPU autocast of these small layers is not what runs fast; keep fp32's peak
    return AUTOCAST.get(precision, torch.float32)


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matmul in `dtype`."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):  # best of five: the peak, not the noise of a shared machine
        sync(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * 10 / (time.perf_counter() - start))
    return best


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--trainer", default="cpu", help="a conf/trainer option: cpu | gpu | ... (not ddp_sim: "
                        "--devices 2 runs (b) under DDP)")
    parser.add_argument("--devices", type=positive_int, default=1, help="devices of (b); above 1, DDP")
    parser.add_argument("--precision", default=None, choices=PRECISIONS, help="default: the trainer config's")
    parser.add_argument("--compile", action="store_true", help="torch.compile the net in both loops (model.compile=true)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="the release's batch is 64")
    parser.add_argument("--warmup", type=positive_int, default=5, help="untimed steps of each loop first")
    parser.add_argument("--steps", type=positive_int, default=5, help="steps per timed window")
    parser.add_argument("--rounds", type=positive_int, default=20, help="timed windows of each loop")
    parser.add_argument("--json", type=output_file, default=None, help="also write the figures to this file")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, e.g. model.net.channels_last=true "
                        "(the data stays the built-in shapes)")
    args = parser.parse_args()
    if args.trainer in SPAWNED_RANKS:
        parser.error(f"--trainer {args.trainer} starts its DDP ranks with spawn, whose timings cannot come back: "
                     f"{SPAWN_ADVICE}")
    if not (CONF / "trainer" / f"{args.trainer}.yaml").is_file():
        options = sorted(p.stem for p in (CONF / "trainer").glob("*.yaml") if p.stem not in SPAWNED_RANKS)
        parser.error(f"--trainer {args.trainer} is not a conf/trainer option: {', '.join(options)}")
    # the run's outputs (logs) go to a temp folder, removed at the end; each DDP rank Lightning starts re-runs
    # this script and removes its own. Supra's errors (a GPU trainer without a GPU, model.net.D_MODEL=abc) are
    # one line, as train.py says them.
    with tempfile.TemporaryDirectory(prefix="supra_throughput_", ignore_cleanup_errors=True) as out_dir, \
            one_line_errors():
        run(parser, args, out_dir)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, out_dir: str) -> None:
    child_rank = os.environ.get("LOCAL_RANK", "0") != "0"  # a DDP rank Lightning started: only (b)
    # ++: another model (model=vqvae_f8) has no compile key, and Hydra's "Could not override 'model.compile'"
    # named an option the user never gave; such a model is refused below, after composing
    overrides = [f"trainer={args.trainer}", f"trainer.devices={args.devices}", f"data.batch_size={args.batch_size}",
                 f"++model.compile={args.compile}", *([f"trainer.precision={args.precision}"] if args.precision else []),
                 *args.overrides]
    # a misspelled key as train.py says it (one line, the nearest key), not Hydra's advice to add it with +,
    # nor, once added, a traceback after the data's caching and the warm-up
    exit_if_unknown_key("train", [f"trainer={args.trainer}", *args.overrides])
    try:
        cfg = compose_run_config(overrides, out_dir)
    except HydraException as err:
        raise SystemExit(f"error: {err}") from None
    strategy = cfg.trainer.get("strategy")
    if "spawn" in str(strategy.get("_target_") if isinstance(strategy, DictConfig) else strategy).lower():
        parser.error(f"trainer.strategy={strategy} starts the DDP ranks with spawn, whose timings cannot come back: "
                     f"{SPAWN_ADVICE}")
    if cfg.model.get("_target_") != CAPTIONING:  # both loops train vlm_nano's net on captions
        parser.error(f"this benchmark trains the captioner (model=vlm_nano), not "
                     f"{str(cfg.model.get('_target_')).rsplit('.', 1)[-1]}: leave model= (and an experiment= of "
                     "another model) out")
    if cfg.data.get("_target_") != SHAPES:  # the plain loop and the cached batches are the shapes data's
        parser.error(f"this benchmark trains on the built-in shapes data (cached batches of it), not on "
                     f"{str(cfg.data.get('_target_')).rsplit('.', 1)[-1]}: leave data= (and an experiment= of "
                     "other data) out")
    for group in ("model", "trainer", "logger"):  # +model.nett.dropout=0.1: one line, as train.py says it
        check_target_options(cfg.get(group), group)
    # train.py's advice (trainer=cpu, trainer=ddp_sim) in this script's options: it refuses ddp_sim (spawn)
    check_accelerator(cfg.trainer, args.trainer, remedy="use --trainer cpu (with --devices 2 for DDP on CPU processes)")
    precision = str(cfg.trainer.precision)
    device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
    if precision not in PRECISIONS:
        parser.error(f"precision {precision}: the plain loop (a) reproduces only {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision == "16-mixed":  # (a) would run fp16 with a GradScaler, (b) bf16
        parser.error("precision 16-mixed on a CPU: Lightning runs it as bf16-mixed there; ask for bf16-mixed")
    # before the fit: under DDP on a CPU, Lightning splits this process's threads between the ranks
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    threads = torch.get_num_threads()  # before the fit: under DDP on a CPU, Lightning splits them between ranks
    load_at_start = None if child_rank else print_machine_load("at start", cores=threads)
    batches, tokenizer = cached_batches(cfg, n_batches=min(16, args.warmup + args.steps))
    if not child_rank:  # before the fit too: the peak with all of this process's threads, the machine's
        flops, peak = flops_per_sample(cfg, batches[0], device), matmul_peak(device, peak_dtype(device, precision))

    total = args.warmup + args.steps * args.rounds
    plain_loop = None if child_rank else PlainLoop(cfg, batches, device, precision, args.compile, total)
    plain: list[float] = []
    if plain_loop is not None:
        say_progress(timing_plan(args))  # the table comes after one fit, a minute or more on a CPU
        plain_loop.window(args.warmup)  # its warm-up (and compile), untimed
    if args.devices > 1:  # the other ranks re-run this script: keep (a) out of the DDP fit
        if plain_loop is not None:
            plain = [plain_loop.window(args.steps) for _ in range(args.rounds)]
        supra = supra_loop(cfg, batches, tokenizer, args.devices, args.warmup, args.steps, args.rounds, out_dir,
                           plain_adamw_fused(device, precision))
        if child_rank:
            return
        if device.type == "cpu":
            where += f" ({torch.get_num_threads()} per DDP rank in (b))"
    else:  # a and b alternate every `steps` steps inside one fit: both see the same machine load
        def plain_window_after(supra_s: float) -> None:
            plain.append(plain_loop.window(args.steps))
            say_progress(progress_line(len(plain), args.rounds, {"(a)": f"{plain[-1]:.2f} s", "(b)": f"{supra_s:.2f} s"}))

        supra = supra_loop(cfg, batches, tokenizer, 1, args.warmup, args.steps, args.rounds, out_dir,
                           plain_adamw_fused(device, precision), between=plain_window_after)
    samples = args.steps * args.batch_size
    ratios = (scaling_ratios(plain, supra, samples, args.steps, args.devices) if args.devices > 1
              else [a / b for a, b in zip(plain, supra, strict=False)])
    rows = {"(a) plain PyTorch loop": plain, supra_row(args.devices): supra}
    report = report_table(args, where, precision, rows, samples, ratios, flops, peak, peak_dtype(device, precision))
    finish(report, args.json, load_at_start, threads)


def timing_plan(args: argparse.Namespace) -> str:
    """The line said before the timing: what runs and how many steps, the table coming only at its end."""
    compiling = " (each net compiled first: about a minute)" if args.compile else ""
    warmup, rounds, steps = counted(args.warmup, "warm-up step"), counted(args.rounds, "round"), counted(args.steps, "step")
    if args.devices > 1:
        return (f"timing (a): {warmup}{compiling}, then {rounds} of {steps}; then (b) under DDP on {args.devices} "
                f"devices, one Trainer fit of {warmup} and {args.rounds} x {args.steps} timed ones")
    return f"timing (a) and (b) in one Trainer fit: {warmup} each{compiling}, then {rounds} of {steps} each, taking turns"


def finish(report: dict[str, Any], json_path: Path | None, load_at_start: float, cores: int) -> None:
    """The machine's load at the end, printed, and the figures written to `json_path` (if given) with both of the
    load lines the console shows, which the file left out: its figures read the same from an idle or busy machine."""
    load_at_end = print_machine_load("at end", cores=cores)
    if json_path:
        write_json_atomic(json_path, {**report, "machine_load": machine_load_figures(load_at_start, load_at_end, cores)})


def median_speed(seconds: list[float], samples: int, steps: int) -> tuple[float, float]:
    """Median samples/s over the windows, and the ms per step at that speed. Both from one median: with an
    even number of windows the median of times is not the inverse of the median of speeds."""
    per_s = statistics.median(samples / s for s in seconds)
    return per_s, 1000 * samples / (per_s * steps)


def supra_row(devices: int) -> str:
    """The table's label of (b), and its key in the JSON report: "(b) Supra task + Trainer (1 device)"."""
    return f"(b) Supra task + Trainer ({counted(devices, 'device')})"


def scaling_ratios(plain: list[float], supra: list[float], samples: int, steps: int, devices: int) -> list[float]:
    """Each DDP (b) window's samples/s (`devices` times an (a) window's samples) over (a)'s median samples/s,
    as the table gives it: (a) ran apart, before, so there are no window pairs. Their median is the table's
    ratio; the median of (a)'s times is not the inverse of its median speed with an even number of windows."""
    plain_per_s = median_speed(plain, samples, steps)[0]
    return [samples * devices / b / plain_per_s for b in supra]


def report_table(args: argparse.Namespace, name: str, precision: str, rows: dict[str, list[float]], samples: int,
                 ratios: list[float], flops: float, peak: float, peak_in: torch.dtype) -> dict[str, Any]:
    windows = (f"{args.rounds} alternating windows" if args.devices == 1 else
               f"{args.rounds} windows of (a), then {args.rounds} of (b) under DDP,")
    print(f"\n{name}; precision {precision}; compile {'on' if args.compile else 'off'}; batch {args.batch_size}; "
          f"{windows} of {counted(args.steps, 'step')} after {args.warmup} warm-up (medians)")
    print(f"model FLOPs per training sample (forward+backward, flop_counter): {flops / 1e9:.3f} GFLOP; "
          f"measured peak (matmul {str(peak_in).removeprefix('torch.')}): "
          f"{peak / 1e12:.2f} TFLOP/s")
    print("| loop | samples/s | step ms | samples/s min-max | MFU | " + " | ".join(f"epoch {k}" for k in EPOCH_PAIRS) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(EPOCH_PAIRS))
    report: dict[str, Any] = {"device": name, "precision": precision, "compile": args.compile, "devices": args.devices,
                              "batch_size": args.batch_size, "overrides": args.overrides, "flops_per_sample": flops, "peak_flops": peak,
                              "peak_dtype": str(peak_in).removeprefix("torch."), "rows": {}}
    for label, seconds in rows.items():
        per_s = [samples / s for s in seconds]
        median, step_ms = median_speed(seconds, samples, args.steps)
        scale = args.devices if label.startswith("(b)") else 1
        total = median * scale
        epochs = " | ".join(f"{pairs / total:.0f} s" for pairs in EPOCH_PAIRS.values())
        print(f"| {label} | {total:.0f} | {step_ms:.1f} | "
              f"{min(per_s) * scale:.0f}-{max(per_s) * scale:.0f} | {flops * total / peak:.2%} | {epochs} |")
        report["rows"][label] = {"samples_per_s": total, "step_ms": step_ms,
                                 "mfu": flops * total / peak, "all_samples_per_s": [p * scale for p in per_s]}
    ratio = statistics.median(ratios)
    what = "Lightning overhead ratio" if args.devices == 1 else f"scaling, {args.devices} devices vs plain on 1"
    print(f"ratio b/a ({what}): {ratio:.3f}  (per round: {', '.join(f'{r:.3f}' for r in ratios)})")
    report["ratio_b_over_a"] = ratio
    report["ratios"] = ratios
    return report


if __name__ == "__main__":
    main()
