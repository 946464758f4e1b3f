"""The Optuna sweeper's settings, checked before its first trial: Optuna finds these problems only once
Hydra has set the sweep up, and says them as tracebacks (`ZeroDivisionError` for n_jobs=0, "No trials are
completed yet" for n_trials=0 or a trial that returns no value, "Please set either 'minimize' or 'maximize'" for
direction=maximise; the Hydra plugin's bare `AssertionError` as it makes the sweeper, after this check, for a
max_failure_rate outside 0-1; Optuna's ValueError for a searched range it cannot take, a log interval from 0).
A study kept in storage is checked in supra/sweeps/stored_study.py, and a fixed
sampler seed given on the command line (it replaces the configured `${study_seed:...}`) is advanced past its
stored trials as that one is (supra/sweeps/optuna_seed.py).
The trainer's GPUs are counted once too (not for SLURM's jobs, which run elsewhere): every job would refuse the
same missing GPUs, one after another. And
a search written for other models than the one composed (hparams_search=vqvae_optuna without its experiment)
is refused, naming the experiment to add. So is hydra/launcher=slurm on a machine without SLURM (submitit's
"Could not detect srun" traceback as the first job is submitted), and hydra.job.chdir=true (supra/utils/cli.py)."""

from __future__ import annotations

import difflib
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from supra.sweeps.optuna_seed import study_seed
from supra.sweeps.stored_study import check_storage, check_study_search_space, directions_given, study_setup
from supra.utils.cli import CONF_DIR, refuse_job_chdir
from supra.utils.errors import SupraUserError
from supra.utils.hardware import asks_every_gpu, check_chosen_trainer
from supra.utils.private_apis import optuna_search_space

DIRECTIONS = ("maximize", "minimize")  # hydra.sweeper.direction as Optuna's create_study takes it

log = logging.getLogger(__name__)


class SweeperSettingsCheck(Callback):
    """Hydra callback, first in hydra.callbacks (conf/hydra/default.yaml): the sweeper's settings are checked
    before anything of the sweep is made (its folder included), and a fixed seed is advanced for a resumed
    study in the config Hydra makes the sweeper from, after this call."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # a storage path may use ${hydra:runtime.cwd}
        metric = config.get("optimized_metric")
        if (forced := forced_searched_keys(config)):
            # the sweeper keys the command line's fixed values by their text (`++model.net.dropout`), so the
            # search space's own key stayed searched: Optuna recorded values the trials did not train with
            with read_write(config.hydra), open_dict(config.hydra):
                for key in forced:
                    del config.hydra.sweeper.params[key]
        try:
            check_optuna_metric(config)
            check_search_ranges(config)
            check_search_model(config)
            check_launcher(config)  # first: off a cluster, the actionable line
            check_sweep_trainer(config)
            refuse_job_chdir()  # once, rather than in each job
            # then the stored study: a new one is made here, recording what its trials run on
            check_optuna_settings(config.hydra.sweeper, metric, study_setup(config, searched_keys(config)))
            check_study_search_space(config)
        except SupraUserError as err:  # before Hydra starts the sweep: one line, as the folder checks say theirs
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        if (seed := seed_past_stored_trials(config.hydra.sweeper)) is not None:
            with read_write(config.hydra):  # Hydra's own settings are read-only to its callbacks
                config.hydra.sweeper.sampler.seed = seed
        if (warning := direction_warning(config.hydra.sweeper.get("direction"), metric)) is not None:
            log.warning(warning)


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


def searched_keys(config: DictConfig) -> list[str]:
    """The keys this sweep's trials differ in, bar those `++key=...` fixes (forced_searched_keys)."""
    forced = set(forced_searched_keys(config))
    return [key for key in _swept(config) if key not in forced]


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
    checks them, once before the first; nothing when the jobs differ in it (a trainer setting swept), nor for the
    SLURM launcher: its jobs run on the cluster's nodes, where each checks them, and a login node has no GPU."""
    if "trainer" not in config or any(key.startswith("trainer") for key in _swept(config)):  # or another command's
        return
    if (config.hydra.get("launcher") or {}).get("_target_") == SLURM_LAUNCHER:
        return
    check_chosen_trainer(config.trainer, str(config.hydra.runtime.choices.get("trainer") or "trainer"))


SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SLURM_COMMANDS = ("sbatch", "srun")  # submitit submits with sbatch, and checks srun is there first


def check_launcher(config: DictConfig) -> None:
    """A SLURM launcher (hydra/launcher=slurm) where SLURM's commands are not on PATH: submitit's RuntimeError,
    a traceback, once Hydra had set the sweep up and written its multirun.yaml. Then trainer.devices asking for
    every GPU (-1, auto), which the job's request took as given."""
    launcher = config.hydra.get("launcher") or {}
    if launcher.get("_target_") != SLURM_LAUNCHER:
        return
    missing = [command for command in SLURM_COMMANDS if shutil.which(command) is None]
    choice = config.hydra.runtime.choices.get("hydra/launcher") or "slurm"
    trainer = config.get("trainer") or {}
    if not missing:
        if asks_every_gpu(str(trainer.get("accelerator", "auto")), devices := trainer.get("devices", "auto")):
            # Lightning takes it, but it went into sbatch's --gpus-per-node and --ntasks-per-node as given
            raise SupraUserError(f"trainer.devices={devices} (every GPU of a node) is no number SLURM can ask for: "
                                 f"hydra/launcher={choice} needs the GPUs per node as a count, e.g. trainer.devices=4")
        return
    raise SupraUserError(f"hydra/launcher={choice} submits each job to SLURM, but this machine has no "
                         f"{' or '.join(missing)} on its PATH: run it on a SLURM cluster's login node, or here leave "
                         "hydra/launcher out (the jobs one after another) or choose hydra/launcher=submitit_local "
                         "(each job a process of its own)")


# What Optuna's distributions need, by the words of its ValueError (optuna/distributions.py)
OPTUNA_RANGE_NEEDS = (("for a log distribution", "a log interval needs low > 0"),
                      ("smaller than or equal to the `high`", "an interval needs low <= high"))


def check_search_ranges(config: DictConfig) -> None:
    """A searched range Optuna's distributions refuse (`tag(log, interval(0, 1e-2))`, `interval(2e-3, 5e-4)`):
    Optuna's ValueError traceback as the sweep starts, before its first trial. Each key's range is the one the
    sweeper searches: the command line's replaces its hydra.sweeper.params entry, as the plugin's does."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "n_trials" not in config.hydra.sweeper:
        return
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *(str(o) for o in config.hydra.overrides.task)])
    searched = {o.get_key_element(): str(o.input_line) for o in overrides}  # the last of each key
    for given in searched.values():
        try:
            optuna_search_space([given])
        except ValueError as err:
            need = next((need for words, need in OPTUNA_RANGE_NEEDS if words in str(err)), "")
            raise SupraUserError(f"{given}: Optuna cannot search this range"
                                 + (f": {need}" if need else "") + f" ({err})") from None


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
    check_storage(sweeper, optimized_metric, setup)


def _check_directions(asked: object) -> None:
    """A direction Optuna's create_study refuses with a traceback (`maximise`, `Maximize`: it takes only its own
    lower-case spelling) as one line, with the spelling it takes."""
    directions = directions_given(asked)
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
