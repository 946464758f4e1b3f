"""A misspelled option on train.py's command line is one line naming the nearest there is, exit status 2,
before Hydra composes (whose own error would advise a `+key=...` that nothing reads)."""

from __future__ import annotations

import pytest

from supra.utils.unknown_keys import exit_if_unknown_key


@pytest.mark.parametrize(("arg", "message"), [
    ("ckpt_pth=x.ckpt", "error: ckpt_pth=x.ckpt: no such option (did you mean ckpt_path?)\n"),
    ("trainer.max_stpes=2", "error: trainer.max_stpes=2: no such option (did you mean trainer.max_steps?)\n"),
    ("model.optimizer.lrr=1e-3", "error: model.optimizer.lrr=1e-3: no such option (did you mean model.optimizer.lr?)\n"),
    # a key its class takes that conf/ leaves out: Hydra's advice, which is right here, in one line
    ("trainer.max_time=00:01:00", "error: trainer.max_time=00:01:00: not in the config, though trainer takes it: "
                                  "add it with +trainer.max_time=00:01:00\n"),
])
def test_a_misspelled_key_is_one_line_with_the_nearest_key_of_its_sub_config(arg, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        exit_if_unknown_key("train", [arg])
    assert (exit_info.value.code, capsys.readouterr().err) == (2, message)


def test_keys_an_experiment_or_an_earlier_plus_brings_are_options():
    # vlm_flickr8k's data has a root; the mixture's sources are added, then set, on one line
    exit_if_unknown_key("train", ["experiment=vlm_flickr8k", "data.root=/data", "seed=1", "-m", "trainer.max_steps=1,2"])
    exit_if_unknown_key("train", ["+model.extra={a:1}", "model.extra.a=2", "hydra.run.dir=/tmp/x", "--cfg", "job"])


@pytest.mark.parametrize(("arg", "message"), [
    # the `+` Hydra's own error suggests: stored beside an unset ckpt_path, the run would train from scratch
    ("+ckpt_pth=/runs/a/last.ckpt", "error: +ckpt_pth=/runs/a/last.ckpt: no such option, and nothing reads one "
                                    "added (did you mean ckpt_path?)\n"),
    ("++paths.log_dri=/tmp", "error: ++paths.log_dri=/tmp: no such option, and nothing reads one added (did you "
                             "mean paths.log_dir?)\n"),
])
def test_a_plus_key_beside_the_key_it_misspells_is_refused(arg, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        exit_if_unknown_key("train", [arg])
    assert (exit_info.value.code, capsys.readouterr().err) == (2, message)


def test_a_plus_key_added_on_purpose_is_taken():
    # as README.md and docs/ add them; keys of a class (trainer, data, optimizer) are its to check at the start
    exit_if_unknown_key("train", [
        "+trainer.max_time=00:01:00", "+trainer.enable_progress_bar=false", "+data.num_train=8",
        "+model.optimizer.eps=1e-6", "+callbacks.periodic._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        "+callbacks.periodic.every_n_train_steps=50", "+callbacks.mine={_target_:x.Y}", "+my_note=hello",
    ])
    exit_if_unknown_key("train", ["experiment=a2a_shapes", "+data.sources.mine={_target_:x.Y,root:my_media/}"])
