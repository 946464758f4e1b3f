"""The local paths a data config holds (data.root, caches, shards, at any depth: the a2a mixture's sources), made
absolute: a run records its config so, and the a2a codes cache keys a source on them, so that a run's data read
from a relative root and again from its recorded absolute one (evaluate.py) share their cached codes."""

from __future__ import annotations

from typing import Any

from supra.data.caption_sources.shards import local_shard_file
from supra.utils.files import absolute_path

# Keys of a data config, at any depth (the a2a mixture's sources), whose value is a local file or folder.
DATA_PATH_KEYS = frozenset({"root", "cache_dir", "output_dir", "tokenizer_path", "vocab_path", "gpt2_tokenizer",
                            "text_tokenizer"})
# Shard specs: a path or URL with braces, `::`-joined specs, or a list of them.
SHARD_KEYS = frozenset({"train_shards", "val_shards", "test_shards"})


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
