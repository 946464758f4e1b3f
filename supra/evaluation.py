"""The evaluation run behind `evaluate.py`: model and tokenizer from the checkpoint (or release folder),
data from the checkpoint's config unless another is chosen, then a test on one split."""

from __future__ import annotations

from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from supra.callbacks.caption_grid import CaptionGridCallback
from supra.callbacks.caption_report import CaptionReportWriter
from supra.config_safety import instantiate_loaded
from supra.release import load_captioner
from supra.tasks.captioning import CaptioningTask
from supra.utils.errors import SupraUserError
from supra.utils.files import check_writable_dir


def chosen_data_config(cfg: DictConfig, run_cfg: dict | None, release_hint: str) -> DictConfig:
    """The data config chosen with data=..., else the checkpoint's with any data.x overrides merged in;
    a release folder holds none, so without data=... it is refused with `release_hint` (which data= to add)."""
    chosen = cfg.get("data") or {}
    if "_target_" in chosen:
        return OmegaConf.create(OmegaConf.to_container(chosen, resolve=True))
    if run_cfg is None:
        raise SupraUserError(f"ckpt={cfg.ckpt} is a release folder, which holds no data config: {release_hint}")
    data_cfg = OmegaConf.create(run_cfg["data"])
    with open_dict(data_cfg):
        data_cfg.merge_with(OmegaConf.to_container(chosen, resolve=True))
    return data_cfg


def _data_config(cfg: DictConfig, run_cfg: dict | None, tokenizer_path: str) -> DictConfig:
    """The captioner's data config, with the checkpoint's tokenizer and this run's output folder."""
    data_cfg = chosen_data_config(cfg, run_cfg, "add data=shapes, or data=flickr8k data.root=DIR")
    with open_dict(data_cfg):
        data_cfg.tokenizer_path = tokenizer_path
        if "output_dir" in data_cfg:
            data_cfg.output_dir = cfg.paths.output_dir
    return data_cfg


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score `cfg.ckpt` on `cfg.data.split`; writes metrics.json, predictions.json, samples.png."""
    output_dir = cfg.paths.output_dir
    try:
        check_writable_dir(output_dir)
    except OSError as err:
        raise SupraUserError(f"cannot write to the output directory {output_dir} ({err.strerror}): "
                             "choose another with hydra.run.dir=DIR") from None
    from supra.a2a_evaluation import evaluate_a2a, is_a2a  # an a2a_nano checkpoint or release: its own run

    if is_a2a(cfg.ckpt):
        return evaluate_a2a(cfg)
    net, tokenizer, run_cfg = load_captioner(cfg.ckpt)
    tokenizer_path = str(tokenizer.save(f"{output_dir}/tokenizer.json"))
    with open_dict(cfg):  # data configs read the model's image size and vocabulary from here
        cfg.model.net.update(net.config.release_config)

    # the data config comes (partly) from the checkpoint: only allow-listed classes are built from it
    datamodule = instantiate_loaded(_data_config(cfg, run_cfg, tokenizer_path), f"ckpt={cfg.ckpt}", "run_config.data")
    decode = {**((run_cfg or {}).get("model", {}).get("decode") or {}),
              "strategy": cfg.decode, "beam_width": cfg.beam_width, "seed": cfg.seed}
    task = CaptioningTask(net=net, optimizer=None, decode=decode)
    task.run_config = run_cfg

    trainer = L.Trainer(
        accelerator=cfg.accelerator, devices=1, logger=False, enable_checkpointing=False,
        default_root_dir=output_dir, enable_model_summary=False,
        callbacks=[CaptionReportWriter(output_dir, print_table=True), CaptionGridCallback(cfg.num_grid_images, output_dir=output_dir)],
    )
    trainer.test(task, datamodule=datamodule, verbose=False)
    return task.test_results
