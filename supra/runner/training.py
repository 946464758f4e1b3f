"""The training run behind `train.py`: config -> task, DataModule, callbacks, loggers, Trainer -> fit -> test."""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, ListConfig, OmegaConf

from supra.artifacts.checkpoints import (
    load_supra_checkpoint,
    net_state,
    refuse_changed_model,
    release_of_file,
    run_config_of,
)
from supra.artifacts.kinds import release_kind
from supra.callbacks.checkpoint import AtomicCheckpointIO
from supra.callbacks.time_accounting import mark_job_start
from supra.callbacks.validation_within_run import ValidationWithinRun
from supra.loggers.wandb_logger import build_wandb_logger, check_wandb_options
from supra.runner.components import (
    build_datamodule,
    build_task,
    check_callbacks_fit,
    check_optimized_metric,
    instantiate_group,
    stage1_vqvae,
    starting_model,
    tests_nothing,
    tokenizer_to_reuse,
)
from supra.runner.resume import EpochWhereStopped
from supra.runner.spawned_ranks import EndWithMainProcess
from supra.sweeps.ddp import ddp_job_scope, use_job_config_for_ddp_children
from supra.tasks.base import SupraTask
from supra.utils.cli import CONF_DIR, check_option_types, refuse_job_chdir
from supra.utils.errors import SupraUserError
from supra.utils.files import require_writable_dir
from supra.utils.hardware import check_accelerator
from supra.utils.run_folders import finished_run_file
from supra.utils.seeds import check_seed
from supra.utils.state_dicts import check_state_fits
from supra.utils.target_options import check_target_options

log = logging.getLogger(__name__)

def _group_choice(group: str) -> str:
    try:
        return HydraConfig.get().runtime.choices.get(group) or group
    except ValueError:  # not running under Hydra (API use)
        return group


