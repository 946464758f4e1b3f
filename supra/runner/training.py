"""The training run behind `train.py`: config -> task, DataModule, callbacks, loggers, Trainer -> fit -> test."""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig, OmegaConf
from torch.multiprocessing import ProcessRaisedException

from supra.artifacts.checkpoints import (
    load_supra_checkpoint,
    net_state,
    refuse_changed_model,
    run_config_of,
)
from supra.artifacts.loaded_configs import instantiate_loaded
from supra.callbacks.checkpoint import AtomicCheckpointIO, LastStepModelCheckpoint
from supra.callbacks.overfit_check import OverfitCheck
from supra.callbacks.time_accounting import mark_job_start
from supra.callbacks.validation_within_run import ValidationWithinRun
from supra.callbacks.warnings_off import WarningsOffForFit
from supra.loggers.tensorboard_hparams import final_scores, log_hparams_with_scores
from supra.loggers.wandb_logger import wandb_run_ends_with_job
from supra.runner.callback_checks import check_callbacks_fit, check_optimized_metric, unlogged_monitor
from supra.runner.components import (
    build_datamodule,
    build_task,
    instantiate_group,
    say_started_from_release,
    stage1_vqvae,
    starting_model,
    tokenizer_to_reuse,
)
from supra.runner.older_configs import flat_settings, with_keys_added_since
from supra.runner.resume import (
    EpochWhereStopped,
    PastScheduleByEpochs,
    RestOfEpochAtBatchSize,
    epochs_trained,
    stopped_within_epoch,
)
from supra.runner.run_checks import (
    check_java_for_training,
    check_run_config,
    group_choice,
    in_sweep,
    logs_no_training_curve,
    say_no_training_curve,
)
from supra.runner.run_paths import as_trained, with_absolute_paths
from supra.runner.spawned_ranks import EndWithMainProcess, sigterm_ends_main_process_at_once
from supra.sweeps.callback import interrupted_job_advice, note_diverged
from supra.sweeps.ddp import ddp_job_scope, use_job_config_for_ddp_children
from supra.tasks.base import SupraTask
from supra.tasks.lr_schedules import schedule_length, schedule_min_lr
from supra.utils.cli import SIGINT_EXIT, as_typed, ended_by_ctrl_c
from supra.utils.errors import SupraUserError, note_in_run_log
from supra.utils.numbers import counted
from supra.utils.overrides import parsed_overrides
from supra.utils.run_folders import stopped_short
from supra.utils.state_dicts import check_state_fits, same_state
from supra.utils.target_options import check_target_options

log = logging.getLogger(__name__)


@contextmanager
def interval_within_epoch(trainer_cfg: DictConfig, processes: int = 1) -> Iterator[None]:
    """With trainer.check_val_every_n_epoch set, val_check_interval counts steps within an epoch: one longer
    than the epoch is Lightning's ValueError from inside fit (the epoch's length is known only then). Under DDP
    each of the `processes` has its share of the epoch, and the error is raised in each: in a rank that
    trainer=ddp_sim spawned it reaches this process as that rank's traceback, as text."""
    try:
        yield
    except (ValueError, ProcessRaisedException) as err:
        found = re.search(r"`val_check_interval` \((\d+)\) must be less than or equal to the number of the training "
                         r"batches \((\d+)\)", str(err))
        if not found:
            raise
        raise SupraUserError(interval_beyond_epoch(int(found[1]), int(found[2]), processes,
                                                   trainer_cfg.get("check_val_every_n_epoch"))) from None


