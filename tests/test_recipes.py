"""Every recipe is bounded by optimizer steps (or epochs), never by wall-clock time: the same command trains
the same run on a fast or a slow CPU, busy or idle (its figures then differ only by the rounding of each
CPU's fp32 kernels, not by how many steps the machine managed)."""

from __future__ import annotations

import pytest

from tests.conftest import CONF, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_no_recipe_is_bounded_by_time(experiment, tmp_path):
    cfg = compose_config("train", tmp_path, [f"experiment={experiment}"])
    assert cfg.trainer.get("max_time") is None, f"experiment={experiment} sets trainer.max_time"
    assert cfg.trainer.max_steps > 0 or cfg.trainer.max_epochs > 0
    assert "max_time" not in (CONF / "experiment" / f"{experiment}.yaml").read_text()


def test_every_trainer_config_leaves_time_to_the_user(tmp_path):
    for trainer in sorted(p.stem for p in (CONF / "trainer").glob("*.yaml")):
        assert "max_time" not in (CONF / "trainer" / f"{trainer}.yaml").read_text(), trainer