def _in_sweep() -> bool:
    """A job of `-m` (its folder is hydra.sweep.dir/hydra.sweep.subdir, not hydra.run.dir)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_run_config(cfg: DictConfig) -> None:
    """Fail before any work on what can be known from the config alone."""
    refuse_job_chdir()  # first: the paths checked below would be read from the run folder
    # Hydra passes `seed=abc` on as text: named here, not by a traceback from the optimizer or the loop
    options = {name: OmegaConf.select(cfg, name) for name in ("seed", "data.batch_size", "model.optimizer.lr",
                                                               "trainer.max_steps", "trainer.val_check_interval",
                                                               "trainer.accumulate_grad_batches",
                                                               "model.generation.seed")}
    check_option_types(options, whole=("seed", "data.batch_size", "trainer.max_steps", "trainer.accumulate_grad_batches",
                                       "model.generation.seed"),
                       numbers=("model.optimizer.lr", "trainer.val_check_interval"), optional=options)
    check_seed("seed", options["seed"], null="no fixed seed")  # else numpy's ValueError, a traceback
    # an a2a model's sampling seed: else torch's overflow at its first validation, after the steps before it
    check_seed("model.generation.seed", options["model.generation.seed"])
    if options["trainer.max_steps"] is not None and options["trainer.max_steps"] < -1:  # else Lightning's, via Hydra's
        raise SupraUserError(f"trainer.max_steps={options['trainer.max_steps']} must be >= 0 (or -1: bounded by "
                             "trainer.max_epochs)")
    accumulate = options["trainer.accumulate_grad_batches"]
    if accumulate is not None and accumulate < 1:  # Lightning: a ZeroDivisionError deep in its loop
        raise SupraUserError(f"trainer.accumulate_grad_batches={accumulate} must be >= 1: the batches whose gradients "
                             "make one optimizer step (1: each batch its own step)")
    if cfg.get("test") and tests_nothing(cfg.get("data")):  # else a test over no batch, exit 0, no test score
        raise SupraUserError("data.test_items=0 leaves the test nothing to score: add test=false (no test), or give "
                             "data.test_items=N (N >= 1), or null for every item")
    check_run_length(cfg)
    check_optimization(cfg)
    check_loggers(cfg.get("logger"))
    check_precision(cfg)
    check_trainer_numbers(cfg.trainer)
    if options["trainer.val_check_interval"] is not None and options["trainer.val_check_interval"] <= 0:
        raise SupraUserError(f"trainer.val_check_interval={options['trainer.val_check_interval']} must be > 0: "
                             "steps between validations (or a share of an epoch, 0.5)")
    interval, every_epochs = options["trainer.val_check_interval"], OmegaConf.select(cfg, "trainer.check_val_every_n_epoch")
    if isinstance(interval, float) and interval <= 1 and every_epochs is None:  # Lightning's error says neither key
        raise SupraUserError(f"trainer.val_check_interval={interval} is a share of an epoch, which needs epochs: add "
                             "trainer.check_val_every_n_epoch=1 (runs are counted in steps: validation every N steps "
                             "is trainer.val_check_interval=N)")
    # Lightning takes a float above 1 as a number of batches only when whole and counted within epochs (2.0);
    # any other (1.5, NaN) was its error as the Trainer was built, after the data set-up
    if isinstance(interval, float) and not interval <= 1 and not (interval % 1 == 0 and every_epochs is not None):
        raise SupraUserError(f"trainer.val_check_interval={interval} must be a whole number of training batches "
                             "(written without a decimal point: 500) or a share of an epoch from 0.0 to 1.0 (0.5)")
    # a whole number of batches (a float above 1 is one by now): validations, and the checkpoints written at them,
    # that fall inside an optimizer step lose its gradients so far, which no checkpoint keeps (a run resumed from one
    # trains other weights); a share of an epoch is checked at the start of training, where the epoch's length is known
    if accumulate is not None and accumulate > 1 and isinstance(interval, int | float) and (
            isinstance(interval, int) or interval > 1) and interval % accumulate:
        below = int(interval // accumulate * accumulate)
        multiples = " or ".join(f"trainer.val_check_interval={n}" for n in (below, below + accumulate) if n)
        raise SupraUserError(f"trainer.val_check_interval={interval} is not a multiple of trainer.accumulate_grad_batches="
                             f"{accumulate}: its validations and their checkpoints would fall inside an optimizer step, "
                             "whose gathered gradients a checkpoint cannot keep (a run resumed from one would train other "
                             f"weights): use {multiples}")
    metric = str(cfg.get("optimized_metric") or "")
    if metric.startswith("test/") and not cfg.get("test"):  # else known only after the whole fit
        raise SupraUserError(f"optimized_metric={metric} is a test score, but test=false: set test=true, or "
                             f"optimize a validation score (optimized_metric=val/{metric.removeprefix('test/')})")
    if OmegaConf.select(cfg, "trainer.enable_checkpointing") is False and OmegaConf.select(cfg, "callbacks.model_checkpoint"):
        raise SupraUserError("trainer.enable_checkpointing=false: add callbacks.model_checkpoint=null too (the run "
                             "then tests its last weights)")
    trainer_name = _group_choice("trainer")
    chosen = CONF_DIR / "trainer" / f"{trainer_name}.yaml"
    cpu_trainer = chosen.is_file() and OmegaConf.load(chosen).get("accelerator") == "cpu"
    check_accelerator(cfg.trainer, trainer_name, cpu_trainer)
    check_half_precision_on_cpu(cfg.trainer)
    folder_option = "hydra.sweep.dir" if _in_sweep() else "hydra.run.dir"
    require_writable_dir(cfg.paths.output_dir, f"the output directory {cfg.paths.output_dir}",
                         f"choose another with {folder_option}=DIR")
    held = finished_run_file(Path(cfg.paths.output_dir))
    if cfg.get("train") and held:  # its checkpoints would be replaced and its logged curves mixed with ours
        choose = ("choose another with hydra.run.dir=DIR (a resumed run, ckpt_path=..., writes a new one)"
                  if not _in_sweep() else "choose another with hydra.sweep.dir=DIR, and give each job a folder of "
                  "its own with ${hydra.job.num} in hydra.sweep.subdir")
        raise SupraUserError(f"the output directory {cfg.paths.output_dir} already holds a run "
                             f"({held.relative_to(cfg.paths.output_dir)}): {choose}")
    release = cfg.get("ckpt_path") and (Path(cfg.ckpt_path) if release_kind(cfg.ckpt_path) else
                                        release_of_file(Path(cfg.ckpt_path)))
    if release:  # weights to start from (or to score), not a run to go on with
        what = "a release folder" if release == Path(cfg.ckpt_path) else f"the {Path(cfg.ckpt_path).name} of a release folder"
        use = (f"fine-tune from the release with model.init_from={release}" if cfg.get("train") else
               f"score the release with python evaluate.py ckpt={release}")
        raise SupraUserError(f"ckpt_path={cfg.ckpt_path} is {what}, which holds no run: {use} (ckpt_path= takes a "
                             "last.ckpt or best.ckpt of a run)")
    if cfg.get("ckpt_path") and Path(cfg.ckpt_path).is_dir():
        last = [p for p in (Path(cfg.ckpt_path) / "checkpoints" / "last.ckpt", Path(cfg.ckpt_path) / "last.ckpt") if p.is_file()]
        raise SupraUserError(f"ckpt_path={cfg.ckpt_path} is a folder: give a last.ckpt or best.ckpt of a run"
                             + (f", e.g. ckpt_path={last[0]}" if last else ""))
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise SupraUserError(f"ckpt_path={cfg.ckpt_path} does not exist: give a last.ckpt or best.ckpt of a run")


def check_loggers(logger_cfg: DictConfig | None) -> None:
    """Each configured logger's settings that its logger refuses only after the data set-up (a traceback) or
    after training steps (a CSV flush every 0 steps: a ZeroDivisionError at its first metrics), or never (a W&B
    init_timeout of 0: a run that hangs): a save_dir that cannot be written, then the numbers and names."""
    for key, node in (logger_cfg or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        save_dir = node.get("save_dir")
        if save_dir is not None:
            require_writable_dir(save_dir, f"logger.{key}.save_dir={save_dir}",
                                 f"choose another with logger.{key}.save_dir=DIR")
        flush = node.get("flush_logs_every_n_steps")
        if flush is not None and (isinstance(flush, bool) or not isinstance(flush, int) or flush < 1):
            raise SupraUserError(f"logger.{key}.flush_logs_every_n_steps={flush!r} must be a whole number >= 1: "
                                 "the logged steps between writes of its file")
        if str(node.get("_target_")) == WANDB_TARGET:
            tags = node.get("tags")
            tags = [tags] if isinstance(tags, str) else OmegaConf.to_container(tags) if isinstance(tags, ListConfig) else tags
            check_wandb_options(node.get("project"), tags, node.get("init_timeout", 10), f"logger.{key}")


WANDB_TARGET = f"{build_wandb_logger.__module__}.{build_wandb_logger.__name__}"


def check_run_length(cfg: DictConfig) -> None:
    """trainer.max_steps=-1 with trainer.max_epochs=-1 trains without end: a learning-rate schedule decays over
    the run's steps, which are then infinite (Lightning hands it float('inf'))."""
    trainer_cfg = cfg.trainer
    endless = trainer_cfg.get("max_steps", -1) in (-1, None) and trainer_cfg.get("max_epochs") == -1
    if endless and not trainer_cfg.get("fast_dev_run") and OmegaConf.select(cfg, "model.scheduler") is not None:
        raise SupraUserError(ENDLESS_RUN)