class LightningIntervalWarningOff(WarningsOffForFit):
    """Where say_no_training_curve said its line (max_steps below log_every_n_steps), Lightning's own advice of the
    same setting ("The number of training batches (N) is smaller than the logging interval") is not said again;
    where ours was not (Lightning compares an epoch's batches, not max_steps), this callback is not added. Its
    setup runs before the epoch's batches are counted."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and not self._filters:
            self.ignore(r"The number of training batches \(\d+\) is smaller than the logging interval")


def interval_beyond_epoch(interval: int, batches: int, processes: int, every_n_epochs: int | None) -> str:
    """The one line for a val_check_interval above the `batches` of an epoch each of `processes` trains."""
    counted_batches = counted(batches, "training batch", plural="training batches")
    whose = (f"the {counted_batches} each of the {processes} DDP processes has per epoch (each trains its share of "
             "the epoch)" if processes > 1 else f"an epoch's {counted_batches}")
    return (f"trainer.val_check_interval={interval} is more than {whose}: with trainer.check_val_every_n_epoch="
            f"{every_n_epochs} it counts within each epoch; use trainer.val_check_interval=1.0 (each epoch's end) or "
            f"a number up to {batches}, or trainer.check_val_every_n_epoch=null (every {interval} batches across epochs)")


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
    with wandb_run_ends_with_job(), ddp_job_scope(trainers):  # W&B's last: after the job's ranks have ended
        return _train(cfg, trainers)


def _train(cfg: DictConfig, trainers: list[L.Trainer]) -> tuple[float | None, dict[str, float]]:
    check_run_config(cfg)
    share_cpu_threads(cfg.trainer)
    for group in ("model", "data", "trainer", "callbacks", "logger"):
        check_target_options(cfg.get(group), group)
    check_java_for_training(cfg)
    say_no_training_curve(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    run_config = recorded_run_config(cfg)
    # Each part once, handed one way: stage 1 and reused token ids -> task -> DataModule (what it must follow).
    ckpt_path = cfg.get("ckpt_path")
    task = build_task(starting_model(cfg.model, ckpt_path), run_config, stage1_vqvae(cfg.model, ckpt_path))
    resume_callbacks = _check_resume(cfg, task, ckpt_path, run_config) if ckpt_path else []
    token_ids = tokenizer_to_reuse(cfg)
    say_started_from_release(cfg, token_ids)
    datamodule = build_datamodule(cfg.data, task, token_ids)
    check_optimized_metric(task, cfg.get("optimized_metric"), datamodule)
    trainer, loggers = _build_trainer(cfg, task, datamodule, resume_callbacks)
    trainers.append(trainer)
    for logger in loggers:
        logger.log_hyperparams(run_config)

    with sigterm_ends_main_process_at_once(trainer):  # trainer=ddp_sim
        if cfg.get("train"):
            _fit(cfg, trainer, task, datamodule)
        metrics = _plain(trainer.callback_metrics)
        diverged = divergence(metrics, trainer.global_step) if cfg.get("train") and trainer.is_global_zero else None
        if cfg.get("test"):
            metrics.update(_test(cfg, trainer, task, datamodule))
    if cfg.get("train"):  # a fit in processes of its own (ddp_spawn) and no test: the step it ended at, not 0
        take_fit_progress_from_last_checkpoint(trainer)
    log_hparams_with_scores(loggers, run_config, final_scores(metrics, *best_monitored(trainer)), trainer.global_step)

    value = _metric_value(metrics, cfg.get("optimized_metric"))
    if diverged:
        # its scores are those of a broken model (val/CIDEr 0.0, never NaN): a sweep's job is recorded as a failed
        # trial (the sweeper gets no value to learn from), a single run says so as it ends
        _say_diverged(diverged, cfg)
        return None, metrics
    return value, metrics


def recorded_run_config(cfg: DictConfig) -> dict[str, Any]:
    """The run config a run records (in its checkpoints, to its loggers): resolved, with its relative data paths and
    model files absolute, as paths.* are: its data is read again from any working folder (evaluate.py)."""
    return with_absolute_paths(OmegaConf.to_container(cfg, resolve=True))


def _check_resume(cfg: DictConfig, task: SupraTask, ckpt_path: str, run_config: dict[str, Any]) -> list[L.Callback]:
    """Refuse a checkpoint the task cannot go on from; for a fit, say what changed since and keep its settings in
    `run_config` (what the task saves in its checkpoints and the loggers record: what this run trained with).
    Returns the callbacks the resumed fit needs: those that say what can be said only once its data is known."""
    checkpoint = check_resumable(task, ckpt_path, cfg.trainer.get("max_steps") if cfg.get("train") else None,
                                 cfg.trainer.get("max_epochs"))
    if cfg.get("train"):
        resumed = as_trained(run_config_of(checkpoint) or {})
        say_resumed_changes(cfg, resumed)
        say_shorter_than_schedule(ckpt_path, schedule_length(checkpoint), cfg.trainer.get("max_steps"))
        say_past_schedule(ckpt_path, checkpoint, cfg.trainer.get("max_steps"))
        keep_resumed_settings(run_config, resumed)
        keep_resumed_schedule(task, resumed, ckpt_path)
        callbacks = rest_of_epoch_at_batch_size(cfg.data, checkpoint, resumed, ckpt_path)
        if cfg.trainer.get("max_steps") in (None, -1):  # bounded by trainer.max_epochs: its steps known at fit start
            callbacks.append(past_schedule_by_epochs(ckpt_path, checkpoint))
        return callbacks
    return []


def rest_of_epoch_at_batch_size(data: DictConfig, checkpoint: dict[str, Any], resumed: dict[str, Any],
                                ckpt_path: str) -> list[L.Callback]:
    """A fit resumed within an epoch at another data.batch_size than its checkpoint's run: the callback that trains
    the rest of that epoch's samples at the new size, once each; refused in one line where the data draws its own
    batches (they are drawn at the size the epoch began with). [] for an unchanged size or an epoch-end checkpoint."""
    was, now = (resumed.get("data") or {}).get("batch_size"), data.get("batch_size")
    if not isinstance(was, int) or was == now or not stopped_within_epoch((checkpoint.get("loops") or {}).get("fit_loop")):
        return []
    target = data.get("_target_")
    if target is None or not getattr(get_class(str(target)), "resumes_at_another_batch_size", False):
        raise SupraUserError(f"ckpt_path={ckpt_path} stopped within an epoch begun at data.batch_size={was}, whose data "
                             f"draws its own batches at that size: it cannot finish at data.batch_size={now}; resume "
                             f"with data.batch_size={was}, or from a checkpoint written at an epoch's end")
    log.info("ckpt_path=%s stopped within an epoch begun at data.batch_size=%s: the rest of its samples are trained in "
             "batches of %s", ckpt_path, was, now)
    return [RestOfEpochAtBatchSize(was)]


def past_schedule_by_epochs(ckpt_path: str, checkpoint: dict[str, Any]) -> PastScheduleByEpochs:
    """The callback that says say_past_schedule's warning for a resumed fit bounded by trainer.max_epochs."""
    # only what the warning reads: not the weights, kept for the whole fit (and pickled for ddp_spawn's ranks)
    schedule = {key: checkpoint[key] for key in ("global_step", "lr_schedulers") if key in checkpoint}
    return PastScheduleByEpochs(partial(say_past_schedule, ckpt_path, schedule))


