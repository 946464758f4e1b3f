"""The local paths a run config holds, absolute: a run records them so (its data read again from any folder), and
evaluate.py reads those a run recorded relative (before it recorded them absolute) against the folder it
trained in."""

from __future__ import annotations

import os
from typing import Any

from supra.artifacts.hub import is_repo_id
from supra.data.local_paths import absolute_data_paths
from supra.utils.files import absolute_path

# A model config's model files: a local path, or a Hub id (left as it is).
MODEL_FILE_KEYS = ("vqvae_ckpt", "init_from")


def with_absolute_paths(run_config: dict[str, Any], base: str | None = None) -> dict[str, Any]:
    """`run_config` (resolved) with each relative local path of its data and model files absolute against `base`
    (default: the current folder, which a run reads them from); URLs, Hub ids and absolute paths as they are."""
    found = dict(run_config)
    base = base or os.getcwd()
    if isinstance(found.get("data"), dict):
        found["data"] = absolute_data_paths(found["data"], base)
    if isinstance(found.get("model"), dict):
        model = found["model"] = dict(found["model"])
        for key in MODEL_FILE_KEYS:
            if isinstance(model.get(key), str) and model[key] and not is_repo_id(model[key]):
                model[key] = absolute_path(model[key], base)
    return found


def relative_paths_read_against(stored: dict[str, Any], read: dict[str, Any], prefix: str = "data") -> list[str]:
    """Each `prefix.key=value` of `stored` that `read` (absolute_data_paths of it) reads as another path:
    `data.root=../photos -> /data/photos`, for the line that says so."""
    said = []
    for key, value in stored.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            said += relative_paths_read_against(value, read.get(key) or {}, name)
        elif read.get(key) != value:
            said.append(f"{name}={value} -> {read.get(key)}")
    return said


def trained_folder(run_config: dict[str, Any] | None) -> str | None:
    """The folder a run trained in (paths.root_dir: the working folder of train.py, recorded by every run), against
    which the relative paths it recorded before they were recorded absolute were read; None if not recorded."""
    folder = ((run_config or {}).get("paths") or {}).get("root_dir")
    return folder if isinstance(folder, str) and os.path.isabs(folder) else None


def as_trained(run_config: dict[str, Any]) -> dict[str, Any]:
    """A stored run config with its relative paths read against the folder its run trained in, where recorded."""
    folder = trained_folder(run_config)
    return with_absolute_paths(run_config, folder) if folder else run_config
