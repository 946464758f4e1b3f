"""What evaluate.py says of the data it scored: which data (metrics.json, the table's title) and whether the
checkpoint's run trained on any of its images (another layout or cut of the same pictures, data.split=train)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from supra.data.caption_sources.sources import read_caption_source
from supra.runner.scored_data import likely_reason, pictures_of, run_train_list
from tests.caption_source_fixtures import coco_caption, write_coco_official
from tests.conftest import compose_config


def test_a_picture_is_known_across_the_layouts_of_its_data_set():
    trained = ["val2014/COCO_val2014_000000000113.jpg", "1000268201_693b08cb0e.jpg", "cats/1.jpg"]
    scored = ["images/val2014/COCO_val2014_000000000113.jpg",  # the official files under images/
              "val2017/000000000113.jpg",  # COCO 2017's name of the same picture
              "Flicker8k_Dataset/1000268201_693b08cb0e.jpg",  # a layout's image folder
              "dogs/1.jpg", "val2014/COCO_val2014_000000000114.jpg"]  # other pictures
    assert pictures_of(scored, trained) == scored[:3]


def test_the_likely_reason_names_the_setting_that_cuts_the_images_otherwise():
    run = {"root": "/data/coco", "layout": None, "split_seed": 0}
    assert "data.layout=2014 cuts the images otherwise than the run's data.layout=None" in likely_reason(
        "test", {**run, "layout": "2014"}, run)
    assert "data.split_seed=1 cuts" in likely_reason("test", {**run, "split_seed": 1}, run)
    assert "data.root=/data/coco_copy holds pictures of the run's data.root=/data/coco" in likely_reason(
        "test", {**run, "root": "/data/coco_copy"}, run)
    assert likely_reason("train", run, run) == "data.split=train scores the run's training images"
    assert likely_reason("val", run, run, "val") == "data.split=val scores the run's validation images"


def test_a_checkpoints_train_list_is_its_run_folders_and_a_copied_one_has_none(tmp_path):
    run = tmp_path / "run"
    (run / "splits").mkdir(parents=True)
    (run / "splits" / "train.txt").write_text("a.jpg\n")
    assert run_train_list(run / "checkpoints" / "last.ckpt", str(run)) == run / "splits" / "train.txt"
    assert run_train_list(run / "checkpoints" / "periodic" / "step_1.ckpt", str(run)) is not None
    assert run_train_list(tmp_path / "elsewhere" / "last.ckpt", str(run)) is None


def test_a_checkpoint_copied_into_another_runs_folder_has_no_train_list(tmp_path):
    """The list above it is another run's: the folder its own run wrote its split lists into is another one."""
    (tmp_path / "other_run" / "splits").mkdir(parents=True)
    (tmp_path / "other_run" / "splits" / "train.txt").write_text("a.jpg\n")
    copied = tmp_path / "other_run" / "checkpoints" / "last.ckpt"
    assert run_train_list(copied, str(tmp_path / "its_run")) is None
    assert run_train_list(copied, None) is None  # a run config that does not say: not taken for its own


@pytest.mark.parametrize(("roots", "run_data", "why"), [
    ({}, {"_target_": "ShapesDataModule"},
     "the data scored names no image files to compare with its run's (generated pictures, a dataset's rows)"),
    ({"data.root": "/media"}, {"_target_": "ShapesImagesDataModule"},
     "its run's data names no image files to compare with those of data.root=/media (its pictures generated, or a "
     "dataset's rows)"),
    ({"data.root": "/media"}, {"_target_": "MediaFolderDataModule", "root": "/media"},
     "neither the data scored (data.root=/media) nor its run's data lists the image files of its splits to compare"),
])
def test_data_without_files_to_compare_says_which_side_has_none(tmp_path, caplog, roots, run_data, why):
    """A VQ-VAE of generated shapes scored on a media folder was said to be scored on data that names no files."""
    from types import SimpleNamespace

    from supra.callbacks.test_report import TestReport
    from supra.runner.scored_data import ScoredData

    ckpt = tmp_path / "best.ckpt"
    scored = ScoredData(TestReport(str(tmp_path)), str(ckpt), ckpt, {"_target_": "MediaFolderDataModule"}, run_data,
                        roots)
    with caplog.at_level(logging.INFO, logger="supra.runner.scored_data"):
        scored.on_test_start(SimpleNamespace(datamodule=SimpleNamespace(split="test")), None)
    assert caplog.messages == [f"cannot check whether ckpt={ckpt} trained or validated on the test images scored: {why}"]
    assert scored.report.about_data["trained_on"] is None


def write_coco_both_layouts(root: Path) -> list[str]:
    """COCO 2014's official files and a dataset_coco.json of the same pictures, as a real COCO folder often holds
    them; Karpathy's restval holds the official layout's seeded test cut, which is returned."""
    expected = write_coco_official(root)
    official_test = read_caption_source("coco", root, layout="2014").splits["test"]
    on_disk = [file for file in expected["ids"] if (root / file).is_file() and expected["ids"][file] != 101]
    val = sorted(f for f in on_disk if f.startswith("val2014/") and f not in official_test)
    held_out = {**dict.fromkeys(val[:2], "val"), **dict.fromkeys(val[2:4], "test")}
    images = [{"filepath": file.split("/")[0], "filename": file.split("/")[1], "cocoid": expected["ids"][file],
               "split": held_out.get(file, "train" if file.startswith("train2014/") else "restval"),
               "sentences": [{"raw": coco_caption(expected["ids"][file], n)} for n in range(5)]} for file in on_disk]
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    return official_test


