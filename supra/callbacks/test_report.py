"""The one report of every test, whatever the task: `metrics.json` (the split's scores, every other
`test/*` metric such as the losses, then what was scored and how) and `predictions.json` (the task's
prediction records, e.g. COCO results `[{"image_id", "caption"}]`), and with `print_table` a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from rich.console import Console
from rich.table import Table

from supra.utils.files import absolute_path, write_json_atomic
from supra.utils.numbers import finite_or_none

METRICS_FILE, PREDICTIONS_FILE = "metrics.json", "predictions.json"


def print_scores(scores: dict[str, float], title: str) -> None:
    table = Table()
    table.add_column("metric")
    table.add_column("score", justify="right")
    for name, value in scores.items():
        table.add_row(name, f"{value:.4f}")
    console = Console()
    console.print(title)
    console.print(table)


def build_report(results: dict[str, Any], logged: dict[str, Any], about_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """metrics.json's content: the task's `test_results` scores (exact Python floats), the other `test/*`
    metrics the trainer logged, then the split, the task's details and what the command says of the data
    scored (`about_data`: evaluate.py's source, layout, root, trained_on and validated_on)."""
    report = dict(results.get("scores") or {})
    for key, value in logged.items():
        name = key.removeprefix("test/")
        if key.startswith("test/") and name not in report and isinstance(value, torch.Tensor | float | int):
            report[name] = float(value)
    return {**report, "split": results["split"], **(results.get("details") or {}), **(about_data or {})}


def table_title(task_name: str, split: str, details: dict[str, Any], about_data: dict[str, Any]) -> str:
    """The table's title: the task, the split and the data it is of where known (`coco test split (2014 layout,
    data.root=/data/coco)`), then the task's details."""
    data = about_data.get("source")
    layout = f"{about_data['layout']} layout, " if about_data.get("layout") else ""
    where = f" ({layout}data.root={about_data['root']})" if isinstance(about_data.get("root"), str) else ""
    title = f"{task_name}, {f'{data} ' if data else ''}{split} split{where if data else ''}"
    return title + "".join(f", {k}={shown(v)}" for k, v in details.items())


def shown(value: Any) -> str:
    """A detail as the title shows it, as metrics.json names it: a nested one's settings as key=value pairs in
    parentheses, None as null (not Python's dict repr)."""
    if isinstance(value, dict):
        return f"({', '.join(f'{k}={shown(v)}' for k, v in value.items())})"
    return "null" if value is None else str(value)


def scored_model(ckpt: str | None, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
    """metrics.json's `ckpt` and `step`, so that a copy out of its run folder still says what was scored: the model
    file (absolute; a Hub id as given; null for the weights in memory, a fit's last where it wrote no checkpoint,
    or a model's initial ones) and the training step of its weights (null for a release folder, which keeps none)."""
    if ckpt is None:
        return {"ckpt": None, "step": trainer.global_step}
    # SupraTask's weights_step: Lightning's loading of ckpt_path, or evaluate.py's own
    return {"ckpt": absolute_path(ckpt) if Path(ckpt).exists() else ckpt,
            "step": getattr(pl_module, "weights_step", None)}


class TestReport(L.Callback):
    """After `trainer.test`, on rank 0: metrics.json and predictions.json in `output_dir`. `ckpt`: the model file
    scored where the command loads it itself (evaluate.py); otherwise the checkpoint the trainer's test loads."""

    __test__ = False  # a callback, not a pytest class

    def __init__(self, output_dir: str, print_table: bool = False, ckpt: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.print_table = print_table  # Lightning prints its own table after trainer.test(verbose=True)
        self.ckpt = ckpt
        self.report: dict[str, Any] = {}
        self.written: list[str] = []  # the files it wrote, by name: evaluate.py's closing line names them
        self.about_data: dict[str, Any] = {}  # what the command says of the data scored, written after the details
        self.scored: dict[str, Any] = {}  # scored_model's, written last

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # here, not at the end: the checkpoint the test loaded, before anything else can load another
        self.scored = scored_model(self.ckpt if self.ckpt is not None else trainer.ckpt_path, trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = getattr(pl_module, "test_results", None)
        if not trainer.is_global_zero or not results:
            return
        self.report = build_report(results, trainer.callback_metrics, {**self.about_data, **self.scored})
        # a diverged run's NaN loss as null, top-level or nested in a detail: `NaN` is not JSON, and strict
        # readers refuse the whole file
        write_json_atomic(self.output_dir / METRICS_FILE, finite_or_none(self.report), readable=True)
        self.written = [METRICS_FILE]
        if results.get("predictions"):
            write_json_atomic(self.output_dir / PREDICTIONS_FILE, results["predictions"], readable=True)
            self.written.append(PREDICTIONS_FILE)
        if self.print_table:
            scores = {k: v for k, v in self.report.items() if isinstance(v, float)}
            print_scores(scores, table_title(type(pl_module).__name__, results["split"], results.get("details") or {},
                                             self.about_data))
