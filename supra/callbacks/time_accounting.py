"""Where the wall time of a run went: start-up, data set-up, training steps, validation steps, metric
scoring, test, sample pictures, other. Printed as a table and written to <run dir>/time_accounting.json after fit and
after test (the later file covers the whole run), with the machine the run measured itself on.

A "step" is Lightning's batch: from on_*_batch_start to on_*_batch_end (forward, backward, optimizer,
logging). Fetching the next batch (and other callbacks' batch hooks) is counted apart. Metric scoring is the
validation epoch end: the task gathers and scores the captions there. Put this callback first in the
callbacks config so that its hooks run before the others' (Lightning calls callbacks in list order,
ModelCheckpoint last), which keeps other callbacks' work out of "metric scoring". The picture callbacks
(SampleGridCallback and its kind: the sample grids, attention maps) count their own time, their row here;
the a2a model's generated grids can take most of a short run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning as L

from supra.callbacks.sample_grid import SampleGridCallback
from supra.utils.files import write_json_atomic
from supra.utils.hardware import device_description

log = logging.getLogger(__name__)

_IMPORTED_AT = time.time()  # fallback for the process start where /proc is missing


def process_start_time() -> float:
    """Unix time at which this process started (Linux /proc), else when this module was imported."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


_job_starts: list[float] = []  # train() calls of this process: a multirun's jobs share one process


def mark_job_start() -> None:
    """Called as each run (a multirun's job) starts training, so that its time is counted from there."""
    _job_starts.append(time.time())


def run_start_time() -> float:
    """When this run started: the process's start for its first (or only) run, so imports count as its
    start-up; a later job of a multirun in the same process from its own start, not the jobs before it."""
    return process_start_time() if len(_job_starts) <= 1 else _job_starts[-1]


ROWS = {
    "startup": "start-up (imports, config, model) before fit",
    "data_setup": "data setup (Trainer start, DataModule.setup)",
    "train_steps": "training steps",
    "train_batch_loading": "between training steps (batch fetch, callbacks)",
    "sanity_check": "sanity-check validation (before training)",
    "val_steps": "validation steps",
    "val_scoring": "validation metric scoring (epoch end)",
    "val_other": "validation other (loader start, batch loading)",
    "test_setup": "test setup (data, checkpoint load)",
    "test_steps": "test steps",
    "test_scoring": "test metric scoring (epoch end)",
    "pictures": "sample pictures (grids, GIFs)",
    "other": "other (checkpoints, callbacks, loop, exit)",
}


