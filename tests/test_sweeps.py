"""Multirun sweeps through the real `python train.py -m` command line: grid and Optuna (in memory, SQLite
resumed), the sweep report (also rebuilt from an interrupted sweep), and the metric train returns."""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from supra.runner.training import diverged_advice, divergence, train
from supra.sweeps.callback import (
    SweepJobRecorder,
    end_if_no_trial_completed,
    interrupted_job_advice,
    note_diverged,
)
from supra.sweeps.optuna_seed import study_seed
from supra.sweeps.optuna_settings import SweeperSettingsCheck, check_optuna_settings, check_search_ranges
from supra.sweeps.report import JOB_RESULT, SUMMARY_CSV, SUMMARY_MD, collect, write_report
from supra.sweeps.stored_study import STUDY_METRIC, STUDY_SETUP, setup_changes, study_setup
from supra.sweeps.study import sweep_overrides
from supra.utils.errors import SupraUserError
from supra.utils.files import write_json_atomic
from tests.conftest import ROOT, command_lines, compose_config, run_command
from tests.sweep_runs import TINY_JOB, TINY_OPTUNA, job_dirs, optuna_sweeper, summary_rows


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """The module's sweeps of `python train.py -m`, (its folder, its result) by name: two grids whose last job is
    refused ("lr", "heads"), an Optuna search of 3 trials in memory ("optuna"), and a study kept in SQLite (its
    study.db beside them) run for one trial ("first"), then resumed for one more ("second"). One interpreter runs
    them all, in order (command_lines): the sweeps are under test, not Python's start-up."""
    tmp = tmp_path_factory.mktemp("sweeps")
    study = [f"hydra.sweeper.storage=sqlite:///{tmp / 'study.db'}", "hydra.sweeper.study_name=resumed",
             "hydra.sweeper.n_trials=1"]
    settings = {"lr": ["model.optimizer.lr=1e-4,3e-3,-1"], "heads": ["model.net.N_HEADS=3,4"],
                "optuna": [*TINY_OPTUNA, "hydra.sweeper.n_trials=3"], "first": [*TINY_OPTUNA, *study],
                # the configured seed (1234, the first session's), given on the command line: it replaces the
                # configured ${study_seed:...}, and is advanced past the stored trial all the same
                "second": [*TINY_OPTUNA, *study, "hydra.sweeper.sampler.seed=1234"]}
    results = command_lines(*([str(ROOT / "train.py"), "-m", *TINY_JOB, *args, f"hydra.sweep.dir={tmp / name}"]
                              for name, args in settings.items()), cwd=tmp, timeout_s=600)  # 300 s a sweep before
    return {name: (tmp / name, result) for name, result in zip(settings, results, strict=True)}


def test_grid_multirun_runs_each_job_and_the_report_is_rebuilt_with_its_failed_job(sweeps, tmp_path):
    # lr=-1: refused before the job trains, so job 2 fails and the grid stops, its report written after each job
    sweep_dir, result = sweeps["lr"]
    assert result.returncode != 0 and "model.optimizer.lr=-1 must be a finite number >= 0" in result.stderr
    # the sweep ends in one line naming its report, not in Hydra's error and its HYDRA_FULL_ERROR advice
    assert result.stderr.splitlines()[-1] == (
        "error: 1 of the sweep's 3 jobs failed (job 2: model.optimizer.lr=-1 must be a finite number >= 0): each "
        f"job's result, and why each failed, is in {sweep_dir / SUMMARY_MD}")
    assert "HYDRA_FULL_ERROR" not in result.stderr
    assert [p.name for p in job_dirs(sweep_dir)] == ["0", "1", "2"]
    assert [r["status"] for r in summary_rows(sweep_dir)] == ["completed", "completed", "failed"]
    assert ("- 2 (`model.optimizer.lr=-1`): model.optimizer.lr=-1 must be a finite number >= 0"
            in (sweep_dir / SUMMARY_MD).read_text())

    # the same sweep again into its folder, then the report rebuilt without its summary (one interpreter: the
    # refusal and the report are under test, not Python's start-up)
    (sweep_dir / SUMMARY_CSV).unlink()
    again, report = command_lines(
        [str(ROOT / "train.py"), "-m", *TINY_JOB, "model.optimizer.lr=1e-4,3e-3,-1", f"hydra.sweep.dir={sweep_dir}"],
        ["sweep_report", f"dir={sweep_dir}"], cwd=tmp_path)
    # refused before Hydra writes a job's config over the first's
    assert again.returncode == 2 and "already holds a sweep's finished jobs (0/checkpoints/" in again.stderr
    assert yaml.safe_load((sweep_dir / "0" / ".hydra" / "overrides.yaml").read_text())[-1] == "model.optimizer.lr=0.0001"
    assert report.returncode == 0, report.stderr
    rows = summary_rows(sweep_dir)
    assert {r["overrides"]: r["status"] for r in rows} == {
        "model.optimizer.lr=0.0001": "completed", "model.optimizer.lr=0.003": "completed",
        "model.optimizer.lr=-1": "failed"}
    done = rows[:2]
    assert all(r["metric"] == "val/CIDEr" and r["best_step"] == "2" and Path(r["checkpoint"]).is_file() for r in done)
    assert all(torch.load(r["checkpoint"], weights_only=True)["global_step"] == 2 for r in done)  # the step reported
    assert float(done[0]["best_value"]) >= float(done[1]["best_value"])  # val/CIDEr: highest first
    assert rows[2]["status"] == "failed" and not rows[2]["best_value"] and not rows[2]["checkpoint"]
    assert "| 2 | failed | `model.optimizer.lr=-1` |" in report.stdout
    assert "| job | status | overrides | best val/CIDEr |" in (sweep_dir / SUMMARY_MD).read_text()

    # a job killed before it could record its result is reported as interrupted
    (sweep_dir / "1" / JOB_RESULT).unlink()
    assert {r.job: r.status for r in write_report(sweep_dir)}["1"] == "interrupted"


def test_a_job_refused_in_one_line_is_recorded_as_failed_and_the_rest_of_its_batch_runs(sweeps):
    sweep_dir, result = sweeps["heads"]  # D_MODEL=128: 3 heads are refused before training
    assert result.returncode != 0 and "Traceback" not in result.stderr
    refused = "model.net.D_MODEL=128 must be divisible by model.net.N_HEADS=3: e.g. model.net.N_HEADS=2, or model.net.D_MODEL=129"
    assert result.stderr.count(refused) == 2  # said by the job, then the sweep
    rows = {r["overrides"]: r for r in summary_rows(sweep_dir)}
    assert rows["model.net.N_HEADS=3"]["status"] == "failed"
    assert rows["model.net.N_HEADS=3"]["error"] == refused
    assert rows["model.net.N_HEADS=4"]["status"] == "completed"


def test_train_returns_the_optimized_metric_and_names_the_logged_ones_if_it_is_missing(train_config):
    # the value of a metric that is there is checked by the Optuna tests (a trial's value is what its job returned)
    with pytest.raises(SupraUserError, match=r"optimized_metric=val/zzz was never logged; logged metrics are: .*val/CIDEr"):
        train(train_config(*TINY_JOB, "optimized_metric=val/zzz"))  # none of the task's: maybe a callback's own


def test_a_mistyped_optimized_metric_is_one_line_before_training(train_config, monkeypatch):
    """As a callback's mistyped monitor is: not after every trial of a sweep has trained in full."""
    monkeypatch.setattr("supra.runner.training.check_callbacks_fit", lambda *_: pytest.fail("got past the check"))
    with pytest.raises(SupraUserError) as refused:
        train(train_config(*TINY_JOB, "optimized_metric=val/cider"))
    assert str(refused.value) == (
        "optimized_metric=val/cider is no metric this run logs: did you mean optimized_metric=val/CIDEr? "
        "(CaptioningTask logs train/loss, val/loss, val/Bleu_1, val/Bleu_2, val/Bleu_3, val/Bleu_4, "
        "val/ROUGE_L, val/CIDEr, val/attr_acc, val/relation_acc)")


