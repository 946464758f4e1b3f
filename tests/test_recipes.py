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


def test_the_time_guard_the_docs_suggest_composes(tmp_path):
    # no trainer config has max_time, so trainer.max_time=... (without +) would be Hydra's "no key" error
    import re

    (guard,) = re.findall(r"`(\+trainer\.max_time=[^`]+)`", (CONF.parent / "docs" / "a2a_nano.md").read_text())
    cfg = compose_config("train", tmp_path, ["experiment=a2a_shapes", guard])
    assert cfg.trainer.max_time == guard.split("=", 1)[1]