class TimeAccounting(L.Callback):
    """Splits the run's wall time (from its start: run_start_time) into the ROWS above; rank 0 reports it."""

    def __init__(self, output_dir: str | None = None, filename: str = "time_accounting.json") -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.filename = filename
        self.process_start = run_start_time()
        self.created = time.time()
        self.seconds = dict.fromkeys(ROWS, 0.0)
        self.counts = {"train_steps": 0, "val_steps": 0, "test_steps": 0, "validations": 0}
        self._batch_start = 0.0
        self._last_train_batch_end: float | None = None
        self._eval_start = 0.0
        self._epoch_end_start = 0.0
        self._steps_this_eval = 0.0
        self._fit_teardown = 0.0
        self._pictures_before = 0.0  # the fit's picture time, where its callbacks were copies (ddp_spawn)
        self.report: dict[str, Any] = {}

    # -- fit start ---------------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        now = time.time()
        if stage == "fit":
            self.seconds["startup"] = self.created - self.process_start
            self.seconds["data_setup"] = now - self.created
        elif stage == "test":
            self._take_fit_from_disk()
            # trainer.test without a fit (evaluate.py): its start-up is everything before it
            since = self._fit_teardown or self.created
            if not self._fit_teardown:
                self.seconds["startup"] = self.created - self.process_start
            self.seconds["test_setup"] += now - since

    # -- training ----------------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_train_batch_end = None  # the loader's (re)start is no batch fetch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._batch_start = time.perf_counter()
        if self._last_train_batch_end is not None:
            self.seconds["train_batch_loading"] += self._batch_start - self._last_train_batch_end

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._last_train_batch_end = time.perf_counter()
        self.seconds["train_steps"] += self._last_train_batch_end - self._batch_start
        self.counts["train_steps"] += 1

    # -- validation and test share their structure -------------------------------------------------

    def _eval_started(self) -> None:
        self._eval_start = time.perf_counter()
        self._steps_this_eval = 0.0
        self._last_train_batch_end = None  # the next training batch start follows validation

    def _eval_batch_ended(self, stage: str) -> None:
        elapsed = time.perf_counter() - self._batch_start
        self.seconds[f"{stage}_steps"] += elapsed
        self._steps_this_eval += elapsed
        self.counts[f"{stage}_steps"] += 1

    def _sanity_check_ended(self) -> None:
        """Lightning's sanity check is no validation of the run: its steps and all count as their own row."""
        elapsed = time.perf_counter() - self._eval_start
        self.seconds["val_steps"] -= self._steps_this_eval
        self.counts["val_steps"] = 0
        self.seconds["sanity_check"] += elapsed

    def _eval_epoch_ended(self) -> None:
        self._epoch_end_start = time.perf_counter()

    def _eval_ended(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[f"{stage}_scoring"] += now - self._epoch_end_start
        rest = (self._epoch_end_start - self._eval_start) - self._steps_this_eval
        self.seconds["val_other" if stage == "val" else "test_setup"] += rest

    # Lightning calls the validation and the test hooks by their own names: each is one line onto the
    # helpers above, so the two groups below look alike by design.

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_started()

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        self._batch_start = time.perf_counter()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_batch_ended("val")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_epoch_ended()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            self._sanity_check_ended()
            return
        self._eval_ended("val")
        self.counts["validations"] += 1

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_started()

    def on_test_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int,
                            dataloader_idx: int = 0) -> None:
        self._batch_start = time.perf_counter()

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_batch_ended("test")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_epoch_ended()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_ended("test")

    def _take_fit_from_disk(self) -> None:
        """Under ddp_spawn the fit ran in processes of its own, and the test's gets a copy of this callback
        that never saw it: the fit's rows and its end come from the report its rank 0 wrote."""
        if self._fit_teardown or self.counts["train_steps"] or self.output_dir is None:
            return
        try:
            earlier = json.loads((self.output_dir / self.filename).read_text())
        except (OSError, ValueError):
            return
        if earlier.get("after") != "fit":
            return
        self.seconds |= {k: v for k, v in earlier["seconds"].items() if k in self.seconds and k != "other"}
        self.counts |= {k: v for k, v in earlier["counts"].items() if k in self.counts}
        self._fit_teardown = self.process_start + float(earlier["wall_s"])
        self._pictures_before = self.seconds["pictures"]

    # -- report ------------------------------------------------------------------------------------

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)  # Lightning passes its TrainerFn enum
        if stage == "fit":
            self._fit_teardown = time.time()
        self.seconds["pictures"] = self._pictures_before + picture_seconds(trainer)
        self.report = self.summary(time.time() - self.process_start, stage)
        # the times hold only on this machine (CPU, vector width, threads; or GPU): a report built elsewhere
        # later (the study's table) must name this one, not its own
        self.report["machine"] = device_description(pl_module.device)
        if trainer.is_global_zero:
            print(format_table(self.report))
            if self.output_dir is not None:
                write_json_atomic(self.output_dir / self.filename, self.report)

    def summary(self, wall: float, stage: str) -> dict[str, Any]:
        """Seconds per row (other = wall minus the rest), and the share of wall time outside the steps."""
        seconds = dict(self.seconds)
        seconds["other"] = max(0.0, wall - sum(v for k, v in seconds.items() if k != "other"))
        in_steps = seconds["train_steps"] + seconds["val_steps"]
        return {
            "after": stage,
            "wall_s": wall,
            "seconds": seconds,
            "share": {k: v / wall for k, v in seconds.items()},
            "counts": dict(self.counts),
            # the acceptance figure: everything but training and validation steps (test steps count as outside)
            "outside_train_val_steps": 1.0 - in_steps / wall,
            "outside_train_val_test_steps": 1.0 - (in_steps + seconds["test_steps"]) / wall,
        }


def picture_seconds(trainer: L.Trainer) -> float:
    """Wall seconds the run's picture callbacks spent drawing, writing and logging, all together."""
    return sum(callback.seconds_drawing for callback in trainer.callbacks if isinstance(callback, SampleGridCallback))


def format_table(report: dict[str, Any]) -> str:
    lines = [f"\nTime accounting after {report['after']}: {report['wall_s']:.1f}s wall since the run started",
             f"| {'part':<50} | {'seconds':>8} | {'share':>6} |", f"|{'-' * 52}|{'-' * 10}|{'-' * 8}|"]
    for key, label in ROWS.items():
        lines.append(f"| {label:<50} | {report['seconds'][key]:8.1f} | {report['share'][key]:6.1%} |")
    lines.append(f"outside training + validation steps: {report['outside_train_val_steps']:.1%} "
                 f"(outside train/val/test steps: {report['outside_train_val_test_steps']:.1%})")
    return "\n".join(lines)
