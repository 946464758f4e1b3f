"""The Optuna sweeper's settings, checked before its first trial: Optuna finds these problems only once
Hydra has set the sweep up, and says them as tracebacks (`ZeroDivisionError` for n_jobs=0, "No trials are
completed yet" for n_trials=0, "Please set either 'minimize' or 'maximize'" for direction=maximise, sqlalchemy's
`ArgumentError`, `OperationalError` or `DatabaseError` for a storage that is a file's path rather than a URL, a
file that cannot be made, or one that is no database, "Cannot overwrite study direction" for a stored study
asked to go the other way; the Hydra plugin's bare `AssertionError` as it makes the sweeper, after this check,
for a max_failure_rate outside 0-1). A stored study also records the metric it optimises, which Optuna does
not: resumed with another, it would rank the values of two metrics as one; and what its trials run on
(study_setup: the data and model settings and the budget), which a sweep on other data or another model
would otherwise join without a word (the default study_name is the search's, whatever the experiment). And a fixed sampler seed given on
the command line (it replaces the configured `${study_seed:...}`) is advanced past the stored trials as that
one is (supra/sweeps/optuna_seed.py).
The trainer's GPUs are counted once too: every job would refuse the same missing GPUs, one after another. And
a search written for other models than the one composed (hparams_search=vqvae_optuna without its experiment)
is refused, naming the experiment to add. So is hydra/launcher=slurm on a machine without SLURM (submitit's
"Could not detect srun" traceback as the first job is submitted), and hydra.job.chdir=true (supra/utils/cli.py)."""

from __future__ import annotations

import difflib
import logging
import shutil
import sys
from contextlib import closing
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from supra.sweeps.optuna_seed import study_seed
from supra.utils.cli import CONF_DIR, refuse_job_chdir
from supra.utils.errors import SupraUserError
from supra.utils.files import check_writable_dir
from supra.utils.hardware import check_chosen_trainer
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
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
OPTUNA_TABLES = {"version_info", "alembic_version"}  # tables every Optuna study file has
DIRECTIONS = ("maximize", "minimize")  # hydra.sweeper.direction as Optuna's create_study takes it

log = logging.getLogger(__name__)


class SweeperSettingsCheck(Callback):
    """Hydra callback, first in hydra.callbacks (conf/hydra/default.yaml): the sweeper's settings are checked
    before anything of the sweep is made (its folder included), and a fixed seed is advanced for a resumed
    study in the config Hydra makes the sweeper from, after this call."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # a storage path may use ${hydra:runtime.cwd}
        metric = config.get("optimized_metric")
        try:
            check_optuna_metric(config)
            check_search_model(config)
            check_sweep_trainer(config)
            check_launcher(config)
            refuse_job_chdir()  # once, rather than in each job
            check_optuna_settings(config.hydra.sweeper, metric, study_setup(config))  # last: it makes a new stored study
        except SupraUserError as err:  # before Hydra starts the sweep: one line, as the folder checks say theirs
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        if (seed := seed_past_stored_trials(config.hydra.sweeper)) is not None:
            with read_write(config.hydra):  # Hydra's own settings are read-only to its callbacks
                config.hydra.sweeper.sampler.seed = seed
        if (warning := direction_warning(config.hydra.sweeper.get("direction"), metric)) is not None:
            log.warning(warning)
        if (forced := forced_searched_keys(config)):
            # the sweeper keys the command line's fixed values by their text (`++model.net.dropout`), so the
            # search space's own key stayed searched: Optuna recorded values the trials did not train with
            with read_write(config.hydra), open_dict(config.hydra):
                for key in forced:
                    del config.hydra.sweeper.params[key]
        try:
            check_study_search_space(config)
        except SupraUserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None


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


SCORES = ("cider", "bleu", "meteor", "rouge", "spice", "psnr", "ssim", "accuracy", "fidelity")  # higher is better


def direction_warning(direction: object, metric: str | None) -> str | None:
    """The warning for a search the wrong way, one that runs without a word: a loss maximised, a score minimised."""
    name = str(metric or "").rpartition("/")[2].lower()
    if direction == "maximize" and "loss" in name:
        return (f"optimized_metric={metric} is maximised (hydra.sweeper.direction=maximize): add "
                "hydra.sweeper.direction=minimize to search for the lowest")
    if direction == "minimize" and any(score in name for score in SCORES):
        return (f"optimized_metric={metric}, a score, is minimised (hydra.sweeper.direction=minimize): add "
                "hydra.sweeper.direction=maximize to search for the highest")
    return None


def forced_searched_keys(config: DictConfig) -> list[str]:
    """The keys of the search space given `++key=...` on the command line: like `key=...`, that setting replaces
    the key's search (a fixed value takes it out of the search)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    params = config.hydra.sweeper.get("params") if "n_trials" in config.hydra.sweeper else None
    if not params:
        return []
    overrides = OverridesParser.create().parse_overrides([str(o) for o in config.hydra.overrides.task])
    return [o.key_or_group for o in overrides if o.type == OverrideType.FORCE_ADD and o.key_or_group in params]