def test_optuna_sweep_in_memory_runs_n_trials_and_reports_best_params(sweeps):
    sweep_dir, result = sweeps["optuna"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(job_dirs(sweep_dir)) == 3
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    # data.batch_size, fixed on the command line (TINY_JOB), leaves the search space
    assert set(best["best_params"]) == {"model.optimizer.lr", "model.weight_decay", "model.scheduler.warmup_steps",
                                        "model.net.dropout"}
    assert 3e-4 <= best["best_params"]["model.optimizer.lr"] <= 3e-3
    rows = summary_rows(sweep_dir)
    # every trial returned the metric it optimises; the report puts Optuna's best value first
    returned = [float(json.loads((job / JOB_RESULT).read_text())["return_value"]) for job in job_dirs(sweep_dir)]
    assert max(returned) == pytest.approx(best["best_value"])
    assert float(rows[0]["final_value"]) == pytest.approx(best["best_value"])
    assert "## Optuna" in (sweep_dir / SUMMARY_MD).read_text()


def test_optuna_sqlite_study_is_resumed_by_a_second_sweep(sweeps):
    (first_dir, first), (second_dir, second) = sweeps["first"], sweeps["second"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    storage = f"sqlite:///{first_dir.parent / 'study.db'}"
    study = optuna.load_study(study_name="resumed", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert len(job_dirs(second_dir)) == 1
    # the second session's sampler is seeded past the first's trials: it draws new hyperparameters
    assert study.trials[0].params != study.trials[1].params


def test_a_stored_studys_sampler_seed_is_said_once_with_its_trials_counted(tmp_path, caplog):
    """Hydra resolves the sweeper's ${study_seed:...} more than once a session: the line came twice, as "1 trials"."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s1", storage=storage).add_trial(optuna.trial.create_trial(value=1.0))
    with caplog.at_level(logging.INFO, logger="supra.sweeps.optuna_seed"):
        seeds = [study_seed(1234, storage, "s1") for _ in range(2)]
    assert seeds == [1235, 1235]
    assert [r.getMessage() for r in caplog.records if r.name == "supra.sweeps.optuna_seed"] == [
        "study s1 holds 1 trial: its sampler's seed is 1234 + 1"]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Command lines refused before any job: a sweep of 0 trials (in tmp/refused_sweep/, which holds nothing else)
    and the sweep report of a folder that holds no sweep, all run in one interpreter (command_lines)."""
    tmp = tmp_path_factory.mktemp("refusals")
    (tmp / "run" / ".hydra").mkdir(parents=True)
    (tmp / "run" / ".hydra" / "overrides.yaml").write_text("[]\n")  # one run's folder, not a sweep's
    (tmp / "empty").mkdir()
    (tmp / "refused_sweep").mkdir()
    cases = {"0 trials": [str(ROOT / "train.py"), "-m", *TINY_JOB, *TINY_OPTUNA, "hydra.sweeper.n_trials=0",
                          f"hydra.sweep.dir={tmp / 'refused_sweep' / 'sweep'}"],
             "empty": ["sweep_report", f"dir={tmp / 'empty'}"], "one run": ["sweep_report", f"dir={tmp / 'run'}"]}
    return dict(zip(cases, command_lines(*cases.values(), cwd=tmp / "refused_sweep"), strict=True))


def test_sweep_report_cli_gives_one_line_for_a_directory_that_is_no_sweep(refusals):
    empty, one_run = refusals["empty"], refusals["one run"]
    assert empty.returncode == 2 and "holds no job directories" in empty.stderr and "Traceback" not in empty.stderr
    assert one_run.returncode == 2 and "is one run (it holds .hydra/), not a multirun directory" in one_run.stderr


@pytest.mark.parametrize("report", ["sweep_report", "study_report"])
def test_a_folder_of_single_runs_side_by_side_is_refused_not_reported_as_one_sweeps_interrupted_jobs(tmp_path, report):
    """Two finished runs of logs/train/runs were listed as a sweep's interrupted jobs, their commands merged."""
    for run in ("2026-01-01_10-00-00", "2026-01-01_11-00-00"):
        (tmp_path / run / ".hydra").mkdir(parents=True)
        (tmp_path / run / ".hydra" / "overrides.yaml").write_text("[]\n")
        (tmp_path / run / ".hydra" / "hydra.yaml").write_text("hydra:\n  mode: RUN\n")
    read = collect if report == "sweep_report" else sweep_overrides  # the study's command, rebuilt from its jobs
    with pytest.raises(SupraUserError, match=re.escape(
            f"dir={tmp_path} holds single runs, not a multirun's jobs (2026-01-01_10-00-00/.hydra/hydra.yaml: mode "
            "RUN): give a multirun directory (logs/train/multiruns/<date>, logs/study/<date>)")):
        read(tmp_path)


def test_a_study_report_of_a_folder_that_is_not_there_points_to_where_studies_are(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_command("study_report", f"dir={tmp_path / 'nope'}")
    assert capsys.readouterr().err == (f"error: dir={tmp_path / 'nope'} is not a directory: give the study's multirun "
                                       "directory (logs/study/<date>)\n")


def sweep_job_config(tmp_path: Path, *overrides: str, job: str = "0") -> tuple[DictConfig, DictConfig]:
    """Job `job`'s config of a multirun into tmp_path/sweep, and the Hydra config it runs under, as a sweep's
    job has them (composed, hydra.mode MULTIRUN)."""
    cfg = compose_config("train", tmp_path / "sweep" / job, [*overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    hydra_cfg = HydraConfig.instance().cfg  # what compose_config set
    with read_write(hydra_cfg.hydra):
        hydra_cfg.hydra.mode = RunMode.MULTIRUN
    return cfg, hydra_cfg


def test_an_interrupted_sweep_job_names_the_report_command_and_a_new_sweep_dir_not_ckpt_path(tmp_path):
    """ckpt_path= added to a -m command would start every job (every trial) from the interrupted job's checkpoint."""
    _, grid = sweep_job_config(tmp_path / "a grid", "model.optimizer.lr=1e-3")
    sweep_dir = tmp_path / "a grid" / "sweep"
    assert interrupted_job_advice(grid.hydra) == (
        f"job 0 of the sweep in {sweep_dir} stopped; rebuild its report with `python -m supra.sweep_report "
        f"dir='{sweep_dir}'`, and run the sweep again with a new hydra.sweep.dir (not with ckpt_path=, which would "
        "start every job from this one's checkpoint)")
    _, study = sweep_job_config(tmp_path, "hparams_search=vlm_optuna",
                                f"hydra.sweeper.storage=sqlite:///{tmp_path / 'st.db'}", "hydra.sweeper.study_name=s")
    assert ", and go on with its study, which keeps the finished trials, by running the same command with a new " \
           "hydra.sweep.dir (not with ckpt_path=" in interrupted_job_advice(study.hydra)


def write_job(job_dir: Path, overrides: list[str], direction: str | None, result: dict,
              metric: str = "val/CIDEr") -> None:
    """A finished job's folder as Hydra and the sweep recorder leave it: .hydra/{overrides,config,hydra}.yaml
    (an Optuna sweep's hydra.yaml names its direction; the checkpoint callback keeps the best val/CIDEr, as
    conf/callbacks/default.yaml) and sweep_job.json."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    checkpoint = {"monitor": "val/CIDEr", "mode": "max"}
    (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"optimized_metric": metric, "callbacks": {"model_checkpoint": checkpoint}}))
    sweeper = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", "direction": direction}
    (job_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": sweeper}}))
    write_json_atomic(job_dir / JOB_RESULT, {"metric": metric, **result})


def write_checkpoint(job_dir: Path, name: str, global_step: int) -> None:
    """checkpoints/<name> as far as the report reads it: the global step of the weights it holds."""
    (job_dir / "checkpoints").mkdir(exist_ok=True)
    torch.save({"global_step": global_step}, job_dir / "checkpoints" / name)


# Validations at global steps 2 and 4 (metrics.csv steps 1 and 3): val/CIDEr is best at the first, val/loss
# at the second.
TWO_VALIDATIONS = "epoch,step,val/CIDEr,val/loss\n0,1,0.3,6.9\n0,3,0.2,6.5\n"


def test_the_report_ranks_by_the_optuna_sweepers_direction_and_says_why_jobs_failed(tmp_path):
    # an Optuna sweep has no multirun.yaml: its direction is in each job's .hydra/hydra.yaml
    write_job(tmp_path / "0", ["model.optimizer.lr=0.001"], "minimize", {"status": "completed", "return_value": 2.0})
    write_job(tmp_path / "1", ["model.optimizer.lr=0.002"], "minimize", {"status": "completed", "return_value": 1.0})
    write_job(tmp_path / "2", ["model.optimizer.lr=9.0"], "minimize",
              {"status": "failed", "return_value": None, "error": "diverged: val/CIDEr was NaN"})
    assert [r.job for r in write_report(tmp_path)] == ["1", "0", "2"]
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "sorted by best val/CIDEr (minimize)" in summary
    assert "- 2 (`model.optimizer.lr=9.0`): diverged: val/CIDEr was NaN" in summary


def test_an_optuna_sweep_whose_every_trial_failed_ends_in_one_line_naming_the_report(tmp_path, capsys):
    """Not in Optuna's "No trials are completed yet." traceback, raised after the trials."""
    no_best = ValueError("No trials are completed yet.")
    for job in ("0", "1"):
        write_job(tmp_path / job, [f"seed={job}"], "maximize", {"status": "failed", "return_value": None,
                                                               "error": "data.num_train=0: every split needs at least 1 image"})
    with pytest.raises(SystemExit) as ended:
        end_if_no_trial_completed(tmp_path, no_best)
    assert ended.value.code == 1 and capsys.readouterr().err == (
        f"error: every trial of the sweep failed (2 of 2), so it has no best one: why each failed is in "
        f"{tmp_path / SUMMARY_MD} (job 0: data.num_train=0: every split needs at least 1 image)\n")
    end_if_no_trial_completed(tmp_path, RuntimeError("another error"))  # raised on as it is
    write_job(tmp_path / "2", ["seed=2"], "maximize", {"status": "completed", "return_value": 1.0})
    end_if_no_trial_completed(tmp_path, no_best)


def test_a_job_whose_optimized_metric_is_nan_is_recorded_as_failed(tmp_path):
    # train() returns None for a NaN metric; the recorder, after the job, says why it failed
    cfg, _ = sweep_job_config(tmp_path, "optimized_metric=val/loss")
    SweepJobRecorder().on_job_end(cfg, JobReturn(status=JobStatus.COMPLETED, _return_value=None))
    recorded = json.loads((tmp_path / "sweep" / "0" / JOB_RESULT).read_text())
    assert recorded["status"] == "failed" and recorded["error"] == "diverged: val/loss was NaN"


def test_the_divergence_advice_reads_the_runs_learning_rate_and_clipping():
    """Clipping already on is not advised again: a clip below the run's own is."""
    clipped = OmegaConf.create({"model": {"optimizer": {"lr": 1e4}}, "trainer": {"gradient_clip_val": 1.0}})
    assert diverged_advice(clipped) == ("lower model.optimizer.lr (10000.0 here), or clip the gradients harder (a "
                                        "trainer.gradient_clip_val below its 1.0)")
    for off in (0, None):
        unclipped = OmegaConf.create({"model": {"optimizer": {"lr": 0.5}}, "trainer": {"gradient_clip_val": off}})
        assert diverged_advice(unclipped) == ("lower model.optimizer.lr (0.5 here), or clip the gradients (e.g. "
                                              "trainer.gradient_clip_val=1.0)")


def test_a_diverged_run_returns_no_value_and_its_sweep_job_is_recorded_as_a_failed_trial(train_config, tmp_path,
                                                                                          caplog):
    """Its val/CIDEr is 0.0, never NaN: the NaN losses say it diverged, not a value Optuna would learn from."""
    run = train_config(*TINY_JOB, "model.optimizer.lr=1e8", "model.scheduler.warmup_steps=0",
                       "trainer.gradient_clip_val=null")
    value, metrics = train(run)
    assert value is None and metrics["val/CIDEr"] == 0.0 and math.isnan(metrics["train/loss"])
    assert "diverged: train/loss is nan at the end of training (step 2): the run's scores and checkpoints are of a model" in caplog.text
    assert "lower model.optimizer.lr (1e8 here), or clip the gradients (e.g. trainer.gradient_clip_val=1.0)" in caplog.text
    assert divergence({"train/loss": 1.0, "val/loss": float("inf")}, 7) == (
        "diverged: val/loss is inf at the end of training (step 7)")
    assert divergence({"train/loss": 1.0, "val/loss": 2.0, "val/CIDEr": float("nan")}, 7) is None
    # the job's end, in the process it ran in: a failed trial with the reason, not one returning a value
    cfg, _ = sweep_job_config(tmp_path, "hparams_search=vlm_optuna")
    recorder = SweepJobRecorder()
    recorder.on_job_end(cfg, JobReturn(status=JobStatus.COMPLETED, _return_value=value))
    recorded = json.loads((tmp_path / "sweep" / "0" / JOB_RESULT).read_text())
    assert recorded["status"] == "failed" and recorded["return_value"] is None
    assert recorded["error"] == "diverged: train/loss is nan at the end of training (step 2)"
    recorder.on_job_start(cfg)  # the next job's own result: the reason was this job's
    recorder.on_job_end(cfg, JobReturn(status=JobStatus.COMPLETED, _return_value=0.5))
    assert json.loads((tmp_path / "sweep" / "0" / JOB_RESULT).read_text())["status"] == "completed"


def test_the_report_ranks_a_diverged_job_after_the_completed_ones_with_no_best_value_and_none_of_its_checkpoints(
        tmp_path):
    """Its val/CIDEr, 0.0 from NaN weights, was ranked as a result and its best.ckpt named as the one to take; its
    row then still showed that 0.0 as its best, at step 2: no result either."""
    write_job(tmp_path / "0", ["model.optimizer.lr=1e6"], "maximize",
              {"status": "failed", "return_value": None, "error": "diverged: train/loss is nan at the end of training (step 2)"})
    write_job(tmp_path / "1", ["model.optimizer.lr=0.001"], "maximize", {"status": "completed", "return_value": 0.0})
    for job, cider in (("0", "0.0"), ("1", "0.0")):
        (tmp_path / job / "csv").mkdir()
        (tmp_path / job / "csv" / "metrics.csv").write_text(f"epoch,step,val/CIDEr,val/loss\n0,1,{cider},nan\n")
        write_checkpoint(tmp_path / job, "best.ckpt", 2)
    rows = write_report(tmp_path)
    assert [(r.job, r.status) for r in rows] == [("1", "completed"), ("0", "failed")]
    assert rows[0].checkpoint and not rows[1].checkpoint
    assert (rows[1].best_value, rows[1].best_step, rows[1].best_epoch) == (None, None, None)
    assert "| 0 | failed | `model.optimizer.lr=1e6` |  |  |  |  |" in (tmp_path / SUMMARY_MD).read_text()
    assert "- 0 (`model.optimizer.lr=1e6`): diverged: train/loss is nan at the end of training (step 2)" in (tmp_path / SUMMARY_MD).read_text()


def test_a_diverged_optuna_trial_is_said_once_not_again_in_the_sweepers_no_value_line(tmp_path, caplog):
    """Supra's warning says why it failed; the plugin's "Return value must be float-castable. Got 'None'." stood
    beside it. A trial that ran in another process (a submitit worker), said nowhere here, keeps that line."""
    cfg, multirun = sweep_job_config(tmp_path, "hparams_search=vlm_optuna")
    recorder = SweepJobRecorder()
    recorder.on_multirun_start(multirun)

    def launch(overrides, initial_job_idx):  # trial 0 diverges in this process, trial 1 returns None elsewhere
        if initial_job_idx == 0:
            recorder.on_job_start(cfg)
            note_diverged("diverged: train/loss is nan at the end of training (step 2)")
            recorder.on_job_end(cfg, JobReturn(status=JobStatus.COMPLETED, _return_value=None))
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=None)]

    with caplog.at_level("WARNING"), pytest.raises(ValueError, match="No trials are completed yet"):
        optuna_sweeper(multirun, launch, n_trials=2).sweep([])
    no_value = [r for r in caplog.records if r.getMessage().startswith("Failed experiment: Return value must be")]
    assert len(no_value) == 1


def test_a_stored_trial_whose_job_a_sigterm_stopped_is_failed_in_its_study_not_left_running(tmp_path):
    """The sweeper tells its study nothing as a trial's job stops (SystemExit(130), as a fit stopped by SIGTERM or
    Ctrl-C ends): the trial stayed RUNNING in the SQLite study for good."""
    _, multirun = sweep_job_config(tmp_path, "hparams_search=vlm_optuna")
    SweepJobRecorder().on_multirun_start(multirun)

    def launch(overrides, initial_job_idx):  # trial 0 completes, trial 1 is stopped
        if initial_job_idx == 1:
            raise SystemExit(130)
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)]

    sweeper = optuna_sweeper(multirun, launch, n_trials=3)
    sweeper.storage, storage = f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(SystemExit):
        sweeper.sweep([])
    stored = optuna.load_study(study_name="sweep", storage=storage)
    assert [t.state.name for t in stored.trials] == ["COMPLETE", "FAIL"]


def test_an_optuna_trial_that_returned_no_value_is_recorded_as_failed(tmp_path):
    cfg, _ = sweep_job_config(tmp_path, "hparams_search=vlm_optuna", "optimized_metric=null")
    SweepJobRecorder().on_job_end(cfg, JobReturn(status=JobStatus.COMPLETED, _return_value=None))
    recorded = json.loads((tmp_path / "sweep" / "0" / JOB_RESULT).read_text())
    assert recorded["status"] == "failed" and recorded["error"] == (
        "optimized_metric=null: the trial returned no value to the Optuna sweeper")


def test_the_report_gives_the_best_validations_global_step_that_of_its_checkpoint_and_pictures(tmp_path):
    # Lightning logs the validations of global steps 2 and 4 at metrics.csv steps 1 and 3
    write_job(tmp_path / "0", ["model.optimizer.lr=0.001"], "maximize", {"status": "completed", "return_value": 0.2})
    (tmp_path / "0" / "csv").mkdir()
    (tmp_path / "0" / "csv" / "metrics.csv").write_text(
        "epoch,step,train/loss,val/CIDEr\n0,0,7.1,\n0,1,6.9,\n0,1,,0.3\n0,2,6.5,\n0,3,6.2,\n0,3,,0.2\n")
    (row,) = write_report(tmp_path)
    assert (row.best_value, row.best_step) == (0.3, 2)  # best.ckpt's global_step, samples/val_step_000002.png


def test_the_reports_checkpoint_holds_the_weights_of_the_best_step_of_the_jobs_own_metric(tmp_path):
    # optimized_metric=val/loss while the checkpoint callback keeps the best val/CIDEr: best.ckpt is step 2's
    for job in ("0", "1"):
        write_job(tmp_path / job, [f"seed={job}"], "minimize", {"status": "completed", "return_value": 6.5},
                  metric="val/loss")
        (tmp_path / job / "csv").mkdir()
        (tmp_path / job / "csv" / "metrics.csv").write_text(TWO_VALIDATIONS)
        write_checkpoint(tmp_path / job, "best.ckpt", global_step=2)
    write_checkpoint(tmp_path / "0", "last.ckpt", global_step=4)  # job 1 was stopped before its last.ckpt
    rows = {r.job: r for r in write_report(tmp_path)}
    assert (rows["0"].best_step, rows["0"].checkpoint) == (4, str(tmp_path / "0" / "checkpoints" / "last.ckpt"))
    assert (rows["1"].best_step, rows["1"].checkpoint) == (4, "")  # not best.ckpt: val/CIDEr's best
    assert ("- job 1: no checkpoint holds the weights of its best val/loss (step 4); it has best.ckpt "
            "(the best val/CIDEr, step 2)") in (tmp_path / SUMMARY_MD).read_text()


def test_a_report_of_a_dir_given_relative_names_the_same_clean_paths_as_one_given_absolute(tmp_path, monkeypatch):
    """python -m supra.sweep_report dir=../work/sweep from a sibling folder: no `..` in its checkpoint column."""
    sweep = tmp_path / "work" / "sweep"
    write_job(sweep / "0", ["seed=0"], "maximize", {"status": "completed", "return_value": 0.3})
    write_checkpoint(sweep / "0", "best.ckpt", global_step=2)
    (tmp_path / "clone").mkdir()
    monkeypatch.chdir(tmp_path / "clone")
    (row,) = write_report("../work/sweep")
    assert row.checkpoint == str(sweep / "0" / "checkpoints" / "best.ckpt")
    assert ".." not in (sweep / SUMMARY_MD).read_text() and ".." not in (sweep / SUMMARY_CSV).read_text()


def test_jobs_optimising_different_metrics_are_ranked_each_under_its_own(tmp_path):
    # optimized_metric=val/loss,val/Bleu_1: a loss and a score do not compare, nor share a direction
    write_job(tmp_path / "0", ["optimized_metric=val/loss"], None, {"status": "completed", "return_value": 6.5},
              metric="val/loss")
    write_job(tmp_path / "1", ["optimized_metric=val/Bleu_1"], None, {"status": "completed", "return_value": 0.4},
              metric="val/Bleu_1")
    write_job(tmp_path / "2", ["optimized_metric=val/loss"], None, {"status": "completed", "return_value": 6.1},
              metric="val/loss")
    rows = write_report(tmp_path)
    assert [(r.job, r.metric, r.direction) for r in rows] == [
        ("2", "val/loss", "minimize"), ("0", "val/loss", "minimize"), ("1", "val/Bleu_1", "maximize")]
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "3 jobs optimising 2 metrics: each ranked on its own." in summary
    assert "## val/loss (minimize)\n\n2 jobs, sorted by best val/loss (minimize)." in summary
    assert "## val/Bleu_1 (maximize)\n\n1 job, sorted by best val/Bleu_1 (maximize)." in summary
    assert "| job | status | overrides | best val/Bleu_1 |" in summary


def test_the_report_refuses_a_folder_holding_several_multiruns(tmp_path):
    # dir=logs/train/multiruns: two sweeps' jobs are not one sweep to rank
    for sweep_dir in ("2026-12-01_10-00-00", "2026-12-02_10-00-00"):
        write_job(tmp_path / sweep_dir / "0", ["seed=1"], None, {"status": "completed", "return_value": 0.1})
    with pytest.raises(SupraUserError, match=r"holds the jobs of 2 multiruns \(2026-12-01_10-00-00/, "
                                             r"2026-12-02_10-00-00/\): give one of them as dir="):
        write_report(tmp_path)
    assert len(write_report(tmp_path / "2026-12-01_10-00-00")) == 1


def test_the_jobs_of_one_multirun_in_nested_folders_are_one_sweep(tmp_path):
    """hydra.sweep.subdir=lr${model.optimizer.lr}/${hydra.job.num}: each job records its folder within the sweep's,
    which tells the jobs of one multirun, nested, from those of several side by side."""
    subdir = "hydra.sweep.subdir=lr${model.optimizer.lr}/${hydra.job.num}"
    cfg, _ = sweep_job_config(tmp_path, subdir, job="lr0.001/0")
    SweepJobRecorder().on_job_end(cfg, JobReturn(status=JobStatus.COMPLETED, _return_value=0.1))
    assert json.loads((tmp_path / "sweep" / "lr0.001" / "0" / JOB_RESULT).read_text())["subdir"] == "lr0.001/0"

    sweep_dir = tmp_path / "nested"
    for job, lr, value in [("0", "0.001", 0.1), ("1", "0.002", 0.3), ("2", "0.003", None)]:
        write_job(sweep_dir / f"lr{lr}" / job, [f"model.optimizer.lr={lr}"], "maximize",
                  {"status": "completed", "return_value": value, "subdir": f"lr{lr}/{job}"})
    (sweep_dir / "lr0.003" / "2" / JOB_RESULT).unlink()  # killed before it ended: one of the multirun it lies in
    assert [(r.job, r.status) for r in write_report(sweep_dir)] == [
        ("lr0.002/1", "completed"), ("lr0.001/0", "completed"), ("lr0.003/2", "interrupted")]
    assert "3 jobs, sorted by best val/CIDEr (maximize)." in (sweep_dir / SUMMARY_MD).read_text()
    with pytest.raises(SupraUserError, match=rf"dir={sweep_dir / 'lr0.001'} holds some of the jobs of the multirun in "
                                             rf"{sweep_dir}: give dir={sweep_dir}$"):
        write_report(sweep_dir / "lr0.001")
    # two multiruns, each recording its jobs' folders, side by side: still refused
    for other in ("2026-12-01_10-00-00", "2026-12-02_10-00-00"):
        write_job(tmp_path / "multiruns" / other / "0", ["seed=1"], None,
                  {"status": "completed", "return_value": 0.1, "subdir": "0"})
    with pytest.raises(SupraUserError, match=r"holds the jobs of 2 multiruns \(2026-12-01_10-00-00/, 2026-12-02"):
        write_report(tmp_path / "multiruns")


def test_a_sweep_report_that_cannot_be_written_leaves_no_earlier_one_standing_for_the_sweep(tmp_path, caplog):
    """The report written after job 0 would say "1 job" of a sweep that ran more."""
    write_job(tmp_path / "0", ["seed=1"], None, {"status": "completed", "return_value": 0.1})
    SweepJobRecorder._report(tmp_path, quiet=True)
    assert (tmp_path / SUMMARY_CSV).is_file() and "1 job," in (tmp_path / SUMMARY_MD).read_text()
    write_job(tmp_path / "1", ["seed=2"], None, {"status": "completed", "return_value": 0.2})
    (tmp_path / "1" / JOB_RESULT).write_text("[1, 2]")  # a report of the two jobs cannot be written
    SweepJobRecorder._report(tmp_path, quiet=True)
    assert not (tmp_path / SUMMARY_CSV).exists() and not (tmp_path / SUMMARY_MD).exists()
    assert caplog.messages[-1] == (f"no sweep report: {tmp_path / '1' / JOB_RESULT} is not a job result (a JSON object, "
                                   "as the sweep writes it): delete it to report the job as interrupted, or restore "
                                   "it (the earlier sweep_summary.csv/.md, short of the jobs since, is removed)")


def test_a_folder_where_the_sweep_summary_goes_is_named_in_one_line_and_the_earlier_pair_is_left_whole(
        tmp_path, capsys):
    """sweep_summary.csv and .md describe one sweep: a folder in the place of one of them ended in a traceback after
    a new csv was already beside the earlier md."""
    write_job(tmp_path / "0", ["seed=1"], None, {"status": "completed", "return_value": 0.1})
    write_report(tmp_path)
    earlier = (tmp_path / SUMMARY_CSV).read_bytes()
    (tmp_path / SUMMARY_MD).unlink()
    (tmp_path / SUMMARY_MD).mkdir()
    write_job(tmp_path / "1", ["seed=2"], None, {"status": "completed", "return_value": 0.2})
    with pytest.raises(SystemExit):
        run_command("sweep_report", f"dir={tmp_path}")
    assert capsys.readouterr().err == (f"error: dir={tmp_path} holds a folder {SUMMARY_MD} where this run writes its "
                                       f"file {SUMMARY_MD}: move the folder away\n")
    assert (tmp_path / SUMMARY_CSV).read_bytes() == earlier


def test_the_sweep_summarys_csv_and_md_are_replaced_together_or_not_at_all(tmp_path, monkeypatch):
    """A write that fails on the second file (a full disk) leaves the earlier pair, not a new csv beside an old md."""
    write_job(tmp_path / "0", ["seed=1"], None, {"status": "completed", "return_value": 0.1})
    write_report(tmp_path)
    earlier = {name: (tmp_path / name).read_bytes() for name in (SUMMARY_CSV, SUMMARY_MD)}
    write_job(tmp_path / "1", ["seed=2"], None, {"status": "completed", "return_value": 0.2})
    written = Path.write_text

    def full_disk_at_the_md(path: Path, *args, **kwargs):
        if path.suffix == ".md":
            raise OSError(28, "No space left on device")
        return written(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk_at_the_md)
    with pytest.raises(OSError, match="No space left"):
        write_report(tmp_path)
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_bytes() for name in (SUMMARY_CSV, SUMMARY_MD)} == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", SUMMARY_CSV, SUMMARY_MD]  # no temp left


def test_a_job_result_that_is_not_a_json_object_is_named_in_one_line(tmp_path):
    write_job(tmp_path / "0", ["seed=1"], None, {"status": "completed", "return_value": 0.1})
    (tmp_path / "0" / JOB_RESULT).write_text("[1, 2]")
    with pytest.raises(SupraUserError, match=rf"{tmp_path / '0' / JOB_RESULT} is not a job result \(a JSON object"):
        write_report(tmp_path)


def test_a_failed_jobs_reason_keeps_the_cause_hydra_gives_on_its_next_line(tmp_path):
    # Hydra's instantiate says "Error in call to target 'builtins.int':" and the TypeError on the next line
    cfg, _ = sweep_job_config(tmp_path)
    with pytest.raises(InstantiationException) as raised:
        instantiate({"_target_": "builtins.int", "foo": 1})
    SweepJobRecorder().on_job_end(cfg, JobReturn(status=JobStatus.FAILED, _return_value=raised.value))
    error = json.loads((tmp_path / "sweep" / "0" / JOB_RESULT).read_text())["error"]
    assert error.startswith("InstantiationException: Error in call to target 'builtins.int': TypeError(")
    assert "'foo' is an invalid keyword argument for int()" in error and "\n" not in error


def test_a_job_without_metrics_csv_has_no_best_value_and_the_report_says_it_is_ranked_by_its_final(tmp_path):
    # logger=tensorboard: no csv/metrics.csv, so only the value the job returned is known
    write_job(tmp_path / "0", ["seed=1"], None, {"status": "completed", "return_value": 0.1})
    write_job(tmp_path / "1", ["seed=2"], None, {"status": "completed", "return_value": 0.2})
    write_checkpoint(tmp_path / "1", "best.ckpt", global_step=2)
    rows = write_report(tmp_path)
    assert [(r.job, r.best_value, r.best_step, r.final_value) for r in rows] == [("1", None, None, 0.2),
                                                                               ("0", None, None, 0.1)]
    # its checkpoint callback keeps the best val/CIDEr, the job's metric: best.ckpt is still that best's
    assert rows[0].checkpoint == str(tmp_path / "1" / "checkpoints" / "best.ckpt")
    assert ("- job 0: its best val/CIDEr and its step are unknown: it logged no csv/metrics.csv (add logger=many "
            "or the csv logger); it is ranked by its final value") in (tmp_path / SUMMARY_MD).read_text()


def test_a_job_of_a_csv_logged_sweep_that_logged_nothing_is_said_to_have_logged_no_metric(tmp_path):
    # two steps without a validation: the csv logger, configured, wrote no metrics.csv
    write_job(tmp_path / "0", ["trainer.max_steps=2"], None, {"status": "completed", "return_value": None})
    config = yaml.safe_load((tmp_path / "0" / ".hydra" / "config.yaml").read_text())
    config["logger"] = {"csv": {"_target_": "supra.loggers.csv_logger.CSVLoggerKeepingColumns", "name": "csv"}}
    (tmp_path / "0" / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    write_report(tmp_path)
    assert ("- job 0: its best val/CIDEr and its step are unknown: it logged no metric (a run this short may log "
            "none)\n") in (tmp_path / SUMMARY_MD).read_text()


def test_a_test_metric_is_reported_at_the_step_of_the_checkpoint_the_test_scored(tmp_path):
    """optimized_metric=test/CIDEr: the test scores best.ckpt (step 3 here) but logs at the fit's last step (6),
    where last.ckpt's weights never gave that score."""
    write_job(tmp_path / "0", ["seed=1"], "maximize", {"status": "completed", "return_value": 0.02},
              metric="test/CIDEr")
    (tmp_path / "0" / "csv").mkdir()
    (tmp_path / "0" / "csv" / "metrics.csv").write_text("epoch,step,val/CIDEr,test/CIDEr\n0,2,0.3,\n0,5,0.1,\n"
                                                        "1,6,,0.02\n")
    write_checkpoint(tmp_path / "0", "best.ckpt", global_step=3)
    write_checkpoint(tmp_path / "0", "last.ckpt", global_step=6)
    (row,) = write_report(tmp_path)
    assert (row.best_value, row.best_step, row.checkpoint) == (0.02, 3, str(tmp_path / "0" / "checkpoints" / "best.ckpt"))
    (tmp_path / "0" / "checkpoints" / "best.ckpt").unlink()  # no best kept: the test scored the last weights
    (row,) = write_report(tmp_path)
    assert (row.best_step, row.checkpoint) == (6, str(tmp_path / "0" / "checkpoints" / "last.ckpt"))


def test_the_best_value_is_read_where_the_jobs_csv_logger_wrote_its_metrics_csv(tmp_path):
    # logger.csv.name=curves: <job>/curves/metrics.csv; version=null: Lightning's version_0
    for job, name, version, folder in [("0", "curves", "", "curves"), ("1", "csv", None, "csv/version_0")]:
        write_job(tmp_path / job, [f"seed={job}"], "maximize", {"status": "completed", "return_value": 0.2})
        config = yaml.safe_load((tmp_path / job / ".hydra" / "config.yaml").read_text())
        config["logger"] = {"csv": {"_target_": "supra.loggers.csv_logger.CSVLoggerKeepingColumns",
                                    "save_dir": "${paths.output_dir}", "name": name, "version": version}}
        (tmp_path / job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / job / folder).mkdir(parents=True)
        (tmp_path / job / folder / "metrics.csv").write_text(TWO_VALIDATIONS)
    assert [(r.job, r.best_value, r.best_step) for r in write_report(tmp_path)] == [("0", 0.3, 2), ("1", 0.3, 2)]


@pytest.mark.parametrize(("damaged", "content", "said"), [
    ("csv/metrics.csv", b"epoch,step,val/CIDEr\n0,\xff,0.5\n", "is not the curves a CSV logger writes (it is not UTF-8 text)"),
    (".hydra/config.yaml", b"- 1\n- 2\n", "is not a job's config (a YAML mapping, as Hydra writes it) (it holds list [1, 2])"),
])
def test_a_damaged_job_file_is_named_in_one_line_by_the_report_and_the_sweeps_own_hook(tmp_path, caplog, damaged,
                                                                                      content, said):
    write_job(tmp_path / "0", ["seed=1"], None, {"status": "completed", "return_value": 0.1})
    (tmp_path / "0" / damaged).parent.mkdir(exist_ok=True)
    (tmp_path / "0" / damaged).write_bytes(content)
    message = f"{tmp_path / '0' / damaged} {said}: move it away to report the job without it, or restore it"
    with pytest.raises(SupraUserError) as refused:
        write_report(tmp_path)
    assert str(refused.value) == message
    SweepJobRecorder._report(tmp_path, quiet=True)  # after each job of a sweep: a warning, not a crashed hook
    assert caplog.messages[-1] == f"no sweep report: {message}"


def optuna_sweep_config(*overrides: str):
    """train.yaml with hparams_search=vlm_optuna and Hydra's settings, as `python train.py -m` composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", return_hydra_config=True, overrides=["hparams_search=vlm_optuna", *overrides])


def test_a_sweep_whose_trainer_wants_gpus_the_machine_lacks_is_one_line_before_the_first_job(monkeypatch, capsys):
    """Not each of the 20 trials refusing the same missing GPUs in turn."""
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("trainer=kaggle_2xt4"))
    assert refused.value.code == 2 and capsys.readouterr().err == (
        "error: trainer=kaggle_2xt4 needs 2 CUDA GPUs per node (2 in all) but this machine has 0: use trainer=cpu "
        "(or trainer=ddp_sim to try DDP on CPU processes)\n")
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("trainer=cpu"))
    swept = optuna_sweep_config("trainer=kaggle_2xt4", "+hydra.sweeper.params.trainer='choice(kaggle_2xt4,cpu)'")
    SweeperSettingsCheck().on_multirun_start(swept)  # the trials differ in it: each checks its own


def test_the_slurm_launcher_on_a_machine_without_slurm_is_one_line_before_the_sweep_starts(monkeypatch, tmp_path,
                                                                                           capsys):
    """Not submitit's "Could not detect srun" traceback once Hydra had written the sweep's multirun.yaml."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("hydra/launcher=slurm"))
    assert refused.value.code == 2 and capsys.readouterr().err == (
        "error: hydra/launcher=slurm submits each job to SLURM, but this machine has no sbatch or srun on its PATH: "
        "run it on a SLURM cluster's login node, or here leave hydra/launcher out (the jobs one after another) or "
        "choose hydra/launcher=submitit_local (each job a process of its own)\n")
    for command in ("sbatch", "srun"):  # a SLURM login node
        (tmp_path / command).write_text("#!/bin/sh\n")
        (tmp_path / command).chmod(0o755)
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("hydra/launcher=slurm"))


def test_the_slurm_launchers_jobs_are_checked_for_gpus_and_nodes_on_the_cluster_not_on_the_login_node(
        monkeypatch, tmp_path, capsys):
    """A login node without GPUs submits trainer=multi_node's jobs (each job checks its own node's GPUs); off a
    cluster the missing sbatch and srun are said, not this machine's GPUs."""
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    with pytest.raises(SystemExit):
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("hydra/launcher=slurm", "trainer=multi_node"))
    assert capsys.readouterr().err.startswith("error: hydra/launcher=slurm submits each job to SLURM, but this "
                                              "machine has no sbatch or srun on its PATH: ")
    for command in ("sbatch", "srun"):  # a SLURM login node
        (tmp_path / command).write_text("#!/bin/sh\n")
        (tmp_path / command).chmod(0o755)
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("hydra/launcher=slurm", "trainer=multi_node"))
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(
        "hydra/launcher=slurm", "trainer=multi_node", "trainer.accelerator=cpu", "trainer.sync_batchnorm=false",
        "trainer.precision=32-true"))  # a CPU job on 2 nodes, whose nodes SLURM starts together
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("trainer", "gpus", "tasks"), [
    (["trainer=ddp_sim"], 0, 2),        # was 2 GPUs asked for 2 CPU processes: unschedulable on a CPU partition
    (["trainer=cpu"], 0, 1),
    (["trainer=kaggle_2xt4"], 2, 2),    # a GPU trainer's request as before: a GPU per task
    (["trainer=multi_node", "trainer.devices=4"], 4, 4),
    (["trainer=multi_node", "trainer.devices=[0,1]"], 2, 2),  # the GPUs' indices, counted: were passed on as given
    (["trainer=multi_node", "trainer.devices='0,1,2'"], 3, 3),
])
def test_a_slurm_job_asks_for_gpus_per_node_only_for_a_gpu_trainer(trainer, gpus, tasks):
    launcher = optuna_sweep_config("hydra/launcher=slurm", *trainer).hydra.launcher
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (gpus, tasks)