EVAL = ["+data.num_workers=0", "+data.show_progress=false", "metrics=[Bleu]", "num_grid_images=0"]


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A captioner trained one step on dataset_coco.json (detected) of a folder that holds both layouts."""
    from supra.runner.training import train

    tmp = tmp_path_factory.mktemp("scored")
    official_test = write_coco_both_layouts(tmp / "coco")
    train(compose_config("train", tmp / "run", [
        "experiment=vlm_coco", "trainer=cpu", f"data.root={tmp / 'coco'}", "trainer.max_steps=1", "test=false",
        "data.batch_size=8", "data.eval_batch_size=8", "data.num_workers=0", "data.show_progress=false",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.test_metrics=[Bleu]"]))
    return tmp / "run" / "checkpoints" / "last.ckpt", tmp / "coco", official_test


def test_scoring_another_layouts_test_cut_warns_of_the_pictures_trained_on_and_counts_them(coco_run, tmp_path,
                                                                                           caplog):
    from supra.runner.evaluation import evaluate

    ckpt, root, official_test = coco_run
    with caplog.at_level(logging.WARNING):
        evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "+data.layout=2014", *EVAL]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "images scored" in r.message]
    assert len(warnings) == 1 and warnings[0].startswith(f"2 of 2 test images scored were trained on by ckpt={ckpt}")
    assert "data.layout=2014 cuts the images otherwise" in warnings[0] and official_test[0] in warnings[0]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["trained_on"] == 2 and metrics["n_images"] == 2 and "Bleu_4" in metrics


def test_a_checkpoint_away_from_its_run_folder_says_once_that_it_cannot_check(coco_run, tmp_path, caplog):
    import shutil

    from supra.runner.evaluation import evaluate

    ckpt, _, _ = coco_run
    copied = shutil.copy(ckpt, tmp_path / "copied.ckpt")
    with caplog.at_level(logging.INFO):
        evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={copied}", "+data.layout=2014", *EVAL]))
    said = [r.getMessage() for r in caplog.records if "images scored" in r.getMessage()]
    assert said == [f"cannot check whether ckpt={copied} trained or validated on the test images scored: its run "
                    "folder keeps no splits/train.txt"]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["trained_on"] is None and metrics["validated_on"] is None


def test_a_checkpoint_copied_into_another_runs_folder_is_not_compared_with_that_runs_list(coco_run, tmp_path,
                                                                                        caplog):
    import shutil

    from supra.runner.evaluation import evaluate

    ckpt, _, official_test = coco_run
    other_run = tmp_path / "other_run"
    (other_run / "splits").mkdir(parents=True)
    (other_run / "splits" / "train.txt").write_text("\n".join(official_test) + "\n")  # what it would warn of
    (other_run / "checkpoints").mkdir()
    copied = shutil.copy(ckpt, other_run / "checkpoints" / "last.ckpt")
    with caplog.at_level(logging.INFO):
        evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={copied}", "+data.layout=2014", *EVAL]))
    said = [r.getMessage() for r in caplog.records if "images scored" in r.getMessage()]
    assert said == [f"cannot check whether ckpt={copied} trained or validated on the test images scored: {other_run} "
                    f"is another run's folder (its run wrote its split lists into {ckpt.parent.parent})"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["trained_on"] is None


def test_metrics_json_names_the_data_scored_and_how_many_references_it_used(coco_run, tmp_path):
    from supra.runner.evaluation import evaluate

    ckpt, root, _ = coco_run
    evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", *EVAL]))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {key: metrics[key] for key in ("source", "layout", "root")} == {
        "source": "coco", "layout": "karpathy", "root": str(root)}  # the layout read, not the config's null
    assert metrics["n_images"] == 2 and metrics["n_references"] == 10  # 5 sentences per image
    assert {"Bleu_4", "loss", "split", "decode", "decode_settings"} <= set(metrics)  # the keys it always had
    assert metrics["trained_on"] == 0 and metrics["validated_on"] == 0  # its own test split: held out


def test_scoring_the_train_split_warns_that_these_are_the_models_training_images(coco_run, tmp_path, caplog):
    from supra.runner.evaluation import evaluate

    ckpt, _, _ = coco_run
    with caplog.at_level(logging.WARNING):
        evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "data.split=train", *EVAL]))
    warnings = [r.getMessage() for r in caplog.records if "images scored" in r.getMessage()]
    n = json.loads((tmp_path / "eval" / "metrics.json").read_text())["n_images"]
    assert len(warnings) == 1 and warnings[0].startswith(f"{n} of {n} train images scored were trained on")
    assert "data.split=train scores the run's training images" in warnings[0]


def test_scoring_the_runs_validation_split_warns_that_it_picked_its_best_checkpoint_by_those_images(coco_run, tmp_path,
                                                                                                 caplog):
    from supra.runner.evaluation import evaluate

    ckpt, _, _ = coco_run
    with caplog.at_level(logging.WARNING):
        evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "data.split=val", *EVAL]))
    warnings = [r.getMessage() for r in caplog.records if "images scored" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"2 of 2 val images scored were validated on by the run of ckpt={ckpt}, which picks its best checkpoint by "
        f"them (its run's {ckpt.parent.parent / 'splits' / 'val.txt'}): data.split=val scores the run's validation images")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["validated_on"] == 2 and metrics["trained_on"] == 0
