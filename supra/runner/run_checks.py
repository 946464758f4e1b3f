"""What `train.py` refuses (or warns of) before any work: the config's numbers, names and paths that Lightning,
torch or Hydra would refuse only later (after the data set-up, or steps into the run) with a traceback, or take
without a word."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from supra.artifacts.checkpoints import release_of_file
from supra.artifacts.kinds import release_kind
from supra.callbacks.validation_within_run import trains_no_batch
from supra.data.a2a.sources import may_give_images
from supra.loggers.wandb_options import WANDB_TARGET, check_wandb_options
from supra.metrics.caption_scores import require_java
from supra.runner.components import tests_nothing
from supra.tasks.captioning import fuses_on_auto
from supra.utils.cli import as_typed, check_option_types, count_as_typed, refuse_job_chdir
from supra.utils.errors import SupraUserError
from supra.utils.files import require_writable_dir
from supra.utils.hardware import check_chosen_trainer, trains_on_cpu
from supra.utils.numbers import is_number, is_whole
from supra.utils.run_folders import finished_run_file
from supra.utils.seeds import check_seed
from supra.utils.target_options import check_target_exists, set_by_task

log = logging.getLogger(__name__)


def group_choice(group: str) -> str:
    try:
        return HydraConfig.get().runtime.choices.get(group) or group
    except ValueError:  # not running under Hydra (API use)
        return group


def in_sweep() -> bool:
    """A job of `-m` (its folder is hydra.sweep.dir/hydra.sweep.subdir, not hydra.run.dir)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_run_config(cfg: DictConfig) -> None:
    """Fail before any work on what can be known from the config alone."""
    refuse_job_chdir()  # first: the paths checked below would be read from the run folder
    check_run_numbers(cfg)
    if cfg.get("test") and tests_nothing(cfg.get("data")):  # else a test over no batch, exit 0, no test score
        raise SupraUserError("data.test_items=0 leaves the test nothing to score: add test=false (no test), or give "
                             "data.test_items=N (N >= 1), or null for every item")
    check_run_length(cfg)
    check_optimization(cfg)
    check_loggers(cfg.get("logger"))
    check_precision(cfg)
    check_trainer_numbers(cfg.trainer)
    check_fused_optimizer(cfg)
    check_validation_interval(cfg)
    metric = str(cfg.get("optimized_metric") or "")
    if metric.startswith("test/") and not cfg.get("test"):  # else known only after the whole fit
        raise SupraUserError(f"optimized_metric={metric} is a test score, but test=false: set test=true, or "
                             f"optimize a validation score (optimized_metric=val/{metric.removeprefix('test/')})")
    if OmegaConf.select(cfg, "trainer.enable_checkpointing") is False and OmegaConf.select(cfg, "callbacks.model_checkpoint"):
        raise SupraUserError("trainer.enable_checkpointing=false: add callbacks.model_checkpoint=null too (the run "
                             "then tests its last weights)")
    check_chosen_trainer(cfg.trainer, group_choice("trainer"))
    check_half_precision_on_cpu(cfg.trainer)
    check_output_dir(cfg)
    check_ckpt_path(cfg)


def say_no_training_curve(cfg: DictConfig) -> None:
    """One warning before any work for a fit shorter than trainer.log_every_n_steps: Lightning logs train/loss and
    the learning rate at every Nth optimizer step only, so such a run logs neither, and Lightning's own warning
    compares the interval with an epoch's length, not with trainer.max_steps. Not under fast_dev_run (which logs
    nothing), nor without a logger or a fit; a run bounded by epochs alone has no length known yet."""
    if logs_no_training_curve(cfg):
        steps, every = cfg.trainer.max_steps, cfg.trainer.log_every_n_steps
        log.warning("trainer.max_steps=%d is below trainer.log_every_n_steps=%d: no train/loss or learning rate will "
                    "be logged; add trainer.log_every_n_steps=%d or less (1: every step)", steps, every, steps)


def logs_no_training_curve(cfg: DictConfig) -> bool:
    """Whether say_no_training_curve warns of `cfg`: a fit that logs, bounded by a trainer.max_steps below
    trainer.log_every_n_steps."""
    trainer_cfg = cfg.trainer
    steps, every = trainer_cfg.get("max_steps"), trainer_cfg.get("log_every_n_steps")
    if not cfg.get("train") or trainer_cfg.get("fast_dev_run") or not cfg.get("logger") or not is_whole(every):
        return False
    return is_whole(steps, 1) and steps < every