@pytest.mark.parametrize("devices", ["-1", "auto"])
def test_a_slurm_sweep_of_every_gpu_of_a_node_is_one_line_before_anything_is_submitted(devices, monkeypatch,
                                                                                       tmp_path, capsys):
    """Lightning takes trainer.devices=-1 or auto, but they went into sbatch's --gpus-per-node and
    --ntasks-per-node as given."""
    for command in ("sbatch", "srun"):  # a SLURM login node
        (tmp_path / command).write_text("#!/bin/sh\n")
        (tmp_path / command).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(
            "hydra/launcher=slurm", "trainer=multi_node", f"trainer.devices={devices}"))
    assert refused.value.code == 2 and capsys.readouterr().err == (
        f"error: trainer.devices={devices} (every GPU of a node) is no number SLURM can ask for: hydra/launcher=slurm "
        "needs the GPUs per node as a count, e.g. trainer.devices=4\n")


def test_hydra_job_chdir_in_a_sweep_is_one_line_before_the_first_job(capsys):
    """Not each job refusing it in turn (supra/utils/cli.py: relative paths are read from where the sweep starts)."""
    from supra.utils.cli import JOB_CHDIR

    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("hydra.job.chdir=true"))
    assert refused.value.code == 2 and capsys.readouterr().err == f"error: {JOB_CHDIR}\n"


