"""The kinds of model files Supra reads and writes (checkpoints.artifact_kind says which one a path is).

Supra writes two sorts of files: train.py checkpoints (`.ckpt`, a Lightning checkpoint whose "supra"
section names its kind) and release folders (the published layouts of the two models). The kind decides
how a file is loaded, evaluated, exported and sampled.
"""

from __future__ import annotations

import json
from pathlib import Path

CAPTIONER_CHECKPOINT = "supra.captioning"  # train.py checkpoints, by the task that wrote them
VQVAE_CHECKPOINT = "supra.vqvae"
A2A_CHECKPOINT = "supra.a2a"
CAPTIONER_RELEASE = "release.supravl_nano"  # release folders: config.json + model.safetensors (+ vqvae.safetensors)
A2A_RELEASE = "release.a2a_nano"
CHECKPOINT_KINDS = (CAPTIONER_CHECKPOINT, VQVAE_CHECKPOINT, A2A_CHECKPOINT)
RELEASE_NAMES = {CAPTIONER_RELEASE: "a SupraVL-Nano (captioner) release", A2A_RELEASE: "an a2a_nano release"}
# every kind as a message names it: the kind strings above are the files' own labels
KIND_NAMES = {CAPTIONER_CHECKPOINT: "a captioner checkpoint", VQVAE_CHECKPOINT: "a VQ-VAE checkpoint",
              A2A_CHECKPOINT: "an a2a_nano checkpoint", **RELEASE_NAMES}


A2A_MODEL_TYPE = "supra_a2a_nano"  # config.json's model_type in an a2a release


def release_kind(folder: str | Path) -> str | None:
    """The kind of a release folder, or None when `folder` is not one (no config.json + model.safetensors).
    The a2a release holds its VQ-VAE beside the GPT, and its config.json says so: one that lost its VQ-VAE
    is still an a2a release (reading it then names the missing file), not a captioner."""
    folder = Path(folder)
    if not (folder.is_dir() and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        return None
    if (folder / "vqvae.safetensors").is_file():
        return A2A_RELEASE
    try:
        says_a2a = json.loads((folder / "config.json").read_text()).get("model_type") == A2A_MODEL_TYPE
    except (ValueError, AttributeError, OSError):  # unreadable: the captioner's reader names it
        says_a2a = False
    return A2A_RELEASE if says_a2a else CAPTIONER_RELEASE