ENDLESS_RUN = ("trainer.max_steps=-1 with trainer.max_epochs=-1 trains without end, but the learning-rate schedule "
               "(model.scheduler) decays over the run's steps: set a finite trainer.max_steps or trainer.max_epochs")


def check_optimization(cfg: DictConfig) -> None:
    """The optimizer's and the schedule's numbers, before any work: torch refuses some of them only when the
    optimizer is built, after the data set-up (a traceback), and checks none that it receives per parameter
    group (model.weight_decay), nor the schedule's (a min_lr above lr made the cosine climb to it)."""
    names = ("model.optimizer.lr", "model.optimizer.eps", "model.weight_decay", "model.scheduler.warmup_steps",
             "model.scheduler.min_lr")
    values = {name: OmegaConf.select(cfg, name) for name in names}
    # null where the optimizer or schedule takes its own default; the schedule's two have none
    optional = [name for name in names if name.rpartition(".")[2] not in ("warmup_steps", "min_lr")
                or OmegaConf.select(cfg, "model.scheduler") is None]
    check_option_types(values, whole=("model.scheduler.warmup_steps",), numbers=names[:3] + names[4:], optional=optional)
    for name in names:
        if values[name] is not None and not 0 <= values[name] < math.inf:
            raise SupraUserError(f"{name}={values[name]} must be a finite number >= 0")
    betas = OmegaConf.select(cfg, "model.optimizer.betas")
    if betas is not None and (not isinstance(betas, ListConfig | list) or len(betas) != 2
                              or not all(isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 1
                                         for b in betas)):
        raise SupraUserError(f"model.optimizer.betas={OmegaConf.to_container(betas) if isinstance(betas, ListConfig) else betas!r} "
                             "must be two numbers from 0 to below 1, e.g. [0.9,0.95]")
    lr, min_lr = values["model.optimizer.lr"], values["model.scheduler.min_lr"]
    if lr is not None and min_lr is not None and min_lr > lr:
        raise SupraUserError(f"model.scheduler.min_lr={min_lr} is above model.optimizer.lr={lr}: the cosine schedule "
                             "would climb to it, not decay; give a min_lr <= lr")


