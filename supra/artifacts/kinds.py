"""The kinds of model files Supra reads and writes (checkpoints.artifact_kind says which one a path is).

Supra writes two sorts of files: train.py checkpoints (`.ckpt`, a Lightning checkpoint whose "supra"
section names its kind) and release folders (the published layouts of the two models). The kind decides
how a file is loaded, evaluated, exported and sampled.
"""

from __future__ import annotations

from pathlib import Path

CAPTIONER_CHECKPOINT = "supra.captioning"  # train.py checkpoints, by the task that wrote them
VQVAE_CHECKPOINT = "supra.vqvae"
A2A_CHECKPOINT = "supra.a2a"
CAPTIONER_RELEASE = "release.supravl_nano"  # release folders: config.json + model.safetensors (+ vqvae.safetensors)
A2A_RELEASE = "release.a2a_nano"
CHECKPOINT_KINDS = (CAPTIONER_CHECKPOINT, VQVAE_CHECKPOINT, A2A_CHECKPOINT)


def release_kind(folder: str | Path) -> str | None:
    """The kind of a release folder, or None when `folder` is not one (no config.json + model.safetensors).
    The a2a release holds its VQ-VAE beside the GPT."""
    folder = Path(folder)
    if not (folder.is_dir() and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        return None
    return A2A_RELEASE if (folder / "vqvae.safetensors").is_file() else CAPTIONER_RELEASE
