"""The `python -m supra.X` commands that take nested keys (paths.x; tokenize_media's data.x): a misspelled one is
one line naming the nearest there is, exit status 2, before Hydra composes, as train.py and evaluate.py say it; a
misspelled top-level key gets the same answer from every entry point."""

from __future__ import annotations

import importlib
import runpy
import sys

import pytest

from supra.utils.unknown_keys import exit_if_unknown_key
from tests.conftest import ROOT


def run_command(module: str, argv: list[str], monkeypatch, tmp_path) -> int:
    """`python -m <module> argv...` (`python <script>.py argv...` for a module ending in .py) run from
    `tmp_path`, in this process, up to its exit before Hydra composes: the exit status."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [module, *argv])
    with pytest.raises(SystemExit) as exit_info:
        if module.endswith(".py"):
            runpy.run_path(str(ROOT / module), run_name="__main__")
        else:
            importlib.import_module(module).main()  # what `python -m <module>` runs
    return exit_info.value.code


@pytest.mark.parametrize(("module", "args"), [
    ("train.py", []), ("evaluate.py", ["ckpt=x.ckpt"]), ("supra.generate", ["ckpt=x.ckpt", "mode=text"]),
])
def test_one_misspelled_top_level_key_gets_one_answer_from_every_entry_point(module, args, monkeypatch, tmp_path,
                                                                              capsys):
    # evaluate.py and the commands said "unexpected argument 'seeed=1': the options are ..." without the nearest
    assert run_command(module, [*args, "seeed=1"], monkeypatch, tmp_path) == 2
    assert capsys.readouterr().err == "error: seeed=1: no such option (did you mean seed?)\n"


@pytest.mark.parametrize(("command", "arg", "message"), [
    ("caption", "model.net.N_VIS=4", "error: model.net.N_VIS=4: no such option (the options there are: batch_size, "
                                     "beam_width, ckpt, decode, grid_images, images, out, seed)\n"),
    ("caption", "+model.net.N_VIS=4", "error: +model.net.N_VIS=4: no such option, and nothing reads one added (the "
                                      "options there are: batch_size, beam_width, ckpt, decode, grid_images, images, "
                                      "out, seed)\n"),
    ("explain", "++explain_typo=3", "error: ++explain_typo=3: no such option, and nothing reads one added (the options "
                                    "there are: beam_width, best_of, ckpt, decode, guidance, image, image_size, "
                                    "max_new_tokens, mode, out, prompt, resize, seed, temperature)\n"),
    ("eval", "+seeed=1", "error: +seeed=1: no such option, and nothing reads one added (did you mean seed?)\n"),
])
def test_a_top_level_key_a_command_does_not_have_is_refused_with_a_plus_too(command, arg, message, capsys):
    """With a `+` Hydra adds the key, which the command never reads: the run went on as if it had not been given
    (train.py's config takes one: an interpolation may read it)."""
    with pytest.raises(SystemExit) as end:
        exit_if_unknown_key(command, [arg], new_top_keys=False)
    assert (end.value.code, capsys.readouterr().err) == (2, message)


def test_a_plus_adds_keys_under_an_option_the_command_has():
    exit_if_unknown_key("tokenize_media", ["+data.num_train=100"], new_top_keys=False)  # its conf's own example


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