def check_half_precision_on_cpu(trainer_cfg: DictConfig) -> None:
    """16-mixed on a CPU, which Lightning turns into bf16-mixed with a warning while the run records 16-mixed.
    After check_accelerator: a GPU trainer given accelerator=cpu is told first what else it needs."""
    precision = str(trainer_cfg.get("precision"))
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if precision in ("16-mixed", "16") and on_cpu:
        raise SupraUserError(f"trainer.precision={precision} is for GPUs: on a CPU Lightning would train in "
                             "bf16-mixed instead; use 32-true (every recipe's), or bf16-mixed where the CPU has native "
                             "bf16 (AVX512-BF16 or AMX)")


# What Lightning's Trainer takes as precision (its older names too): another was Hydra's multi-line "Error in
# call to target" when the trainer was built, after the data was set up.
PRECISIONS = ("32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine",
              "transformer-engine-float16", "64", "32", "16", "bf16")


def check_precision(cfg: DictConfig) -> None:
    """A precision Lightning knows. 16-true keeps the weights and Adam's state in float16, where its default eps
    (1e-8) is 0: a parameter whose gradient is 0 then gets 0/0, and the first step makes the weights NaN. The
    other precisions train."""
    given = OmegaConf.select(cfg, "trainer.precision")
    precision = str(given)
    if given is not None and (isinstance(given, bool) or precision not in PRECISIONS):
        raise SupraUserError(f"trainer.precision={given} is not a precision: choose one of {', '.join(PRECISIONS[:6])}")
    optimizer = OmegaConf.select(cfg, "model.optimizer")
    if precision != "16-true" or not isinstance(optimizer, DictConfig):
        return
    eps = optimizer.get("eps")
    if eps is None:  # the optimizer's own default
        try:
            eps = inspect.signature(get_object(str(optimizer.get("_target_")))).parameters["eps"].default
        except (ImportError, AttributeError, ValueError, TypeError, KeyError):
            return
    if isinstance(eps, int | float) and float(torch.tensor(float(eps), dtype=torch.float16)) == 0:
        raise SupraUserError(f"trainer.precision=16-true keeps the optimizer's state in float16, where its eps={eps} "
                             "is 0: the first step makes the weights NaN. Use 16-mixed (float16 arithmetic, float32 "
                             "weights), bf16-true or bf16-mixed, or add +model.optimizer.eps=1e-4")


# What Lightning's Trainer takes as a batch limit: a share of the batches (0.0 to 1.0) or a number of them
LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches")


