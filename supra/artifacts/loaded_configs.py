"""Configs read back from files (a checkpoint's run_config, a sweep job's config) build only known classes.

`hydra.utils.instantiate` imports and calls whatever `_target_` names, so a config inside a downloaded
checkpoint is code. Anything read back from a file goes through `check_targets` before it is instantiated;
configs composed from conf/ and the command line are the user's own and are not checked. A `pipe:` value (a
shard URL webdataset runs as a shell command) is code too: a file's is refused unless the command line gave it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from supra.utils.errors import SupraUserError, user_error_in

# The packages whose classes Supra's configs name (conf/: data modules, networks, tasks, optimizers and
# schedules, callbacks, loggers, profilers, the trainer and its strategy): nothing else is built from a file.
# Whole libraries are not allowed: torch.*, hydra.* hold loaders and command runners (torch.serialization.load,
# torch.utils.collect_env.run, hydra._internal.utils._locate) no deny-list keeps up with.
ALLOWED_TARGET_PREFIXES = (
    "supra.data.", "supra.models.", "supra.tasks.", "supra.callbacks.", "supra.loggers.",
    "torch.optim.",
    *(f"{lightning}.{part}." for lightning in ("lightning.pytorch", "pytorch_lightning")
      for part in ("callbacks", "loggers", "profilers", "strategies", "plugins", "trainer")),
)
ALLOWED_TARGETS = frozenset({
    "lightning.pytorch.Trainer", "pytorch_lightning.Trainer",
    "supra.runner.spawned_ranks.SpawnedRanks", "supra.runner.ddp_rendezvous.RendezvousTimedDDP",
    "supra.utils.lightning_subclasses.StepsProgressBar",
    "functools.partial",  # harmless: it only binds arguments, which are checked like any other node
})


def _allowed_name(name: str) -> bool:
    parts = name.split(".")
    # a private name (hydra._internal..., torch._C...) is no class a config names
    if not all(part.isidentifier() and not part.startswith("_") for part in parts):
        return False
    return name in ALLOWED_TARGETS or name.startswith(ALLOWED_TARGET_PREFIXES)


def _locate(target: str) -> Any:
    """What `target` names, found as Hydra's locate finds it (attribute first, else the submodule); None where
    it names nothing."""
    parts = target.split(".")
    try:
        found = importlib.import_module(parts[0])
    except ImportError:
        return None
    for index, part in enumerate(parts[1:], start=2):
        try:
            found = getattr(found, part)
        except AttributeError:
            try:
                found = importlib.import_module(".".join(parts[:index]))
            except ImportError:
                return None
    return found


def is_allowed_target(target: str) -> bool:
    """True where `target` is in the allow-list and names a class or function defined there: a name can
    reach through a module's imports (supra.data.images.os.system), so where it leads is checked too."""
    if not _allowed_name(target):
        return False
    found = _locate(target)
    if found is None:  # names nothing: instantiate says so in its own words
        return True
    module, qualname = getattr(found, "__module__", None), getattr(found, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or not callable(found):
        return False
    return f"{module}.{qualname}" in ALLOWED_TARGETS or module.startswith(ALLOWED_TARGET_PREFIXES) \
        or f"{module}." in ALLOWED_TARGET_PREFIXES


# Only pipe: is refused: it is the one scheme whose value is a command. Remote URLs (s3://, gs://, https://) are
# read as data (curl and fsspec are given the URL, not a shell), and a run trained on them is scored from them.
COMMAND_PREFIX = "pipe:"


def check_targets(config: Any, source: str, path: str = "", given: Any = None) -> None:
    """Raise SupraUserError naming `source` and the key if any `_target_` in `config` is outside the allow-list,
    or any value is a `pipe:` command that `given` (what the command line gave, at the same place in the tree)
    does not hold as it is.

    `config` may be a dict/list tree or an OmegaConf node; interpolations are not resolved (a target is
    refused if it is not a plain string).
    """
    if isinstance(config, DictConfig | ListConfig):
        config = OmegaConf.to_container(config, resolve=False)
    if isinstance(given, DictConfig | ListConfig):
        given = OmegaConf.to_container(given, resolve=True)
    if isinstance(config, Mapping):
        for key, value in config.items():
            key_path = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                if not isinstance(value, str) or not is_allowed_target(value):
                    raise SupraUserError(
                        f"{source}: {key_path}={value!r} is not allowed in a loaded config (only the data, model, task, "
                        "optimizer, callback and logger classes Supra's configs name are built from files): "
                        "remove it or retrain")
            else:
                check_targets(value, source, key_path, given.get(key) if isinstance(given, Mapping) else None)
    elif isinstance(config, Sequence) and not isinstance(config, str | bytes):
        for index, value in enumerate(config):
            theirs = given[index] if isinstance(given, Sequence) and not isinstance(given, str) \
                and index < len(given) else None
            check_targets(value, source, f"{path}[{index}]", theirs)
    elif isinstance(config, str) and config.startswith(COMMAND_PREFIX) and config != given:
        raise SupraUserError(
            f"{source}: {path}={config!r} is a shell command, which is not run from a loaded config: "
            "give it on the command line if you trust it, or name the shards by their path or URL")


# Classes that moved when Supra's package was laid out anew (kept so older checkpoints still load).
MOVED_TARGETS = {
    "supra.data.shapes.ShapesDataModule": "supra.data.captioning.shapes.ShapesDataModule",
    "supra.data.flickr8k.Flickr8kDataModule": "supra.data.captioning.flickr8k.Flickr8kDataModule",
    "supra.data.shapes_images.ShapesImagesDataModule": "supra.data.media.shapes_images.ShapesImagesDataModule",
    "supra.data.shapes_video.ShapesVideoDataModule": "supra.data.media.shapes_video.ShapesVideoDataModule",
    "supra.data.media_folder.MediaFolderDataModule": "supra.data.media.folder.MediaFolderDataModule",
    "supra.data.a2a_mixture.A2AMixtureDataModule": "supra.data.a2a.mixture.A2AMixtureDataModule",
    "supra.utils.csv_logger.CSVLoggerKeepingColumns": "supra.loggers.csv_logger.CSVLoggerKeepingColumns",
    "supra.utils.wandb_logger.build_wandb_logger": "supra.loggers.wandb_logger.build_wandb_logger",
    "supra.callbacks.caption_report.CaptionReportWriter": "supra.callbacks.test_report.TestReport",
    "supra.utils.private_apis.StepsProgressBar": "supra.utils.lightning_subclasses.StepsProgressBar",
}
# Keys a class no longer takes, because another part now owns them (the runner hands the VQ-VAE over).
DROPPED_KEYS = {"supra.data.a2a.mixture.A2AMixtureDataModule": ("vqvae_ckpt",)}


def upgrade_run_config(config: Any) -> Any:
    """A copy of a loaded config tree with moved `_target_`s renamed and dropped keys removed, so the
    checkpoints of earlier Supra versions keep loading."""
    if isinstance(config, Mapping):
        out = {key: upgrade_run_config(value) for key, value in config.items()}
        target = out.get("_target_")
        if isinstance(target, str):
            out["_target_"] = target = MOVED_TARGETS.get(target, target)
            for key in DROPPED_KEYS.get(target, ()):
                out.pop(key, None)
        return out
    if isinstance(config, list | tuple):
        return [upgrade_run_config(value) for value in config]
    return config


def instantiate_loaded(config: Any, source: str, key_path: str = "", given: Any = None, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` for a config read from `source` (a file) at `key_path`, after `check_targets`;
    `given`: the part of `config` the command line gave (its `pipe:` values are the user's own)."""
    check_targets(config, source, key_path, given)
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as err:
        # a setting this version's class does not take (a file of another Supra version, or edited): one line
        # naming the file and the key, not Hydra's traceback; the class's own refusals are said as they are
        cause = err.__cause__
        if user_error_in(err) is not None or not isinstance(cause, TypeError):
            raise
        raise SupraUserError(f"{source}: {key_path} cannot be built by this version of Supra ({cause}): "
                             "use the Supra version that wrote it, or retrain") from None
