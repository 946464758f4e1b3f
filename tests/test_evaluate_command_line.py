"""evaluate.py's command line: a misspelled key, nested ones too, is one line naming the nearest there is, exit
status 2, before Hydra composes (as train.py's, tests/test_train_command_line.py); a data.x of a checkpoint's own
data is checked against that data once the checkpoint is read."""

from __future__ import annotations

import runpy
import sys

import pytest
from omegaconf import OmegaConf

from supra.runner.components import chosen_data_config
from supra.runner.evaluation import data_for_release, exit_if_unknown_eval_key
from supra.utils.errors import SupraUserError
from tests.conftest import ROOT


def run_evaluate_py(argv: list[str], monkeypatch, tmp_path) -> int:
    """`python evaluate.py argv...` run from `tmp_path`, in this process, up to its exit before Hydra composes:
    the exit status."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "evaluate.py"), *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "evaluate.py"), run_name="__main__")
    return exit_info.value.code


@pytest.mark.parametrize(("args", "message"), [
    (["data=shapes", "data.batch_sizee=8"],
     "error: data.batch_sizee=8: no such option (did you mean data.batch_size?)\n"),
    (["data=shapes", "data.splt=val"], "error: data.splt=val: no such option (did you mean data.split?)\n"),
    (["paths.log_dri=elsewhere/x"], "error: paths.log_dri=elsewhere/x: no such option (did you mean paths.log_dir?)\n"),
    # as data_for_release chooses for a release folder given data.root alone
    (["data=flickr8k", "data.rooot=/data"], "error: data.rooot=/data: no such option (did you mean data.root?)\n"),
])
def test_evaluate_py_refuses_a_misspelled_nested_key_in_one_line_with_the_nearest(args, message, monkeypatch,
                                                                                  tmp_path, capsys):
    assert run_evaluate_py(["ckpt=model.ckpt", *args], monkeypatch, tmp_path) == 2
    assert capsys.readouterr().err == message


def test_a_checkpoints_own_data_keys_are_left_to_the_check_once_it_is_read():
    """Without data=<name>, data.x changes the checkpoint's run data, which conf/eval.yaml does not hold."""
    for args in (["data.num_test=5"], ["+data.eval_batch_size=1"], ["~data.sources.video"],
                 ["data.split=val", "decode=greedy", "paths.log_dir=elsewhere/x"]):
        exit_if_unknown_eval_key(data_for_release(["ckpt=model.ckpt", *args]))


def test_a_misspelled_key_of_the_checkpoints_data_names_the_nearest():
    run_cfg = {"data": {"_target_": "supra.data.captioning.shapes.ShapesDataModule", "batch_size": 64, "num_test": 500}}
    with pytest.raises(SupraUserError, match=r"^data.batch_sizee is not an option of the data this model was trained "
                                             r"on \(did you mean data.batch_size\?\) \(ShapesDataModule: batch_size, "
                                             r"num_test\); data=<name> chooses other data$"):
        chosen_data_config(OmegaConf.create({"batch_sizee": 8}), run_cfg, "no data")


def test_a_misspelled_nested_key_of_the_checkpoints_data_names_the_nearest():
    """data.sources.<name>.rooot=/x (an a2a run's source) was merged unchecked below the first level: the source
    went on reading its own root, and the typo was a key nothing read."""
    run_cfg = {"data": {"_target_": "supra.data.a2a.mixture.A2AMixtureDataModule", "batch_size": 32, "sources": {
        "photos": {"_target_": "supra.data.media.photo_captions.PhotoCaptionsSource", "root": "/p", "split_seed": 0}}}}
    given = OmegaConf.create({"split": "test", "sources": {"photos": {"rooot": "/x"}}})
    with pytest.raises(SupraUserError, match=r"^data.sources.photos.rooot is not an option of the data this model was "
                                             r"trained on \(did you mean data.sources.photos.root\?\) "
                                             r"\(PhotoCaptionsSource: root, split_seed\); data=<name> chooses other data$"):
        chosen_data_config(given, run_cfg, "no data")
    with pytest.raises(SupraUserError, match=r"^data.sources.phtos is not an option .*did you mean data.sources.photos"):
        chosen_data_config(OmegaConf.create({"sources": {"phtos": None}}), run_cfg, "no data")  # ~data.sources.phtos
    merged = chosen_data_config(OmegaConf.create({"sources": {"photos": {"root": "/x"}}}), run_cfg, "no data")
    assert merged.sources.photos.root == "/x" and merged.sources.photos.split_seed == 0


def test_a_refused_evaluate_leaves_no_empty_folders_above_its_dated_run_folder(tmp_path):
    """In a folder where no evaluate.py ran, the logs/eval/runs/ Hydra made for the refused run's dated folder goes
    with it; logs/ holding another run's folder stays."""
    from datetime import datetime

    from omegaconf import open_dict

    from supra.runner.evaluation import evaluate, no_folder_left_if_refused
    from tests.conftest import compose_config

    (tmp_path / "logs" / "train" / "runs").mkdir(parents=True)
    runs = tmp_path / "logs" / "eval" / "runs"
    cfg = compose_config("eval", runs / f"{datetime.now():%Y}", [
        "ckpt=model.ckpt", "num_grid_images=-1", f"hydra.run.dir={runs}/${{now:%Y}}"])
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)  # the folder evaluate.py was run in
    with pytest.raises(SupraUserError, match="num_grid_images=-1 must be"), no_folder_left_if_refused(cfg):
        evaluate(cfg)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["logs", "logs/train",
                                                                                      "logs/train/runs"]