def check_trainer_numbers(trainer_cfg: DictConfig) -> None:
    """The Trainer's numbers Lightning refuses only as it is built, after the data set-up (Hydra's multi-line
    "Error in call to target"), or in its loop (check_val_every_n_epoch=0: a ZeroDivisionError), or takes without
    a word (a gradient_clip_val below 0 clips nothing, as 0 does, while the run records it)."""
    clip = trainer_cfg.get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or not 0 <= clip < math.inf):
        raise SupraUserError(f"trainer.gradient_clip_val={clip!r} must be a finite number >= 0: the largest gradient "
                             "norm (or element) kept (0 or null: no clipping)")
    algorithm = trainer_cfg.get("gradient_clip_algorithm")
    if algorithm is not None and (not isinstance(algorithm, str) or algorithm.lower() not in ("norm", "value")):
        raise SupraUserError(f"trainer.gradient_clip_algorithm={algorithm!r} must be norm (clip the gradients' "
                             "global norm) or value (each element)")
    every = trainer_cfg.get("check_val_every_n_epoch")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise SupraUserError(f"trainer.check_val_every_n_epoch={every!r} must be a whole number >= 1: the epochs "
                             "between validations (or null: every trainer.val_check_interval training batches, "
                             "across epochs)")
    for key in LIMITS:
        limit = trainer_cfg.get(key)
        # as Lightning reads it: a float is a share, unless whole and above 1 (2.0: 2 batches)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)
                                  or not (0 <= limit <= 1 or (limit > 1 and limit % 1 == 0))):
            raise SupraUserError(f"trainer.{key}={limit!r} must be a share of the batches from 0.0 to 1.0 (0.5), "
                                 "or a whole number of batches (10)")


@contextmanager
def interval_within_epoch(trainer_cfg: DictConfig) -> Iterator[None]:
    """With trainer.check_val_every_n_epoch set, val_check_interval counts steps within an epoch: one longer
    than the epoch is Lightning's ValueError from inside fit (the epoch's length is known only then)."""
    try:
        yield
    except ValueError as err:
        found = re.search(r"`val_check_interval` \((\d+)\) must be less than or equal to the number of the training "
                         r"batches \((\d+)\)", str(err))
        if not found:
            raise
        raise SupraUserError(f"trainer.val_check_interval={found[1]} is more than an epoch's {found[2]} training batches "
                             f"(with trainer.check_val_every_n_epoch={trainer_cfg.get('check_val_every_n_epoch')} it "
                             "counts within each epoch): add trainer.val_check_interval=1.0 (each epoch's end)") from None


def share_cpu_threads(trainer_cfg: DictConfig) -> None:
    """Several CPU processes (ddp_sim) each default to all cores: split them instead of oversubscribing.

    Spawned workers start a fresh interpreter and read OMP_NUM_THREADS when torch loads.
    """
    devices = trainer_cfg.get("devices", 1)
    if str(trainer_cfg.get("accelerator")) == "cpu" and isinstance(devices, int) and devices > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))


def train(cfg: DictConfig) -> tuple[float | None, dict[str, float]]:
    """Fit and test as configured; returns (value of cfg.optimized_metric or None, all final metrics)."""
    use_job_config_for_ddp_children()  # `ddp` in a multirun job: all ranks train this job's config
    mark_job_start()  # a multirun's later jobs count their time from here, not from the process's start
    trainers: list[L.Trainer] = []
    with ddp_job_scope(trainers):
        return _train(cfg, trainers)


