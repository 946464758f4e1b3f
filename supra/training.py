"""The training run behind `train.py`: config -> DataModule, task, callbacks, loggers, Trainer -> fit -> test."""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from supra.checkpoints import load_supra_checkpoint
from supra.release import is_release_dir
from supra.sweeps.ddp import ddp_job_scope, use_job_config_for_ddp_children
from supra.utils.errors import SupraUserError
from supra.utils.files import check_writable_dir, write_text_atomic
from supra.utils.hardware import check_accelerator, fast_precision

log = logging.getLogger(__name__)

# Lightning 2.x calls a torch.utils._pytree API that torch 2.14 deprecates, once per fit/test: noise for
# users, nothing they can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# trainer.precision: ${fast_precision:${trainer.accelerator}} -> 16-mixed on GPUs; on CPUs bf16-mixed where
# native, else 32-true
OmegaConf.register_new_resolver("fast_precision", fast_precision, replace=True)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a group such as callbacks/ or logger/ (keyed by name)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if isinstance(node, DictConfig) and "_target_" in node]


def _group_choice(group: str) -> str:
    try:
        return HydraConfig.get().runtime.choices.get(group) or group
    except ValueError:  # not running under Hydra (API use)
        return group


def _restore_tokenizer(ckpt_path: str, tokenizer_path: str | None) -> None:
    """Resuming must keep the token ids the checkpoint was trained with: write its tokenizer first."""
    tokenizer_json = load_supra_checkpoint(ckpt_path)["supra"].get("tokenizer")
    if tokenizer_json and tokenizer_path and not Path(tokenizer_path).exists():
        write_text_atomic(tokenizer_path, tokenizer_json)


def _use_release_tokenizer(release_dir: str, tokenizer_path: str | None) -> None:
    """Fine-tuning a release keeps its token ids: its tokenizer.json becomes the run's."""
    if not is_release_dir(release_dir):
        raise SupraUserError(f"model.init_from={release_dir} is not a release folder (config.json + model.safetensors)")
    if tokenizer_path and not Path(tokenizer_path).exists():
        write_text_atomic(tokenizer_path, (Path(release_dir) / "tokenizer.json").read_text())


def check_run_config(cfg: DictConfig) -> None:
    """Fail before any work on what can be known from the config alone."""
    check_accelerator(cfg.trainer, _group_choice("trainer"))
    try:
        check_writable_dir(cfg.paths.output_dir)
    except OSError as err:
        raise SupraUserError(f"cannot write to the output directory {cfg.paths.output_dir} ({err.strerror}): "
                             "choose another with hydra.run.dir=DIR") from None
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise SupraUserError(f"ckpt_path={cfg.ckpt_path} does not exist: give a last.ckpt or best.ckpt of a run")


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
    trainers: list[L.Trainer] = []
    with ddp_job_scope(trainers):
        return _train(cfg, trainers)


def _train(cfg: DictConfig, trainers: list[L.Trainer]) -> tuple[float | None, dict[str, float]]:
    check_run_config(cfg)
    share_cpu_threads(cfg.trainer)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("ckpt_path"):
        _restore_tokenizer(cfg.ckpt_path, cfg.data.get("tokenizer_path"))
    elif cfg.model.get("init_from"):
        _use_release_tokenizer(cfg.model.init_from, cfg.data.get("tokenizer_path"))

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    task: L.LightningModule = instantiate(cfg.model)
    task.run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainers.append(trainer)
    for logger in loggers:
        logger.log_hyperparams(task.run_config)

    if cfg.get("train"):
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = _plain(trainer.callback_metrics)

    if cfg.get("test"):
        trainer.test(task, datamodule=datamodule, ckpt_path=_checkpoint_to_test(trainer, cfg))
        metrics.update(_plain(trainer.callback_metrics))

    return _metric_value(metrics, cfg.get("optimized_metric")), metrics


def _checkpoint_to_test(trainer: L.Trainer, cfg: DictConfig) -> str | None:
    """The best checkpoint of this fit; with train=false, the given ckpt_path (or the initial weights)."""
    if not cfg.get("train"):
        return cfg.get("ckpt_path")
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if not best:
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