def check_optuna_metric(config: DictConfig) -> None:
    """An Optuna search ranks one metric's values: none (optimized_metric=null: each trial trained in full, then
    Optuna's "No trials are completed yet." traceback), or several swept (`optimized_metric=val/loss,val/Bleu_1`:
    a searched parameter, whose trials' values of both metrics one study ranked as one) is refused."""
    if "n_trials" not in config.hydra.sweeper:
        return
    if not config.get("optimized_metric"):
        raise SupraUserError("optimized_metric=null, but an Optuna search (hydra.sweeper) optimises the value each "
                             "trial returns: give the metric to optimise (optimized_metric=val/loss)")
    swept = [str(o) for o in config.hydra.overrides.task
             if str(o).lstrip("+~").partition("=")[0] == "optimized_metric" and ("," in str(o) or "(" in str(o))]
    if swept or "optimized_metric" in (config.hydra.sweeper.get("params") or {}):
        shown = swept[0].lstrip("+") if swept else "hydra.sweeper.params.optimized_metric"
        raise SupraUserError(f"{shown}: an Optuna search optimises one metric, its trials' values ranked as one: give "
                             "one optimized_metric (a study each), or compare metrics in a grid sweep without "
                             "hparams_search")


def _swept(config: DictConfig) -> list[str]:
    """The keys (settings, config groups) the sweep's jobs differ in: those given a comma list or a sweep on the
    command line, and those of the search space."""
    swept = [*(str(o) for o in config.hydra.overrides.task if "," in str(o) or "(" in str(o)),
             *(str(k) for k in (config.hydra.sweeper.get("params") or {}))]
    return [o.lstrip("+~").partition("=")[0] for o in swept]


def check_search_model(config: DictConfig) -> None:
    """An hparams_search config named for a family of models (vqvae_optuna: conf/model/vqvae_*.yaml) swept over
    another model, as `-m hparams_search=vqvae_optuna` without its experiment is: the first trial stopped on
    Hydra's "Could not override 'model.net.beta'", and a2a_optuna, whose settings the captioner has too,
    tuned the captioner. Nothing for a search named otherwise, or when the jobs differ in their model."""
    choices = config.hydra.runtime.choices
    search, model = str(choices.get("hparams_search") or ""), str(choices.get("model") or "")
    family = search.partition("_")[0]
    models = sorted(path.stem for path in (CONF_DIR / "model").glob(f"{family}_*.yaml")) if family else []
    if not models or model in models or {"model", "experiment"} & set(_swept(config)):
        return
    experiments = [path.stem for path in sorted((CONF_DIR / "experiment").glob("*.yaml"))
                   if any(entry.get("override /model") in models for entry in _defaults(path))]
    add = (f"experiment={experiments[0]}" if len(experiments) == 1 else
           f"one of experiment={', '.join(experiments)}" if experiments else f"model={models[0]} with its data")
    raise SupraUserError(f"hparams_search={search} searches the settings of model={' or '.join(models)}, but this "
                         f"sweep trains model={model} (experiment={choices.get('experiment')}): add {add}")


