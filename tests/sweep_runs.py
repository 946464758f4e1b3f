"""`python train.py -m` as a user types it, with the smallest useful job: the sweep tests' runner
(tests/test_sweeps.py, tests/test_ddp_sweeps.py)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hydra.core.utils import JobReturn

from supra.sweeps.report import SUMMARY_CSV
from tests.conftest import ROOT

# Smallest useful job: 2 optimizer steps, one validation of 8 images (greedy), no test, no extras.
TINY_JOB = [
    "data.num_train=32", "data.num_val=8", "data.num_test=4", "data.eval_batch_size=8", "data.batch_size=16",
    "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1", "model.decode.strategy=greedy", "test=false",
    "callbacks.progress_bar=null", "callbacks.model_summary=null", "callbacks.caption_grid=null",
    "callbacks.test_report=null", "callbacks.lr_monitor=null",
]
# The Optuna search of vlm_optuna, with the tiny job's step budget instead of its epochs.
TINY_OPTUNA = ["hparams_search=vlm_optuna", "trainer.max_epochs=-1", "trainer.max_steps=2",
               "trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null",
               "hydra.sweeper.sampler.n_startup_trials=2"]


def sweep(tmp_path: Path, *args: str, sweep_dir: str = "sweep", timeout: int = 300) -> subprocess.CompletedProcess:
    """`python train.py -m ARGS` in tmp_path, the sweep written to tmp_path/sweep_dir."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # ROOT: ranks import tests' callbacks
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", *TINY_JOB, *args, f"hydra.sweep.dir={tmp_path / sweep_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )


def optuna_sweeper(config: Any, launch: Callable[[list, int], list[JobReturn]], n_trials: int) -> Any:
    """The Optuna plugin's own sweeper (random sampling, no search space) as set up for a sweep of `config` (its
    hydra.sweep.dir), trials launched by `launch(overrides, initial_job_idx)` in place of a launcher's jobs."""
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

    sweeper = OptunaSweeperImpl(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize", storage=None,
                                study_name="sweep", n_trials=n_trials, n_jobs=1, max_failure_rate=1.0,
                                search_space=None, custom_search_space=None, params=None)
    sweeper.config, sweeper.hydra_context, sweeper.launcher = config, object(), SimpleNamespace(launch=launch)
    return sweeper


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml")), key=lambda p: int(p.name))


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / SUMMARY_CSV, newline="") as f:
        return list(csv.DictReader(f))
