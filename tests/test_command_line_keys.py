"""The `python -m supra.X` commands that take nested keys (paths.x; tokenize_media's data.x): a misspelled one is
one line naming the nearest there is, exit status 2, before Hydra composes, as train.py and evaluate.py say it."""

from __future__ import annotations

import importlib
import sys

import pytest

from supra.utils.unknown_keys import exit_if_unknown_key


def run_command(module: str, argv: list[str], monkeypatch, tmp_path) -> int:
    """`python -m <module> argv...` run from `tmp_path`, in this process, up to its exit before Hydra composes:
    the exit status."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [module, *argv])
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main()  # what `python -m <module>` runs
    return exit_info.value.code


@pytest.mark.parametrize(("module", "args", "message"), [
    ("supra.generate", ["ckpt=a2a.ckpt", "paths.log_dri=elsewhere/x"],
     "error: paths.log_dri=elsewhere/x: no such option (did you mean paths.log_dir?)\n"),
    ("supra.write_shards", ["source=coco", "root=coco", "out=shards", "paths.cache_dri=elsewhere/x"],
     "error: paths.cache_dri=elsewhere/x: no such option (did you mean paths.cache_dir?)\n"),
    ("supra.tokenize_media", ["ckpt=vq.ckpt", "out=codes", "data=media_folder", "data.rooot=media"],
     "error: data.rooot=media: no such option (did you mean data.root?)\n"),
    # the checkpoint's data is changed with a +, as conf/tokenize_media.yaml says (Hydra's advice, in one line)
    ("supra.tokenize_media", ["ckpt=vq.ckpt", "out=codes", "data.num_train=100"],
     "error: data.num_train=100: not in the config, where data is empty: add it with +data.num_train=100\n"),
])
def test_a_commands_misspelled_nested_key_is_one_line_with_the_nearest(module, args, message, monkeypatch,
                                                                        tmp_path, capsys):
    assert run_command(module, args, monkeypatch, tmp_path) == 2
    assert capsys.readouterr().err == message


def test_a_commands_nested_keys_that_exist_or_are_added_are_taken():
    exit_if_unknown_key("tokenize_media", ["ckpt=vq.ckpt", "out=codes", "+data.num_train=100"])
    exit_if_unknown_key("tokenize_media", ["data=media_folder", "data.root=media", "paths.cache_dir=elsewhere/x"])
    exit_if_unknown_key("generate", ["ckpt=a2a.ckpt", "paths.log_dir=elsewhere/x", "hydra.run.dir=elsewhere/y"])
