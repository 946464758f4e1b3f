"""Lightning's CSVLogger, keeping what a metrics.csv already holds."""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class CSVLoggerKeepingColumns(CSVLogger):
    """Under ddp_spawn, fit and test log from different processes into the same metrics.csv; Lightning's
    writer deletes an existing file when it starts and would lose the fit rows. This one carries the
    existing rows and columns over, so test rows join the fit rows in one file."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        path = os.path.join(self.log_dir, ExperimentWriter.NAME_METRICS_FILE)
        previous = None
        if os.path.isfile(path):
            with open(path, newline="") as f:
                previous = f.read()
        experiment = super().experiment
        if previous and isinstance(experiment, ExperimentWriter):
            with open(experiment.metrics_file_path, "w", newline="") as f:
                f.write(previous)
            experiment.metrics_keys = sorted(next(csv.reader([previous.splitlines()[0]])))
        return experiment