@pytest.mark.parametrize(("overrides", "message"), [
    (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0 must be a whole number >= 1"),
    (["hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs=0 must be a whole number >= 1"),
    # Optuna's create_study takes only its own spelling: else its ValueError traceback
    (["hydra.sweeper.direction=maximise"], "hydra.sweeper.direction=maximise is no direction Optuna takes: give "
                                           "maximize or minimize, spelled so (did you mean maximize?)"),
    (["hydra.sweeper.direction=[maximize,Minimize]"], "hydra.sweeper.direction=[maximize,Minimize]: Minimize is no "
     "direction Optuna takes: give maximize or minimize, spelled so (did you mean minimize?)"),
    # else an AssertionError as Hydra makes the sweeper
    (["hydra.sweeper.max_failure_rate=1.5"], "hydra.sweeper.max_failure_rate=1.5 must be a number from 0 to 1: the "
     "share of a batch of trials that may fail before the sweep stops (1.0: failed trials never stop it)"),
    (["hydra.sweeper.storage=sqlite:///{tmp}/no_folder/study.db"],
     "hydra.sweeper.storage=sqlite:///{tmp}/no_folder/study.db: cannot write the study file there (No such file or "
     "directory): give a file in a folder you can write to (sqlite:///sweeps.db, beside the command)"),
    (["hydra.sweeper.storage=sqlite:///{tmp}/study.db", "hydra.sweeper.study_name=kept"],
     "hydra.sweeper.direction=maximize, but the study kept in sqlite:///{tmp}/study.db was made to minimize: give its "
     "direction, or another hydra.sweeper.study_name"),
])
def test_optuna_settings_its_sweeper_would_fail_on_are_one_line_before_the_sweep(overrides, message, tmp_path, capsys):
    kept = optuna.create_study(storage=f"sqlite:///{tmp_path}/study.db", study_name="kept", direction="minimize")
    kept.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    cfg = optuna_sweep_config(*(o.format(tmp=tmp_path) for o in overrides))
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(cfg)
    assert refused.value.code == 2 and capsys.readouterr().err == f"error: {message.format(tmp=tmp_path)}\n"
    # the study's own direction, or a study of another name, goes on
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/study.db", "hydra.sweeper.study_name=kept",
        "hydra.sweeper.direction=minimize"))


