"""A run config recorded by an older Supra, read as the one recorded now: the settings it lacks, added since, at
the values its run used without naming them, so that a resume says only what really changed."""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any

from supra.models.vlm_generation import DecodeConfig

# Settings added since checkpoints first recorded their run config, at what the code before them did (each the
# default given when it was added, so a run that leaves it out trains as it did).
ADDED_SINCE: dict[str, Any] = {
    "data.val_fraction": 0.1, "data.test_fraction": 0.1,  # a caption folder's split was 10% val, 10% test
    "data.resampled": False,  # shards were each read once an epoch
    "data.caption_dropout": 0.0,  # a2a: every text2image caption kept
    "model.net.encoder": "cnn", "model.net.fusion": "prefix", "model.net.resampler_layers": 0,  # the release's
    "model.code_softmax": False,  # a2a: the loss normalised over the whole vocabulary
    "model.generation.image_guidance": 1.0, "model.generation.image_best_of": 1,  # a2a: neither guided nor picked
}


def with_keys_added_since(theirs: dict[str, Any], ours: dict[str, Any],
                          skipped: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    """A checkpoint's run config `theirs` with the data and model settings this run's `ours` holds and it lacks
    filled in: those ADDED_SINCE at their old value, model.decode's at DecodeConfig's defaults (it came to list
    every field), and any other at ours, since what its run used is not known. Returns it (a copy) and the dotted
    names of those others that ours sets (not null): an older Supra did not record them. Those `skipped` (dotted
    names, and the settings below them: said elsewhere, or not at all) are not filled."""
    filled = copy.deepcopy(theirs)
    model = filled.get("model")
    if isinstance(model, dict) and isinstance(model.get("decode"), dict):
        model["decode"] = asdict(DecodeConfig()) | model["decode"]
    unrecorded = []
    for group in ("data", "model"):
        if not isinstance(ours.get(group), dict) or not isinstance(filled.get(group), dict):
            continue
        for key, value in flat_settings(ours[group], f"{group}.").items():
            if _recorded(filled, key) or any(key == name or key.startswith(f"{name}.") for name in skipped):
                continue
            if key in ADDED_SINCE:
                value = ADDED_SINCE[key]
            elif value is not None:
                unrecorded.append(key)
            _put(filled, key, value)
    return filled, unrecorded


def flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"decode": {"beam_width": 3}} -> {"decode.beam_width": 3}; each name after `prefix` ("model.")."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        flat |= flat_settings(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
    return flat


def _recorded(config: dict[str, Any], dotted: str) -> bool:
    """Whether `config` holds `dotted` or a setting above it of another shape (model.scheduler=null recorded
    holds model.scheduler.min_lr: it had no schedule, which is no key it lacked)."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _put(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    config[last] = value
