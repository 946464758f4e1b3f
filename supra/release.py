"""The SupraVL-Nano-900k release folder (SPEC.md section 1), written and read.

    model.safetensors   the release's tensor names; the tied head saved under both of its names
    config.json         exactly the release keys (+ bos_token_id, eos_token_id)
    tokenizer.json      the caption BPE
    model.pt            full training state: model, optimizer and scheduler
    README.md           model card: architecture, training settings, metrics, sample grid
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from supra.checkpoints import load_state_strictly, load_supra_checkpoint
from supra.data.caption_tokenizer import CaptionTokenizer
from supra.models.vlm_nano import VLMNano
from supra.utils.errors import SupraUserError
from supra.utils.files import atomic_dir

RELEASE_KEYS = ("D_MODEL", "N_HEADS", "N_LAYERS", "D_FF", "VIS_CH", "N_VIS", "VOCAB_SIZE", "MAX_SEQ", "IMG_SIZE")
OPTIONAL_KEYS = ("attn.mask",)  # the release may carry causal-mask buffers; our model computes the mask


def is_release_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def net_state_from_checkpoint(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The VLMNano state dict inside a CaptioningTask checkpoint (keys without the 'net.' prefix)."""
    return {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}


def _model_card(config: dict, run_config: dict | None, metrics: dict | None, has_grid: bool) -> str:
    lines = ["# SupraVL-Nano-900k (exported by Supra)", "",
             "Image captioner: CNN encoder -> 16 visual tokens -> 3-layer GPT decoder (SPEC.md section 1).", "",
             "## Architecture", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in config.items()]
    if run_config:
        model, trainer = run_config.get("model", {}), run_config.get("trainer", {})
        data = run_config.get("data", {})
        lines += ["", "## Training", "",
                  f"- data: `{data.get('_target_', '?')}`, batch {data.get('batch_size', '?')}",
                  f"- optimizer: AdamW lr {model.get('optimizer', {}).get('lr')}, betas {model.get('optimizer', {}).get('betas')}, "
                  f"weight decay {model.get('weight_decay')}",
                  f"- schedule: warm-up {model.get('scheduler', {}).get('warmup_steps')} steps, cosine to {model.get('scheduler', {}).get('min_lr')}",
                  f"- steps {trainer.get('max_steps')}, epochs {trainer.get('max_epochs')}, precision {trainer.get('precision')}, "
                  f"gradient clipping {trainer.get('gradient_clip_val')}"]
    if metrics:
        lines += ["", f"## Metrics ({metrics.get('split', 'test')} split, {metrics.get('n_images', '?')} images, "
                      f"decode={metrics.get('decode', 'beam')})", "", "| metric | score |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float)]
    if has_grid:
        lines += ["", "## Samples", "", "![sample captions](samples.png)"]
    lines += ["", "## Use", "", "Build the model from config.json, load model.safetensors, tie `lm_head` to `tok_emb`,",
              "caption with beam search of width 3 (BOS/EOS ids in config.json).", ""]
    return "\n".join(lines)


def export_release(ckpt: str | Path, out_dir: str | Path) -> Path:
    """Write the release folder for a captioning checkpoint; the folder appears complete or not at all."""
    checkpoint = load_supra_checkpoint(ckpt, kind="supra.captioning")
    meta = checkpoint["supra"]
    run_config = meta.get("run_config") or {}
    net_config = {k: v for k, v in run_config["model"]["net"].items() if not k.startswith("_")}
    net = VLMNano(**net_config)
    net.load_state_dict(net_state_from_checkpoint(checkpoint))
    tokenizer = CaptionTokenizer.from_json(meta["tokenizer"])
    config = {**net.config.release_config, "bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id}
    run_dir = Path(ckpt).resolve().parent.parent
    metrics_path, grid_path = run_dir / "metrics.json", run_dir / "samples.png"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        # safetensors refuses tensors that share memory: the tied head is saved as its own copy.
        state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "tokenizer.json").write_text(tokenizer.to_json())
        torch.save({"model": net.state_dict(), "optimizer": (checkpoint.get("optimizer_states") or [None])[0],
                    "scheduler": (checkpoint.get("lr_schedulers") or [None])[0],
                    "global_step": checkpoint.get("global_step")}, tmp / "model.pt")
        if grid_path.is_file():
            shutil.copyfile(grid_path, tmp / "samples.png")
        (tmp / "README.md").write_text(_model_card(config, run_config, metrics, grid_path.is_file()))
    return out_dir


def read_release_config(folder: str | Path) -> dict:
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SupraUserError(f"{folder / 'config.json'} is not readable JSON ({err})") from None
    missing = [k for k in RELEASE_KEYS if k not in config]
    if missing:
        raise SupraUserError(f"{folder / 'config.json'} lacks the release keys {missing}")
    return config


def load_release_weights(net: VLMNano, folder: str | Path) -> None:
    """Load model.safetensors into `net`: names and shapes checked strictly, the optional attn.mask
    buffers ignored; any mismatch is reported in one message."""
    path = Path(folder) / "model.safetensors"
    try:
        state = load_file(path)
    except Exception as err:  # safetensors raises its own error types
        raise SupraUserError(f"{path} is not a readable safetensors file ({err})") from None
    state = {k: v for k, v in state.items() if not k.endswith(OPTIONAL_KEYS)}
    load_state_strictly(net, state, str(path))
    net.lm_head.weight = net.tok_emb.weight  # re-tie: loading gave the head its own copy of the values


def load_release(folder: str | Path) -> tuple[VLMNano, CaptionTokenizer, dict]:
    """(net in eval mode, tokenizer, config.json) from a release folder."""
    config = read_release_config(folder)
    net = VLMNano(**{k: config[k] for k in RELEASE_KEYS})
    load_release_weights(net, folder)
    tokenizer = CaptionTokenizer.from_file(Path(folder) / "tokenizer.json")
    return net.eval(), tokenizer, config


def load_captioner(path: str | Path) -> tuple[VLMNano, CaptionTokenizer, dict | None]:
    """(net in eval mode, tokenizer, training run config or None) from a train.py checkpoint or a release folder."""
    if is_release_dir(path):
        net, tokenizer, _ = load_release(path)
        return net, tokenizer, None
    if Path(path).is_dir():
        raise SupraUserError(f"ckpt={path} is a folder without config.json + model.safetensors: "
                             "give a release folder or a .ckpt file written by train.py")
    checkpoint = load_supra_checkpoint(path, kind="supra.captioning")
    meta = checkpoint["supra"]
    if not meta.get("run_config") or not meta.get("tokenizer"):
        raise SupraUserError(f"ckpt={path} lacks its run config or tokenizer: was it written by train.py?")
    net_config = {k: v for k, v in meta["run_config"]["model"]["net"].items() if not k.startswith("_")}
    net = VLMNano(**net_config)
    net.load_state_dict(net_state_from_checkpoint(checkpoint))
    return net.eval(), CaptionTokenizer.from_json(meta["tokenizer"]), meta["run_config"]
