"""What evaluate.py scored, for metrics.json and the table's title: the data's source, layout and root, so
that scores of one checkpoint on several data sets tell themselves apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L

from supra.callbacks.test_report import TestReport
from supra.utils.files import absolute_path


def scored_folders(data_cfg: Mapping[str, Any], prefix: str = "data") -> dict[str, str]:
    """Each data folder (`root`) of `data_cfg`, the a2a mixture's sources' included, absolute, by option
    (`data.root`, `data.sources.photos.root`): what evaluate.py says it scored."""
    found: dict[str, str] = {}
    for key, value in data_cfg.items():
        if isinstance(value, Mapping):
            found |= scored_folders(value, f"{prefix}.{key}")
        elif key == "root" and isinstance(value, str) and value:
            found[f"{prefix}.{key}"] = absolute_path(value)
    return found


def described_data(data_cfg: Mapping[str, Any], datamodule: L.LightningDataModule,
                   roots: Mapping[str, str]) -> dict[str, Any]:
    """The data scored as its config names it: `source` (or the DataModule's class), `layout` (the one read,
    where the data detects it) and `root`: its folder (`roots`, scored_folders' absolute folders; the a2a
    mixture's by option) or a shard data's scored shards."""
    index = getattr(datamodule, "index", None)
    split = getattr(datamodule, "split", "test")
    root = (next(iter(roots.values())) if len(roots) == 1 else dict(roots)) if roots else None
    return {"source": data_cfg.get("source") or type(datamodule).__name__,
            "layout": getattr(index, "layout", None) or data_cfg.get("layout"),
            "root": root or data_cfg.get(f"{split}_shards")}


class ScoredData(L.Callback):
    """Once the scored split is read (test start): what `report` writes beside the scores, the data described."""

    def __init__(self, report: TestReport, data_cfg: Mapping[str, Any], roots: Mapping[str, str]) -> None:
        self.report, self.data_cfg, self.roots = report, data_cfg, roots

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report.about_data.update(described_data(self.data_cfg, trainer.datamodule, self.roots))
