"""The local paths a run config holds, absolute: a run records them so (its data read again from any folder), and
evaluate.py reads those a run recorded relative (before it recorded them absolute) against the folder it
trained in."""

from __future__ import annotations

import os
from typing import Any

from supra.artifacts.hub import is_repo_id
from supra.data.caption_sources.shards import local_shard_file
from supra.utils.files import absolute_path

# Keys of a data config, at any depth (the a2a mixture's sources), whose value is a local file or folder.
DATA_PATH_KEYS = frozenset({"root", "cache_dir", "output_dir", "tokenizer_path", "vocab_path", "gpt2_tokenizer",
                            "text_tokenizer"})
# Shard specs: a path or URL with braces, `::`-joined specs, or a list of them.
SHARD_KEYS = frozenset({"train_shards", "val_shards", "test_shards"})
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


def absolute_data_paths(data_cfg: dict[str, Any], base: str) -> dict[str, Any]:
    """`data_cfg` with the local paths of DATA_PATH_KEYS and SHARD_KEYS absolute against `base`, sources included."""
    found: dict[str, Any] = {}
    for key, value in data_cfg.items():
        if isinstance(value, dict):
            found[key] = absolute_data_paths(value, base)
        elif key in DATA_PATH_KEYS and isinstance(value, str) and value and local_shard_file(value) == value:
            found[key] = absolute_path(value, base)
        elif key in SHARD_KEYS:
            found[key] = absolute_shards(value, base)
        else:
            found[key] = value
    return found


def absolute_shards(spec: Any, base: str) -> Any:
    """A shard spec with each local path in it absolute against `base`; a URL (s3://, file:, pipe:) as it is.
    Braces are kept: `shards/{00000..00009}.tar` becomes `<base>/shards/{00000..00009}.tar`."""
    if isinstance(spec, list):
        return [absolute_shards(one, base) for one in spec]
    if not isinstance(spec, str) or not spec:
        return spec
    return "::".join(absolute_path(part, base) if part and local_shard_file(part) == part else part
                     for part in spec.split("::"))


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
