"""Files of the checkout that messages and --help name (conf/..., docs/...) are given as paths the user can open
from the folder they work in, and install advice works from any folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from supra.artifacts.checkpoints import bare_weights
from supra.utils.cli import check_required, print_config_groups
from supra.utils.errors import SupraUserError
from supra.utils.files import openable_path
from supra.utils.overrides import CONF_DIR
from tests.conftest import compose_config

CHECKOUT = CONF_DIR.parent


def test_a_file_of_the_checkout_is_named_relative_from_inside_it_and_absolute_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(CHECKOUT)
    assert openable_path(CONF_DIR / "train.yaml") == "conf/train.yaml"
    monkeypatch.chdir(tmp_path)
    assert openable_path(CONF_DIR / "train.yaml") == str(CONF_DIR / "train.yaml")


def test_a_missing_option_names_the_config_file_that_explains_it_openable_from_elsewhere(tmp_path, monkeypatch):
    cfg = compose_config("train", tmp_path / "run", ["model/encoder=pretrained"])
    monkeypatch.chdir(tmp_path)  # the user's own folder: no conf/ there
    with pytest.raises(SupraUserError) as refused:
        check_required(cfg, "train")
    assert str(refused.value) == ("missing model.net.pretrained.weights=... (explained in "
                                  f"{CONF_DIR / 'model' / 'encoder' / 'pretrained.yaml'})")


def test_train_help_names_the_config_files_where_they_are(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    print_config_groups()
    first = capsys.readouterr().out.splitlines()[1]
    assert first == (f"Config groups (group=option, one per group; {CONF_DIR}/<group>/<option>.yaml explains its keys, "
                     "each a key=value option too,")


def test_bare_weights_are_refused_with_the_releases_page_where_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refusal = bare_weights(Path("w.safetensors"), "a safetensors file")
    assert str(refusal) == ("ckpt=w.safetensors holds bare weights (a safetensors file), not a .ckpt written by "
                            "train.py: give that, or a release folder (the weights as model.safetensors beside their "
                            f"config.json and tokenizer.json; {CHECKOUT / 'docs' / 'releases.md'})")


def test_the_demo_without_gradio_says_an_install_that_works_from_any_folder(monkeypatch):
    from supra.demo import run

    monkeypatch.setitem(sys.modules, "gradio", None)  # as where it is not installed: its import fails
    with pytest.raises(SupraUserError) as refused:
        run(OmegaConf.create({"host": "127.0.0.1", "port": 7860}))
    assert str(refused.value) == 'the demo needs Gradio: pip install "gradio>=4"'