def _defaults(path: Path) -> list[DictConfig]:
    """The entries of a config file's defaults list that are mappings (`- override /model: a2a_nano`)."""
    entries = OmegaConf.load(path).get("defaults") or []
    return [entry for entry in entries if isinstance(entry, DictConfig)]


def check_sweep_trainer(config: DictConfig) -> None:
    """The GPUs the sweep's trainer asks for (trainer=kaggle_2xt4 on a machine without them), as each job
    checks them, once before the first; nothing when the jobs differ in it (a trainer setting swept)."""
    if "trainer" not in config or any(key.startswith("trainer") for key in _swept(config)):  # or another command's
        return
    check_chosen_trainer(config.trainer, str(config.hydra.runtime.choices.get("trainer") or "trainer"))


SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SLURM_COMMANDS = ("sbatch", "srun")  # submitit submits with sbatch, and checks srun is there first


def check_launcher(config: DictConfig) -> None:
    """A SLURM launcher (hydra/launcher=slurm) where SLURM's commands are not on PATH: submitit's RuntimeError,
    a traceback, once Hydra had set the sweep up and written its multirun.yaml."""
    launcher = config.hydra.get("launcher") or {}
    missing = [command for command in SLURM_COMMANDS if shutil.which(command) is None]
    if launcher.get("_target_") != SLURM_LAUNCHER or not missing:
        return
    choice = config.hydra.runtime.choices.get("hydra/launcher") or "slurm"
    raise SupraUserError(f"hydra/launcher={choice} submits each job to SLURM, but this machine has no "
                         f"{' or '.join(missing)} on its PATH: run it on a SLURM cluster's login node, or here leave "
                         "hydra/launcher out (the jobs one after another) or choose hydra/launcher=submitit_local "
                         "(each job a process of its own)")


def study_setup(config: DictConfig) -> dict[str, Any]:
    """What a sweep's trials run on, recorded in a stored study: {"settings": the experiment, data and model
    chosen and every data and model setting (flat, `data.num_val`) with the budget (SETUP_TRAINER_KEYS), less
    QUIET_SETUP_KEYS and the searched keys; "searched": those keys}. A value under paths or Hydra's folders
    (`${paths.data_dir}/flickr8k`) is kept as written: the same data on another machine."""
    forced = set(forced_searched_keys(config))
    searched = sorted({key for key in _swept(config) if key not in forced})
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
            if key not in QUIET_SETUP_KEYS and not any(_under(key, s) for s in searched)}
    return {"settings": kept, "searched": searched}


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
            if not any(_under(key, s) for s in searched) and key not in QUIET_SETUP_KEYS
            and theirs.get(key) != ours.get(key)]


def check_optuna_settings(sweeper: DictConfig, optimized_metric: str | None,
                          setup: dict[str, Any] | None = None) -> None:
    """One line for a bad hydra.sweeper.* of the Optuna sweeper (nothing for another sweeper); a stored study
    is made here if it is new, recording `optimized_metric` and `setup` (study_setup: what its trials run on)."""
    if "n_trials" not in sweeper:
        return
    for key in ("n_trials", "n_jobs"):
        value = sweeper.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SupraUserError(f"hydra.sweeper.{key}={value!r} must be a whole number >= 1")
    if "direction" in sweeper:  # the sweeper's config has both, with its defaults
        _check_directions(sweeper.direction)
    rate = sweeper.get("max_failure_rate", 0.0)
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:  # NaN too
        raise SupraUserError(f"hydra.sweeper.max_failure_rate={rate!r} must be a number from 0 to 1: the share of a "
                             "batch of trials that may fail before the sweep stops (1.0: failed trials never stop it)")
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


def _directions(asked: object) -> list[str]:
    """hydra.sweeper.direction as the names Optuna is given: one, or a list of them (several objectives, refused:
    a trial returns one value); the sweeper's own default is its Direction enum's member."""
    values = list(asked) if OmegaConf.is_list(asked) or isinstance(asked, list) else [asked]
    return [value.name if isinstance(value, Enum) else str(value) for value in values]


