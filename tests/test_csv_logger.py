"""The CSV logger keeps earlier rows when a second process (ddp_spawn's test after fit) logs to the same file,
and refuses a file another run wrote."""

import csv

import pytest

from supra.loggers.csv_logger import CSVLoggerKeepingColumns
from supra.utils.errors import SupraUserError


def test_a_logger_made_on_another_runs_metrics_csv_is_refused_rather_than_merging_their_curves(tmp_path):
    """Two runs given one logger.csv.save_dir: the second's metrics.csv began with the first's rows."""
    first = CSVLoggerKeepingColumns(tmp_path, name="csv", version="")
    first.log_metrics({"train/loss": 1.0}, step=1)
    first.save()
    with pytest.raises(SupraUserError, match=rf"^{tmp_path / 'csv' / 'metrics.csv'} holds another run's logged "
                                             r"curves, which this run's would be merged into: choose another "
                                             r"logger.csv.save_dir \(or leave it out"):
        CSVLoggerKeepingColumns(tmp_path, name="csv", version="")
    CSVLoggerKeepingColumns(tmp_path, name="csv", version=None)  # a version of its own: version_0


def test_a_writer_made_before_the_file_existed_still_keeps_rows_added_since(tmp_path):
    """ddp_spawn pickles the logger (writer included) into each process: fit's rows, then test's."""
    import pickle

    logger = CSVLoggerKeepingColumns(tmp_path, name="csv", version="")
    _ = logger.experiment  # created early, as train() does when logging hyperparameters
    fit, test = pickle.loads(pickle.dumps(logger)), pickle.loads(pickle.dumps(logger))
    fit.log_metrics({"train/loss": 1.0}, step=1)
    fit.save()
    test.log_metrics({"test/CIDEr": 2.0}, step=2)
    test.save()
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert [r["train/loss"] for r in rows] == ["1.0", ""] and [r["test/CIDEr"] for r in rows] == ["", "2.0"]
