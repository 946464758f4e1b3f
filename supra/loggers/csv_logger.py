"""Lightning's CSVLogger, keeping what a metrics.csv already holds."""

from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from supra.utils.private_apis import ColumnKeepingWriter, cached_experiment, set_experiment


class CSVLoggerKeepingColumns(CSVLogger):
    """Under ddp_spawn, fit and test run in different processes and log into the same metrics.csv, each
    with a writer that knows none of the other's columns: Lightning's writer then fails rewriting the
    file ("dict contains fields not in fieldnames"), and a writer created fresh deletes the file. This
    one keeps the existing rows and columns, so test rows join the fit rows."""

    @property
    def experiment(self) -> ExperimentWriter:
        writer = cached_experiment(self)
        if writer is not None:
            return writer
        if getattr(rank_zero_only, "rank", 0) != 0:
            return super().experiment  # a dummy on other ranks
        path = os.path.join(self.log_dir, ExperimentWriter.NAME_METRICS_FILE)
        previous = Path(path).read_text() if os.path.isfile(path) else None
        os.makedirs(self.root_dir, exist_ok=True)
        writer = ColumnKeepingWriter(log_dir=self.log_dir)  # deletes an existing metrics.csv
        if previous:
            Path(writer.metrics_file_path).write_text(previous)
        set_experiment(self, writer)
        return writer