def _build_trainer(cfg: DictConfig, task: SupraTask, datamodule: L.LightningDataModule,
                   resume_callbacks: list[L.Callback]) -> tuple[L.Trainer, list[Any]]:
    """The Trainer of cfg.trainer with the run's callbacks (and `resume_callbacks`, those of a resumed fit), loggers
    and checkpoint plugin; and its loggers."""
    check_callbacks_fit(task, cfg.get("callbacks"), group_choice("callbacks"), datamodule)
    callbacks = [*instantiate_group(cfg.get("callbacks"), "callbacks"), ValidationWithinRun(), EpochWhereStopped(),
                 EndWithMainProcess(), *resume_callbacks]
    if cfg.trainer.get("overfit_batches"):  # debug=overfit: say whether it did
        callbacks.append(OverfitCheck())
    if logs_no_training_curve(cfg):  # our advice said: Lightning's of the same setting is not said again
        callbacks.append(LightningIntervalWarningOff())
    if in_sweep():  # an interrupted job is not resumed alone with ckpt_path=
        for checkpoint in (c for c in callbacks if isinstance(c, LastStepModelCheckpoint)):
            checkpoint.resume_advice = interrupted_job_advice(HydraConfig.get())
    loggers = instantiate_group(cfg.get("logger"), "logger")
    callbacks = without_unloggable(callbacks, loggers)
    # unless trainer.plugins=... chooses the plugins itself
    extra: dict[str, Any] = {} if cfg.trainer.get("plugins") else {"plugins": default_plugins()}
    if cfg.trainer.get("enable_checkpointing") is None and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
        # callbacks=none (or callbacks.model_checkpoint=null): no checkpoints, where Lightning would add its own
        # (epoch=N-step=M.ckpt in the first logger's folder) and the test would score it
        extra["enable_checkpointing"] = False
    if group_choice("callbacks") == "none":
        extra.update(stock_displays_off(cfg.trainer, callbacks))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)
    return trainer, loggers


def default_plugins() -> list[Any]:
    """The Trainer's plugins where the trainer config chooses none: checkpoints written whole or not at all; and in a
    SLURM job, Lightning's SLURM environment with its auto-requeue off. Its SIGUSR1 wrote hpc_ckpt_N.ckpt into the
    run folder and requeued the job, which no Supra run resumes from (a requeued run in the same folder is refused as
    interrupted, one in a new dated folder starts at step 0); a SIGTERM still stops the fit at the batch's end with
    last.ckpt written, the job resubmitted with ckpt_path= (README)."""
    plugins: list[Any] = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():  # else Lightning chooses the environment itself
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def stock_displays_off(trainer_cfg: DictConfig, callbacks: list[L.Callback]) -> dict[str, bool]:
    """The Trainer switches that keep Lightning from adding its own progress bar and model summary to a run of
    callbacks=none (no callbacks at all: its bar reads "Epoch 0/-2", its summary "Total FLOPs: 0"). A switch the
    trainer config sets, or a display callback the run adds, is left as it is (Lightning refuses a bar callback
    with its switch off)."""
    displays = (("enable_progress_bar", ProgressBar), ("enable_model_summary", ModelSummary))
    return {switch: False for switch, kind in displays
            if trainer_cfg.get(switch) is None and not any(isinstance(c, kind) for c in callbacks)}


def _fit(cfg: DictConfig, trainer: L.Trainer, task: SupraTask, datamodule: L.LightningDataModule) -> None:
    try:
        with interval_within_epoch(cfg.trainer, trainer.num_devices * trainer.num_nodes):
            trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        say_early_stop(trainer)
    except SIGTERMException as stop:  # Ctrl-C or SIGTERM: last.ckpt written and said (callbacks/checkpoint.py)
        # not 0, as Lightning's: the run did not finish (and is not tested); nor 1, a failure's: Ctrl-C's 130 for
        # both, as every command ends on either, so a script tells an interrupted run from a failed one by one number
        # (143 would say the signal killed it, where it stopped and saved)
        raise SystemExit(SIGINT_EXIT) from stop
    except (MisconfigurationException, RuntimeError) as error:  # a monitor a user's callback was to log, not logged
        refusal = unlogged_monitor(task, cfg.get("callbacks"), error, trainer.callback_metrics, datamodule)
        if refusal is None:
            raise
        raise refusal from error


