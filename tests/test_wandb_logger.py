"""The W&B logger's promises beyond one plain run: a broken wandb install, resumes from any checkpoint folder,
settings from wandb's own environment variables and login, and the jobs of a sweep. Offline throughout
(conftest.py sets WANDB_MODE=offline): nothing reaches the network."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import pytest
import wandb
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write

import supra.loggers
import supra.runner
from supra.loggers import wandb_logger
from supra.loggers.wandb_logger import build_wandb_logger, wandb_run_ends_with_job
from supra.loggers.wandb_options import wandb_logged_in
from supra.runner.run_checks import check_run_config
from supra.utils.errors import SupraUserError
from tests.conftest import compose_config

WANDB_ENV = ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_PROJECT", "WANDB_ENTITY",
             "WANDB_BASE_URL", "WANDB_API_KEY")


@pytest.fixture(autouse=True)
def wandb_env_restored(monkeypatch):
    """The variables a logger sets for its run (and those a test sets) as they were before the test; no W&B run
    another test left open."""
    for variable in WANDB_ENV:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(wandb_logger, "_set_here", set())
    wandb.finish()
    yield
    wandb.finish()


def ours(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What Supra's W&B logger said (wandb's own log goes to the same handlers)."""
    return [record.getMessage() for record in caplog.records if record.name == "supra.loggers.wandb_logger"]


def test_a_broken_wandb_install_stops_only_runs_that_log_to_wandb_and_those_in_one_line(monkeypatch, tmp_path):
    """A run logging to CSV (or to nothing) imported wandb as it started: a missing or broken wandb was a traceback
    for every run."""
    for package, module in ((supra.runner, "run_checks"), (supra.runner, "training"), (supra.loggers, "wandb_logger"),
                            (supra.loggers, "wandb_options")):
        importlib.import_module(f"{package.__name__}.{module}")  # as it is now: restored after the test
        monkeypatch.delitem(sys.modules, f"{package.__name__}.{module}")  # imported anew below, without wandb
        monkeypatch.setattr(package, module, getattr(package, module))
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails, as with a broken install
    importlib.import_module("supra.runner.training")
    run_checks = importlib.import_module("supra.runner.run_checks")
    run_checks.check_run_config(compose_config("train", tmp_path / "csv", ["logger=csv"]))
    run_checks.check_run_config(compose_config("train", tmp_path / "none", ["logger=none"]))
    with pytest.raises(SupraUserError) as refused:
        run_checks.check_run_config(compose_config("train", tmp_path / "wandb", ["logger=wandb"]))
    assert str(refused.value) == ("logger=wandb needs the wandb package (import failed: import of wandb halted; None "
                                  "in sys.modules): `pip install wandb`, or choose another logger (logger=csv)")


def test_a_run_resumed_from_a_checkpoint_below_its_checkpoints_folder_continues_its_wandb_run(tmp_path, caplog):
    """The README's periodic checkpoints (<run>/checkpoints/periodic/) were looked up one folder too low: the
    resumed run was a new W&B run with no word of the one it continues."""
    run = tmp_path / "first"
    (run / "checkpoints" / "periodic").mkdir(parents=True)
    (run / "wandb_run_id.txt").write_text("abcd1234\n")
    periodic = run / "checkpoints" / "periodic" / "epoch=0-step=2.ckpt"
    periodic.touch()
    with caplog.at_level(logging.WARNING, logger="supra.loggers.wandb_logger"):
        logger = build_wandb_logger(str(tmp_path / "resumed"), resume_from=str(periodic))
    assert logger.experiment.notes == "continues W&B run abcd1234 (resumed offline)"
    assert ours(caplog) == [
        "W&B offline: a W&B run cannot be continued offline (syncing both under one id would replace the first's "
        "history): this resumed run is a new W&B run that notes it continues abcd1234"]


def test_a_resumed_run_whose_checkpoint_has_no_wandb_id_above_it_says_it_is_a_new_wandb_run(tmp_path, caplog):
    """A checkpoint copied out of its run folder lost the link to its W&B run without a word."""
    copied = tmp_path / "elsewhere" / "last.ckpt"
    copied.parent.mkdir()
    copied.touch()
    with caplog.at_level(logging.WARNING, logger="supra.loggers.wandb_logger"):
        logger = build_wandb_logger(str(tmp_path / "resumed"), resume_from=str(copied))
    assert logger.experiment.notes is None
    assert ours(caplog) == [f"W&B: no wandb_run_id.txt in the folders above ckpt_path={copied}: this resumed run "
                               "is a new W&B run, not a continuation"]


def test_wandb_mode_offline_with_offline_false_is_refused_in_one_line(tmp_path):
    """WANDB_MODE=offline (set here by conftest.py) with logger.wandb.offline=false logged offline, quietly and
    with no line telling how to upload the run."""
    said = ("logger.wandb.offline=false asks for an online run, but WANDB_MODE=offline: unset WANDB_MODE (or set it "
            "to online), or leave logger.wandb.offline unset")
    with pytest.raises(SupraUserError) as refused:
        check_run_config(compose_config("train", tmp_path / "run", ["logger=wandb", "logger.wandb.offline=false"]))
    assert str(refused.value) == said
    with pytest.raises(SupraUserError) as refused:
        build_wandb_logger(str(tmp_path / "direct"), offline=False)
    assert str(refused.value) == said
    assert not (tmp_path / "direct").exists()