def check_java_for_training(cfg: DictConfig) -> None:
    """A train.py run that scores captions needs Java: refused without it before any work (after
    check_target_options: model._target_ is a class by then), not in a traceback at its first validation."""
    scored = [task_option(cfg.model, "val_metrics") if cfg.get("train") and validates(cfg) else None,
              task_option(cfg.model, "test_metrics") if cfg.get("test") else None]
    check_java_for_caption_scores(scored, cfg.get("data"))


def validates(cfg: DictConfig) -> bool:
    """Whether a fit of `cfg` runs its validation: not with trainer.limit_val_batches=0 (or 0.0: Lightning's way
    to turn it off), nor with an a2a mixture's data.val_items=0 (no item of val scored)."""
    limit = OmegaConf.select(cfg, "trainer.limit_val_batches")
    val_items = OmegaConf.select(cfg, "data.val_items")
    return not (is_number(limit) and limit == 0) and not (is_whole(val_items) and val_items == 0)


def check_java_for_caption_scores(metric_lists: Sequence[Sequence[str] | None], data_cfg: Mapping[str, Any] | None) -> None:
    """One line naming Java when a run scores captions (some of `metric_lists`, the caption metrics of its
    validations and test, is not empty, and its data gives captions to score) and java is not on PATH."""
    if any(metric_lists) and captions_scored_with(data_cfg):
        require_java()


def captions_scored_with(data_cfg: Mapping[str, Any] | None) -> bool:
    """Whether the data gives the task captions to score: an a2a mixture only with data.tasks.image2text > 0 (its
    validation and test score the tasks it trains) and a source that may give images (clips are not captioned by
    image2text: with clip sources alone the DataModule's own line says the task has no items), any other data
    always."""
    tasks = (data_cfg or {}).get("tasks")
    if tasks is None:
        return True
    weight = tasks.get("image2text")
    # a weight that is no number is the DataModule's one line
    return is_number(weight) and weight > 0 and may_give_images(data_cfg.get("sources"))


def task_option(model_cfg: Mapping[str, Any], key: str) -> Any:
    """model.<key> as the task gets it: the config's, else its class's default; None for a task without it."""
    if key in model_cfg:
        return model_cfg[key]
    try:
        parameter = inspect.signature(get_object(str(model_cfg.get("_target_")))).parameters.get(key)
    except (ImportError, ValueError, TypeError):  # a target that cannot be imported: instantiate's own error says so
        return None
    return None if parameter is None else parameter.default


def check_run_numbers(cfg: DictConfig) -> None:
    """The seeds and the run's counts. Hydra passes `seed=abc` on as text: named here, not by a traceback from
    the optimizer or the loop."""
    options = {name: OmegaConf.select(cfg, name) for name in ("seed", "data.batch_size", "model.optimizer.lr",
                                                               "trainer.max_steps", "trainer.val_check_interval",
                                                               "trainer.accumulate_grad_batches",
                                                               "model.generation.seed")}
    check_option_types(options, whole=("seed", "data.batch_size", "trainer.max_steps", "trainer.accumulate_grad_batches",
                                       "model.generation.seed"),
                       numbers=("model.optimizer.lr", "trainer.val_check_interval"), optional=options)
    check_seed("seed", options["seed"], null="no fixed seed")  # else numpy's ValueError, a traceback
    if options["trainer.max_steps"] is not None and options["trainer.max_steps"] < -1:  # else Lightning's, via Hydra's
        raise SupraUserError(f"trainer.max_steps={options['trainer.max_steps']} must be >= 1 (or -1: bounded by "
                             "trainer.max_epochs)")
    accumulate = options["trainer.accumulate_grad_batches"]
    if accumulate is not None and accumulate < 1:  # Lightning: a ZeroDivisionError deep in its loop
        raise SupraUserError(f"trainer.accumulate_grad_batches={accumulate} must be >= 1: the batches whose gradients "
                             "make one optimizer step (1: each batch its own step)")