def test_a_search_config_named_for_a_model_is_refused_with_another_naming_the_experiment_to_add(capsys):
    """vqvae_optuna over the captioner stopped its first trial on "Could not override 'model.net.beta'";
    a2a_optuna, whose settings the captioner has too, tuned the captioner."""
    for search, model, experiment in [("vqvae_optuna", "vqvae_f8", "vqvae_shapes"), ("a2a_optuna", "a2a_nano", "a2a_shapes")]:
        with pytest.raises(SystemExit) as refused:
            SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(f"hparams_search={search}"))
        assert refused.value.code == 2 and capsys.readouterr().err == (
            f"error: hparams_search={search} searches the settings of model={model}, but this sweep trains "
            f"model=vlm_nano (experiment=vlm_shapes): add experiment={experiment}\n")
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("hparams_search=vqvae_optuna", "experiment=vqvae_shapes"))


def test_a_direction_per_objective_is_refused_as_a_trial_returns_one_value(tmp_path):
    """Else every trial failed in Optuna ("Return value must be a list or tuple"), and the sweep "completed"."""
    sweeper = OmegaConf.create({"n_trials": 1, "n_jobs": 1, "direction": ["maximize", "minimize"]})
    with pytest.raises(SupraUserError) as refused:
        check_optuna_settings(sweeper, "val/CIDEr")
    assert str(refused.value) == ("hydra.sweeper.direction=[maximize,minimize] asks for 2 objectives, but a trial "
                                  "returns one value (optimized_metric): give one direction, maximize or minimize")
    sweeper.direction = ["maximize"]
    check_optuna_settings(sweeper, "val/CIDEr")


