"""The Optuna sweeper's settings, checked before its first trial: Optuna finds these problems only once
Hydra has set the sweep up, and says them as tracebacks (`ZeroDivisionError` for n_jobs=0, "No trials are
completed yet" for n_trials=0, sqlalchemy's `OperationalError` for a storage file that cannot be made,
"Cannot overwrite study direction" for a stored study asked to go the other way)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from supra.utils.errors import SupraUserError
from supra.utils.files import check_writable_dir


def check_optuna_settings(sweeper: DictConfig) -> None:
    """One line for a bad hydra.sweeper.* of the Optuna sweeper (nothing for another sweeper)."""
    if "n_trials" not in sweeper:
        return
    for key in ("n_trials", "n_jobs"):
        value = sweeper.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SupraUserError(f"hydra.sweeper.{key}={value!r} must be a whole number >= 1")
    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if not storage or not str(storage).startswith("sqlite:///"):
        return
    path = Path(str(storage).removeprefix("sqlite:///"))
    try:
        check_writable_dir(path.parent, create=False)
    except OSError as err:
        raise SupraUserError(f"hydra.sweeper.storage={storage}: cannot write the study file there ({err.strerror or err}): "
                             "give a file in a folder you can write to (sqlite:///sweeps.db, beside the command)") from None
    if name and path.is_file():
        _check_stored_direction(str(storage), str(name), sweeper.get("direction"))


def _check_stored_direction(storage: str, name: str, asked: object) -> None:
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # no such study yet: the sweeper makes it
        return
    stored = [d.name.lower() for d in study.directions]
    wanted = [str(d) for d in asked] if OmegaConf.is_list(asked) or isinstance(asked, list) else [str(asked)]
    if stored != wanted:
        raise SupraUserError(f"hydra.sweeper.direction={asked}, but the study {name} in {storage} was made to "
                             f"{', '.join(stored)}: give its direction, or another hydra.sweeper.study_name")
