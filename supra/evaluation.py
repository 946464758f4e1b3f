"""The evaluation run behind `evaluate.py`: everything from the checkpoint, then test on one split."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from supra.callbacks.caption_grid import CaptionGridCallback
from supra.callbacks.caption_report import CaptionReportWriter
from supra.checkpoints import load_supra_checkpoint
from supra.tasks.captioning import CHECKPOINT_KIND
from supra.utils.errors import SupraUserError
from supra.utils.files import check_writable_dir, write_text_atomic

log = logging.getLogger(__name__)


def _data_config(cfg: DictConfig, run_cfg: DictConfig, tokenizer_path: str) -> DictConfig:
    """The checkpoint's data config, or a freshly chosen one (data=...), with this evaluation's split."""
    chosen = cfg.get("data") or {}
    data_cfg = OmegaConf.create(OmegaConf.to_container(chosen if "_target_" in chosen else run_cfg.data))
    with open_dict(data_cfg):
        for key, value in chosen.items():
            data_cfg[key] = value
        data_cfg.tokenizer_path = tokenizer_path
    return data_cfg


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score `cfg.ckpt` on `cfg.data.split`; writes metrics.json, predictions.json, samples.png."""
    output_dir = cfg.paths.output_dir
    try:
        check_writable_dir(output_dir)
    except OSError as err:
        raise SupraUserError(f"cannot write to the output directory {output_dir} ({err.strerror}): "
                             "choose another with hydra.run.dir=DIR") from None
    checkpoint = load_supra_checkpoint(cfg.ckpt, kind=CHECKPOINT_KIND)
    meta = checkpoint["supra"]
    if not meta.get("run_config") or not meta.get("tokenizer"):
        raise SupraUserError(f"ckpt={cfg.ckpt} lacks its run config or tokenizer: was it written by train.py?")
    run_cfg = OmegaConf.create(meta["run_config"])
    tokenizer_path = str(write_text_atomic(f"{output_dir}/tokenizer.json", meta["tokenizer"]))

    datamodule = instantiate(_data_config(cfg, run_cfg, tokenizer_path))
    model_cfg = run_cfg.model
    with open_dict(model_cfg):
        model_cfg.decode.strategy = cfg.decode
        model_cfg.decode.beam_width = cfg.beam_width
        model_cfg.decode.seed = cfg.seed
    task = instantiate(model_cfg)
    task.load_state_dict(checkpoint["state_dict"])
    task.run_config = meta["run_config"]

    trainer = L.Trainer(
        accelerator=cfg.accelerator, devices=1, logger=False, enable_checkpointing=False,
        default_root_dir=output_dir, enable_model_summary=False,
        callbacks=[CaptionReportWriter(output_dir, print_table=True), CaptionGridCallback(cfg.num_grid_images, output_dir=output_dir)],
    )
    trainer.test(task, datamodule=datamodule, verbose=False)
    return task.test_results