def test_a_search_the_wrong_way_is_warned_a_score_minimised_as_a_loss_maximised(caplog):
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("hydra.sweeper.direction=minimize"))
    assert caplog.messages[-1] == ("optimized_metric=val/CIDEr, a score, is minimised (hydra.sweeper.direction=minimize): "
                                   "add hydra.sweeper.direction=maximize to search for the highest")
    caplog.clear()
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config("optimized_metric=val/loss"))
    assert caplog.messages[-1] == ("optimized_metric=val/loss is maximised (hydra.sweeper.direction=maximize): add "
                                   "hydra.sweeper.direction=minimize to search for the lowest")
    caplog.clear()
    for ok in (["optimized_metric=val/loss", "hydra.sweeper.direction=minimize"], ["optimized_metric=val/Bleu_4"]):
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*ok))
    assert not caplog.messages


def test_a_searched_key_forced_on_the_command_line_leaves_the_search(capsys):
    """`++model.net.dropout=0.0`: the jobs trained with 0.0, but the search space kept its own key, and Optuna's
    results named the dropout it had drawn."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    cfg = optuna_sweep_config("++model.net.dropout=0.0")
    SweeperSettingsCheck().on_multirun_start(cfg)
    params = cfg.hydra.sweeper.params
    assert "model.net.dropout" not in params and "model.optimizer.lr" in params
    # as the sweeper reads its search space and the command line
    searched, fixed = create_params_from_overrides([*(f"{k}={v}" for k, v in params.items()),
                                                    *cfg.hydra.overrides.task])
    assert "model.net.dropout" not in searched and fixed["++model.net.dropout"] == "0.0"
    assert "model.net.dropout" in optuna_sweep_config().hydra.sweeper.params


def test_an_optuna_search_without_one_optimized_metric_is_one_line_before_the_first_trial(capsys):
    """optimized_metric=null: each trial trained in full, then Optuna's "No trials are completed yet."; a comma list:
    a searched parameter, both metrics' values in one study ranked as one."""
    swept = optuna_sweep_config()
    with read_write(swept.hydra):  # as `-m optimized_metric=val/loss,val/Bleu_1` composes it
        swept.hydra.overrides.task.append("optimized_metric=val/loss,val/Bleu_1")
    for cfg, message in [
        (optuna_sweep_config("optimized_metric=null"), "optimized_metric=null, but an Optuna search (hydra.sweeper) "
         "optimises the value each trial returns: give the metric to optimise (optimized_metric=val/loss)"),
        (swept, "optimized_metric=val/loss,val/Bleu_1: an Optuna search optimises one metric, its trials' values "
         "ranked as one: give one optimized_metric (a study each), or compare metrics in a grid sweep without "
         "hparams_search"),
    ]:
        with pytest.raises(SystemExit) as refused:
            SweeperSettingsCheck().on_multirun_start(cfg)
        assert refused.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"


def test_a_storage_that_cannot_hold_a_study_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    sweeper = OmegaConf.create({"n_trials": 1, "n_jobs": 1, "study_name": "x", "direction": "maximize"})
    # else sqlalchemy's tracebacks: "Could not parse SQLAlchemy URL", "file is not a database", "unable to open"
    for storage, message in [
        ("sweeps.db", "hydra.sweeper.storage=sweeps.db is no database URL: use sqlite:///sweeps.db (a study file, "
                      "made if it is not there)"),
        (f"sqlite:///{tmp_path}/notes.txt", f"hydra.sweeper.storage=sqlite:///{tmp_path}/notes.txt: {tmp_path}/notes.txt "
         "is not an SQLite database, so it holds no study: give another file, made if it is not there "
         "(sqlite:///sweeps.db, beside the command)"),
        (f"sqlite:///{tmp_path}", f"hydra.sweeper.storage=sqlite:///{tmp_path} is a folder: give a file in it "
                                  f"(hydra.sweeper.storage=sqlite:///{tmp_path}/sweeps.db)"),
    ]:
        sweeper.storage = storage
        with pytest.raises(SupraUserError) as refused:
            check_optuna_settings(sweeper, "val/psnr")
        assert str(refused.value) == message
    with closing(sqlite3.connect(tmp_path / "other.db")) as other:  # another program's database
        other.execute("create table studies(x int)")
    for storage, message in [  # else Optuna's StorageInternalError or a ValueError traceback
        (f"sqlite:///{tmp_path}/other.db", f"hydra.sweeper.storage=sqlite:///{tmp_path}/other.db: {tmp_path}/other.db is "
         "another program's SQLite database (tables studies), not a study file: give another file, made if it is not "
         "there (sqlite:///sweeps.db, beside the command)"),
        (f"sqlite:///{tmp_path}/sweeps.db?timeout=abc", f"hydra.sweeper.storage=sqlite:///{tmp_path}/sweeps.db?timeout=abc: "
         "Optuna cannot open the study there (could not convert string to float: 'abc'): give the URL's options as "
         "sqlite takes them (?timeout=SECONDS), or none"),
    ]:
        sweeper.storage = storage
        with pytest.raises(SupraUserError) as refused:
            check_optuna_settings(sweeper, "val/psnr")
        assert str(refused.value) == message
    with closing(sqlite3.connect(tmp_path / "other.db")) as other:  # left as it was: Optuna wrote no tables into it
        assert other.execute("select name from sqlite_master").fetchall() == [("studies",)]
    sweeper.storage = f"sqlite:///{tmp_path}/sweeps.db"  # a new file: made, and its study with it
    check_optuna_settings(sweeper, "val/psnr")
    assert optuna.load_study(study_name="x", storage=sweeper.storage).user_attrs == {STUDY_METRIC: "val/psnr"}


def test_a_refused_sweep_makes_no_sweep_folder(refusals):
    result = refusals["0 trials"]
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: hydra.sweeper.n_trials=0 must be a whole number >= 1"
    assert list(Path(result.args[-1].partition("=")[2]).parent.iterdir()) == []  # no sweep folder, nothing else


def stored_study(tmp_path: Path, trials: int) -> str:
    """A study "kept" in tmp_path/study.db that maximises and holds `trials` completed trials."""
    storage = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(storage=storage, study_name="kept", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=trials)
    return storage


def test_a_stored_study_records_the_metric_it_optimises_and_refuses_another(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    settings = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=new"]
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings))
    study = optuna.load_study(study_name="new", storage=storage)
    assert study.user_attrs[STUDY_METRIC] == "val/CIDEr"
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings, "optimized_metric=val/BLEU-4"))
    assert refused.value.code == 2 and capsys.readouterr().err == (
        f"error: optimized_metric=val/BLEU-4, but the study new in {storage} holds values of val/CIDEr: give "
        "optimized_metric=val/CIDEr, or another hydra.sweeper.study_name\n")
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings))  # its own metric goes on


