"""What train.py refuses of its callbacks and optimized_metric before training, as one line each, where
Lightning would refuse it only after the steps before the first validation, or take it without a word:
another model's callbacks group, settings each Lightning callback class would act on wrongly, and metric
names the task does not log (or not with the run's data).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any

from hydra.utils import get_class
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ModelSummary, ProgressBar
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

from supra.callbacks.sample_grid import SampleGridCallback
from supra.metrics.caption_scores import CAPTION_METRICS
from supra.tasks.base import SupraTask
from supra.utils.cli import CONF_DIR, count_as_typed
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_whole


def check_callbacks_fit(task: SupraTask, callbacks_cfg: DictConfig | None, chosen: str, data: Any = None) -> None:
    """What Lightning would refuse only after the training steps before the first validation, or take without a
    word, as one line before training: another model's callbacks group (model=vqvae_f8 with callbacks=default),
    a monitor the task never logs (or not with `data`, the run's DataModule), and settings that give wrong
    checkpoints or stops (check_callback)."""
    if not callbacks_cfg:
        return
    check_group_fits(task, callbacks_cfg, chosen)
    try:  # the trainer settings of the config the group sits in
        trainer_cfg = OmegaConf.select(callbacks_cfg, "..trainer")
    except ConfigKeyError:  # a group given alone
        trainer_cfg = None
    task_alone_logs = not has_own_callback(callbacks_cfg)
    for key, node in callbacks_cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            check_callback(task, f"callbacks.{key}", node, trainer_cfg if isinstance(trainer_cfg, DictConfig) else None,
                           data, task_alone_logs)


# Supra's callbacks and Lightning's built-in ones log no metric a callback could watch: with only these, the task's
# metrics are all there are
KNOWN_CALLBACKS = ("supra.", "lightning.pytorch.callbacks.", "pytorch_lightning.callbacks.")


def has_own_callback(callbacks_cfg: DictConfig | None) -> bool:
    """Whether a configured callback is the user's own (neither Supra's nor a Lightning built-in), which may log
    metrics of its own for another to watch."""
    return any(isinstance(node, DictConfig) and "_target_" in node and not str(node._target_).startswith(KNOWN_CALLBACKS)
               for node in (callbacks_cfg or {}).values())


def check_group_fits(task: SupraTask, callbacks_cfg: DictConfig, chosen: str) -> None:
    """Another model's callbacks group as one line, not Lightning's "could not find the monitored key" at the
    first validation. Only a shipped group whose checkpoint monitor is left as it ships is refused: a user's own
    group, or one whose monitor they set, is theirs to choose (check_callback then checks the name)."""
    own = task.callbacks_choice
    shipped = CONF_DIR / "callbacks" / f"{chosen}.yaml"
    if chosen == own or not shipped.is_file() or "model_checkpoint" not in callbacks_cfg:
        return
    monitor = OmegaConf.select(callbacks_cfg, "model_checkpoint.monitor")
    if monitor is None or monitor != OmegaConf.select(OmegaConf.load(shipped), "model_checkpoint.monitor"):
        return
    raise SupraUserError(f"callbacks={chosen} is made for another model (its checkpoint keeps the best {monitor}): "
                         f"{type(task).__name__} takes callbacks={own}, add it")


def check_callback(task: SupraTask, name: str, node: DictConfig, trainer_cfg: DictConfig | None,
                   data: Any = None, task_alone_logs: bool = False) -> None:
    """One callback's settings against the task's metrics (SupraTask subclasses' metric_names) and the trainer's:
    the checks of its Lightning class, then its monitor's name, whatever its class (`task_alone_logs`: no callback
    of the user's own may log it, check_monitor_name)."""
    try:
        cls = get_class(str(node._target_))
    except (ImportError, ValueError, AttributeError):  # a target that does not import: instantiate's error to give
        return
    names = metrics_logged(task, data)
    if issubclass(cls, ProgressBar | ModelSummary):
        check_display_callback(name, cls, trainer_cfg if trainer_cfg is not None else OmegaConf.create({}))
    if issubclass(cls, SampleGridCallback):  # drawn at the first validation's end, before its checkpoint is saved:
        check_grid_sizes(name, node)  # a bad size there was a traceback that left no checkpoint of the steps done
    if issubclass(cls, ModelCheckpoint):
        check_model_checkpoint(name, node, names)
    if issubclass(cls, EarlyStopping):
        check_early_stopping(name, node, names)
    check_monitor_name(task, name, node, names, data, task_alone_logs)


def check_display_callback(name: str, cls: type, trainer_cfg: DictConfig) -> None:
    """A progress bar or model summary callback with its trainer switch off. Lightning refuses a progress bar
    callback with enable_progress_bar=false (a MisconfigurationException in instantiate's traceback), and prints a
    summary callback's table whatever enable_model_summary says; without the callback, the switch keeps Lightning
    from adding its own."""
    for base, switch in ((ProgressBar, "enable_progress_bar"), (ModelSummary, "enable_model_summary")):
        if issubclass(cls, base) and trainer_cfg.get(switch) is False:
            raise SupraUserError(f"trainer.{switch}=false, but {name} is the run's "
                                 f"{switch.removeprefix('enable_').replace('_', ' ')} ({cls.__name__}): add {name}=null "
                                 "too")


def check_grid_sizes(name: str, node: DictConfig) -> None:
    """A sample grid's picture count (0: none drawn) and columns, as one line before training."""
    for key, least in (("num_images", 0), ("num_samples", 0), ("columns", 1)):
        value = node.get(key)
        if value is not None and not is_whole(value, least):
            raise SupraUserError(f"{count_as_typed(f'{name}.{key}', value)} must be a whole number >= {least}"
                                 + (" (0: no grid)" if least == 0 else "") + f", or {name}=null to draw none")


def check_model_checkpoint(name: str, node: DictConfig, names: dict[str, int]) -> None:
    """A ModelCheckpoint's save_top_k, when it saves the best, the names of its files, and, keeping more than one,
    a monitor computed at one validation in several."""
    top_k = node.get("save_top_k", 1)
    if isinstance(top_k, int) and top_k < -1:  # Lightning's MisconfigurationException, after the data's set-up
        raise SupraUserError(f"{name}.save_top_k={top_k} must be -1 (keep every checkpoint), 0 (none) or the number "
                             "of best checkpoints to keep")
    if node.get("monitor") is not None:
        check_best_saved_at_validations(name, node)
    check_checkpoint_names(name, node, top_k)
    monitor, every = _scored_every(node, names)
    if every > 1 and top_k > 1:
        _refuse_scored_between(name, monitor, every, f"save_top_k={top_k} would rank the checkpoints of those in "
                                                     "between by the last value computed")


PERIODIC_CHECKPOINTS = ("+callbacks.periodic._target_=lightning.pytorch.callbacks.ModelCheckpoint "
                        "+callbacks.periodic.every_n_train_steps=N +callbacks.periodic.save_top_k=-1 "
                        "'+callbacks.periodic.dirpath=${paths.output_dir}/checkpoints/periodic'")


def check_best_saved_at_validations(name: str, node: DictConfig) -> None:
    """A checkpoint that keeps the best by a monitor, saved by steps or time: Lightning then saves it at those
    training steps' ends only, never at a validation's end, each with the score of the validation before (a
    later, better validation never became best.ckpt)."""
    for key, unit in (("every_n_train_steps", "training steps"), ("train_time_interval", "intervals of time")):
        value = node.get(key)
        if value is not None and value != 0:  # 0: Lightning's "off"
            given = "" if isinstance(value, DictConfig) else f"={value}"  # a timedelta's config: named, not printed
            raise SupraUserError(f"{name}.{key}{given} with {name}.monitor={node.monitor}: Lightning would save the "
                                 f"best at {unit} only, each with the score of the validation before, never at a "
                                 f"validation's end: leave {key} out, and for checkpoints every N steps add one of "
                                 f"your own without a monitor: {PERIODIC_CHECKPOINTS}")


def check_checkpoint_names(name: str, node: DictConfig, top_k: Any) -> None:
    """Several checkpoints kept under one file name, without the version counter: each save would overwrite the
    one before."""
    filename = node.get("filename")
    if isinstance(top_k, int) and top_k not in (0, 1) and filename is not None and "{" not in str(filename) \
            and node.get("enable_version_counter", True) is False:
        kept = "every checkpoint" if top_k < 0 else f"the best {top_k} checkpoints"
        raise SupraUserError(f"{name}.save_top_k={top_k} keeps {kept} under one name ({filename}.ckpt): each would "
                             f"replace the one before, and {filename}.ckpt would hold the latest, not the best: keep "
                             f"save_top_k=1, or name each by its step, \"{name}.filename='{filename}-{{step}}'\" (then "
                             f"no {filename}.ckpt is written)")


def check_early_stopping(name: str, node: DictConfig, names: dict[str, int]) -> None:
    """An EarlyStopping that watches a score computed at one validation in several."""
    monitor, every = _scored_every(node, names)
    if every > 1:
        _refuse_scored_between(name, monitor, every, "EarlyStopping would count the validations in between as without "
                                                     "improvement")


def metrics_logged(task: SupraTask, data: Any = None) -> dict[str, int]:
    """The metrics the task logs with `data`, each with how many validations apart it is computed ({}: unknown)."""
    return task.metric_names(data) if hasattr(task, "metric_names") else {}


def _watched(node: DictConfig, names: dict[str, int]) -> str | None:
    """The callback's monitor where it may be one of the task's metrics (not Lightning's epoch or step)."""
    monitor = node.get("monitor")
    if not isinstance(monitor, str) or not names or monitor in ("epoch", "step"):
        return None
    return monitor


def _scored_every(node: DictConfig, names: dict[str, int]) -> tuple[str, int]:
    """The task's metric the callback watches, and at one validation in how many it is computed (1: each, or
    not one of the task's metrics)."""
    monitor = _watched(node, names)
    return (monitor, names[monitor]) if monitor in names else ("", 1)


def _refuse_scored_between(name: str, monitor: str, every: int, what: str) -> None:
    # in between, Lightning's callbacks see the last computed value again: EarlyStopping counts it as a
    # validation without improvement, and a top-k list takes it as another checkpoint's score
    raise SupraUserError(f"{name} watches {monitor}, which model.score_every_n_val={every} computes at one "
                         f"validation in {every}: {what}; watch val/loss (every validation), or set "
                         "model.score_every_n_val=1")


def check_monitor_name(task: SupraTask, name: str, node: DictConfig, names: dict[str, int],
                       data: Any = None, task_alone_logs: bool = False) -> None:
    """A monitor the task logs with other data only, or a typo of one of its metrics, or, where the task alone logs
    metrics (`task_alone_logs`: no callback of the user's own, has_own_callback), any name it does not log. With a
    callback of the user's own, another name may be that callback's: Lightning refuses it at the first validation if
    it is not logged, said in one line by unlogged_monitor."""
    monitor = _watched(node, names)
    if monitor is None or monitor in names:
        return
    refuse_metric_of_other_data(task, f"{name}.monitor", monitor, names, data)
    refuse_caption_score_not_scored(task, f"{name}.monitor", monitor)
    if close := _close_metric(monitor, names):
        raise SupraUserError(f"{name}.monitor={monitor} is no metric this run logs: did you mean "
                             f"{close}? ({type(task).__name__} logs {', '.join(names)})")
    if task_alone_logs:  # else trained to the first validation, then Lightning's traceback and no checkpoint
        raise SupraUserError(f"{name}.monitor={monitor} is no metric this run logs ({type(task).__name__} logs "
                             f"{', '.join(names)})")


# The starts of Lightning's refusals of a monitor missing at a validation (ModelCheckpoint's, EarlyStopping's)
UNLOGGED_MONITOR = ("`ModelCheckpoint(monitor=", "Early stopping conditioned on metric `")


def unlogged_monitor(task: SupraTask, callbacks_cfg: DictConfig | None, error: BaseException, logged: Collection[str],
                     data: Any = None) -> SupraUserError | None:
    """Lightning's refusal (`error`) of a callback's monitor that no one logged by a validation (`logged`: the names
    there were), as one line naming the option and the task's metrics; None for any other error."""
    if not str(error).startswith(UNLOGGED_MONITOR):
        return None
    for key, node in (callbacks_cfg or {}).items():
        monitor = node.get("monitor") if isinstance(node, DictConfig) else None
        if isinstance(monitor, str) and monitor not in logged and (f"monitor={monitor!r}" in str(error)
                                                                   or f"metric `{monitor}`" in str(error)):
            return SupraUserError(f"callbacks.{key}.monitor={monitor} was not logged by the first validation: it is "
                                  f"no metric of {type(task).__name__}'s ({', '.join(metrics_logged(task, data))}), "
                                  "and no callback logged it")
    return None


def check_optimized_metric(task: SupraTask, metric: str | None, data: Any = None) -> None:
    """A mistyped optimized_metric (val/PSNR for val/psnr), or one not logged with `data` (the run's DataModule),
    as one line before training, as a callback's monitor is (check_callback), not as "was never logged" after
    the whole fit. A test score is left to the test, which logs names of its own (model.test_metrics)."""
    names = metrics_logged(task, data)
    if not metric or not names or metric in names or metric.startswith("test/"):
        return
    refuse_metric_of_other_data(task, "optimized_metric", metric, names, data)
    refuse_caption_score_not_scored(task, "optimized_metric", metric)
    if close := _close_metric(metric, names):
        raise SupraUserError(f"optimized_metric={metric} is no metric this run logs: did you mean optimized_metric="
                             f"{close}? ({type(task).__name__} logs {', '.join(names)})")


def refuse_metric_of_other_data(task: SupraTask, option: str, metric: str, names: dict[str, int], data: Any) -> None:
    """A metric the task logs with other data only (a captioner's val/attr_acc, scored on the shapes data)."""
    if metric not in names and metric in task.metric_names():
        raise SupraUserError(f"{option}={metric} is not logged with this data ({type(data).__name__}): it is scored "
                             f"where the data knows each image's objects (data=shapes); {type(task).__name__} logs "
                             f"{', '.join(names)} here")


def refuse_caption_score_not_scored(task: SupraTask, option: str, metric: str) -> None:
    """A caption score that model.val_metrics leaves out (val/CIDEr with [Bleu]): Lightning would refuse the
    monitor at the first validation, in a traceback, with no checkpoint of the steps before it kept."""
    score = metric.removeprefix("val/")
    families = task.hparams.get("val_metrics")
    if not metric.startswith("val/") or score not in CAPTION_METRICS or families is None:
        return
    family = score.split("_")[0]
    raise SupraUserError(f"{option}={metric} is never scored: model.val_metrics={list(families)} leaves out {family}: "
                         f"add it (model.val_metrics=[{','.join([*families, family])}]), or watch val/loss")


def _close_metric(name: str, names: dict[str, int]) -> str | None:
    """The one of `names` that `name` is a typo of (another case, a letter off), or None."""
    lowered = {known.lower(): known for known in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None