def say_early_stop(trainer: L.Trainer) -> None:
    """One line where an EarlyStopping callback ended the fit before its end: the step reached, the monitor, its best
    value and why. Lightning's says nothing by default (verbose=False), and a run that reaches its end says
    "max_steps=N reached". A callback's reason comes back with its state from the checkpoint a run resumes, so only
    a fit that stopped (trainer.should_stop, set anew by each fit) says it: a resumed run that went on to its end
    repeated the earlier run's line."""
    if not trainer.should_stop:
        return
    for callback in trainer.early_stopping_callbacks:
        reason = callback.stopping_reason
        if reason is EarlyStoppingReason.NOT_STOPPED or not trainer.is_global_zero:
            continue
        bound = (f"of trainer.max_steps={trainer.max_steps}" if trainer.max_steps > 0 else
                 f"in epoch {trainer.current_epoch + 1} of trainer.max_epochs={trainer.max_epochs}")
        if reason is EarlyStoppingReason.PATIENCE_EXHAUSTED:
            log.info("EarlyStopping stopped the run at step %d %s: %s (best %.6g) improved by less than min_delta=%g "
                     "in %s (patience=%d)", trainer.global_step, bound, callback.monitor, float(callback.best_score),
                     abs(callback.min_delta), counted(callback.wait_count, "validation"), callback.patience)
            continue
        # a threshold or non-finite stop leaves best_score as it was (inf before any improvement): the value that
        # stopped the run is the monitor's last, which the trainer holds
        last = trainer.callback_metrics.get(callback.monitor)
        why = ("was not finite" if reason is EarlyStoppingReason.NON_FINITE_METRIC else
               f"reached stopping_threshold={callback.stopping_threshold:g}"
               if reason is EarlyStoppingReason.STOPPING_THRESHOLD else
               f"passed divergence_threshold={callback.divergence_threshold:g}")
        value = f"={float(last):.6g}" if last is not None else ""
        log.info("EarlyStopping stopped the run at step %d %s: %s%s %s", trainer.global_step, bound, callback.monitor,
                 value, why)


def _test(cfg: DictConfig, trainer: L.Trainer, task: SupraTask, datamodule: L.LightningDataModule) -> dict[str, float]:
    """Test the checkpoint the run chose (_checkpoint_to_test), logged at the step it was trained to; its metrics."""
    if cfg.get("train"):
        take_fit_progress_from_last_checkpoint(trainer)
    elif cfg.get("ckpt_path"):  # logged at the step its checkpoint was trained to, as the run's own test was
        take_fit_progress_from(trainer, Path(cfg.ckpt_path))
    tested = _checkpoint_to_test(trainer, cfg)
    try:
        trainer.test(task, datamodule=datamodule, ckpt_path=tested)
    except BaseException as err:
        exit_if_test_interrupted(trainer, err, tested)
        raise
    return _plain(trainer.callback_metrics)


def exit_if_test_interrupted(trainer: L.Trainer, err: BaseException, tested: str | None) -> None:
    """Where a SIGTERM or Ctrl-C stopped `trainer`'s test, which raised `err`: the one line interrupted_test(tested),
    exit status 130 (Ctrl-C's, for both). Otherwise it returns, for the caller to raise `err` on."""
    if not trainer.received_sigterm and not ended_by_ctrl_c(err):
        return
    # a SIGTERM (of the process group, say) stops the test at a batch's end, or its scoring, whose Java
    # processes it ended too (MeteorEnded: not a lack of memory); Ctrl-C at once: said in one line, as a fit's is
    print(interrupted_test(tested), file=sys.stderr, flush=True)
    note_in_run_log(interrupted_test(tested))
    raise SystemExit(SIGINT_EXIT) from None


def interrupted_run(cfg: DictConfig) -> str:
    """What a train.py run that Ctrl-C ended outside a fit's graceful stop (before it, or a second Ctrl-C) leaves
    behind: its folder and the last.ckpt to resume from, where one was written."""
    folder = Path(cfg.paths.output_dir)
    last = folder / "checkpoints" / "last.ckpt"
    if stopped := stopped_short(folder):
        return (f"{folder} keeps checkpoints/last.ckpt at step {stopped[0]} of {stopped[1]} (its last validation): "
                f"resume with python train.py ckpt_path={last} and the run's other options")
    if last.is_file():
        return f"{folder} keeps the finished fit's checkpoints: score one with python evaluate.py ckpt={last}"
    return f"{folder} holds no checkpoint yet, nothing to resume: run it again"


def interrupted_test(tested: str | None) -> str:
    """The one line for a test that a SIGTERM stopped, naming how to score `tested` (the checkpoint) again."""
    again = f": score it with evaluate.py ckpt={tested}" if tested else ""
    return f"interrupted during the test: no test scores{again}"


def _say_diverged(diverged: str, cfg: DictConfig) -> None:
    """Record the divergence for a sweep's job (a failed trial) and warn what to change."""
    note_diverged(diverged)
    log.warning("%s: the run's scores and checkpoints are of a model whose training broke down; %s", diverged,
                diverged_advice(cfg))


def diverged_advice(cfg: DictConfig) -> str:
    """What to change in a run that diverged, from its own settings: its learning rate as typed, and clipping
    where it was off, or tighter clipping than its own where it was on (advising clipping already on misled)."""
    lr = OmegaConf.select(cfg, "model.optimizer.lr")
    lower = "lower model.optimizer.lr" + (f" ({as_typed('model.optimizer.lr', lr)} here)" if lr is not None else "")
    clip = OmegaConf.select(cfg, "trainer.gradient_clip_val")
    if not clip:  # 0 or null: no clipping
        return f"{lower}, or clip the gradients (e.g. trainer.gradient_clip_val=1.0)"
    return f"{lower}, or clip the gradients harder (a trainer.gradient_clip_val below its {clip})"


