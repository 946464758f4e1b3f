"""metrics.json, the one report of every test, as strict JSON readers (JavaScript's, Go's) take it."""

import json
from types import SimpleNamespace

import pytest
import torch

from supra.callbacks.test_report import METRICS_FILE, TestReport, table_title


def refuse_non_json_number(name: str) -> None:
    pytest.fail(f"metrics.json holds {name}, which is not JSON")


def test_a_score_that_is_not_a_number_is_written_to_metrics_json_as_null(tmp_path):
    # a diverged run's test: its loss NaN (or inf), its caption scores those of a broken model
    task = SimpleNamespace(test_results={"scores": {"CIDEr": 0.0}, "split": "test", "details": {"n_images": 8}})
    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={"test/loss": torch.tensor(float("nan")),
                                                                     "test/loss_text": torch.tensor(float("inf")),
                                                                     "test/psnr": torch.tensor(12.5)})
    TestReport(str(tmp_path)).on_test_end(trainer, task)
    text = (tmp_path / METRICS_FILE).read_text(encoding="utf-8")
    assert json.loads(text, parse_constant=refuse_non_json_number) == {
        "CIDEr": 0.0, "loss": None, "loss_text": None, "psnr": 12.5, "split": "test", "n_images": 8}


def test_a_nested_score_that_is_not_a_number_is_written_to_metrics_json_as_null(tmp_path):
    # a task's details may hold scores per source or per frame: a NaN among them is no more JSON than a top one
    details = {"per_source": {"shapes": {"psnr": float("nan"), "items": 4}, "video": {"psnr": 20.0, "items": 2}},
               "frame_psnr": [21.5, float("-inf"), (float("nan"), 3.0)]}
    task = SimpleNamespace(test_results={"scores": {"CIDEr": 0.5}, "split": "test", "details": details})
    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={})
    TestReport(str(tmp_path)).on_test_end(trainer, task)
    text = (tmp_path / METRICS_FILE).read_text(encoding="utf-8")
    assert json.loads(text, parse_constant=refuse_non_json_number) == {
        "CIDEr": 0.5, "split": "test",
        "per_source": {"shapes": {"psnr": None, "items": 4}, "video": {"psnr": 20.0, "items": 2}},
        "frame_psnr": [21.5, None, [None, 3.0]]}


def test_metrics_json_names_the_checkpoint_the_test_loaded_and_its_step(tmp_path, monkeypatch):
    # train.py's test of its best checkpoint: Lightning loads it (SupraTask keeps its step), the trainer at the fit's
    (tmp_path / "best.ckpt").touch()
    monkeypatch.chdir(tmp_path)
    task = SimpleNamespace(test_results={"scores": {"CIDEr": 0.5}, "split": "test"}, weights_step=20)
    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={}, ckpt_path="best.ckpt", global_step=30)
    report = TestReport(str(tmp_path))
    report.on_test_start(trainer, task)
    report.on_test_end(trainer, task)
    assert json.loads((tmp_path / METRICS_FILE).read_text(encoding="utf-8")) == {
        "CIDEr": 0.5, "split": "test", "ckpt": str(tmp_path / "best.ckpt"), "step": 20}


def test_metrics_json_of_the_weights_a_fit_ended_with_names_no_checkpoint_and_the_fits_step(tmp_path):
    # no checkpoint written (checkpointing off, fast_dev_run): the test scores the weights in memory
    task = SimpleNamespace(test_results={"scores": {"CIDEr": 0.5}, "split": "test"}, weights_step=None)
    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={}, ckpt_path=None, global_step=30)
    report = TestReport(str(tmp_path))
    report.on_test_start(trainer, task)
    report.on_test_end(trainer, task)
    assert json.loads((tmp_path / METRICS_FILE).read_text(encoding="utf-8")) == {
        "CIDEr": 0.5, "split": "test", "ckpt": None, "step": 30}


def test_the_tables_title_names_the_data_scored_where_the_command_says_it():
    details = {"n_images": 2, "n_references": 10}
    assert table_title("CaptioningTask", "test", details, {}) == "CaptioningTask, test split, n_images=2, n_references=10"
    about = {"source": "coco", "layout": "2014", "root": "/data/coco"}
    assert table_title("CaptioningTask", "test", details, about) == (
        "CaptioningTask, coco test split (2014 layout, data.root=/data/coco), n_images=2, n_references=10")


def test_the_tables_title_shows_nested_settings_as_key_value_pairs_with_null_not_a_python_dict():
    details = {"decode": "beam", "decode_settings": {"strategy": "beam", "beam_width": 3, "max_new_tokens": None}}
    assert table_title("CaptioningTask", "test", details, {}) == (
        "CaptioningTask, test split, decode=beam, decode_settings=(strategy=beam, beam_width=3, max_new_tokens=null)")


def test_predictions_and_metrics_json_keep_captions_and_file_names_readable_in_utf8(tmp_path):
    """A user of any language reads and greps their captions: `猫.jpg`, not `\\u732b.jpg`."""
    from supra.callbacks.test_report import PREDICTIONS_FILE

    predictions = [{"image_id": "猫.jpg", "file": "猫.jpg", "caption": "一只猫"},
                   {"image_id": 7, "file": "a.jpg", "caption": "a cat"}]
    task = SimpleNamespace(test_results={"scores": {"CIDEr": 0.5}, "split": "test", "predictions": predictions,
                                         "details": {"ckpt": "runs/café/best.ckpt"}})
    TestReport(str(tmp_path)).on_test_end(SimpleNamespace(is_global_zero=True, callback_metrics={}), task)
    written = (tmp_path / PREDICTIONS_FILE).read_bytes()
    assert '"file": "猫.jpg",\n    "caption": "一只猫"'.encode() in written
    assert json.loads(written) == predictions
    assert '"ckpt": "runs/café/best.ckpt"'.encode() in (tmp_path / METRICS_FILE).read_bytes()