def _train(cfg: DictConfig, trainers: list[L.Trainer]) -> tuple[float | None, dict[str, float]]:
    check_run_config(cfg)
    share_cpu_threads(cfg.trainer)
    for group in ("model", "data", "trainer", "callbacks", "logger"):
        check_target_options(cfg.get(group), group)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    # Each part once, handed one way: stage 1 and reused token ids -> task -> DataModule (what it must follow).
    ckpt_path = cfg.get("ckpt_path")
    task = build_task(starting_model(cfg.model, ckpt_path), run_config, stage1_vqvae(cfg.model, ckpt_path))
    if ckpt_path:
        checkpoint = check_resumable(task, ckpt_path, cfg.trainer.get("max_steps") if cfg.get("train") else None)
        if cfg.get("train"):
            resumed = run_config_of(checkpoint) or {}
            say_resumed_changes(cfg, resumed)
            # the run config the task saves in its checkpoints and the loggers record: what this run trained with
            keep_resumed_settings(run_config, resumed)
    datamodule = build_datamodule(cfg.data, task, tokenizer_to_reuse(cfg))
    check_optimized_metric(task, cfg.get("optimized_metric"), datamodule)
    check_callbacks_fit(task, cfg.get("callbacks"), _group_choice("callbacks"), datamodule)
    callbacks = [*instantiate_group(cfg.get("callbacks")), ValidationWithinRun(), EpochWhereStopped(),
                 EndWithMainProcess()]
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = without_unloggable(callbacks, loggers)
    # checkpoints written whole or not at all (unless trainer.plugins=... chooses the plugins itself)
    extra: dict[str, Any] = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    if cfg.trainer.get("enable_checkpointing") is None and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
        # callbacks=none (or callbacks.model_checkpoint=null): no checkpoints, where Lightning would add its own
        # (epoch=N-step=M.ckpt in the first logger's folder) and the test would score it
        extra["enable_checkpointing"] = False
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)
    trainers.append(trainer)
    for logger in loggers:
        logger.log_hyperparams(run_config)

    if cfg.get("train"):
        try:
            with interval_within_epoch(cfg.trainer):
                trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        except SIGTERMException as stop:  # Ctrl-C or SIGTERM: last.ckpt written and said (callbacks/checkpoint.py)
            raise SystemExit(1) from stop  # not 0, as Lightning's: the run did not finish (and is not tested)
    metrics = _plain(trainer.callback_metrics)

    if cfg.get("test"):
        if cfg.get("train"):
            take_fit_progress_from_last_checkpoint(trainer)
        elif cfg.get("ckpt_path"):  # logged at the step its checkpoint was trained to, as the run's own test was
            take_fit_progress_from(trainer, Path(cfg.ckpt_path))
        trainer.test(task, datamodule=datamodule, ckpt_path=_checkpoint_to_test(trainer, cfg))
        metrics.update(_plain(trainer.callback_metrics))

    return _metric_value(metrics, cfg.get("optimized_metric")), metrics


def without_unloggable(callbacks: list[Any], loggers: list[Any]) -> list[Any]:
    """`callbacks` less a learning-rate monitor where there is no logger (logger=none): Lightning refuses it then,
    after the data set-up, while it only logs the learning rate, which the checkpoints keep anyway."""
    return callbacks if loggers else [callback for callback in callbacks if not isinstance(callback, LearningRateMonitor)]


def check_resumable(task: SupraTask, ckpt_path: str, max_steps: int | None = None) -> dict[str, Any]:
    """What Lightning would take without a word, or answer with a page of missing keys, as one line: a
    checkpoint of another architecture or of other model settings (the task's check_resumes), one already at
    `max_steps` (the fit would train nothing), or an a2a run's checkpoint resumed over another stage-1 VQ-VAE (the data would be coded by the new one, the GPT
    would have learnt the old one's codes, and the checkpoint's own VQ-VAE would come back with its weights)."""
    checkpoint = load_supra_checkpoint(ckpt_path, kind=task.checkpoint_kind, what="ckpt_path")
    saved_net = ((run_config_of(checkpoint) or {}).get("model") or {}).get("net")
    if isinstance(saved_net, dict):  # settings first: they name what to change, where shapes cannot
        task.check_resumes(saved_net, f"ckpt_path={ckpt_path}")
    if isinstance(getattr(task, "net", None), torch.nn.Module):
        try:
            check_state_fits(task.net, net_state(checkpoint), f"ckpt_path={ckpt_path} (another model's configuration?)")
        except SupraUserError:  # the settings that differ say what to change, where the shapes do not
            ours = ((task.run_config or {}).get("model") or {}).get("net")
            if not isinstance(saved_net, dict) or not isinstance(ours, dict):
                raise
            refuse_changed_model(f"ckpt_path={ckpt_path}", model_changes(saved_net, ours, prefix="net."))
            raise
    vqvae = getattr(task, "vqvae", None)
    if isinstance(vqvae, torch.nn.Module):
        saved = {k.removeprefix("vqvae."): v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith("vqvae.")}
        ours = vqvae.state_dict()
        if saved.keys() != ours.keys() or any(not torch.equal(saved[k].cpu(), v.cpu()) for k, v in ours.items()):
            trained_with = checkpoint.get("hyper_parameters", {}).get("vqvae_ckpt")
            raise SupraUserError(
                f"ckpt_path={ckpt_path} was trained over another VQ-VAE than model.vqvae_ckpt={task.hparams.vqvae_ckpt} "
                f"(its codes mean other pictures): leave model.vqvae_ckpt unset, and the checkpoint's own is used"
                + (f" (it was model.vqvae_ckpt={trained_with})" if trained_with else ""))
    lacking = [key for key in ("optimizer_states", "lr_schedulers", "loops") if key not in checkpoint]
    if max_steps is not None and lacking:  # Lightning: a KeyError deep in its restore, or steps from 0 again
        raise SupraUserError(f"ckpt_path={ckpt_path} holds no training state ({', '.join(lacking)} missing: weights "
                             "only?), so training cannot go on from it: score it with train=false, or start a new "
                             "run from its weights")
    step = checkpoint.get("global_step")
    if isinstance(max_steps, int) and max_steps >= 0 and isinstance(step, int) and step >= max_steps:
        raise SupraUserError(f"ckpt_path={ckpt_path} is at step {step}: trainer.max_steps={max_steps} trains nothing more; "
                             "raise trainer.max_steps to go on, at the schedule's min_lr (or train=false to score it as it is)")
    return checkpoint


