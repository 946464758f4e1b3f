"""A study kept in storage (hydra.sweeper.storage), checked before the first trial: the file is a study file,
and the study holds values of this sweep's direction, metric and setup. Optuna records only the direction: a
study resumed with another metric would rank the values of two metrics as one, and one on other data or another
model (the default study_name is the search's, whatever the experiment) would join it without a word. A
study whose parameters this sweep searches another way would fail its first trial with Optuna's traceback."""

from __future__ import annotations

import logging
from contextlib import closing
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from supra.utils.errors import SupraUserError
from supra.utils.files import check_writable_dir
from supra.utils.private_apis import optuna_search_space

STUDY_METRIC = "supra_optimized_metric"  # the study's user attribute naming what its values are
STUDY_SETUP = "supra_trials_run_on"  # the study's user attribute: what its trials train and score (study_setup)
# Beyond the data and model: the budget a trial's value is reached in. The seed is not: another one gives values
# of the same meaning, with other noise.
SETUP_TRAINER_KEYS = ("max_steps", "max_epochs", "accumulate_grad_batches", "gradient_clip_val",
                      "limit_train_batches", "limit_val_batches")
# Data and model settings that leave a trial's value as it is: speed and display switches, where files go, and what
# only the test reads (trials compare on val).
QUIET_SETUP_KEYS = {"data.num_workers", "data.pin_memory", "data.show_progress", "data.tokenizer_path",
                    "data.vocab_path", "data.cache_dir", "data.output_dir", "data.split", "model.compile",
                    "model.fused_optimizer", "model.loss_in_progress_bar", "model.score_every_n_val",
                    "model.test_metrics", "model.net.channels_last", "model.net.rebuilt"}
# The one data whose data.eval_batch_size moves a trial's value: an a2a model's val/loss is a mean over each batch's
# tokens and its samples are drawn a batch together. A captioner's scores and val/loss, and a VQ-VAE's scores (but
# for float rounding), are the same at any (README), so for other data it is left out.
A2A_DATA = "supra.data.a2a.mixture.A2AMixtureDataModule"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
OPTUNA_TABLES = {"version_info", "alembic_version"}  # tables every Optuna study file has

log = logging.getLogger(__name__)


def directions_given(asked: object) -> list[str]:
    """hydra.sweeper.direction as the names Optuna is given: one, or a list of them (several objectives, refused:
    a trial returns one value); the sweeper's own default is its Direction enum's member."""
    values = list(asked) if OmegaConf.is_list(asked) or isinstance(asked, list) else [asked]
    return [value.name if isinstance(value, Enum) else str(value) for value in values]


def check_storage(sweeper: DictConfig, optimized_metric: str | None, setup: dict[str, Any] | None = None) -> None:
    """hydra.sweeper.storage as a URL Optuna can open, an SQLite file that is a study file (or none yet), and a
    stored study that holds values of this sweep's direction, metric and setup; a new one is made here,
    recording `optimized_metric` and `setup` (study_setup: what its trials run on)."""
    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if not storage:
        return
    if "://" not in str(storage):  # a file's path: sqlalchemy's "Could not parse SQLAlchemy URL" traceback
        use = f"sqlite:///{storage}" if ":" not in str(storage) else "sqlite:///PATH"
        raise SupraUserError(f"hydra.sweeper.storage={storage} is no database URL: use {use} (a study file, made "
                             "if it is not there)")
    if not str(storage).startswith("sqlite:///"):  # a database server's (postgresql://...): Optuna connects to it
        return
    path = Path(str(storage).removeprefix("sqlite:///").partition("?")[0])  # ?timeout=...: sqlite's options
    try:
        check_writable_dir(path.parent, create=False)
    except OSError as err:
        raise SupraUserError(f"hydra.sweeper.storage={storage}: cannot write the study file there ({err.strerror or err}): "
                             "give a file in a folder you can write to (sqlite:///sweeps.db, beside the command)") from None
    _check_study_file(str(storage), path)
    if name:
        _check_stored_study(str(storage), str(name), sweeper.get("direction"), optimized_metric, setup)


def _check_study_file(storage: str, path: Path) -> None:
    """A study file that sqlite cannot open (a folder, another kind of file) as one line, not sqlalchemy's
    OperationalError or DatabaseError traceback; a missing or empty one is made into a study file."""
    if path.is_dir():
        raise SupraUserError(f"hydra.sweeper.storage={storage} is a folder: give a file in it "
                             f"(hydra.sweeper.storage=sqlite:///{path / 'sweeps.db'})")
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as err:
        raise SupraUserError(f"hydra.sweeper.storage={storage}: cannot read the study file ({err.strerror or err}): "
                             "give one you can read and write") from None
    if header and header != SQLITE_HEADER:
        raise SupraUserError(f"hydra.sweeper.storage={storage}: {path} is not an SQLite database, so it holds no "
                             "study: give another file, made if it is not there (sqlite:///sweeps.db, beside the command)")
    tables = _tables(path) if header else []
    if tables and not OPTUNA_TABLES & set(tables):  # Optuna would add its own tables to another program's file
        raise SupraUserError(f"hydra.sweeper.storage={storage}: {path} is another program's SQLite database (tables "
                             f"{', '.join(tables[:5])}{', ...' if len(tables) > 5 else ''}), not a study file: give "
                             "another file, made if it is not there (sqlite:///sweeps.db, beside the command)")


