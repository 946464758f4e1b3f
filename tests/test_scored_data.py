"""What evaluate.py says of the data it scored: which data (metrics.json, the table's title)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.caption_source_fixtures import write_coco_karpathy
from tests.conftest import compose_config

EVAL = ["+data.num_workers=0", "+data.show_progress=false", "metrics=[Bleu]", "num_grid_images=0"]


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory) -> tuple[Path, Path]:
    """A captioner trained one step on a COCO dataset_coco.json."""
    from supra.runner.training import train

    tmp = tmp_path_factory.mktemp("scored")
    write_coco_karpathy(tmp / "coco")
    train(compose_config("train", tmp / "run", [
        "experiment=vlm_coco", "trainer=cpu", f"data.root={tmp / 'coco'}", "trainer.max_steps=1", "test=false",
        "data.batch_size=8", "data.eval_batch_size=8", "data.num_workers=0", "data.show_progress=false",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.test_metrics=[Bleu]"]))
    return tmp / "run" / "checkpoints" / "last.ckpt", tmp / "coco"


def test_metrics_json_names_the_data_scored_and_how_many_references_it_used(coco_run, tmp_path):
    from supra.runner.evaluation import evaluate

    ckpt, root = coco_run
    evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", *EVAL]))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {key: metrics[key] for key in ("source", "layout", "root")} == {
        "source": "coco", "layout": "karpathy", "root": str(root)}  # the layout read, not the config's null
    assert metrics["n_images"] == 3 and metrics["n_references"] == 15  # 5 sentences per image
    assert {"Bleu_4", "loss", "split", "decode", "decode_settings"} <= set(metrics)  # the keys it always had
