"""Writes what a test of a captioner produced: metrics.json, predictions.json and a printed table."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from rich.console import Console
from rich.table import Table

from supra.metrics.caption_scores import CAPTION_METRICS
from supra.utils.files import write_json_atomic


def print_scores(scores: dict[str, float], title: str) -> None:
    table = Table()
    table.add_column("metric")
    table.add_column("score", justify="right")
    for name, value in scores.items():
        table.add_row(name, f"{value:.4f}")
    console = Console()
    console.print(title)
    console.print(table)


class CaptionReportWriter(L.Callback):
    """After `trainer.test`, on rank 0: metrics.json (pycocoevalcap names + split, n_images, decode, and
    dataset scores such as attr_acc) and predictions.json (COCO results: [{"image_id", "caption"}])."""

    def __init__(self, output_dir: str, print_table: bool = False) -> None:
        self.output_dir = Path(output_dir)
        self.print_table = print_table  # Lightning prints its own table after trainer.test(verbose=True)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = getattr(pl_module, "test_results", None)
        if not trainer.is_global_zero or not results:
            return
        scores = results["scores"]
        metrics = {name: scores[name] for name in CAPTION_METRICS if name in scores}
        metrics.update({k: v for k, v in scores.items() if k not in metrics})
        metrics.update(split=results["split"], n_images=len(results["predictions"]), decode=pl_module.decode.strategy)
        write_json_atomic(self.output_dir / "metrics.json", metrics)
        predictions = [{"image_id": i, "caption": c} for i, c in results["predictions"].items()]
        write_json_atomic(self.output_dir / "predictions.json", predictions)
        if self.print_table:
            print_scores(scores, f"{results['split']} split, {len(predictions)} images, decode={pl_module.decode.strategy}")
