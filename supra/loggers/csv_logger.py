"""Lightning's CSVLogger, keeping what a metrics.csv already holds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from supra.utils.errors import SupraUserError
from supra.utils.lightning_subclasses import ColumnKeepingWriter
from supra.utils.private_apis import cached_experiment, set_experiment


class CSVLoggerKeepingColumns(CSVLogger):
    """Under ddp_spawn, fit and test run in different processes and log into the same metrics.csv, each
    with a writer that knows none of the other's columns: Lightning's writer then fails rewriting the
    file ("dict contains fields not in fieldnames"), and a writer created fresh deletes the file. This
    one keeps the existing rows and columns, so test rows join the fit rows. Only this run's: those processes
    log through copies of this logger, so a metrics.csv there as it is made is another run's (a save_dir two
    runs share), whose curves this run's would be merged into (Lightning's would delete them): refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # rank 0 only: the other ranks of a DDP run (made after it, in processes of their own) log nothing
        if getattr(rank_zero_only, "rank", 0) == 0:  # version=None: a new version_N, holding none
            path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
            if path.is_file():
                raise SupraUserError(f"{path} holds another run's logged curves, which this run's would be merged "
                                     "into: choose another logger.csv.save_dir (or leave it out: the run's own "
                                     "folder), or move that file away")

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