# Settings a resumed run may change without a word: how its batches are made and where its files (and caches) go.
QUIET_DATA_KEYS = {"batch_size", "eval_batch_size", "num_workers", "show_progress", "tokenizer_path", "vocab_path",
                   "cache_dir"}


# Model settings a resumed run may change without a word: speed and display switches, and the files a model
# started from saved weights does not read (a pretrained tower's: the checkpoint holds its weights).
QUIET_MODEL_KEYS = {"compile", "fused_optimizer", "loss_in_progress_bar", "score_every_n_val", "net.channels_last",
                    "net.rebuilt", "net.pretrained.weights"}
# ... and those said on their own (say_resumed_changes) or checked against the checkpoint (check_resumable)
OWN_MODEL_KEYS = ("optimizer", "scheduler", "weight_decay", "init_from", "vqvae_ckpt")


def model_changes(theirs: dict[str, Any], ours: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key below model, theirs, ours) for each model setting, nested ones dotted (`net.dropout`,
    `decode.beam_width`), in which this run differs from its checkpoint's run; `prefix` is where `theirs` and
    `ours` are in the model config ("net." for model.net). The quiet ones and OWN_MODEL_KEYS are left out."""
    flat_theirs, flat_ours = _flat(theirs, prefix), _flat(ours, prefix)
    return [(key.removeprefix(prefix), flat_theirs.get(key), flat_ours.get(key))
            for key in sorted(flat_theirs.keys() | flat_ours.keys())
            if key not in QUIET_MODEL_KEYS and key.partition(".")[0] not in OWN_MODEL_KEYS
            and flat_theirs.get(key) != flat_ours.get(key)]


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"decode": {"beam_width": 3}} -> {"decode.beam_width": 3}."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        flat |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
    return flat


def say_resumed_changes(cfg: DictConfig, run_config: dict[str, Any]) -> None:
    """A resumed run goes on with its checkpoint's optimizer and schedule (Lightning restores their state
    over the settings given now) but trains on the data it is given now: either change, unnoticed, is a
    run other than the one the user asked for, so each is said in one warning naming the settings."""
    for group, outcome in (("model.optimizer", "not used: the checkpoint's optimizer state goes on"),
                           ("model.scheduler", "not used: the checkpoint's learning-rate schedule goes on"),
                           ("data", "used: this run trains on other data than the checkpoint's run")):
        now = OmegaConf.select(cfg, group)
        ours = OmegaConf.to_container(now, resolve=True) if isinstance(now, DictConfig) else {}
        theirs: Any = run_config
        for part in group.split("."):
            theirs = theirs.get(part) if isinstance(theirs, dict) else None
        if not isinstance(theirs, dict):
            continue
        quiet = QUIET_DATA_KEYS if group == "data" else set()
        changed = [f"{group}.{key}={ours.get(key)} (was {theirs.get(key)})" for key in sorted(set(ours) | set(theirs))
                   if key not in quiet and ours.get(key) != theirs.get(key)]
        if changed:
            log.warning("resuming ckpt_path=%s with %s: %s", cfg.ckpt_path, ", ".join(changed), outcome)
    for key, outcome in (("weight_decay", "not used: the checkpoint's optimizer state (its weight decay) goes on"),
                         ("init_from", "not used: the checkpoint's weights go on")):
        given, theirs = cfg.model.get(key), (run_config.get("model") or {}).get(key)
        if given != theirs:
            log.warning("resuming ckpt_path=%s with model.%s=%s (was %s): %s", cfg.ckpt_path, key, given, theirs, outcome)
    theirs_model = run_config.get("model")
    if isinstance(theirs_model, dict):  # the rest of the model's settings are this run's, and so train and score it
        changed = model_changes(theirs_model, OmegaConf.to_container(cfg.model, resolve=True))
        if changed:
            log.warning("resuming ckpt_path=%s with %s: used: the checkpoint's weights go on with them", cfg.ckpt_path,
                        ", ".join(f"model.{key}={now} (was {was})" for key, was, now in changed))


def keep_resumed_settings(run_config: dict[str, Any], resumed: dict[str, Any]) -> None:
    """Put the settings a resumed run takes from its checkpoint (say_resumed_changes: "not used") into its
    `run_config`, over those given now: the checkpoint's optimizer and schedule, whose state goes on, its
    weight decay, kept in that state, and the release its weights were first taken from. Otherwise the new
    checkpoints, the release card and a further resume would tell of settings this run never used."""
    model, theirs = run_config.get("model"), resumed.get("model")
    if not isinstance(model, dict) or not isinstance(theirs, dict):
        return
    for key in ("optimizer", "scheduler"):
        if isinstance(theirs.get(key), dict):  # else Lightning restores no state over ours: ours is used
            model[key] = theirs[key]
    for key in ("weight_decay", "init_from"):
        if key in theirs:
            model[key] = theirs[key]


def take_fit_progress_from_last_checkpoint(trainer: L.Trainer) -> None:
    """After a fit in processes of its own (ddp_spawn: trainer=ddp_sim), this process's trainer is still at
    step 0, and the test (again in processes of its own, started from it) logged its scores at epoch 0, step 0.
    Its fit progress is taken from the run's last.ckpt, written at the fit's last step, as the trainer of a fit
    in this process ends it: at that step, in the epoch it stopped in (every epoch begun counted done)."""
    callback = trainer.checkpoint_callback
    if trainer.global_step or not isinstance(callback, ModelCheckpoint) or not callback.save_last or not callback.dirpath:
        return
    last = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    if last.is_file():
        take_fit_progress_from(trainer, last)


def take_fit_progress_from(trainer: L.Trainer, checkpoint: Path) -> None:
    """The fit progress saved in `checkpoint` put into `trainer`, whose test then logs at that step and epoch (a
    test alone, train=false ckpt_path=..., logged at step 0 while its pictures were named by the checkpoint's
    step); left as it is where the checkpoint holds none (weights only)."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)  # no weights read
    except Exception:  # noqa: BLE001 - only where the test's scores are logged: never worth failing the run for
        return
    fit_loop, step = (saved.get("loops") or {}).get("fit_loop"), saved.get("global_step")
    try:
        for counts in fit_loop["epoch_progress"].values():
            counts["ready"] = counts["processed"] = counts["completed"] = counts["started"]
        fit_loop["epoch_loop.state_dict"]["_batches_that_stepped"] = step  # the step a test after the fit logs at
    except (KeyError, TypeError):  # another Lightning's layout: the test logs at step 0, as before
        return
    trainer.fit_loop.load_state_dict(fit_loop)


def _checkpoint_to_test(trainer: L.Trainer, cfg: DictConfig) -> str | None:
    """The best checkpoint of this fit; with train=false, the given ckpt_path (or the initial weights)."""
    if not cfg.get("train"):
        if not cfg.get("ckpt_path"):
            log.warning("train=false without ckpt_path: testing the model's initial weights (ckpt_path=... scores a "
                        "trained one; evaluate.py ckpt=... too)")
        return cfg.get("ckpt_path")
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if not best and not trainer.fast_dev_run:  # fast_dev_run writes none: its weights are the ones to test
        log.warning("no best checkpoint (no validation ran, or checkpointing is off): testing the last weights")
    return best or None


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, torch.Tensor | float | int)}


def _metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    if not name:
        return None
    if name not in metrics:
        raise SupraUserError(
            f"optimized_metric={name} was never logged; logged metrics are: {', '.join(sorted(metrics)) or 'none'}"
        )
    value = metrics[name]
    return None if math.isnan(value) else value