def _check_directions(asked: object) -> None:
    """A direction Optuna's create_study refuses with a traceback (`maximise`, `Maximize`: it takes only its own
    lower-case spelling) as one line, with the spelling it takes."""
    directions = _directions(asked)
    listed = OmegaConf.is_list(asked) or isinstance(asked, list)
    shown = f"[{','.join(directions)}]" if listed else directions[0]  # as given on the command line
    setting = f"hydra.sweeper.direction={shown}"
    if not directions:
        raise SupraUserError(f"{setting} names no direction: give maximize or minimize")
    for direction in directions:
        if direction not in DIRECTIONS:
            close = difflib.get_close_matches(direction.lower(), DIRECTIONS, n=1)
            raise SupraUserError(f"{setting}{f': {direction}' if listed else ''} is no direction Optuna takes: give "
                                 "maximize or minimize, spelled so" + (f" (did you mean {close[0]}?)" if close else ""))
    if len(directions) > 1:  # several objectives: each trial would fail on train.py's one value, the sweep "completed"
        raise SupraUserError(f"{setting} asks for {len(directions)} objectives, but a trial returns one value "
                             "(optimized_metric): give one direction, maximize or minimize")


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

    wanted = _directions(asked)
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
    if (stored != wanted or (metric and recorded and recorded != metric) or changed) and _holds_no_value(study):
        # made by a run refused after this check (a mistyped optimized_metric, said as its first trial starts)
        # or whose every trial failed: nothing in it is ranked, so it takes this run's settings, not locks the typo
        log.info("the study %s in %s holds no completed trial: made again to %s %s", name, storage,
                 ", ".join(wanted), metric)
        optuna.delete_study(study_name=name, storage=storage)
        study = optuna.create_study(study_name=name, storage=storage, directions=wanted)
        stored, recorded, changed, made = wanted, None, [], True
    if stored != wanted:
        raise SupraUserError(f"hydra.sweeper.direction={asked}, but the study {name} in {storage} was made to "
                             f"{', '.join(stored)}: give its direction, or another hydra.sweeper.study_name")
    if metric and recorded and recorded != metric:
        raise SupraUserError(f"optimized_metric={metric}, but the study {name} in {storage} holds values of "
                             f"{recorded}: give optimized_metric={recorded}, or another hydra.sweeper.study_name")
    if changed:  # another data set or model: its values and theirs are no longer of one thing
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise SupraUserError(f"the study {name} in {storage} holds trials run on other settings than this sweep's: "
                             f"{shown}; its values and theirs would be ranked as one: give another "
                             "hydra.sweeper.study_name (or the study's settings)")
    if metric and not recorded:  # a new study, or one stored before studies recorded their metric
        study.set_user_attr(STUDY_METRIC, metric)
    if setup is not None and STUDY_SETUP not in study.user_attrs:
        if made or _holds_no_value(study):
            study.set_user_attr(STUDY_SETUP, setup)
        else:  # its trials' settings were never recorded: taken as they are, not as this sweep's
            log.info("the study %s in %s was stored without the settings its trials ran on: this sweep's are not "
                     "checked against them", name, storage)


def _holds_no_value(study: Any) -> bool:
    """No trial of `study` completed, and none runs (another session's, which would still report to it)."""
    from optuna.trial import TrialState

    return not any(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in study.get_trials(deepcopy=False))


def seed_past_stored_trials(sweeper: DictConfig) -> int | None:
    """The sampler seed a resumed study's session should use when the command line fixed the seed, which
    replaces the configured `${study_seed:...}` (else the session would draw its first trials' hyperparameters
    again): that seed advanced past the stored trials. None when nothing is to change."""
    sampler = sweeper.get("sampler")
    if "n_trials" not in sweeper or not isinstance(sampler, DictConfig) or "seed" not in sampler:
        return None
    given = OmegaConf.to_container(sampler, resolve=False)["seed"]
    if not isinstance(given, int) or isinstance(given, bool):  # the configured interpolation, or no seed
        return None
    seed = study_seed(given, sweeper.get("storage"), sweeper.get("study_name"))
    return seed if seed != given else None