def test_a_stored_study_records_what_its_trials_run_on_and_refuses_other_data_or_another_model(tmp_path, capsys):
    """Else its trials' val/loss and those of another validation set and model were ranked as one."""
    storage = f"sqlite:///{tmp_path}/study.db"
    settings = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=r", "optimized_metric=val/loss",
                "hydra.sweeper.direction=minimize", "data.num_val=8"]
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings))
    study = optuna.load_study(study_name="r", storage=storage)
    recorded = study.user_attrs[STUDY_SETUP]
    assert recorded["settings"]["experiment"] == "vlm_shapes" and recorded["settings"]["data.num_val"] == 8
    assert "model.optimizer.lr" in recorded["searched"] and "model.optimizer.lr" not in recorded["settings"]
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings, "data.num_val=16", "model.net.N_LAYERS=1"))
    assert refused.value.code == 2 and capsys.readouterr().err == (
        f"error: the study r in {storage} holds trials run on other settings than this sweep's: data.num_val=16 (the "
        "study's: 8), model.net.N_LAYERS=1 (the study's: 3); its values and theirs would be ranked as one: give "
        "another hydra.sweeper.study_name (or the study's settings)\n")
    # what leaves a trial's value as it is goes on: speed, display, loggers, callbacks, folders, a searched key fixed
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(
        *settings, "data.num_workers=2", "logger=tensorboard", "callbacks=none", "paths.data_dir=elsewhere",
        "model.compile=true", "model.optimizer.lr=0.001"))
    # nor does what only the test reads: trials compare on val, drawn apart from test
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings, "data.num_test=8"))
    a2a = study_setup(optuna_sweep_config("experiment=a2a_shapes"), [])
    assert not [key for key in a2a["settings"] if key.endswith((".num_test", ".test_items"))]
    # nor does a captioner's eval_batch_size (its scores and val/loss the same at any), also against a study that
    # recorded it, where an a2a model's val/loss, a mean over each batch's tokens, moves with it
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings, "data.eval_batch_size=7"))
    recorded["settings"]["data.eval_batch_size"] = 250
    now = study_setup(optuna_sweep_config(*settings[2:], "data.eval_batch_size=7"), recorded["searched"])
    assert "data.eval_batch_size" not in now["settings"] and setup_changes(recorded, now) == []
    a2a = study_setup(optuna_sweep_config("experiment=a2a_shapes", "data.eval_batch_size=7"), [])
    assert setup_changes({**a2a, "settings": {**a2a["settings"], "data.eval_batch_size": 100}}, a2a) == [
        "data.eval_batch_size=7 (the study's: 100)"]
    # a study stored before studies recorded this is taken as it is
    legacy = optuna.create_study(storage=storage, study_name="legacy", direction="minimize")
    legacy.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings[:1], "hydra.sweeper.study_name=legacy",
                                                                 *settings[2:], "data.num_val=16"))
    assert STUDY_SETUP not in optuna.load_study(study_name="legacy", storage=storage).user_attrs


def test_a_stored_study_resumed_with_a_parameter_searched_another_way_is_one_line(tmp_path, capsys):
    """Else Optuna's "Cannot set different distribution kind" traceback, its first trial left RUNNING in the study."""
    storage = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(storage=storage, study_name="kept", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("model.net.dropout", 0.0, 0.1), n_trials=1)
    settings = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=kept"]
    choice = optuna_sweep_config(*settings)
    with read_write(choice.hydra):  # as `-m 'model.net.dropout=choice(0.0,0.05)'` composes it
        choice.hydra.overrides.task.append("model.net.dropout=choice(0.0,0.05)")
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(choice)
    assert refused.value.code == 2 and capsys.readouterr().err == (
        "error: model.net.dropout is searched as CategoricalDistribution(choices=(0.0, 0.05)), but the study kept in "
        f"{storage} searched it as UniformDistribution(high=0.1, low=0.0), which Optuna cannot change: search it so, "
        "or give another hydra.sweeper.study_name\n")
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings))  # its own space goes on
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings, "model.net.dropout=0.0"))  # or none


def test_a_stored_study_without_a_completed_trial_is_refused_too_and_the_message_says_how_to_delete_it(tmp_path,
                                                                                                        capsys):
    """A mistyped optimized_metric is refused as the first trial starts, after the study was made: the corrected
    run is refused for not giving the typo, and told how to delete the study, not given it made again."""
    storage = f"sqlite:///{tmp_path}/study.db"
    settings = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=new"]
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings, "optimized_metric=val/CIDER"))
    failed = optuna.load_study(study_name="new", storage=storage)
    failed.optimize(lambda trial: float("nan"), n_trials=1)  # its trial failed
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings))
    assert refused.value.code == 2 and capsys.readouterr().err == (
        f"error: optimized_metric=val/CIDEr, but the study new in {storage} holds values of val/CIDER: give "
        "optimized_metric=val/CIDER, or another hydra.sweeper.study_name, or (it holds no completed trial) delete it "
        f"if no sweep is running on it: optuna delete-study --study-name new --storage {storage}\n")
    study = optuna.load_study(study_name="new", storage=storage)  # kept as it was, its failed trial with it
    assert study.user_attrs[STUDY_METRIC] == "val/CIDER" and len(study.trials) == 1
    optuna.delete_study(study_name="new", storage=storage)  # as the command given does
    SweeperSettingsCheck().on_multirun_start(optuna_sweep_config(*settings, "hydra.sweeper.direction=minimize"))
    study = optuna.load_study(study_name="new", storage=storage)
    assert study.user_attrs[STUDY_METRIC] == "val/CIDEr" and study.direction.name == "MINIMIZE"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # enqueue_trial
def test_a_running_sweep_whose_trials_all_failed_keeps_its_study_when_another_sweep_starts(tmp_path):
    """Between two batches a sweep runs no trial: its study, deleted and made again to the second sweep's settings
    (SQLite giving the new one its id), took the first sweep's later values under the second's setup."""
    storage = f"sqlite:///{tmp_path}/study.db"
    sweeper = OmegaConf.create({"n_trials": 2, "n_jobs": 1, "study_name": "s", "direction": "maximize",
                                "storage": storage})
    setup_a = {"settings": {"data.num_val": 8}, "searched": []}
    check_optuna_settings(sweeper, "val/CIDEr", setup_a)
    sweep_a = optuna.create_study(study_name="s", storage=storage, direction="maximize", load_if_exists=True)
    sweep_a.tell(sweep_a.ask(), state=optuna.trial.TrialState.FAIL)  # its first batch failed
    with pytest.raises(SupraUserError, match=r"data\.num_val=16 \(the study's: 8\).* delete it if no sweep is "
                                             r"running on it: optuna delete-study --study-name s --storage "):
        check_optuna_settings(sweeper, "val/CIDEr", {"settings": {"data.num_val": 16}, "searched": []})
    sweep_a.tell(sweep_a.ask(), 0.9)  # its second batch
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs[STUDY_SETUP] == setup_a and [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    # a study of waiting trials only (enqueued) is kept too
    waiting = optuna.create_study(study_name="w", storage=storage, direction="maximize")
    waiting.enqueue_trial({"x": 0.5})
    sweeper.study_name = "w"
    with pytest.raises(SupraUserError, match="direction=minimize, but the study w .* was made to maximize"):
        check_optuna_settings(OmegaConf.merge(sweeper, {"direction": "minimize"}), "val/CIDEr")
    assert [t.state.name for t in optuna.load_study(study_name="w", storage=storage).trials] == ["WAITING"]


def test_the_reports_optuna_section_says_the_best_trial_of_a_resumed_study_may_be_an_earlier_sessions(tmp_path):
    """storage=sqlite:///study.db run twice: Optuna's best (optimization_results.yaml) is the study's, which may
    be a trial of the first session, whose job is in the first session's folder."""
    def objective(trial: optuna.Trial) -> float:  # the first trial is the best
        trial.suggest_float("model.optimizer.lr", 1e-4, 1e-2)
        return -trial.number

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/study.db", study_name="vlm1", direction="maximize")
    study.optimize(objective, n_trials=2)
    first, second = study.trials  # one trial in each session
    sweep_dir = tmp_path / "second"
    write_job(sweep_dir / "0", [f"model.optimizer.lr={second.params['model.optimizer.lr']}"], "maximize",
              {"status": "completed", "return_value": -1.0})
    hydra_yaml = sweep_dir / "0" / ".hydra" / "hydra.yaml"
    recorded = yaml.safe_load(hydra_yaml.read_text())  # the study, named relative to where the sweep was started
    recorded["hydra"]["sweeper"].update(storage="sqlite:///study.db", study_name="vlm1")
    hydra_yaml.write_text(yaml.safe_dump({"hydra": {**recorded["hydra"], "runtime": {"cwd": str(tmp_path)}}}))

    def summary_with_best(best: optuna.trial.FrozenTrial) -> str:
        (sweep_dir / "optimization_results.yaml").write_text(yaml.safe_dump(
            {"name": "optuna", "best_params": best.params, "best_value": best.value}))
        write_report(sweep_dir)
        return (sweep_dir / SUMMARY_MD).read_text()

    assert ("## Optuna\n\nThe best trial of the study vlm1 kept in sqlite:///study.db is trial 0 from an earlier "
            "session (its job is in another folder): none of this sweep's jobs.\n\nbest value: 0\n"
            ) in summary_with_best(first)
    # one of this sweep's jobs: named by its trial number and its job
    assert ("The best trial of the study vlm1 kept in sqlite:///study.db is trial 1: job 0 of this sweep."
            in summary_with_best(second))


def test_a_sampler_seed_given_for_a_stored_study_is_advanced_past_its_trials_as_the_configured_one_is(tmp_path):
    settings = [f"hydra.sweeper.storage={stored_study(tmp_path, trials=3)}", "hydra.sweeper.study_name=kept"]
    given = optuna_sweep_config(*settings, "hydra.sweeper.sampler.seed=7")
    SweeperSettingsCheck().on_multirun_start(given)
    assert given.hydra.sweeper.sampler.seed == 7 + 3
    configured = optuna_sweep_config(*settings)
    SweeperSettingsCheck().on_multirun_start(configured)
    assert configured.hydra.sweeper.sampler.seed == 1234 + 3
    # a new study's given seed is kept as given
    fresh = optuna_sweep_config(*settings[:1], "hydra.sweeper.study_name=fresh", "hydra.sweeper.sampler.seed=7")
    SweeperSettingsCheck().on_multirun_start(fresh)
    assert fresh.hydra.sweeper.sampler.seed == 7


def test_a_grid_sweep_stopped_before_all_its_jobs_ran_says_which_never_started_and_keeps_the_swept_key(tmp_path):
    sweeper = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None}
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": sweeper, "overrides": {"task": ["model.optimizer.lr=1e-3,-5", "trainer=cpu"]}}}))
    write_job(tmp_path / "0", ["model.optimizer.lr=0.001", "trainer=cpu"], "maximize", {"status": "interrupted"})
    write_report(tmp_path)
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "1 of 2 jobs ran (job 1: `model.optimizer.lr=-5` never started), sorted by best val/CIDEr" in summary
    assert "All jobs: `trainer=cpu`\n" in summary  # the swept key is no setting all jobs share
    assert "| 0 | interrupted | `model.optimizer.lr=0.001` |" in summary


