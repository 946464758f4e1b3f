"""Hydra callback (hydra.callbacks in conf/hydra/default.yaml): each job's result beside it, a report at the end.

Runs where the job runs (in-process, or in a submitit worker), so a sweep stopped half-way still has the
results of the jobs that finished; `python -m supra.sweep_report DIR` rebuilds the report from them.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from supra.sweeps.report import JOB_RESULT, SUMMARY_CSV, SUMMARY_MD, job_count, write_report
from supra.sweeps.stored_study import fail_stopped_trials
from supra.utils.cli import FailedJob
from supra.utils.errors import SupraUserError
from supra.utils.files import absolute_path, write_json_atomic
from supra.utils.private_apis import (
    OPTUNA_NO_VALUE_LINE,
    OPTUNA_SWEEPER_LOGGER,
    job_error,
    on_grid_sweep_error,
    on_optuna_sweep_error,
    on_optuna_sweep_stopped,
)

log = logging.getLogger(__name__)

# Why this process's last run diverged (supra/runner/training.py), for its job's end: the job returns no value
# (the sweeper fails the trial, a grid goes on) and is recorded as failed with this reason. Hydra runs each job
# and its callbacks in one process (submitit's worker too), one job after another.
_diverged: list[str] = []


def note_diverged(why: str) -> None:
    """Record that the run now ending diverged (`diverged: train/loss is nan at the end of training (step N)`)."""
    _diverged[:] = [why]


class _SaidDiverged(logging.Filter):
    """Drops the Optuna plugin's line for a trial that returned no value ("Failed experiment: Return value must be
    float-castable. Got 'None'.") once for each trial said here to have diverged: Supra's warning has said why,
    and the report records it. A trial run in another process (submitit's workers) was said there, not on this
    console, and keeps the plugin's line."""

    def __init__(self) -> None:
        super().__init__()
        self.unrepeated = 0  # trials said to have diverged whose plugin line is still to come

    def filter(self, record: logging.LogRecord) -> bool:
        if self.unrepeated and record.getMessage().startswith(OPTUNA_NO_VALUE_LINE):
            self.unrepeated -= 1
            return False
        return True


_said_diverged = _SaidDiverged()


class SweepJobRecorder(Callback):
    """Writes <job dir>/sweep_job.json (status, returned metric, wall time, the job's folder within the sweep's)
    after every multirun job, and sweep_summary.csv / sweep_summary.md into the sweep directory when the
    multirun ends."""

    def __init__(self) -> None:
        self._started: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra sets its HydraConfig only inside each job, after the sweeper has resolved hydra.sweep.dir;
        # ours is ${paths.log_dir}/... = ${hydra:runtime.cwd}/logs/..., which then cannot resolve and
        # `python train.py -m ...` stopped at once. Setting it here, before the sweeper starts, resolves it.
        HydraConfig.instance().set_config(config)
        if "n_trials" in config.hydra.sweeper:  # the Optuna sweeper's, whose folder the run checks have settled
            sweep_dir = Path(str(config.hydra.sweep.dir))
            on_optuna_sweep_error(lambda err: end_if_no_trial_completed(sweep_dir, err))
            on_optuna_sweep_stopped(fail_stopped_trials)
            _said_diverged.unrepeated = 0  # an earlier sweep's, in this process
            logging.getLogger(OPTUNA_SWEEPER_LOGGER).addFilter(_said_diverged)  # once: the same filter is kept once
        elif str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            sweep_dir = Path(str(config.hydra.sweep.dir))
            on_grid_sweep_error(lambda err: end_after_failed_jobs(sweep_dir, err))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.perf_counter()
        _diverged.clear()  # an earlier job's

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        diverged = _diverged[:]  # this job's, read once
        _diverged.clear()
        # a single run has no sweep; under SLURM every task of a job runs this, the first one records
        if hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN" or os.environ.get("SLURM_PROCID", "0") != "0":
            return
        failed = job_return.status != JobStatus.COMPLETED
        value = None if failed else job_return.return_value
        metric = config.get("optimized_metric")
        error = _described(job_error(job_return)) if failed else None
        if not failed and diverged:  # its scores are a broken model's (val/CIDEr 0.0): no value the sweep can rank
            failed, value, error = True, None, diverged[0]
            if "n_trials" in hydra_cfg.sweeper:  # the Optuna sweeper's trial: its own line would say it again
                _said_diverged.unrepeated += 1
        elif not failed and metric and value is None:  # train() returns None for NaN: the sweeper fails the trial
            failed, error = True, f"diverged: {metric} was NaN"  # no best value in the report either
        elif not failed and value is None and "n_trials" in hydra_cfg.sweeper:  # Optuna's trial without a value
            failed, error = True, "optimized_metric=null: the trial returned no value to the Optuna sweeper"
        write_json_atomic(Path(hydra_cfg.runtime.output_dir) / JOB_RESULT, {
            "status": "failed" if failed else "completed",
            "metric": metric,
            "return_value": value if isinstance(value, int | float) else None,
            "wall_time_s": None if self._started is None else round(time.perf_counter() - self._started, 3),
            "error": error,
            "subdir": _subdir(hydra_cfg),
        })
        # the report so far, after every job: a sweep may end without on_multirun_end (a grid stops on a
        # failed job, Optuna when no trial completed), and its report is then already there
        self._report(Path(hydra_cfg.sweep.dir), quiet=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(Path(config.hydra.sweep.dir), quiet=False)

    @staticmethod
    def _report(sweep_dir: Path, quiet: bool) -> None:
        try:
            rows = write_report(sweep_dir)
        except SupraUserError as err:  # e.g. no job ran: nothing to report, the sweep's own error says why
            # a report written after an earlier job would stand for the sweep, short of the jobs since
            stale = [path for path in (sweep_dir / SUMMARY_CSV, sweep_dir / SUMMARY_MD) if path.is_file()]
            for path in stale:
                path.unlink(missing_ok=True)
            log.warning("no sweep report: %s%s", err, f" (the earlier {SUMMARY_CSV}/.md, short of the jobs since, "
                        "is removed)" if stale else "")
            return
        if not quiet:
            log.info("sweep report (%s): %s", job_count(len(rows)), sweep_dir / SUMMARY_MD)


def end_if_no_trial_completed(sweep_dir: Path, error: Exception) -> None:
    """An Optuna sweep whose every trial failed (data.num_train=0, a missing file) ends, after them, in Optuna's
    "No trials are completed yet." traceback (a ValueError): one line instead, saying where their reasons are.
    Nothing for another error, or a sweep with a completed trial."""
    if not isinstance(error, ValueError):
        return
    try:
        rows = write_report(sweep_dir)
    except SupraUserError:  # no job ran: the error is another one
        return
    if any(row.status == "completed" for row in rows):
        return
    first = rows[0]  # none has a value: in the order they ran
    reason = f" (job {first.job}: {first.error})" if first.error else ""
    print(f"error: every trial of the sweep failed ({len(rows)} of {len(rows)}), so it has no best one: why each "
          f"failed is in {sweep_dir / SUMMARY_MD}{reason}", file=sys.stderr)
    raise SystemExit(1) from None


def end_after_failed_jobs(sweep_dir: Path, error: Exception) -> None:
    """A grid sweep with a failed job ends, after its batch of jobs, in Hydra's error for the first failed one
    (its message, then "Set the environment variable HYDRA_FULL_ERROR=1"): one line instead, counting the
    failed jobs and naming the report that has every job's result and reason. Nothing for a sweep without a
    failed job in its report (an error of Hydra's own)."""
    try:
        rows = write_report(sweep_dir)
    except SupraUserError:  # no job ran: the error is another one
        return
    failed = [row for row in rows if row.status == "failed"]  # without values: in the order they ran
    if not failed:
        return
    first = failed[0]
    reason = f" (job {first.job}: {first.error})" if first.error else f" (job {first.job})"
    print(f"error: {len(failed)} of the sweep's {job_count(len(rows))} failed{reason}: each job's result, and why "
          f"each failed, is in {sweep_dir / SUMMARY_MD}", file=sys.stderr)
    raise SystemExit(1) from None


def interrupted_job_advice(hydra_cfg: DictConfig) -> str:
    """How a multirun whose job `hydra_cfg` describes goes on after that job was interrupted (docs/sweeps.md): its
    report rebuilt, and the sweep run again in another folder; a study in storage keeps its finished trials."""
    sweep_dir = absolute_path(hydra_cfg.sweep.dir)
    report = f"python -m supra.sweep_report dir={shlex.quote(str(sweep_dir))}"
    if hydra_cfg.get("sweeper", {}).get("storage"):
        again = "go on with its study, which keeps the finished trials, by running the same command"
    else:
        again = "run the sweep again"
    return (f"job {hydra_cfg.job.num} of the sweep in {sweep_dir} stopped; rebuild its report with `{report}`, and "
            f"{again} with a new hydra.sweep.dir (not with ckpt_path=, which would start every job from this one's "
            "checkpoint)")


def _subdir(hydra_cfg: DictConfig) -> str | None:
    """The job's folder within its multirun's, hydra.sweep.subdir as Hydra resolved it (`lr0.001/0`): how the
    report tells the jobs of one multirun, nested that deep, from the jobs of several in one folder. None if it
    does not resolve here or leads out of the multirun's folder."""
    try:
        subdir = os.path.normpath(str(hydra_cfg.sweep.subdir))
    except Exception:  # an interpolation that does not resolve here: the report reads the folders as side by side
        return None
    return None if os.path.isabs(subdir) or subdir.split(os.sep)[0] in (os.curdir, os.pardir) else subdir


def _described(error: BaseException) -> str:
    """A job's error in one line for the report: a user error as it was said, anything else with its type."""
    text = str(error) if isinstance(error, FailedJob) else f"{type(error).__name__}: {error}"
    # every line, joined: Hydra's InstantiationException says "Error in call to target '...':" on its first
    # line and the cause (a TypeError from the constructor) on the next
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return (text if len(text) <= 300 else text[:299] + "…") or type(error).__name__
