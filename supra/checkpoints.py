"""Reading Supra's Lightning checkpoints safely, with one-line errors for files that are not ours."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from supra.utils.errors import SupraUserError


def load_supra_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by train.py (weights_only: no code runs while reading it).

    Raises SupraUserError naming the file if it is missing, unreadable, not a Supra checkpoint, or of
    another kind than `kind` (e.g. "supra.captioning").
    """
    path = Path(path)
    if path.is_dir():
        raise SupraUserError(f"ckpt={path} is a directory: give a .ckpt file written by train.py")
    if not path.is_file():
        raise SupraUserError(f"ckpt={path} does not exist: give a .ckpt file written by train.py")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SupraUserError(f"ckpt={path} is not a readable PyTorch checkpoint ({first_line.split('. ')[0][:120]}): "
                             "give a .ckpt written by train.py, and copy it again if it was cut short") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise SupraUserError(f"ckpt={path} is not a Lightning checkpoint (no state_dict)")
    meta = checkpoint.get("supra")
    if not isinstance(meta, dict) or "kind" not in meta:
        raise SupraUserError(f"ckpt={path} was not written by Supra's train.py (no 'supra' section)")
    if kind is not None and meta["kind"] != kind:
        raise SupraUserError(f"ckpt={path} is a {meta['kind']} checkpoint, not {kind}: give a checkpoint of that model")
    return checkpoint


def load_vqvae(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A VQ-VAE checkpoint from train.py -> (VQVAE in eval mode, the run config it was trained with)."""
    from supra.config_safety import instantiate_loaded

    checkpoint = load_supra_checkpoint(path, kind="supra.vqvae")
    run_cfg = checkpoint["supra"].get("run_config") or {}
    net_cfg = run_cfg.get("model", {}).get("net")
    if not isinstance(net_cfg, dict) or "_target_" not in net_cfg:
        raise SupraUserError(f"ckpt={path} holds no VQ-VAE config (model.net): was it written by train.py?")
    net = instantiate_loaded(net_cfg, f"ckpt={path}", "run_config.model.net")
    weights = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise SupraUserError(f"ckpt={path}: its weights do not fit its own config ({str(err).splitlines()[0][:120]})") from None
    return net.eval(), run_cfg


def load_state_strictly(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """module.load_state_dict(state), with every missing, unexpected or wrongly shaped key reported in one
    line naming `source` (the file), instead of torch's multi-line RuntimeError."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        raise SupraUserError(
            f"{source} does not fit this model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}, wrong shape {[(k, tuple(state[k].shape)) for k in wrong_shape[:5]]}"
        )
    module.load_state_dict(state)