DIVERGENCE_LOSSES = ("train/loss", "val/loss")  # every task logs both; a score (val/CIDEr) stays finite (0.0)


def divergence(metrics: dict[str, float], step: int) -> str | None:
    """`diverged: train/loss is nan at the end of training (step N)` where the fit's last logged training or
    validation loss is not finite; None where both are (or neither was logged). `step` is the fit's last: the
    losses are read once it ended, so where they first broke down is not known here (metrics.csv shows it)."""
    for name in DIVERGENCE_LOSSES:
        if name in metrics and not math.isfinite(metrics[name]):
            return f"diverged: {name} is {metrics[name]} at the end of training (step {step})"
    return None


def without_unloggable(callbacks: list[Any], loggers: list[Any]) -> list[Any]:
    """`callbacks` less a learning-rate monitor where there is no logger (logger=none): Lightning refuses it then,
    after the data set-up, while it only logs the learning rate, which the checkpoints keep anyway."""
    return callbacks if loggers else [callback for callback in callbacks if not isinstance(callback, LearningRateMonitor)]


def check_resumable(task: SupraTask, ckpt_path: str, max_steps: int | None = None,
                    max_epochs: int | None = None) -> dict[str, Any]:
    """What Lightning would take without a word, or answer with a page of missing keys or a traceback, as one
    line: a checkpoint of another architecture or of other model settings, one over another stage-1 VQ-VAE,
    and, for training (`max_steps` given), one without training state or already at `max_steps` or at or past
    `max_epochs` (trainer.max_epochs). The checkpoint."""
    checkpoint = load_supra_checkpoint(ckpt_path, kind=task.checkpoint_kind, what="ckpt_path")
    source = f"ckpt_path={ckpt_path}"
    saved_net = ((run_config_of(checkpoint) or {}).get("model") or {}).get("net")
    _refuse_other_settings(task, saved_net, source)  # settings first: they name what to change, where shapes cannot
    _refuse_other_weights(task, checkpoint, saved_net, source)
    _refuse_other_vqvae(task, checkpoint, source)
    if max_steps is not None:
        _refuse_no_training_state(checkpoint, source)
        _refuse_trained_to(checkpoint, max_steps, source)
        _refuse_epochs_trained(checkpoint, max_epochs, ckpt_path)
    return checkpoint


def _refuse_other_settings(task: SupraTask, saved_net: Any, source: str) -> None:
    """Model settings that differ from the checkpoint's run's (the task's check_resumes names them)."""
    if isinstance(saved_net, dict):
        task.check_resumes(saved_net, source, net_keys_given())


def net_keys_given() -> set[str]:
    """The model.net keys this run's command line sets (`model.net.N_HEADS=8` -> N_HEADS): those a refused resume
    says to drop; the others came from its configs, where there is no override to drop."""
    if not HydraConfig.initialized():
        return set()
    overrides = parsed_overrides([str(o) for o in HydraConfig.get().overrides.task])
    return {o.key_or_group.removeprefix("model.net.") for o in overrides if o.key_or_group.startswith("model.net.")}


def _refuse_other_weights(task: SupraTask, checkpoint: dict[str, Any], saved_net: Any, source: str) -> None:
    """Weights of other shapes than the task's model, explained by the settings that differ where both runs'
    are known (the shapes alone do not say what to change)."""
    if not isinstance(getattr(task, "net", None), torch.nn.Module):
        return
    try:
        check_state_fits(task.net, net_state(checkpoint), f"{source} (another model's configuration?)")
    except SupraUserError:
        ours = ((task.run_config or {}).get("model") or {}).get("net")
        if not isinstance(saved_net, dict) or not isinstance(ours, dict):
            raise
        refuse_changed_model(source, model_changes(saved_net, ours, prefix="net."), net_keys_given())
        raise


def _refuse_other_vqvae(task: SupraTask, checkpoint: dict[str, Any], source: str) -> None:
    """An a2a checkpoint resumed over another stage-1 VQ-VAE: the data would be coded by the new one, the GPT
    would have learnt the old one's codes, and the checkpoint's own VQ-VAE would come back with its weights."""
    vqvae = getattr(task, "vqvae", None)
    if not isinstance(vqvae, torch.nn.Module) or same_state(net_state(checkpoint, "vqvae."), vqvae.state_dict()):
        return
    trained_with = checkpoint.get("hyper_parameters", {}).get("vqvae_ckpt")
    raise SupraUserError(
        f"{source} was trained over another VQ-VAE than model.vqvae_ckpt={task.hparams.vqvae_ckpt} "
        f"(its codes mean other pictures): leave model.vqvae_ckpt unset, and the checkpoint's own is used"
        + (f" (it was model.vqvae_ckpt={trained_with})" if trained_with else ""))


def _refuse_no_training_state(checkpoint: dict[str, Any], source: str) -> None:
    """A checkpoint of weights only, trained on: Lightning's KeyError deep in its restore, or steps from 0 again."""
    lacking = [key for key in ("optimizer_states", "lr_schedulers", "loops") if key not in checkpoint]
    if lacking:
        raise SupraUserError(f"{source} holds no training state ({', '.join(lacking)} missing: weights "
                             "only?), so training cannot go on from it: score it with train=false, or start a new "
                             "run from its weights")


