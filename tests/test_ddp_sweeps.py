"""DDP inside sweep jobs, through the real `python train.py -m` command line: every rank trains the job's
hyperparameters, every Optuna trial runs once and is told once, submitit's local launcher starts each job's
ranks. A file of its own, so that these minutes run beside the other sweep tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import optuna
import pytest

from supra.utils.files import write_json_atomic
from tests.sweep_runs import TINY_OPTUNA, job_dirs, summary_rows, sweep

pytestmark = pytest.mark.ddp

# Every rank writes what it trains with (see RankRecorder), in its job directory.
RECORD_RANKS = ["+callbacks.rank_recorder._target_=tests.test_ddp_sweeps.RankRecorder",
                "+callbacks.rank_recorder.output_dir=${paths.output_dir}"]
# The real subprocess `ddp` strategy (Lightning re-launches ranks > 0 as new processes), on 2 CPU processes.
SUBPROCESS_DDP = ["trainer=ddp_sim", "trainer.strategy=ddp"]


class RankRecorder(L.Callback):
    """Test probe: each DDP rank writes <output_dir>/ranks/rank<N>.json with the config it was built from
    and the learning rate and weight decay its optimizer actually holds."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        group = trainer.optimizers[0].param_groups[0]
        write_json_atomic(self.output_dir / "ranks" / f"rank{trainer.global_rank}.json", {
            "world_size": trainer.world_size, "pid": os.getpid(),
            "lr": group.get("initial_lr", group["lr"]), "weight_decay": group["weight_decay"],
            "batch_size": trainer.datamodule.batch_size, "run_config": pl_module.run_config,
        })


def assert_ranks_agree(tmp_path: Path, sweep_dir: Path, n_jobs: int) -> list[dict]:
    """Each of the n_jobs jobs was trained by exactly 2 ranks with one config; no rank ran anywhere else."""
    jobs = job_dirs(sweep_dir)
    assert len(jobs) == n_jobs
    assert len(list(tmp_path.glob("**/ranks/rank*.json"))) == 2 * n_jobs  # no stray sweeps started by ranks
    trained = []
    for job in jobs:
        ranks = [json.loads((job / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0]["pid"] != ranks[1]["pid"] and ranks[0]["world_size"] == ranks[1]["world_size"] == 2
        for key in ("lr", "weight_decay", "batch_size", "run_config"):
            assert ranks[0][key] == ranks[1][key], (job.name, key)
        assert ranks[0]["run_config"]["paths"]["output_dir"] == str(job)
        trained.append(ranks[0])
    return trained


def test_ddp_optuna_sweep_every_trial_runs_once_on_both_ranks_and_is_told_once(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = sweep(tmp_path, *SUBPROCESS_DDP, *RECORD_RANKS, *TINY_OPTUNA, "hydra.sweeper.n_trials=2",
                   f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=ddp")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = assert_ranks_agree(tmp_path, tmp_path / "sweep", n_jobs=2)
    study = optuna.load_study(study_name="ddp", storage=storage)
    assert len(study.trials) == 2
    for trial, ranks in zip(study.trials, trained, strict=True):
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.params["model.optimizer.lr"] == pytest.approx(ranks["lr"])
        assert trial.params["model.weight_decay"] == pytest.approx(ranks["weight_decay"])
        assert trial.params["model.net.dropout"] == ranks["run_config"]["model"]["net"]["dropout"]


@pytest.mark.slow
def test_ddp_spawn_multirun_every_rank_trains_its_jobs_hyperparameters(tmp_path):
    result = sweep(tmp_path, "trainer=ddp_sim", *RECORD_RANKS, *TINY_OPTUNA, "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_ranks_agree(tmp_path, tmp_path / "sweep", n_jobs=2)


@pytest.mark.slow  # ~25 s alone; its two jobs start their DDP ranks at once, which may pick one port (EADDRINUSE)
def test_ddp_grid_multirun_on_submitit_local_every_rank_trains_its_jobs_hyperparameters(tmp_path):
    """Each job in its own submitit worker process (whose command line is submitit's, not train.py's),
    each starting its second DDP rank from the job's saved config."""
    result = sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *SUBPROCESS_DDP,
                   *RECORD_RANKS, "model.optimizer.lr=1e-4,3e-3")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = assert_ranks_agree(tmp_path, tmp_path / "sweep", n_jobs=2)
    assert [t["lr"] for t in trained] == [1e-4, 3e-3]
    assert len({t["pid"] for t in trained}) == 2 and os.getpid() not in {t["pid"] for t in trained}
    assert [r["status"] for r in summary_rows(tmp_path / "sweep")] == ["completed", "completed"]