def _tables(path: Path) -> list[str]:
    """The tables of the SQLite file at `path`, read without writing to it (none if it cannot be read: Optuna
    then says why as it opens it)."""
    import sqlite3

    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    except sqlite3.Error:
        return []


def _check_stored_study(storage: str, name: str, asked: object, metric: str | None,
                        setup: dict[str, Any] | None = None) -> None:
    import optuna
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    wanted = directions_given(asked)
    try:
        made = False
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # a new study: made as the sweeper would make it (it then loads this one)
            study, made = optuna.create_study(study_name=name, storage=storage, directions=wanted), True
    # a database the checks above cannot tell (locked, damaged tables; Optuna wraps sqlalchemy's errors in its
    # StorageInternalError), or sqlite's options in the URL not understood (?timeout=abc: a ValueError)
    except (SQLAlchemyError, StorageInternalError, ValueError) as err:
        cause = err.__cause__ if isinstance(err, StorageInternalError) and err.__cause__ else err
        reason = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        fix = ("give the URL's options as sqlite takes them (?timeout=SECONDS), or none" if isinstance(err, ValueError)
               else "give another file (sqlite:///sweeps.db, beside the command), or another database")
        raise SupraUserError(f"hydra.sweeper.storage={storage}: Optuna cannot open the study there ({reason}): "
                             f"{fix}") from None
    stored = [d.name.lower() for d in study.directions]
    recorded = study.user_attrs.get(STUDY_METRIC)
    changed = setup_changes(study.user_attrs.get(STUDY_SETUP), setup)
    if stored != wanted:
        raise SupraUserError(f"hydra.sweeper.direction={asked}, but the study {name} in {storage} was made to "
                             f"{', '.join(stored)}: give its direction, or another hydra.sweeper.study_name"
                             f"{_way_out(study, name, storage)}")
    if metric and recorded and recorded != metric:
        raise SupraUserError(f"optimized_metric={metric}, but the study {name} in {storage} holds values of "
                             f"{recorded}: give optimized_metric={recorded}, or another hydra.sweeper.study_name"
                             f"{_way_out(study, name, storage)}")
    if changed:  # another data set or model: its values and theirs are no longer of one thing
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise SupraUserError(f"the study {name} in {storage} holds trials run on other settings than this sweep's: "
                             f"{shown}; its values and theirs would be ranked as one: give another "
                             f"hydra.sweeper.study_name (or the study's settings){_way_out(study, name, storage)}")
    if metric and not recorded:  # a new study, or one stored before studies recorded their metric
        study.set_user_attr(STUDY_METRIC, metric)
    if setup is not None and STUDY_SETUP not in study.user_attrs:
        if made or _holds_no_value(study):
            study.set_user_attr(STUDY_SETUP, setup)
        else:  # its trials' settings were never recorded: taken as they are, not as this sweep's
            log.info("the study %s in %s was stored without the settings its trials ran on: this sweep's are not "
                     "checked against them", name, storage)


def _way_out(study: Any, name: str, storage: str) -> str:
    """For a refused study none of whose trials completed (its first run refused a mistyped optimized_metric as its
    trial started, or every trial so far failed): how to delete it. It is never deleted or made again here: a sweep
    between two batches runs no trial, and would go on writing into the study made in its place (SQLite gives it
    the same id), labelled with this sweep's settings."""
    if not _holds_no_value(study):
        return ""
    return (f", or (it holds no completed trial) delete it if no sweep is running on it: optuna delete-study "
            f"--study-name {name} --storage {storage}")


def _holds_no_value(study: Any) -> bool:
    """No trial of `study` completed, and none runs (another session's, which would still report to it)."""
    from optuna.trial import TrialState

    return not any(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in study.get_trials(deepcopy=False))


def check_study_search_space(config: DictConfig) -> None:
    """A stored study resumed with a parameter searched another way (`choice(0.0,0.05)` where it was an interval):
    Optuna's "Cannot set different distribution kind" traceback in the first trial, left RUNNING in the study."""
    sweeper = config.hydra.sweeper
    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if "n_trials" not in sweeper or not storage or not name:
        return
    import optuna
    from optuna.distributions import check_distribution_compatibility

    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    searched = optuna_search_space([*params, *(str(o) for o in config.hydra.overrides.task)])
    try:
        study = optuna.load_study(study_name=str(name), storage=str(storage))
    except KeyError:  # no such study (another sweeper's storage): nothing stored to differ from
        return
    for trial in study.get_trials(deepcopy=False):
        for key, stored in trial.distributions.items():
            if key not in searched:
                continue
            try:
                check_distribution_compatibility(stored, searched[key])
            except ValueError:
                raise SupraUserError(f"{key} is searched as {searched[key]}, but the study {name} in {storage} searched it "
                                     f"as {stored}, which Optuna cannot change: search it so, or give another "
                                     "hydra.sweeper.study_name") from None