def check_validation_interval(cfg: DictConfig) -> None:
    """trainer.val_check_interval as Lightning reads it, and as a resumable run needs it (after
    check_run_numbers: a number or null)."""
    interval = OmegaConf.select(cfg, "trainer.val_check_interval")
    every_epochs = OmegaConf.select(cfg, "trainer.check_val_every_n_epoch")
    accumulate = OmegaConf.select(cfg, "trainer.accumulate_grad_batches")
    if interval is not None and interval <= 0:
        raise SupraUserError(f"trainer.val_check_interval={interval} must be > 0: "
                             "steps between validations (or a share of an epoch, 0.5)")
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


def check_output_dir(cfg: DictConfig) -> None:
    """A run folder that can be written and holds no finished run."""
    folder_option = "hydra.sweep.dir" if in_sweep() else "hydra.run.dir"
    require_writable_dir(cfg.paths.output_dir, f"the output directory {cfg.paths.output_dir}",
                         f"choose another with {folder_option}=DIR")
    held = finished_run_file(Path(cfg.paths.output_dir))
    if cfg.get("train") and held:  # its checkpoints would be replaced and its logged curves mixed with ours
        choose = ("choose another with hydra.run.dir=DIR (a resumed run, ckpt_path=..., writes a new one)"
                  if not in_sweep() else "choose another with hydra.sweep.dir=DIR, and give each job a folder of "
                  "its own with ${hydra.job.num} in hydra.sweep.subdir")
        raise SupraUserError(f"the output directory {cfg.paths.output_dir} already holds a run "
                             f"({held.relative_to(cfg.paths.output_dir)}): {choose}")


def check_ckpt_path(cfg: DictConfig) -> None:
    """ckpt_path= names a run's checkpoint file, not a release or a folder."""
    if not cfg.get("ckpt_path"):
        return
    given = Path(cfg.ckpt_path)
    release = given if release_kind(cfg.ckpt_path) else release_of_file(given)
    if release:  # weights to start from (or to score), not a run to go on with
        what = "a release folder" if release == given else f"the {given.name} of a release folder"
        use = (f"fine-tune from the release with model.init_from={release}" if cfg.get("train") else
               f"score the release with python evaluate.py ckpt={release}")
        raise SupraUserError(f"ckpt_path={cfg.ckpt_path} is {what}, which holds no run: {use} (ckpt_path= takes a "
                             "last.ckpt or best.ckpt of a run)")
    if given.is_dir():
        last = [p for p in (given / "checkpoints" / "last.ckpt", given / "last.ckpt") if p.is_file()]
        raise SupraUserError(f"ckpt_path={cfg.ckpt_path} is a folder: give a last.ckpt or best.ckpt of a run"
                             + (f", e.g. ckpt_path={last[0]}" if last else ""))
    if not given.is_file():
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
        if flush is not None and not is_whole(flush, 1):
            raise SupraUserError(f"{count_as_typed(f'logger.{key}.flush_logs_every_n_steps', flush)} must be a whole "
                                 "number >= 1: the logged steps between writes of its file")
        if str(node.get("_target_")) == WANDB_TARGET:
            tags = node.get("tags")
            tags = [tags] if isinstance(tags, str) else OmegaConf.to_container(tags) if isinstance(tags, ListConfig) else tags
            check_wandb_options(node.get("project"), tags, node.get("init_timeout", 10), f"logger.{key}",
                                node.get("offline"))


def check_run_length(cfg: DictConfig) -> None:
    """A fit of no batch (trainer.max_steps=0 or trainer.max_epochs=0), as trainer.limit_train_batches=0 is refused;
    trainer.max_steps=-1 with trainer.max_epochs=-1 trains without end: a learning-rate schedule decays over
    the run's steps, which are then infinite (Lightning hands it float('inf'))."""
    trainer_cfg = cfg.trainer
    for key in ("max_steps", "max_epochs"):  # Lightning ends the fit before its first batch; fast_dev_run sets its own
        if cfg.get("train") and not trainer_cfg.get("fast_dev_run") and trainer_cfg.get(key) == 0:
            raise SupraUserError(trains_no_batch(f"trainer.{key}=0"))
    endless = trainer_cfg.get("max_steps", -1) in (-1, None) and trainer_cfg.get("max_epochs") == -1
    if endless and not trainer_cfg.get("fast_dev_run") and OmegaConf.select(cfg, "model.scheduler") is not None:
        raise SupraUserError(ENDLESS_RUN)


