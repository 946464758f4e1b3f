"""Lightning's `ddp` strategy inside a Hydra multirun job: every rank trains the job's own config, once.

Lightning starts ranks > 0 by re-running the command line (`_hydra_subprocess_cmd`). Under `-m` that line
is the whole sweep: the children would start sweeps of their own, and an Optuna child would draw other
hyperparameters than rank 0. Here a multirun job's children instead run `supra.runner.ddp_rank` on the
config the job saved (`<job dir>/.hydra/config.yaml`), so they train exactly what rank 0 trains, in its
directory. After the job, the process group and the DDP variables Lightning put in os.environ are removed,
or the next job in the same process would reuse a group whose other ranks have exited.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch.distributed
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from supra.utils.errors import SupraUserError
from supra.utils.private_apis import lightning_child_command, set_lightning_child_command

# What Lightning's subprocess launcher sets in the launching process (see _call_children_scripts).
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_lightning_command = lightning_child_command()


def job_rank_command(local_rank: int) -> tuple[list[str], str]:
    """The command line and cwd of local rank `local_rank` of the running Hydra job (rank 0 is this process)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        command, cwd = _lightning_command(local_rank)  # a single run: re-running its command line is right
        return list(command), cwd
    job_dir = Path(hydra_cfg.runtime.output_dir)
    if not hydra_cfg.output_subdir:
        raise SupraUserError("DDP inside a multirun job starts its other ranks from the job's saved config: "
                             "keep hydra.output_subdir set (default .hydra)")
    saved = job_dir / hydra_cfg.output_subdir
    if not (saved / "config.yaml").is_file():
        raise SupraUserError(f"{saved / 'config.yaml'} is missing: the other DDP ranks of this job are started from it")
    command = [
        sys.executable, "-m", "supra.runner.ddp_rank", "--config-path", str(saved.resolve()), "--config-name", "config",
        # quoted: Hydra's override grammar would split a path holding '=' or ','
        f'hydra.run.dir="{job_dir}"', "hydra.output_subdir=null", f"hydra.job.name={hydra_cfg.job.name}_rank_{local_rank}",
    ]
    return command, hydra_cfg.runtime.cwd


def use_job_config_for_ddp_children() -> None:
    """Make Lightning's subprocess launcher start multirun jobs' ranks with `job_rank_command` (idempotent)."""
    set_lightning_child_command(job_rank_command)


def _started_ranks(trainer: L.Trainer) -> list[subprocess.Popen]:
    """The rank processes the subprocess launcher started (ddp_spawn's processes are joined by Lightning)."""
    procs = getattr(trainer.strategy.launcher, "procs", None) or []
    return [proc for proc in procs if isinstance(proc, subprocess.Popen)]


@contextmanager
def ddp_job_scope(trainer_holder: list[L.Trainer]) -> Iterator[None]:
    """Around one job in a process that may run more: afterwards wait for the ranks this job started,
    close the process group, and restore the DDP environment variables as they were before the job.

    `trainer_holder` receives the job's Trainer once it exists (its launcher knows the child processes).
    """
    saved_env = {name: os.environ.get(name) for name in _DDP_ENV}
    launched_here = "LOCAL_RANK" not in os.environ  # this process starts the ranks (not itself a rank > 0)
    try:
        yield
    except BaseException:
        if launched_here:  # the other ranks would wait for this one in a collective forever
            for trainer in trainer_holder:
                for proc in _started_ranks(trainer):
                    proc.kill()
        raise
    finally:
        if launched_here:
            for trainer in trainer_holder:
                for proc in _started_ranks(trainer):
                    proc.wait()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
