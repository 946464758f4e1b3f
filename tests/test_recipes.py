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


def readme_section(title: str) -> str:
    """The README's text under `### <title>`, up to the next heading."""
    readme = (CONF.parent / "README.md").read_text()
    return readme.split(f"### {title}\n", 1)[1].split("\n#", 1)[0]


def test_the_readme_says_which_data_recipes_train_on_a_gpu_and_what_a_cpu_adds(tmp_path):
    """Its "Your own data" lines name no trainer: a CPU user learns there that the recipes need trainer=cpu,
    not from the one-line refusal of trainer=gpu."""
    import re

    section = readme_section("Your own data: COCO, Flickr30k, folders, Hugging Face datasets, web-scale shards")
    intro, block = section.split("```bash\n", 1)
    bare = {m for line in block.splitlines() if "trainer=" not in line
            for m in re.findall(r"python train\.py experiment=(\w+)", line)}
    assert bare
    for experiment in sorted(bare):
        cfg = compose_config("train", tmp_path, [f"experiment={experiment}"])
        if cfg.trainer.accelerator == "gpu":
            assert "`trainer=gpu`" in intro and "`trainer=cpu`" in intro, experiment
            assert f"experiment={experiment} trainer=cpu" in (CONF / "experiment" / f"{experiment}.yaml").read_text()
    assert re.search(r"python train\.py experiment=vlm_\w+ trainer=cpu ", block)  # the line that shows it


def test_the_readme_gives_vqvae_shapes_the_minutes_its_config_and_table_state():
    import re

    section = readme_section("Stage 1 of the any-to-any model: the VQ-VAE image tokenizer")
    (command,) = re.findall(r"python train\.py experiment=vqvae_shapes +#(.*)", section)
    header = (CONF / "experiment" / "vqvae_shapes.yaml").read_text().split("defaults:")[0]
    minutes = re.compile(r"(\d+)-(\d+) min\b")
    assert minutes.search(command) and minutes.search(command).groups() == minutes.search(header).groups()
    low, high = map(int, minutes.search(command).groups())
    # the measured wall times of its table row, in whole minutes, lie in that range
    (row,) = [line for line in section.splitlines() if line.startswith("| the same, step 3,000 (wall:")]
    walls = [int(m) + int(s) / 60 for m, s in re.findall(r"(\d+) min (\d+) s", row)]
    assert walls and low <= round(min(walls)) and round(max(walls)) <= high


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_debug_overfit_trains_its_steps_on_every_recipe_and_validates(experiment, tmp_path):
    # an epoch of debug=overfit is one batch: a recipe's max_epochs (the release recipe's 15) would end it first
    cfg = compose_config("train", tmp_path, [f"experiment={experiment}", "debug=overfit"])
    trainer = cfg.trainer
    assert trainer.overfit_batches == 1
    assert trainer.max_epochs == -1 or trainer.max_epochs >= trainer.max_steps, f"experiment={experiment}"
    assert trainer.check_val_every_n_epoch <= trainer.max_steps, f"experiment={experiment}"