ENDLESS_RUN = ("trainer.max_steps=-1 with trainer.max_epochs=-1 trains without end, but the learning-rate schedule "
               "(model.scheduler) decays over the run's steps: set a finite trainer.max_steps or trainer.max_epochs")


# The optimizers a run may name (model.optimizer._target_), for the line that refuses another value
OPTIMIZER_CHOICES = ("torch.optim.AdamW (the captioner's), torch.optim.Adam (the VQ-VAE's), "
                     "supra.tasks.optimizers.MuonWithAdamW (a2a_shapes') or another torch.optim class")


def check_optimizer_config(cfg: DictConfig) -> None:
    """model.optimizer as a config of a class: a bare value (`model.optimizer=unknown`, null) was a TypeError from
    inspect when the optimizer was built, after the data set-up. Only for a fit: a test alone builds none."""
    optimizer = OmegaConf.select(cfg, "model.optimizer")
    if cfg.get("train") and not (isinstance(optimizer, DictConfig) and "_target_" in optimizer):
        given = "null" if optimizer is None else optimizer
        raise SupraUserError(f"model.optimizer={given} must be an optimizer config: set "
                             f"model.optimizer._target_ to one of {OPTIMIZER_CHOICES}")


def check_scheduler_config(cfg: DictConfig) -> None:
    """model.scheduler as a schedule's config or null: a bare value (`model.scheduler=cosine`) was refused as a
    warmup_steps of None, an option the user never touched."""
    scheduler = OmegaConf.select(cfg, "model.scheduler")
    if scheduler is not None and not (isinstance(scheduler, DictConfig) and "_target_" in scheduler):
        raise SupraUserError(f"model.scheduler={scheduler} must be a schedule config (model.scheduler._target_="
                             "supra.tasks.lr_schedules.warmup_cosine: every recipe's warm-up and cosine decay) "
                             "or null (a constant learning rate)")


def check_optimization(cfg: DictConfig) -> None:
    """The optimizer's and the schedule's numbers, before any work: torch refuses some of them only when the
    optimizer is built, after the data set-up (a traceback), and checks none that it receives per parameter
    group (model.weight_decay), nor the schedule's (a min_lr above lr made the cosine climb to it)."""
    check_optimizer_config(cfg)
    check_scheduler_config(cfg)
    for key in ("model.optimizer", "model.scheduler"):  # a misspelt class was Hydra's multi-line error, exit 1
        node = OmegaConf.select(cfg, key)
        if isinstance(node, DictConfig):
            check_target_exists(f"{key}._target_", node.get("_target_"))
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
                              or not all(is_number(b) and 0 <= b < 1 for b in betas)):
        raise SupraUserError(f"model.optimizer.betas={OmegaConf.to_container(betas) if isinstance(betas, ListConfig) else betas!r} "
                             "must be two numbers from 0 to below 1, e.g. [0.9,0.95]")
    lr, min_lr = values["model.optimizer.lr"], values["model.scheduler.min_lr"]
    if lr is not None and min_lr is not None and min_lr > lr:
        raise SupraUserError(f"model.scheduler.min_lr={min_lr} is above model.optimizer.lr={lr}: the cosine schedule "
                             "would climb to it, not decay; give a min_lr <= lr")
    check_group_weight_decay(cfg)
    check_muon_settings(cfg)


def check_group_weight_decay(cfg: DictConfig) -> None:
    """model.optimizer.weight_decay for a task whose parameter groups set their own decay (model.weight_decay: the
    captioner's and a2a's): torch lets each group's value override the optimizer's, so it was silently unused while
    the recorded config said it was. A task of one plain group (the VQ-VAE's) takes it as given."""
    optimizer = OmegaConf.select(cfg, "model.optimizer")
    if not (cfg.get("train") and isinstance(optimizer, DictConfig) and "weight_decay" in optimizer):
        return
    if task_option(cfg.model, "weight_decay") is not None:
        given = optimizer.get("weight_decay")
        raise SupraUserError(f"model.optimizer.weight_decay={given} is not used: the model's parameter groups set "
                             f"their own; use model.weight_decay={given}")


