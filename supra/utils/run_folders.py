"""A run never writes over a finished one: `python train.py hydra.run.dir=DIR` (or evaluate.py) into the
folder of a finished run, or `-m hydra.sweep.dir=DIR` into a finished sweep's, is refused in one line.

Checked by a Hydra callback as the run or sweep starts, because Hydra saves the new run's
.hydra/{config,hydra,overrides}.yaml into the folder before the job itself runs: a refusal from inside the job
came after the finished run's record of its own settings was already replaced (and a sweep report then
listed a job under settings it was not trained with).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

RESULTS = ("checkpoints/*.ckpt", "metrics.json")  # what a finished train.py or evaluate.py run leaves


def finished_run_file(folder: Path) -> Path | None:
    """A result of a finished run in `folder` (a checkpoint, metrics.json), or None."""
    return next((path for pattern in RESULTS for path in sorted(folder.glob(pattern))), None)


class KeepFinishedRuns(Callback):
    """Refuses a run or sweep folder that holds a finished run's results, before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = self._resolved(config, "run")
        held = finished_run_file(folder)
        if held is not None:
            resumed = " (a resumed run, ckpt_path=..., writes a new one)" if "ckpt_path" in config else ""
            _refuse(f"hydra.run.dir={folder} already holds a finished run ({held.relative_to(folder)}): choose "
                    f"another with hydra.run.dir=DIR, or leave it out for a new dated folder{resumed}")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = self._resolved(config, "sweep")
        held = next((path for job in sorted(folder.glob("*/")) if (path := finished_run_file(job))), None)
        if held is not None:
            _refuse(f"hydra.sweep.dir={folder} already holds a sweep's finished jobs ({held.relative_to(folder)}): "
                    "choose another with hydra.sweep.dir=DIR (an Optuna study kept in storage=... goes on from "
                    "any folder)")

    @staticmethod
    def _resolved(config: DictConfig, mode: str) -> Path:
        # the folder's ${hydra:runtime.cwd} and ${now:...} resolve once Hydra's config is set, which Hydra
        # itself does only later, in the job (`now` is cached: the job gets the same folder)
        HydraConfig.instance().set_config(config)
        return Path(str(config.hydra[mode].dir))


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
