"""TensorBoard's HPARAMS tab lists each run with its settings and its real final scores, read back here as the
tab reads them: the hparams plugin's data and the scalars its metrics name."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from supra.loggers.csv_logger import CSVLoggerKeepingColumns
from supra.loggers.tensorboard_hparams import final_scores, log_hparams_with_scores
from supra.runner.components import instantiate_group
from tests.conftest import compose_config


def hparams_tab(folder: Path) -> tuple[dict[str, object], dict[str, float]]:
    """The settings and the scores (each metric's last value) that the HPARAMS tab shows of the run in `folder`."""
    events = EventAccumulator(str(folder)).Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    session = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    settings = {name: getattr(value, value.WhichOneof("kind")) for name, value in session.hparams.items()}
    scores = {info.name.tag: events.Scalars(info.name.tag)[-1].value for info in experiment.metric_infos}
    return settings, scores


def test_final_scores_are_the_validation_and_test_metrics_and_the_best_monitored_value():
    metrics = {"train/loss": 2.5, "lr-AdamW": 1e-3, "val/loss": 2.0, "val/CIDEr": 0.25, "test/CIDEr": 0.5}
    assert final_scores(metrics, "val/CIDEr", 0.375) == {
        "hp/test/CIDEr": 0.5, "hp/val/CIDEr": 0.25, "hp/val/loss": 2.0, "hp/best/val/CIDEr": 0.375}
    assert final_scores(metrics, None, None) == {"hp/test/CIDEr": 0.5, "hp/val/CIDEr": 0.25, "hp/val/loss": 2.0}


def test_the_hparams_tab_lists_the_runs_flattened_settings_with_its_scores_and_other_loggers_log_nothing(tmp_path):
    cfg = compose_config("train", tmp_path, ["logger=tensorboard", "model.optimizer.lr=0.002", "data.batch_size=8"])
    [tensorboard] = instantiate_group(cfg.logger, "logger")
    csv_logger = CSVLoggerKeepingColumns(tmp_path, name="csv", version="")
    run_config = {"seed": 7, "model": {"optimizer": {"lr": 0.002}, "test_metrics": ["CIDEr"]}, "data": {"batch_size": 8}}
    tensorboard.log_hyperparams(run_config)  # as the run starts: its config, no scores yet
    scores = {"hp/val/loss": 2.0, "hp/best/val/CIDEr": 0.25}

    log_hparams_with_scores([tensorboard, csv_logger], run_config, scores, step=6)

    settings, shown = hparams_tab(tmp_path / "tensorboard")
    assert settings == {"seed": 7, "model/optimizer/lr": 0.002, "model/test_metrics": "['CIDEr']", "data/batch_size": 8}
    assert shown == scores
    # hparams.yaml keeps the config as it was given, not its flattened columns
    assert "model/optimizer/lr" not in (tmp_path / "tensorboard" / "hparams.yaml").read_text()
    csv_logger.save()
    assert not (tmp_path / "csv" / "metrics.csv").exists()


def test_a_run_without_scores_writes_no_hparams_entry_rather_than_a_placeholder(tmp_path):
    cfg = compose_config("train", tmp_path, ["logger=tensorboard"])
    [tensorboard] = instantiate_group(cfg.logger, "logger")
    tensorboard.log_hyperparams({"seed": 1})
    log_hparams_with_scores([tensorboard], {"seed": 1}, {}, step=0)
    tensorboard.log_metrics({"train/loss": 2.0}, step=0)
    tensorboard.finalize("success")
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    with pytest.raises(KeyError, match="hparams"):  # the tab finds no run here
        events.PluginTagToContent(metadata.PLUGIN_NAME)
    assert events.Tags()["scalars"] == ["train/loss"]