def _refuse_trained_to(checkpoint: dict[str, Any], max_steps: int, source: str) -> None:
    """A checkpoint already at trainer.max_steps (-1: no limit): the fit would train nothing."""
    step = checkpoint.get("global_step")
    if isinstance(max_steps, int) and max_steps >= 0 and isinstance(step, int) and step >= max_steps:
        raise SupraUserError(f"{source} is at step {step}: trainer.max_steps={max_steps} trains nothing more; raise "
                             f"trainer.max_steps to go on{lr_after(step, schedule_length(checkpoint))} (or train=false "
                             "to score it as it is)")


def _refuse_epochs_trained(checkpoint: dict[str, Any], max_epochs: Any, ckpt_path: str) -> None:
    """A checkpoint whose epochs, as Lightning counts them (resume.epochs_trained), reach trainer.max_epochs
    (-1: no limit; null: Lightning's default): at them the fit trained no batch and exited 0 (the test then
    scored the checkpoint again, into a new folder); past them it ended in Lightning's traceback from deep in
    its restore, after the data's set-up."""
    epochs = epochs_trained((checkpoint.get("loops") or {}).get("fit_loop"))
    if isinstance(max_epochs, int) and max_epochs >= 0 and epochs is not None and epochs >= max_epochs:
        raise SupraUserError(f"ckpt_path={ckpt_path} has trained {epochs} epoch{'s' * (epochs != 1)}: trainer.max_epochs="
                             f"{max_epochs} trains nothing more; raise trainer.max_epochs above {epochs} to go on, "
                             f"or score it with evaluate.py ckpt={ckpt_path}")


def lr_after(step: int, length: int | None) -> str:
    """Where the learning rate of steps past `step` is, on the checkpoint's schedule of `length` steps (which
    goes on, held at min_lr past its end); "" for another schedule."""
    if length is None:
        return ""
    if step >= length:
        return f", at the schedule's min_lr (its {length} steps are done)"
    return (f", down the rest of its learning-rate schedule (min_lr at step {length}, "
            f"trainer.max_steps={length})")


# Settings a resumed run may change without a word: how its batches are made and where its files (and caches) go
# (output_dir: the run folder, new with every resume, where a photo data set's split lists are written), and those
# the model dictates (null: the model's; another value is refused), whose change is said as the model's.
QUIET_DATA_KEYS = {"batch_size", "eval_batch_size", "num_workers", "pin_memory", "show_progress", "tokenizer_path",
                   "vocab_path", "cache_dir", "output_dir", "image_size", "max_caption_tokens", "vocab_size"}


# Model settings a resumed run may change without a word: speed and display switches, and the files a model
# started from saved weights does not read (a pretrained tower's: the checkpoint holds its weights).
QUIET_MODEL_KEYS = {"compile", "fused_optimizer", "loss_in_progress_bar", "score_every_n_val", "net.channels_last",
                    "net.rebuilt", "net.pretrained.weights"}
# ... and those said on their own (say_resumed_changes) or checked against the checkpoint (check_resumable)
OWN_MODEL_KEYS = ("optimizer", "scheduler", "weight_decay", "init_from", "vqvae_ckpt")
# the dotted names none of the warnings below says as lacking from an older Supra's checkpoint
UNSAID_PREFIXES = (*(f"data.{key}" for key in QUIET_DATA_KEYS), *(f"model.{key}" for key in QUIET_MODEL_KEYS),
                   *(f"model.{key}" for key in OWN_MODEL_KEYS))


