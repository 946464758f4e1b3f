"""The command line as Hydra reads it, before it composes: each override parsed, the config groups of conf/, a
command line that names configs of the user's, and conf/ composed with overrides. Below cli.py and
unknown_keys.py, which both check a command line with these."""

from __future__ import annotations

from collections.abc import Sequence

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig

from supra.utils.start_up import REPO_ROOT

CONF_DIR = REPO_ROOT / "conf"  # the repository's conf/, beside the package


def compose_conf(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """conf/<config_name>.yaml composed with `overrides` (Hydra's own settings left out): another config
    than the command's, as a command that names a train.py line reads its values, inside the command's
    Hydra app (whose search path is conf/ already) or outside one."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra.compose(config_name, overrides=list(overrides))
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name, overrides=list(overrides))


def parsed_overrides(argv: Sequence[str]) -> list[Override]:
    """Each `key=value`, `+key=value`, `~key` of `argv` as Hydra reads it; flags (`-m`, `--cfg job`) and what
    Hydra's grammar cannot read (which Hydra then names) are left out."""
    parser = OverridesParser.create()
    overrides = []
    for arg in argv:
        if arg.startswith("-") or ("=" not in arg and not arg.startswith("~")):
            continue
        try:
            overrides.append(parser.parse_override(arg))
        except HydraException:
            continue
    return overrides


OTHER_CONFIG_FLAGS = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--experimental-rerun")


def other_configs(argv: Sequence[str]) -> bool:
    """Whether the command line composes from more than conf/ (another config or folder, a search path of the
    user's, whose groups and keys conf/ does not know): then its keys and choices are Hydra's to check."""
    return any(arg.startswith(OTHER_CONFIG_FLAGS) or arg.lstrip("+").startswith("hydra.searchpath") for arg in argv)


def is_config_group(key: str) -> bool:
    """Whether `key` (`data`, `model/encoder`) names a config group of conf/ rather than a key of the config."""
    return not key.startswith("hydra") and (CONF_DIR / key).is_dir()
