"""Lightning's CSVLogger, keeping what a metrics.csv already holds."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _ColumnKeepingWriter(ExperimentWriter):
    def _record_new_keys(self) -> set[str]:
        # Another process (or an earlier writer) may have added columns to the file since we looked.
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(set(self.metrics_keys) | set(header))
        return super()._record_new_keys()


class CSVLoggerKeepingColumns(CSVLogger):
    """Under ddp_spawn, fit and test run in different processes and log into the same metrics.csv, each
    with a writer that knows none of the other's columns: Lightning's writer then fails rewriting the
    file ("dict contains fields not in fieldnames"), and a writer created fresh deletes the file. This
    one keeps the existing rows and columns, so test rows join the fit rows."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        if not self._is_global_zero():
            return super().experiment  # a dummy on other ranks
        path = os.path.join(self.log_dir, ExperimentWriter.NAME_METRICS_FILE)
        previous = Path(path).read_text() if os.path.isfile(path) else None
        os.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _ColumnKeepingWriter(log_dir=self.log_dir)  # deletes an existing metrics.csv
        if previous:
            Path(self._experiment.metrics_file_path).write_text(previous)
        return self._experiment

    @staticmethod
    def _is_global_zero() -> bool:
        from lightning.pytorch.utilities.rank_zero import rank_zero_only

        return getattr(rank_zero_only, "rank", 0) == 0