def model_changes(theirs: dict[str, Any], ours: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key below model, theirs, ours) for each model setting, nested ones dotted (`net.dropout`,
    `decode.beam_width`), in which this run differs from its checkpoint's run; `prefix` is where `theirs` and
    `ours` are in the model config ("net." for model.net). The quiet ones and OWN_MODEL_KEYS are left out."""
    flat_theirs, flat_ours = flat_settings(theirs, prefix), flat_settings(ours, prefix)
    return [(key.removeprefix(prefix), flat_theirs.get(key), flat_ours.get(key))
            for key in sorted(flat_theirs.keys() | flat_ours.keys())
            if key not in QUIET_MODEL_KEYS and key.partition(".")[0] not in OWN_MODEL_KEYS
            and flat_theirs.get(key) != flat_ours.get(key)]


def say_resumed_changes(cfg: DictConfig, run_config: dict[str, Any]) -> None:
    """A resumed run goes on with its checkpoint's optimizer and schedule (Lightning restores their state
    over the settings given now) but trains on the data (and in the precision, with the gradient accumulation) it
    is given now: either change, unnoticed, is a run other than the one the user asked for, so each is said in one
    warning naming the settings."""
    now_config = recorded_run_config(cfg)  # its paths absolute, as the checkpoint's
    # an older Supra's checkpoint lacks the settings added since: read at what its run used, where that is known
    run_config, unrecorded = with_keys_added_since(run_config, now_config, UNSAID_PREFIXES)
    if unrecorded:
        log.warning("resuming ckpt_path=%s, which comes from an older Supra that did not record %s: this run uses "
                    "%s as given now, its run's not known", cfg.ckpt_path, " or ".join(unrecorded),
                    ", ".join(f"{key}={value}" for key, value in flat_settings(now_config).items()
                              if key in unrecorded))
    for group, outcome in (("model.optimizer", "not used: the checkpoint's optimizer state goes on"),
                           ("model.scheduler", "not used: the checkpoint's learning-rate schedule goes on"),
                           ("data", "used: this run trains on other data than the checkpoint's run")):
        ours: Any = now_config
        theirs: Any = run_config
        for part in group.split("."):
            ours = ours.get(part) if isinstance(ours, dict) else None
            theirs = theirs.get(part) if isinstance(theirs, dict) else None
        if not isinstance(theirs, dict) or not isinstance(ours, dict):  # null either side: said below
            continue
        quiet = QUIET_DATA_KEYS if group == "data" else set()
        changed = [f"{group}.{key}={ours.get(key)} (was {theirs.get(key)})" for key in sorted(set(ours) | set(theirs))
                   if key not in quiet and ours.get(key) != theirs.get(key)]
        if changed:
            log.warning("resuming ckpt_path=%s with %s: %s", cfg.ckpt_path, ", ".join(changed), outcome)
    for key, outcome in (("weight_decay", "not used: the checkpoint's optimizer state (its weight decay) goes on"),
                         ("init_from", "not used: the checkpoint's weights go on")):
        # compared as recorded (a path absolute), said as typed
        given, theirs = (now_config.get("model") or {}).get(key), (run_config.get("model") or {}).get(key)
        if given != theirs:
            log.warning("resuming ckpt_path=%s with model.%s=%s (was %s): %s", cfg.ckpt_path, key,
                        cfg.model.get(key), theirs, outcome)
    say_schedule_given_or_dropped(cfg, run_config)
    say_changed_seed(cfg, run_config)
    say_changed_training_numerics(cfg, run_config)
    theirs_model = run_config.get("model")
    if isinstance(theirs_model, dict):  # the rest of the model's settings are this run's, and so train and score it
        changed = model_changes(theirs_model, OmegaConf.to_container(cfg.model, resolve=True))
        if changed:
            log.warning("resuming ckpt_path=%s with %s: used: the checkpoint's weights go on with them", cfg.ckpt_path,
                        ", ".join(f"model.{key}={now} (was {was})" for key, was, now in changed))


def say_schedule_given_or_dropped(cfg: DictConfig, run_config: dict[str, Any]) -> None:
    """model.scheduler=null over a checkpoint whose run had a learning-rate schedule, or a schedule over one whose
    run had none: not used either way, the checkpoint's goes on (keep_resumed_schedule)."""
    theirs_model = run_config.get("model")
    if not isinstance(theirs_model, dict) or "scheduler" not in theirs_model:
        return
    given, theirs = cfg.model.get("scheduler"), theirs_model["scheduler"]
    if given is None and isinstance(theirs, dict):
        log.warning("resuming ckpt_path=%s with model.scheduler=null (was %s): not used: the checkpoint's learning-rate "
                    "schedule goes on", cfg.ckpt_path, theirs.get("_target_"))
    elif given is not None and theirs is None:
        log.warning("resuming ckpt_path=%s with model.scheduler=%s (was null): not used: the checkpoint's run had no "
                    "learning-rate schedule, and its learning rate goes on unchanged", cfg.ckpt_path,
                    given.get("_target_") if isinstance(given, DictConfig) else given)


def say_changed_seed(cfg: DictConfig, run_config: dict[str, Any]) -> None:
    """A resume with another `seed`: it seeds the rest of the run (later epochs' shuffles), while the epoch the
    checkpoint stopped in goes on in its own shuffle, whose seed the checkpoint keeps (ShuffledLoader), in one
    process and under DDP."""
    given, theirs = cfg.get("seed"), run_config.get("seed")
    if "seed" not in run_config or given == theirs:
        return
    log.warning("resuming ckpt_path=%s with seed=%s (was %s): used: later epochs' shuffles (and the run's other random "
                "draws) follow it; the rest of the epoch the checkpoint stopped in keeps its own shuffle",
                cfg.ckpt_path, given, theirs)


# Trainer settings that change how a resumed run's steps train its weights, at Lightning's defaults where a
# checkpoint's run config lacks them: the numerics of every step, and the batches each optimizer step gathers
RESUMED_TRAINER_DEFAULTS = {"precision": "32-true", "accumulate_grad_batches": 1}
# Lightning's older precision names, which its Trainer takes as the newer ones: no change to say
PRECISION_ALIASES = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}


def say_changed_training_numerics(cfg: DictConfig, run_config: dict[str, Any]) -> None:
    """A resume with another trainer.precision or trainer.accumulate_grad_batches: used, so the steps after the
    checkpoint train otherwise than its run's did (a recipe's 32-true is what makes it the same run anywhere)."""
    theirs = run_config.get("trainer")
    if not isinstance(theirs, dict):
        return

    def as_run(key: str, value: Any) -> Any:  # the setting as Lightning takes it
        value = RESUMED_TRAINER_DEFAULTS[key] if value is None else value
        return PRECISION_ALIASES.get(str(value), str(value)) if key == "precision" else value

    changed = [f"trainer.{key}={cfg.trainer.get(key)} (was {theirs.get(key, default)})"
               for key, default in RESUMED_TRAINER_DEFAULTS.items()
               if as_run(key, cfg.trainer.get(key)) != as_run(key, theirs.get(key))]
    if changed:
        log.warning("resuming ckpt_path=%s with %s: used: the checkpoint's weights train on with them", cfg.ckpt_path,
                    ", ".join(changed))