def check_muon_settings(cfg: DictConfig) -> None:
    """Muon's own settings (MuonWithAdamW's), which torch takes without a word: a momentum of 1 or more made its
    momentum buffer diverge, an ns_steps below 1 left out the Newton-Schulz iteration (the update was no Muon's)."""
    momentum = OmegaConf.select(cfg, "model.optimizer.momentum")
    if momentum is not None and not (is_number(momentum) and 0 <= momentum < 1):
        raise SupraUserError(f"model.optimizer.momentum={momentum!r} must be a number from 0 to below 1, e.g. 0.95")
    ns_steps = OmegaConf.select(cfg, "model.optimizer.ns_steps")
    if ns_steps is not None and not is_whole(ns_steps, 1):
        raise SupraUserError(f"{count_as_typed('model.optimizer.ns_steps', ns_steps)} must be a whole number >= 1: "
                             "the Newton-Schulz iterations that orthogonalise Muon's update (5: torch's default)")


def check_half_precision_on_cpu(trainer_cfg: DictConfig) -> None:
    """16-mixed on a CPU, which Lightning turns into bf16-mixed with a warning while the run records 16-mixed.
    After check_accelerator: a GPU trainer given accelerator=cpu is told first what else it needs."""
    precision = str(trainer_cfg.get("precision"))
    if precision in ("16-mixed", "16") and trains_on_cpu(trainer_cfg.get("accelerator", "auto")):
        raise SupraUserError(f"trainer.precision={precision} is for GPUs: on a CPU Lightning would train in "
                             "bf16-mixed instead; use trainer.precision=32-true (every recipe's), or "
                             "trainer.precision=bf16-mixed where the CPU has native bf16 (AVX512-BF16 or AMX)")


# What Lightning's Trainer takes as precision (its older names too): another was Hydra's multi-line "Error in
# call to target" when the trainer was built, after the data was set up.
PRECISIONS = ("32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine",
              "transformer-engine-float16", "64", "32", "16", "bf16")