def grid_sweep_folder(sweep_dir: Path, params: dict[str, str], task: list[str]) -> None:
    """multirun.yaml of a grid sweep whose config sets hydra.sweeper.params and whose command line gives `task`."""
    sweeper = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": params}
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": sweeper,
                                                                       "overrides": {"task": task}}}, sort_keys=False))


def test_a_command_line_value_of_a_key_the_config_sweeps_replaces_that_sweep_in_the_planned_grid(tmp_path):
    # experiment=vlm_study sweeps study over 7 variants; study=nvis1 on the command line runs that one alone
    grid_sweep_folder(tmp_path, {"study": "release,nvis1,nvis4"}, ["experiment=vlm_study", "study=nvis1"])
    write_job(tmp_path / "0", ["experiment=vlm_study", "study=nvis1"], None, {"status": "interrupted"})
    write_report(tmp_path)
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "1 job, sorted by best val/CIDEr" in summary and "never started" not in summary
    assert "All jobs: `experiment=vlm_study study=nvis1`\n" in summary  # no longer swept: a shared setting


def test_a_key_swept_both_in_the_config_and_on_the_command_line_is_planned_with_the_command_lines_values(tmp_path):
    # Hydra keeps the key in the params' place (before seed) with the command line's values: 2 x 2 jobs, not 3 x 2 x 2
    grid_sweep_folder(tmp_path, {"study": "release,nvis1,nvis4", "seed": "1,2"},
                      ["experiment=vlm_study", "study=nvis1,decoder6"])
    write_job(tmp_path / "0", ["experiment=vlm_study", "study=nvis1", "seed=1"], None, {"status": "interrupted"})
    write_report(tmp_path)
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert ("1 of 4 jobs ran (job 1: `study=nvis1 seed=2`, job 2: `study=decoder6 seed=1`, "
            "job 3: `study=decoder6 seed=2` never started)") in summary
    assert "| 0 | interrupted | `study=nvis1 seed=1` |" in summary  # both swept keys stay in the row


def test_a_sweep_given_by_a_path_relative_to_another_folder_than_the_one_it_ran_in_is_reported_in_full(
        tmp_path, monkeypatch):
    # the sweep ran in project/; `python -m supra.sweep_report dir=sweep` is run from tmp_path
    sweep_dir, project = tmp_path / "sweep", tmp_path / "project"
    project.mkdir()
    write_job(sweep_dir / "0", ["seed=0"], "maximize", {"status": "completed", "return_value": 0.2})
    hydra_yaml = sweep_dir / "0" / ".hydra" / "hydra.yaml"
    recorded = yaml.safe_load(hydra_yaml.read_text())
    hydra_yaml.write_text(yaml.safe_dump({"hydra": {**recorded["hydra"], "runtime": {"cwd": str(project)}}}))
    (sweep_dir / "0" / "csv").mkdir()
    (sweep_dir / "0" / "csv" / "metrics.csv").write_text(TWO_VALIDATIONS)
    write_checkpoint(sweep_dir / "0", "best.ckpt", global_step=2)
    monkeypatch.chdir(tmp_path)
    (row,) = write_report("sweep")
    assert (row.best_value, row.best_step, row.checkpoint) == (0.3, 2, str(sweep_dir / "0" / "checkpoints" / "best.ckpt"))
    assert "Notes" not in (sweep_dir / SUMMARY_MD).read_text()


@pytest.mark.parametrize(("searched", "need"), [
    ("model.optimizer.lr=tag(log, interval(0, 1e-2))",
     "a log interval needs low > 0 (The `low` value must be larger than 0 for a log distribution (low=0.0, high=0.01).)"),
    ("model.optimizer.lr=interval(2e-3, 5e-4)",
     "an interval needs low <= high (The `low` value must be smaller than or equal to the `high` value (low=0.002, "
     "high=0.0005).)"),
])
def test_a_searched_range_optuna_cannot_take_is_one_line_naming_it_before_the_first_trial(searched, need, capsys):
    config = optuna_sweep_config()
    with read_write(config.hydra):  # as `-m 'model.optimizer.lr=...'` composes it: it replaces the params' range
        config.hydra.overrides.task.append(searched)
    with pytest.raises(SystemExit) as refused:
        SweeperSettingsCheck().on_multirun_start(config)
    assert refused.value.code == 2
    assert capsys.readouterr().err == f"error: {searched}: Optuna cannot search this range: {need}\n"


def test_a_range_of_the_search_space_replaced_on_the_command_line_is_not_checked():
    config = optuna_sweep_config()
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweeper.params["model.optimizer.lr"] = "interval(2e-3, 5e-4)"
        config.hydra.overrides.task.append("model.optimizer.lr=tag(log, interval(1e-4, 1e-2))")
    check_search_ranges(config)  # the sweeper searches the command line's range alone


def write_optuna_trial(job_dir: Path, drawn: list[str], fixed: list[str], n_trials: int = 2,
                       result: dict | None = None) -> None:
    """A trial of hparams_search=vlm_optuna (completed unless `result` says otherwise): its overrides, the drawn
    values first (as the sweeper gives them), and its hydra.yaml's n_trials and search space."""
    write_job(job_dir, [*drawn, *fixed], "maximize", result or {"status": "completed", "return_value": 0.2})
    hydra_yaml = job_dir / ".hydra" / "hydra.yaml"
    recorded = yaml.safe_load(hydra_yaml.read_text())
    recorded["hydra"]["sweeper"] |= {"n_trials": n_trials, "params": {
        "model.optimizer.lr": "tag(log, interval(5e-4, 2e-3))", "data.batch_size": "choice(32, 64, 128)"}}
    hydra_yaml.write_text(yaml.safe_dump(recorded))


def test_the_values_optuna_drew_stay_in_each_row_though_every_trial_drew_the_same(tmp_path, caplog):
    fixed = ["hparams_search=vlm_optuna", "trainer.max_epochs=1"]
    for job in ("0", "1"):  # both trials drew batch 128
        write_optuna_trial(tmp_path / job, [f"model.optimizer.lr=0.00{job}5", "data.batch_size=128"], fixed)
    (tmp_path / "optimization_results.yaml").write_text(yaml.safe_dump({"name": "optuna", "best_params": {
        "model.optimizer.lr": 0.0005, "data.batch_size": 128}, "best_value": 0.2}))
    with caplog.at_level("INFO"):
        SweepJobRecorder().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "2 of 2 trials ran, sorted by best val/CIDEr (maximize)." in summary
    assert "All jobs: `hparams_search=vlm_optuna trainer.max_epochs=1`\n" in summary  # what the command line fixed
    assert "| 0 | completed | `model.optimizer.lr=0.0005 data.batch_size=128` |" in summary
    assert f"sweep report (2 jobs): {tmp_path / SUMMARY_MD}" in caplog.text


def test_an_optuna_sweep_stopped_in_its_one_trial_keeps_its_searched_values_in_the_row(tmp_path, caplog):
    # no optimization_results.yaml: the searched keys are those of the trial's search space
    write_optuna_trial(tmp_path / "0", ["model.optimizer.lr=0.0015", "data.batch_size=32"], ["trainer.max_epochs=1"])
    with caplog.at_level("INFO"):
        SweepJobRecorder().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "1 of 2 trials ran, sorted by best val/CIDEr" in summary and "All jobs: `trainer.max_epochs=1`\n" in summary
    assert "| 0 | completed | `model.optimizer.lr=0.0015 data.batch_size=32` |" in summary
    assert f"sweep report (1 job): {tmp_path / SUMMARY_MD}" in caplog.text


def test_an_optuna_sweep_stopped_early_says_how_many_of_its_n_trials_ran(tmp_path):
    """As a grid's report says "N of M jobs ran": Ctrl-C in trial 1 of hydra.sweeper.n_trials=6."""
    write_optuna_trial(tmp_path / "0", ["model.optimizer.lr=0.001"], [], n_trials=6)
    write_optuna_trial(tmp_path / "1", ["model.optimizer.lr=0.0015"], [], n_trials=6, result={"status": "interrupted"})
    write_report(tmp_path)
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "2 of 6 trials ran, sorted by best val/CIDEr (maximize)." in summary
    assert "| 1 | interrupted | `model.optimizer.lr=0.0015` |" in summary


def test_an_interrupted_job_ranks_after_the_finished_ones_and_is_said_apart_with_no_optuna_best_written(tmp_path):
    """A SIGTERM in trial 1: its best val/CIDEr (higher than trial 0's) never reached Optuna, and was ranked first;
    and with no optimization_results.yaml the report had no Optuna section."""
    (tmp_path / "1" / "csv").mkdir(parents=True)
    (tmp_path / "1" / "csv" / "metrics.csv").write_text("epoch,step,val/CIDEr\n0,1,0.9\n")
    write_optuna_trial(tmp_path / "0", ["model.optimizer.lr=0.001"], [], n_trials=3)
    write_optuna_trial(tmp_path / "1", ["model.optimizer.lr=0.0015"], [], n_trials=3, result={"status": "interrupted"})
    write_optuna_trial(tmp_path / "2", ["model.optimizer.lr=0.0019"], [], n_trials=3,
                       result={"status": "failed", "error": "diverged: val/CIDEr was NaN"})
    assert [r.job for r in write_report(tmp_path)] == ["0", "1", "2"]
    summary = (tmp_path / SUMMARY_MD).read_text()
    assert "| 1 | interrupted | `model.optimizer.lr=0.0015` | 0.9 | 2 | 0 |" in summary
    assert ("## Interrupted jobs\n\nStopped before they ended (or still running): their values are of a run cut "
            "short, never returned to the sweeper, so they rank after the jobs that finished.\n\n"
            "- 1 (`model.optimizer.lr=0.0015`)\n") in summary
    assert ("## Optuna\n\nNo optimization_results.yaml: the sweep stopped before Optuna wrote its best trial. Optuna "
            "was told the final values of the completed jobs alone (the `final` column).\n") in summary