def study_setup(config: DictConfig, searched: list[str]) -> dict[str, Any]:
    """What a sweep's trials run on, recorded in a stored study: {"settings": the experiment, data and model
    chosen and every data and model setting (flat, `data.num_val`) with the budget (SETUP_TRAINER_KEYS), less
    QUIET_SETUP_KEYS and the `searched` keys; "searched": those keys}. A value under paths or Hydra's folders
    (`${paths.data_dir}/flickr8k`) is kept as written: the same data on another machine."""
    searched = sorted(set(searched))
    choices = config.hydra.runtime.choices
    settings: dict[str, Any] = {group: choices.get(group) for group in ("experiment", "data", "model")}
    for group in ("data", "model"):
        if isinstance(config.get(group), DictConfig):
            settings |= _flat_settings(config, OmegaConf.to_container(config[group], resolve=False), f"{group}.")
    trainer = config.get("trainer")
    if isinstance(trainer, DictConfig):
        raw = OmegaConf.to_container(trainer, resolve=False)
        settings |= _flat_settings(config, {k: raw[k] for k in SETUP_TRAINER_KEYS if k in raw}, "trainer.")
    kept = {key: value for key, value in settings.items()
            if not _quiet(key, settings) and not any(_under(key, s) for s in searched)}
    return {"settings": kept, "searched": searched}


def _quiet(key: str, settings: dict[str, Any]) -> bool:
    """`key` leaves the value of a trial run on `settings` as it is (QUIET_SETUP_KEYS, TEST_ONLY_KEYS; A2A_DATA)."""
    return (key in QUIET_SETUP_KEYS or key.rpartition(".")[2] in TEST_ONLY_KEYS
            or (key == "data.eval_batch_size" and settings.get("data._target_") != A2A_DATA))


# What only the test split reads, the data's own or an a2a source's (data.sources.shapes.num_test): trials are
# compared on val, drawn apart from test (each split its own seed)
TEST_ONLY_KEYS = ("num_test", "test_items")


def _under(key: str, searched: str) -> bool:
    """`key` is the searched setting or group (`model`), or lies under it."""
    return key == searched or key.startswith(f"{searched}.")


def _flat_settings(config: DictConfig, raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The settings under `prefix` ({"net": {"N_LAYERS": 2}} -> {"model.net.N_LAYERS": 2}), each resolved in
    `config`, but those written under paths or Hydra's folders, and any that does not resolve here, as written."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and value:
            flat |= _flat_settings(config, value, f"{prefix}{key}.")
            continue
        if isinstance(value, str) and ("${paths." in value or "${hydra:" in value):
            flat[f"{prefix}{key}"] = value
            continue
        try:
            resolved = OmegaConf.select(config, f"{prefix}{key}", throw_on_resolution_failure=True)
            flat[f"{prefix}{key}"] = (OmegaConf.to_container(resolved, resolve=True)
                                      if OmegaConf.is_config(resolved) else resolved)
        except Exception:  # noqa: BLE001 - an interpolation that needs a job (${hydra:runtime.output_dir})
            flat[f"{prefix}{key}"] = value
    return flat


def setup_changes(stored: object, now: dict[str, Any] | None) -> list[str]:
    """`key=now (the study's: stored)` for each setting (study_setup) this sweep's trials differ in from the stored
    study's, bar the keys either searched; none where either is unknown (a study stored before studies recorded it)."""
    if not isinstance(stored, dict) or not isinstance(stored.get("settings"), dict) or now is None:
        return []
    searched = [*now["searched"], *(stored.get("searched") or [])]
    theirs, ours = stored["settings"], now["settings"]
    return [f"{key}={ours.get(key)} (the study's: {theirs.get(key)})" for key in sorted(theirs.keys() | ours.keys())
            if not any(_under(key, s) for s in searched) and not _quiet(key, ours)
            and theirs.get(key) != ours.get(key)]


def fail_stopped_trials(trials: list[Any]) -> None:
    """Tell each study that its `trials` (optuna.trial.Trial) still running, whose job Ctrl-C or a SIGTERM stopped,
    failed: the sweeper tells it nothing as it stops, and a study in storage showed them running for good (in
    `optuna` listings and dashboards; a resumed sweep kept counting them). A trial it was told of is left."""
    import optuna

    for trial in trials:
        study = trial.study
        try:
            running = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
            if trial.number in running:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        except Exception as err:  # a locked or vanished file: the sweep stops all the same, saying so
            log.warning("trial %d of the study %s is left RUNNING in its storage (%s: %s)", trial.number,
                        study.study_name, type(err).__name__, err)