def check_precision(cfg: DictConfig) -> None:
    """A precision Lightning knows. 16-true keeps the weights and Adam's state in float16, where its default eps
    (1e-8) is 0: a parameter whose gradient is 0 then gets 0/0, and the first step makes the weights NaN. The
    other precisions train. Each refusal's advice is an override to paste, none that this machine then refuses
    (16-mixed on a CPU: check_half_precision_on_cpu)."""
    given = OmegaConf.select(cfg, "trainer.precision")
    precision = str(given)
    on_cpu = trains_on_cpu(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    if given is not None and (isinstance(given, bool) or precision not in PRECISIONS):
        offered = [name for name in PRECISIONS[:6] if not (on_cpu and name == "16-mixed")]  # refused on a CPU
        raise SupraUserError(f"trainer.precision={given} is not a precision: choose one of {', '.join(offered)}")
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
        others = ["bf16-true", "bf16-mixed"] if on_cpu else ["16-mixed (float16 arithmetic, float32 weights)",
                                                            "bf16-true", "bf16-mixed"]
        named = ", ".join(f"trainer.precision={other}" for other in others[:-1]) + f" or trainer.precision={others[-1]}"
        eps_override = f"{'' if 'eps' in optimizer else '+'}model.optimizer.eps=1e-4"
        raise SupraUserError(f"trainer.precision=16-true keeps the optimizer's state in float16, where its eps={eps} "
                             f"is 0: the first step makes the weights NaN. Use {named}, or add {eps_override}")


# The precisions Lightning runs through its mixed-precision plugin (the older names too)
MIXED_PRECISIONS = ("16-mixed", "bf16-mixed", "16", "bf16")


def check_fused_optimizer(cfg: DictConfig) -> None:
    """A fused optimizer where Lightning refuses to clip its gradients (mixed precision with gradient clipping:
    fuses_on_auto's rule, which auto follows), refused before any work: it was Lightning's traceback at the first
    step. The captioner fuses by model.fused_optimizer=true; a2a and the VQ-VAE, which have no switch of their own,
    by +model.optimizer.fused=true. After check_trainer_numbers: gradient_clip_val is a number or null.
    model.optimizer.fused beside the captioner's switch is refused: model.fused_optimizer=false silently won over
    it, and auto let it fuse past the check below."""
    optimizer = OmegaConf.select(cfg, "model.optimizer")
    given_twice = isinstance(optimizer, DictConfig) and "fused" in optimizer
    task_sets_fused = "fused" in set_by_task(OmegaConf.select(cfg, "model._target_"))
    if cfg.get("train") and given_twice and task_sets_fused:
        given = as_typed("model.optimizer.fused", optimizer.get("fused"))
        raise SupraUserError(f"model.optimizer.fused={given}: the model passes the optimizer's fused itself, as "
                             f"model.fused_optimizer says (auto, true or false); use model.fused_optimizer={given}")
    if OmegaConf.select(cfg, "model.fused_optimizer") is True:
        option, instead = "model.fused_optimizer=true", "use model.fused_optimizer=auto (fuses where it can) or false"
    elif given_twice and not task_sets_fused and optimizer.get("fused"):  # truthy: what the optimizer fuses on
        option = f"model.optimizer.fused={as_typed('model.optimizer.fused', optimizer.get('fused'))}"
        instead = "leave model.optimizer.fused out"
    else:
        return
    precision = OmegaConf.select(cfg, "trainer.precision")
    clip = OmegaConf.select(cfg, "trainer.gradient_clip_val")
    # "cuda": true fuses on every device, which auto does on CUDA alone
    if not fuses_on_auto("cuda", str(precision) in MIXED_PRECISIONS, bool(clip)):
        raise SupraUserError(f"{option} with trainer.precision={precision} and trainer.gradient_clip_val={clip}: "
                             "Lightning cannot clip a fused optimizer's gradients under mixed precision; "
                             f"{instead}, or trainer.gradient_clip_val=0 (no clipping)")


# What Lightning's Trainer takes as a batch limit: a share of the batches (0.0 to 1.0) or a number of them
LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches")


def check_trainer_numbers(trainer_cfg: DictConfig) -> None:
    """The Trainer's numbers Lightning refuses only as it is built, after the data set-up (Hydra's multi-line
    "Error in call to target"), or in its loop (check_val_every_n_epoch=0: a ZeroDivisionError), or takes without
    a word (a gradient_clip_val below 0 clips nothing, as 0 does, while the run records it; a log_every_n_steps of
    0 logs no training curve)."""
    clip = trainer_cfg.get("gradient_clip_val")
    if clip is not None and (not is_number(clip) or clip < 0):
        raise SupraUserError(f"trainer.gradient_clip_val={clip!r} must be a finite number >= 0: the largest gradient "
                             "norm (or element) kept (0 or null: no clipping)")
    algorithm = trainer_cfg.get("gradient_clip_algorithm")
    if algorithm is not None and (not isinstance(algorithm, str) or algorithm.lower() not in ("norm", "value")):
        raise SupraUserError(f"trainer.gradient_clip_algorithm={algorithm!r} must be norm (clip the gradients' "
                             "global norm) or value (each element)")
    every = trainer_cfg.get("check_val_every_n_epoch")
    if every is not None and not is_whole(every, 1):
        raise SupraUserError(f"{count_as_typed('trainer.check_val_every_n_epoch', every)} must be a whole number >= "
                             "1: the epochs between validations (or null: every trainer.val_check_interval training "
                             "batches, across epochs)")
    log_every = trainer_cfg.get("log_every_n_steps")
    if log_every is not None and not is_whole(log_every, 1):  # Lightning: 0 logs no training curve, -1 every step
        raise SupraUserError(f"{count_as_typed('trainer.log_every_n_steps', log_every)} must be a whole number >= 1: "
                             "the optimizer steps between the train/loss and learning-rate points logged (1: every "
                             "step)")
    for key in LIMITS:
        limit = trainer_cfg.get(key)
        # as Lightning reads it: a float is a share, unless whole and above 1 (2.0: 2 batches)
        if limit is not None and not (is_number(limit) and (0 <= limit <= 1 or (limit > 1 and limit % 1 == 0))):
            raise SupraUserError(f"trainer.{key}={limit!r} must be a share of the batches from 0.0 to 1.0 (0.5), "
                                 "or a whole number of batches (10)")
