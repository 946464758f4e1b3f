"""A run whose metrics need Java (pycocoevalcap's PTB tokenizer: every caption metric) is refused without it
before any work, in one line naming what to install; a run that scores no captions does not need it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from supra.metrics.caption_scores import JAVA_MISSING
from supra.runner.evaluation import evaluate
from supra.runner.run_checks import check_java_for_training
from supra.runner.training import train
from supra.utils.errors import SupraUserError
from tests.conftest import compose_config


@pytest.fixture
def no_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH as a machine without Java has it: every program of PATH's folders but java."""
    folder = tmp_path / "path_without_java"
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else []:
            link = folder / program.name
            if program.name != "java" and not link.exists():
                link.symlink_to(program)
    monkeypatch.setenv("PATH", str(folder))


def test_training_that_scores_captions_without_java_is_refused_before_the_data_is_set_up(no_java, train_config):
    cfg = train_config()
    with pytest.raises(SupraUserError, match=r"^pycocoevalcap needs Java .*apt-get install default-jre-headless$"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "tokenizer.json").exists()  # the data set-up trains it


def test_evaluating_a_captioner_without_java_is_refused_before_the_split_is_decoded(trained_run, no_java, tmp_path):
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={trained_run / 'checkpoints' / 'last.ckpt'}"])
    with pytest.raises(SupraUserError, match=re.escape(JAVA_MISSING)):
        evaluate(cfg)
    assert not (tmp_path / "eval" / "tokenizer.json").exists()


@pytest.mark.parametrize(("overrides", "needs_java"), [
    ([], True),
    (["train=false"], True),                                     # the test's METEOR, CIDEr, ...
    (["model.val_metrics=[]", "model.test_metrics=[]"], False),  # a captioner scored by its loss only
    (["experiment=vqvae_shapes"], False),                         # reconstructions: PSNR, SSIM, codebook usage
    (["experiment=a2a_shapes"], True),                            # its image2text captions
    (["experiment=a2a_shapes", "data.tasks.image2text=0"], False),  # no captions to score
    (["+trainer.limit_val_batches=0", "test=false"], False),     # validation turned off, no test
    (["+trainer.limit_val_batches=0.0", "test=false"], False),
    (["+trainer.limit_val_batches=0"], True),                     # validation off, the test still scores
    (["+trainer.limit_val_batches=0.5", "test=false"], True),     # half of val is still scored
    (["experiment=a2a_shapes", "data.val_items=0", "test=false"], False),  # no val item scored, no test
    (["experiment=a2a_shapes", "~data.sources.shapes"], False),   # clips alone: image2text has no item (the data says)
    (["experiment=a2a_shapes", "data.sources.shapes=null"], False),
    (["experiment=a2a_shapes", "~data.sources.shapes", "+data.sources.media={_target_: "
      "supra.data.media.folder.MediaFolderDataModule, root: media, mode: clips}"], False),
    (["experiment=a2a_shapes", "~data.sources.shapes", "+data.sources.media={_target_: "
      "supra.data.media.folder.MediaFolderDataModule, root: media}"], True),  # images by default: captioned ones may be
    (["experiment=a2a_shapes", "~data.sources.shapes", "+data.sources.mine={_target_: my.Source}"], True),  # unknown: ask
])
def test_java_is_needed_by_the_runs_that_score_captions(no_java, tmp_path, overrides, needs_java):
    cfg = compose_config("train", tmp_path / "run", overrides)
    if needs_java:
        with pytest.raises(SupraUserError, match=re.escape(JAVA_MISSING)):
            check_java_for_training(cfg)
    else:
        check_java_for_training(cfg)