def test_wandb_project_and_entity_come_from_the_environment_unless_given(monkeypatch, tmp_path):
    """WANDB_PROJECT was ignored: every run went to the project `supra`."""
    cfg = compose_config("train", tmp_path / "run", ["logger=wandb"])
    assert (cfg.logger.wandb.project, cfg.logger.wandb.entity) == ("supra", None)
    monkeypatch.setenv("WANDB_PROJECT", "myproj")
    monkeypatch.setenv("WANDB_ENTITY", "myteam")
    cfg = compose_config("train", tmp_path / "run", ["logger=wandb"])
    assert (cfg.logger.wandb.project, cfg.logger.wandb.entity) == ("myproj", "myteam")
    cfg = compose_config("train", tmp_path / "run", ["logger=wandb", "logger.wandb.project=given"])
    assert cfg.logger.wandb.project == "given"


def test_a_wandb_login_to_a_self_hosted_server_counts_as_logged_in(monkeypatch, tmp_path):
    """Only a ~/.netrc entry for api.wandb.ai counted: a `wandb login --host` user was forced offline and told to
    log in."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text(f"machine wandb.example.com\n  login user\n  password {'b' * 40}\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert not wandb_logged_in()  # the entry is for another server than wandb's default
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert wandb_logged_in()
    monkeypatch.delenv("WANDB_BASE_URL")
    (tmp_path / ".config" / "wandb").mkdir(parents=True)  # where `wandb login --host` keeps the server
    (tmp_path / ".config" / "wandb" / "settings").write_text("[default]\nbase_url = https://wandb.example.com\n")
    assert wandb_logged_in()


def test_each_job_finishes_its_wandb_run_as_it_ends(monkeypatch, tmp_path):
    """A sweep's job left its W&B run open until the next job's logger, which recorded that job's console lines."""
    exit_codes = []
    finish = wandb.finish
    monkeypatch.setattr(wandb, "finish", lambda exit_code=None: (exit_codes.append(exit_code), finish(exit_code))[1])
    with wandb_run_ends_with_job():
        run = build_wandb_logger(str(tmp_path / "0")).experiment
        assert wandb.run is run
    assert wandb.run is None and exit_codes == [0]
    with pytest.raises(RuntimeError), wandb_run_ends_with_job():  # a job that fails: its run is finished too
        build_wandb_logger(str(tmp_path / "1")).experiment  # noqa: B018
        raise RuntimeError
    assert wandb.run is None and exit_codes == [0, 1]


def test_without_home_each_job_keeps_wandbs_settings_and_cache_in_its_own_folder(monkeypatch, tmp_path):
    """Set once per process, a sweep's later jobs wrote wandb's cache into job 0's folder."""
    monkeypatch.delenv("HOME")
    build_wandb_logger(str(tmp_path / "0"))
    build_wandb_logger(str(tmp_path / "1"))
    assert [os.environ[variable] for variable in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR")] == [
        str(tmp_path / "1" / "wandb" / "config"), str(tmp_path / "1" / "wandb" / "cache")]
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "mine"))  # one the user set is left alone
    monkeypatch.setattr(wandb_logger, "_set_here", set())
    build_wandb_logger(str(tmp_path / "2"))
    assert os.environ["WANDB_CACHE_DIR"] == str(tmp_path / "mine")


def test_a_sweep_jobs_wandb_run_is_grouped_by_sweep_and_named_by_job_number(tmp_path):
    """Sweep jobs were ungrouped W&B runs with random names: told apart only by opening their configs."""
    compose_config("train", tmp_path / "grid" / "3", ["logger=wandb"])
    with read_write(HydraConfig.get()):
        HydraConfig.get().mode = RunMode.MULTIRUN
        HydraConfig.get().sweep.dir = str(tmp_path / "grid")
        HydraConfig.get().job.num = 3
    run = build_wandb_logger(str(tmp_path / "grid" / "3")).experiment
    assert (run.group, run.name) == ("grid", "3")
    named = build_wandb_logger(str(tmp_path / "grid" / "4"), name="mine", group="ours").experiment
    assert (named.group, named.name) == ("ours", "mine")  # given ones are kept


@pytest.mark.parametrize(("given", "job_type"), [([], "train"), (["train=false"], "test"),
                                                 (["logger.wandb.job_type=probe"], "probe")])
def test_a_runs_wandb_run_has_a_job_type_to_filter_runs_by(tmp_path, given, job_type):
    """W&B's UI filters and groups runs by job type: every run had none."""
    from supra.runner.components import instantiate_group

    cfg = compose_config("train", tmp_path / "run", ["logger=wandb", *given])
    [logger] = instantiate_group(cfg.logger, "logger")
    assert logger.experiment.job_type == job_type  # what wandb records in the run, and `wandb sync` uploads
    wandb.finish()