def say_shorter_than_schedule(ckpt_path: str, length: int | None, max_steps: Any) -> None:
    """Warn that a resumed run stops partway through its checkpoint's learning-rate schedule (which goes on,
    not set out again for the new trainer.max_steps): its lr never comes down to min_lr."""
    if length is not None and isinstance(max_steps, int) and 0 <= max_steps < length:
        log.warning("resuming ckpt_path=%s with trainer.max_steps=%d, short of its learning-rate schedule's %d steps "
                    "(which goes on): the run ends partway through it, and its lr never reaches min_lr", ckpt_path,
                    max_steps, length)


def say_past_schedule(ckpt_path: str, checkpoint: dict[str, Any], max_steps: Any, max_epochs: int | None = None) -> None:
    """Warn that a resumed run trains past the end of its checkpoint's learning-rate schedule (which goes on, not
    set out again for the new trainer.max_steps: a run stopped by trainer.max_steps and continued with more), so
    each step past it trains at the schedule's min_lr, and say how to get a schedule over the whole run.
    `max_steps` is the step the run ends at: trainer.max_steps, or for a run bounded by `max_epochs` (with
    trainer.max_steps=-1) Lightning's count of its steps, known once the fit has its data."""
    length, min_lr, step = schedule_length(checkpoint), schedule_min_lr(checkpoint), checkpoint.get("global_step")
    if length is None or min_lr is None or not isinstance(step, int) or not isinstance(max_steps, int):
        return
    bound = f"trainer.max_epochs={max_epochs} ({max_steps} steps)" if max_epochs else f"trainer.max_steps={max_steps}"
    past_from = max(step, length)  # the steps after it train past the schedule's end
    if max_steps <= past_from:
        return
    # ending with the schedule is an option only while some of it is left to train
    or_end = f" (or end with its schedule: trainer.max_steps={length})" if step < length else ""
    log.warning("resuming ckpt_path=%s with %s, past its learning-rate schedule's %d steps (which goes on): the %d "
                "steps after step %d train at its min_lr %g; for an lr that decays over all %d steps, train a new run "
                "with trainer.max_steps=%d%s", ckpt_path, bound, length, max_steps - past_from, past_from, min_lr,
                max_steps, max_steps, or_end)


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
    if "scheduler" in theirs and theirs["scheduler"] is None:  # trained without one, it goes on without one
        model["scheduler"] = None
    for key in ("weight_decay", "init_from"):
        if key in theirs:
            model[key] = theirs[key]


def keep_resumed_schedule(task: SupraTask, resumed: dict[str, Any], ckpt_path: str) -> None:
    """The checkpoint's schedule for the scheduler a resumed fit builds (say_resumed_changes: "not used"): Lightning
    restores a schedule's state only onto a scheduler the fit has, of its shape. Its settings, where its run's
    model.scheduler names the same schedule as this one's: model.scheduler.warmup_steps=0 over a checkpoint whose
    schedule warms up was built as a cosine alone, which cannot take that state, and refused as the fit started.
    Built from the checkpoint where this run gives model.scheduler=null (whose optimizer would otherwise keep the lr
    of the checkpoint's last step to the end) or a schedule of another target (which took the checkpoint's state and
    went on from its step by its own rule), and none where the checkpoint's run had none (a schedule given now
    would warm up again from its first step, midway through the run)."""
    model = resumed.get("model") or {}
    if "scheduler" not in model:  # a run config of another layout: Lightning's rules apply
        return
    theirs, ours = model["scheduler"], task.scheduler_factory
    if theirs is None:
        task.scheduler_factory = None
        return
    if not isinstance(theirs, dict) or (ours is not None and not isinstance(ours, partial)):
        return
    if ours is None or theirs.get("_target_") != f"{ours.func.__module__}.{ours.func.__qualname__}":
        task.scheduler_factory = instantiate_loaded(theirs, f"ckpt_path={ckpt_path}", "run_config.model.scheduler")
        return
    settings = {key: value for key, value in theirs.items() if key in ours.keywords}
    task.scheduler_factory = partial(ours.func, *ours.args, **{**ours.keywords, **settings})


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


def best_monitored(trainer: L.Trainer) -> tuple[str | None, float | None]:
    """The metric the run's checkpoint keeps the best by, and its best value; None for what the run does not know
    (no monitor, no validation yet)."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or not callback.monitor:
        return None, None
    best = callback.best_model_score
    if best is None and callback.best_model_path:  # a fit in processes of its own (ddp_spawn) sends back the path only
        best = saved_best_score(Path(callback.best_model_path), callback.state_key)
    return callback.monitor, None if best is None else float(best)


def saved_best_score(checkpoint: Path, state_key: str) -> float | None:
    """The best score that the checkpoint callback of `state_key` kept in `checkpoint`; None where it holds none."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)  # no weights read
        best = saved["callbacks"][state_key]["best_model_score"]
    except Exception:  # noqa: BLE001 - only a score for TensorBoard's HPARAMS tab: never worth failing the run for
        return None
    return None if best is None else float(best)


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
