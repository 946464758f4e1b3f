"""The CSV logger keeps earlier rows when a second process (ddp_spawn's test after fit) logs to the same file."""

import csv

from supra.loggers.csv_logger import CSVLoggerKeepingColumns


def test_a_second_logger_on_the_same_file_keeps_the_first_ones_rows(tmp_path):
    fit = CSVLoggerKeepingColumns(tmp_path, name="csv", version="")
    fit.log_metrics({"train/loss": 1.0}, step=1)
    fit.save()
    test = CSVLoggerKeepingColumns(tmp_path, name="csv", version="")
    test.log_metrics({"test/CIDEr": 2.0}, step=2)
    test.save()
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert rows == [{"step": "1", "test/CIDEr": "", "train/loss": "1.0"},
                    {"step": "2", "test/CIDEr": "2.0", "train/loss": ""}]


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
