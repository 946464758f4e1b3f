"""`python evaluate.py ckpt=<a2a checkpoint or release folder> [+data.test_items=N] [+generation.image_top_k=K]`:
GPT, VQ-VAE and vocabulary from the file, the data of its run (or data=... for a release folder), then a test on one split: image2text caption
scores, text2image fidelity, video PSNR and per-task losses, written as metrics.json, predictions.json and
the a2a sample pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, open_dict

from supra.a2a_release import load_a2a
from supra.callbacks.a2a_samples import A2ASamplesCallback
from supra.callbacks.caption_report import print_scores
from supra.checkpoints import load_supra_checkpoint
from supra.config_safety import instantiate_loaded
from supra.evaluation import chosen_data_config
from supra.tasks.a2a import CHECKPOINT_KIND, A2ATask
from supra.utils.files import write_json_atomic, write_text_atomic


def is_a2a(path: str) -> bool:
    """A supra.a2a checkpoint file, or an a2a release folder (it holds the VQ-VAE beside the GPT)."""
    p = Path(path)
    if p.is_dir():
        return (p / "vqvae.safetensors").is_file()
    if p.is_file():
        return load_supra_checkpoint(p)["supra"]["kind"] == CHECKPOINT_KIND
    return False


def _data_config(cfg: DictConfig, run_cfg: dict | None, vocab_path: str) -> DictConfig:
    data_cfg = chosen_data_config(cfg, run_cfg, "add data=a2a_mixture (and its sources)")
    with open_dict(data_cfg):
        data_cfg.vocab_path = vocab_path  # the model's own ids, never a retrained vocabulary
        data_cfg.vqvae_ckpt = None  # the VQ-VAE saved with the GPT is attached instead
        data_cfg.text_tokenizer = None
    return data_cfg


def evaluate_a2a(cfg: DictConfig) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    net, vqvae, vocab = load_a2a(cfg.ckpt)
    run_cfg = load_supra_checkpoint(cfg.ckpt)["supra"].get("run_config") if Path(cfg.ckpt).is_file() else None
    vocab_path = write_text_atomic(output_dir / "a2a_vocab.json", vocab.to_json())
    data_cfg = _data_config(cfg, run_cfg, str(vocab_path))
    datamodule = instantiate_loaded(data_cfg, f"ckpt={cfg.ckpt}", "run_config.data")
    datamodule.attach_vqvae(vqvae)
    model_cfg = (run_cfg or {}).get("model") or {}
    # the run's sampling, changed with +generation.image_temperature=0.5 etc.
    generation = {**(model_cfg.get("generation") or {}), **(cfg.get("generation") or {}), "seed": cfg.seed}
    task = A2ATask(net=net, optimizer=None, vqvae=vqvae, generation=generation,
                   test_metrics=model_cfg.get("test_metrics") or ("Bleu", "METEOR", "ROUGE_L", "CIDEr"))
    task.run_config = run_cfg
    trainer = L.Trainer(
        accelerator=cfg.accelerator, devices=1, logger=False, enable_checkpointing=False,
        default_root_dir=str(output_dir), enable_model_summary=False,
        callbacks=[A2ASamplesCallback(cfg.num_grid_images, output_dir=str(output_dir))],
    )
    trainer.test(task, datamodule=datamodule, verbose=False)
    results = task.test_results
    scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    scores = {k.removeprefix("test/"): v for k, v in sorted(scores.items())}
    write_json_atomic(output_dir / "metrics.json", {**scores, "split": results["split"], "ckpt": str(cfg.ckpt)})
    write_json_atomic(output_dir / "predictions.json",
                      [{"item": key, "caption": caption} for key, caption in results["predictions"].items()])
    print_scores(scores, f"a2a_nano, {results['split']} split")
    return {**results, "scores": scores}
