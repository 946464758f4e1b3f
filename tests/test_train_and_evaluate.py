"""The real entry points, end to end on tiny shapes runs: train, resume, DDP on CPU, evaluate."""

from __future__ import annotations

import copy
import csv
import glob
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import wandb
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import TQDMProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from supra.callbacks.overfit_check import overfit_line
from supra.callbacks.validation_within_run import ValidationWithinRun
from supra.loggers.wandb_logger import build_wandb_logger
from supra.runner.callback_checks import PERIODIC_CHECKPOINTS
from supra.runner.evaluation import data_for_release, evaluate, run_settings
from supra.runner.run_checks import check_run_config
from supra.runner.training import (
    say_past_schedule,
    say_shorter_than_schedule,
    stock_displays_off,
    train,
)
from supra.tasks.lr_schedules import schedule_length, warmup_cosine
from supra.utils.errors import SupraUserError
from supra.utils.run_folders import finished_run_file
from tests.conftest import ROOT, TINY_RUN, command_lines, compose_config

CAPTION_KEYS = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}


def test_fast_dev_run_trains_validates_and_tests_without_checkpoints_or_warnings(train_config, caplog):
    cfg = train_config("debug=fast_dev_run")
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        metric, metrics = train(cfg)
    assert {"train/loss", "val/loss", "val/CIDEr", "test/CIDEr", "test/METEOR", "test/attr_acc"} <= set(metrics)
    assert not list(Path(cfg.paths.output_dir).glob("**/*.ckpt"))  # a smoke test: nothing to resume or score
    assert not [r for r in caplog.records if r.name == "supra.runner.training"]  # its last weights are tested


def test_callbacks_none_runs_without_checkpoints_progress_bar_or_summary_and_tests_the_last_weights(tmp_path, capsys):
    # Lightning would add its own ModelCheckpoint (csv/checkpoints/epoch=0-step=N.ckpt) and test from it, and its own
    # progress bar ("Epoch 0/-2") and model summary ("Total FLOPs: 0")
    cfg = compose_config("train", tmp_path / "run", [o for o in TINY_RUN if not o.startswith("callbacks.")]
                         + ["callbacks=none", "trainer.max_steps=2", "trainer.val_check_interval=2",
                            "model.val_metrics=[CIDEr]", "model.test_metrics=[CIDEr]"])
    _, metrics = train(cfg)
    assert "val/CIDEr" in metrics and "test/CIDEr" in metrics
    assert not list((tmp_path / "run").glob("**/*.ckpt"))
    output = "".join(capsys.readouterr())
    assert "Epoch 0" not in output and "Total params" not in output and "FLOPs" not in output


def test_callbacks_none_leaves_a_display_the_run_asks_for():
    # the trainer's own switch, or a bar callback added to the empty group, is the user's choice
    assert stock_displays_off(OmegaConf.create({}), []) == {"enable_progress_bar": False, "enable_model_summary": False}
    assert stock_displays_off(OmegaConf.create({"enable_progress_bar": True}), []) == {"enable_model_summary": False}
    assert stock_displays_off(OmegaConf.create({}), [TQDMProgressBar()]) == {"enable_model_summary": False}


@pytest.mark.parametrize(("bound", "lightnings_said"), [
    # ours says it (max_steps=2 is below log_every_n_steps=25), and Lightning's is not said again
    (["trainer.max_steps=2", "trainer.val_check_interval=2"], False),
    # ours cannot (no step bound), Lightning's can: an epoch's 10 batches < 25
    (["trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.val_check_interval=1.0", "trainer.check_val_every_n_epoch=1"],
     True),
])
def test_a_short_run_gives_its_logging_interval_advice_once(bound, lightnings_said, train_config, caplog, recwarn):
    train(train_config(*bound, "data.num_train=32", "trainer.log_every_n_steps=25", "test=false",
                       "model.val_metrics=[]", "callbacks.model_checkpoint=null"))
    ours = [r for r in caplog.records if "is below trainer.log_every_n_steps=25" in r.getMessage()]
    lightnings = [w for w in recwarn if "is smaller than the logging interval" in str(w.message)]
    assert (len(ours), len(lightnings)) == ((0, 1) if lightnings_said else (1, 0))


def test_gradient_accumulation_steps_the_optimizer_once_per_n_batches(train_config):
    cfg = train_config("trainer.accumulate_grad_batches=3", "trainer.max_steps=2", "trainer.val_check_interval=6",
                       "test=false", "model.val_metrics=[CIDEr]")
    train(cfg)
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2  # optimizer steps
    assert last["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 6  # batches


def test_validations_inside_an_optimizer_step_are_refused_before_training(train_config):
    # a checkpoint cannot keep the gradients gathered so far in a step: a run resumed from one written at a validation
    # inside a step (last.ckpt is written at every validation) would train other weights
    with pytest.raises(SupraUserError, match=re.escape(
            "trainer.val_check_interval=3 is not a multiple of trainer.accumulate_grad_batches=2: its validations and "
            "their checkpoints would fall inside an optimizer step, whose gathered gradients a checkpoint cannot keep (a "
            "run resumed from one would train other weights): use trainer.val_check_interval=2 or "
            "trainer.val_check_interval=4")):
        check_run_config(train_config("trainer.accumulate_grad_batches=2", "trainer.val_check_interval=3"))
    check_run_config(train_config("trainer.accumulate_grad_batches=2", "trainer.val_check_interval=4"))
    # what the epoch's length decides, at the start of training: a share of an epoch, or a count across epochs whose
    # steps start anew each epoch (one of 5 batches, accumulating 2: steps after batches 2, 4 and 5)
    check = ValidationWithinRun()
    refused = []
    for interval, every, per_epoch, bound in ((0.5, 3, 1, {}), (0.5, 2, 1, {}), (4, 4, None, {}),
                                              (4, 4, None, {"max_steps": 3})):  # 3 steps: 5 batches, before batch 8
        trainer = SimpleNamespace(**{"accumulate_grad_batches": 2, "val_check_interval": interval, "val_check_batch":
                                     every, "check_val_every_n_epoch": per_epoch, "num_training_batches": 5,
                                     "fast_dev_run": False, "limit_val_batches": 1.0, "max_steps": -1, "max_epochs": 2,
                                     "is_global_zero": True,
                                     **bound})
        try:
            check.on_train_start(trainer, None)
        except SupraUserError as err:
            refused.append(str(err).split("weights): ")[1].split(" (")[0])
        else:
            refused.append(None)
    assert refused == ["give it as a whole number of batches that is a multiple of 2", None,
                       "an epoch's 5 batches are not a multiple of 2", None]


def test_a_run_that_ends_before_its_first_validation_is_warned_of_before_training(train_config, caplog):
    cfg = train_config("trainer.max_steps=-1", "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
                       "trainer.val_check_interval=500", "test=false", "trainer.num_sanity_val_steps=0")
    with caplog.at_level("WARNING", logger="supra.callbacks.validation_within_run"):
        train(cfg)
    said = [r.getMessage() for r in caplog.records if r.name == "supra.callbacks.validation_within_run"]
    assert said[0] == ("this run ends after 3 training batches (trainer.max_epochs=1, 3 batches each), before its "
                       "first validation at trainer.val_check_interval=500: no validation and no best checkpoint (the "
                       "test scores the last weights). Validate each epoch's end with trainer.val_check_interval=1.0 "
                       "trainer.check_val_every_n_epoch=1, or set a smaller trainer.val_check_interval")
    assert not (Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt").exists()  # as it says
    # the step budget too, and not when a validation comes within the run (or the run validates by epochs)
    warned = []
    check = ValidationWithinRun()
    # accumulating 2 batches a step over epochs of 3, Lightning steps at each epoch's end too: 2 steps are 3 batches
    accumulating = {"max_steps": 2, "accumulate_grad_batches": 2, "val_check_interval": 4}
    for budget, validated in (({"max_steps": 6}, {}), ({"max_steps": 6}, {"val_check_interval": 3}),
                              (accumulating, {"num_training_batches": 3}), (accumulating, {"num_training_batches": 4}),
                              ({"max_epochs": 2}, {"val_check_interval": 1.0, "check_val_every_n_epoch": 1})):
        settings = {"val_check_interval": 500, "check_val_every_n_epoch": None, "max_steps": -1, "max_epochs": -1,
                    "fast_dev_run": False, "is_global_zero": True, "limit_val_batches": 1.0,
                    "accumulate_grad_batches": 1, "num_training_batches": 4, "limit_train_batches": 1.0, **budget,
                    **validated}
        caplog.clear()
        check.on_fit_start(SimpleNamespace(**settings), None)
        warned.append([r.getMessage().split(",")[0] for r in caplog.records])
    assert warned == [["this run ends after 6 training batches (trainer.max_steps=6)"], [],
                      ["this run ends after 3 training batches (trainer.max_steps=2)"], [], []]
    for steps, said in ((1, "1 training batch"), (2, "2 training batches")):  # one in the singular
        caplog.clear()
        check.on_fit_start(SimpleNamespace(**{**settings, "max_steps": steps, "max_epochs": -1,
                                              "val_check_interval": 500, "check_val_every_n_epoch": None}), None)
        assert [r.getMessage().split(",")[0] for r in caplog.records] == [
            f"this run ends after {said} (trainer.max_steps={steps})"]
    # a resumed run: the batches left after its checkpoint's, up to the next validation since the first run began,
    # and the test scores the best checkpoint carried over, if any (else the last weights)
    said = []
    for step, best, max_steps in ((10, "run2/checkpoints/best.ckpt", 30), (10, "", 30), (490, "", 510)):
        check = ValidationWithinRun()
        fitting = SimpleNamespace(state=SimpleNamespace(fn="fit"), accumulate_grad_batches=1)
        check.on_load_checkpoint(fitting, None, {"global_step": step, "loops": {"fit_loop": {
            "epoch_loop.batch_progress": {"total": {"processed": step}}}}})
        caplog.clear()
        check.on_fit_start(SimpleNamespace(**{**settings, "val_check_interval": 500, "check_val_every_n_epoch": None,
                                              "max_steps": max_steps, "max_epochs": -1,
                                              "checkpoint_callback": SimpleNamespace(best_model_path=best)}), None)
        said.append([r.getMessage().split(". Validate")[0] for r in caplog.records])
    assert said == [
        ["this run ends after 20 more training batches (trainer.max_steps=30, resumed at step 10), before its next "
         "validation at batch 500 (trainer.val_check_interval=500): no validation (the test scores the best checkpoint "
         "carried over from the resumed run, run2/checkpoints/best.ckpt, not this run's weights)"],
        ["this run ends after 20 more training batches (trainer.max_steps=30, resumed at step 10), before its next "
         "validation at batch 500 (trainer.val_check_interval=500): no validation and no best checkpoint (the test "
         "scores the last weights)"],
        []]  # 510 steps pass the validation at 500


def test_the_warnings_of_a_run_ending_before_its_validation_count_one_and_two_in_words(caplog):
    """"1 epoch of 1 batch", "1 more training batch", "of at most 1 batch", never "1 batches"."""
    base = {"fast_dev_run": False, "is_global_zero": True, "limit_val_batches": 1.0, "accumulate_grad_batches": 1,
            "limit_train_batches": 1.0, "max_steps": -1, "max_epochs": -1, "checkpoint_callback": None}
    no_best = "no validation and no best checkpoint (the test scores the last weights)"

    def said(hook: str, settings: dict, resumed_at: int | None = None) -> str:
        check = ValidationWithinRun()
        if resumed_at is not None:
            check.on_load_checkpoint(SimpleNamespace(state=SimpleNamespace(fn="fit"), accumulate_grad_batches=1), None,
                                     {"global_step": resumed_at, "loops": {"fit_loop": {
                                         "epoch_loop.batch_progress": {"total": {"processed": resumed_at}}}}})
        caplog.clear()
        with caplog.at_level("WARNING", logger="supra.callbacks.validation_within_run"):
            getattr(check, hook)(SimpleNamespace(**{**base, **settings}), None)
        return caplog.messages[0].split(". ")[0]

    for n, batches, epochs in ((1, "1 batch", "1 epoch"), (2, "2 batches", "2 epochs")):
        assert said("on_train_start", {"val_check_interval": 1.0, "val_check_batch": n, "check_val_every_n_epoch": 3,
                                       "num_training_batches": n, "max_epochs": n}) == (
            f"this run ends after {epochs} of {batches} (trainer.max_epochs={n}), before its first validation at the "
            f"end of epoch 3 (trainer.check_val_every_n_epoch=3): {no_best}")
        assert caplog.messages[0].split(". ")[1] == ("Raise trainer.max_epochs to 3 or more, or lower "
                                                     f"trainer.check_val_every_n_epoch to {n}")
        said("on_train_start", {"val_check_interval": 1.0, "val_check_batch": 3, "check_val_every_n_epoch": 1,
                                "num_training_batches": 3, "max_steps": n})
        assert caplog.messages == [
            f"this run ends after {n} of an epoch's 3 batches (trainer.max_steps={n}), before its first validation at "
            f"the epoch's end: {no_best}. Raise trainer.max_steps to 3 or more, or validate by steps with an integer "
            f"trainer.val_check_interval (of at most {batches}) and trainer.check_val_every_n_epoch=null"]
        assert said("on_train_start", {"val_check_interval": 1.0, "val_check_batch": n, "check_val_every_n_epoch": 2,
                                       "num_training_batches": n, "max_steps": n}) == (
            f"this run ends after {n} training {batches.split()[1]} ({n} an epoch; trainer.max_steps={n}), before its "
            f"first validation at the end of epoch 2 (trainer.check_val_every_n_epoch=2): {no_best}")
        assert said("on_fit_start", {"val_check_interval": 500, "check_val_every_n_epoch": None,
                                     "num_training_batches": n, "max_epochs": 1}) == (
            f"this run ends after {n} training {batches.split()[1]} (trainer.max_epochs=1, {batches} each), before its "
            f"first validation at trainer.val_check_interval=500: {no_best}")
        assert said("on_fit_start", {"val_check_interval": 500, "check_val_every_n_epoch": None,
                                     "num_training_batches": 4, "max_steps": 10 + n}, resumed_at=10) == (
            f"this run ends after {n} more training {batches.split()[1]} (trainer.max_steps={10 + n}, resumed at step "
            f"10), before its next validation at batch 500 (trainer.val_check_interval=500): {no_best}")


def test_a_step_bound_that_ends_a_run_before_its_epoch_end_validation_is_warned_of_before_training(train_config,
                                                                                                   caplog, recwarn):
    """The release recipes validate at each epoch's end: a small trainer.max_steps never validated, and the only word
    was Lightning's "could not find the monitored key ... Did you call log('val/CIDEr')"."""
    cfg = train_config("trainer.max_steps=2", "+trainer.limit_train_batches=3", "trainer.val_check_interval=1.0",
                       "trainer.check_val_every_n_epoch=1", "test=false", "trainer.num_sanity_val_steps=0")
    with caplog.at_level("WARNING", logger="supra.callbacks.validation_within_run"):
        train(cfg)
    said = [r.getMessage() for r in caplog.records if r.name == "supra.callbacks.validation_within_run"]
    assert said == ["this run ends after 2 of an epoch's 3 batches (trainer.max_steps=2), before its first validation "
                    "at the epoch's end: no validation and no best checkpoint (the test scores the last weights). Raise "
                    "trainer.max_steps to 3 or more, or validate by steps with an integer trainer.val_check_interval (of "
                    "at most 2 batches) and trainer.check_val_every_n_epoch=null"]
    # said once, in our words: not Lightning's as well, whose hint (call log('val/CIDEr')) points at the user's code
    assert [str(w.message) for w in recwarn if "could not find the monitored key" in str(w.message)] == []
    # the second epoch's second batch (every second epoch, at 0.7 of it)
    settings = {"val_check_interval": 0.7, "val_check_batch": 2, "check_val_every_n_epoch": 2, "max_steps": 4,
                "max_epochs": -1, "fast_dev_run": False, "is_global_zero": True, "limit_val_batches": 1.0,
                "accumulate_grad_batches": 1, "num_training_batches": 3, "limit_train_batches": 1.0}
    warned = []
    for bound in ({}, {"max_steps": 5}, {"max_epochs": 1, "max_steps": 4}):
        caplog.clear()
        ValidationWithinRun().on_train_start(SimpleNamespace(**{**settings, **bound}), None)
        warned.append([r.getMessage().split(": no validation")[0] for r in caplog.records])
    assert warned == [["this run ends after 4 training batches (3 an epoch; trainer.max_steps=4), before its first "
                       "validation at batch 5 (trainer.val_check_interval=0.7, trainer.check_val_every_n_epoch=2)"],
                      [],  # 5 steps reach it; trainer.max_epochs=1 ends the run before trainer.max_steps does:
                      ["this run ends after 1 epoch of 3 batches (trainer.max_epochs=1), before its first validation "
                       "at batch 5 (trainer.val_check_interval=0.7, trainer.check_val_every_n_epoch=2)"]]


def test_a_run_of_fewer_epochs_than_check_val_every_n_epoch_is_warned_of_before_training(train_config, caplog):
    """trainer.max_epochs=1 trainer.check_val_every_n_epoch=2 never validated: no val/CIDEr for the checkpoint's
    monitor, no best checkpoint, and no word from Supra."""
    cfg = train_config("trainer.max_steps=-1", "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
                       "trainer.val_check_interval=1.0", "trainer.check_val_every_n_epoch=2", "test=false",
                       "trainer.num_sanity_val_steps=0")
    with caplog.at_level("WARNING", logger="supra.callbacks.validation_within_run"):
        train(cfg)
    said = [r.getMessage() for r in caplog.records if r.name == "supra.callbacks.validation_within_run"]
    assert said == ["this run ends after 1 epoch of 3 batches (trainer.max_epochs=1), before its first validation at "
                    "the end of epoch 2 (trainer.check_val_every_n_epoch=2): no validation and no best checkpoint (the test scores the last weights). Raise trainer.max_epochs to 2 or more, or lower "
                    "trainer.check_val_every_n_epoch to 1"]
    assert not (Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt").exists()  # as it says


def test_a_run_of_no_training_batch_is_refused_before_training():
    """+trainer.limit_train_batches=0 trained nothing, exited 0 and tested the initial weights, after a warning that
    the run "ends after 2 training batches" (trainer.max_steps=2)."""
    import lightning as L

    trainer = L.Trainer(limit_train_batches=0, max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(SupraUserError, match=r"^trainer.limit_train_batches=0 trains no batch: the run would save and "
                                             r"test its initial weights: leave it out to train, or add train=false to "
                                             r"only test \(with ckpt_path=... to test a checkpoint\)$"):
        ValidationWithinRun().on_fit_start(trainer, None)


@pytest.mark.parametrize("overrides", [["trainer.max_steps=0"], ["trainer.max_steps=-1", "trainer.max_epochs=0"]])
def test_a_run_of_no_step_or_no_epoch_is_refused_before_any_work_as_one_of_no_training_batch(train_config, overrides):
    """trainer.max_steps=0 and trainer.max_epochs=0 trained nothing, warned of a squeezed warm-up, exited 0 and
    tested the initial weights; to test alone is train=false, which takes them."""
    from supra.runner.run_checks import check_run_config

    setting = overrides[-1]
    with pytest.raises(SupraUserError) as refused:
        check_run_config(train_config(*overrides))
    assert str(refused.value) == (f"{setting} trains no batch: the run would save and test its initial weights: leave "
                                  "it out to train, or add train=false to only test (with ckpt_path=... to test a "
                                  "checkpoint)")
    check_run_config(train_config(*overrides, "train=false", run="test_alone"))


def test_debug_profiler_keeps_its_report_in_the_run_folder(train_config, tmp_path):
    train(train_config("debug=profiler", "trainer.max_steps=2", "trainer.val_check_interval=2", "test=false"))
    report = (tmp_path / "run" / "fit-profile.txt").read_text()
    assert report.startswith("FIT Profiler Report") and "run_training_batch" in report


def test_debug_overfit_ends_saying_whether_its_loss_fell_and_warns_where_it_did_not(train_config, caplog):
    cfg = train_config("debug=overfit", "trainer.max_steps=3", "trainer.val_check_interval=1.0", "test=false")
    with caplog.at_level("INFO", logger="supra.callbacks.overfit_check"):
        train(cfg)
    said = [r for r in caplog.records if r.name == "supra.callbacks.overfit_check"]
    # three steps are far too few to fit even one batch
    assert len(said) == 1 and said[0].levelname == "WARNING"
    assert re.fullmatch(r"overfit: train/loss \S+ -> \S+ over 3 steps on 1 batch: not below 0.25 of where it started, "
                        r"so the model did not fit what it was shown again and again: something is wrong in the model "
                        r"or the data \(or it needs more steps: trainer.max_steps\)", said[0].getMessage())
    assert overfit_line(6.1, 0.19, 300, 1) == "overfit: train/loss 6.1 -> 0.19 over 300 steps on 1 batch"
    assert compose_config("train", cfg.paths.output_dir, ["debug=overfit"]).trainer.log_every_n_steps == 1  # < 1 batch


def test_training_leaves_checkpoints_tokenizer_metrics_predictions_and_grid(trained_run):
    assert (trained_run / "checkpoints" / "best.ckpt").is_file()
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    assert (trained_run / "tokenizer.json").is_file()
    assert (trained_run / "samples.png").is_file()
    assert (trained_run / "attention_maps.png").is_file()  # where each caption word looked, latest
    assert sorted(p.name for p in (trained_run / "attention_maps").iterdir()) == [
        "test_step_000030.png", "val_step_000015.png", "val_step_000030.png"]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert CAPTION_KEYS | {"split", "n_images", "n_references", "decode", "decode_settings", "attr_acc", "relation_acc", "loss",
                           "ckpt", "step"} == set(metrics)
    assert metrics["split"] == "test" and metrics["n_images"] == 15 and metrics["decode"] == "beam"
    # what was scored, as evaluate.py's metrics.json says it: the best checkpoint and its weights' step
    best = trained_run / "checkpoints" / "best.ckpt"
    assert metrics["ckpt"] == str(best) and metrics["step"] == torch.load(best, weights_only=True)["global_step"]
    # the limit used: model.decode.max_new_tokens=null decodes all MAX_SEQ - 1 (48 - 1) positions after BOS
    assert metrics["decode_settings"] == {"strategy": "beam", "beam_width": 3, "length_penalty": 0.0, "max_new_tokens": 47}
    predictions = json.loads((trained_run / "predictions.json").read_text())
    assert sorted(p["image_id"] for p in predictions) == [f"test_{i:05d}" for i in range(15)]  # generated: no file
    assert all(p["file"] is None for p in predictions)
    assert all(isinstance(p["caption"], str) for p in predictions)


def test_the_readmes_outputs_block_names_everything_a_default_run_writes(trained_run):
    """README's "Outputs" block is the run folder's map. (Hydra's .hydra/ and train.log come from the
    command line, which this in-process run skips.)"""
    block = (ROOT / "README.md").read_text().split("\n## Outputs\n", 1)[1].split("```\n")[1]
    for path in sorted(trained_run.rglob("*")):
        name = path.relative_to(trained_run).as_posix() + ("/" if path.is_dir() else "")
        if re.fullmatch(r"\w+/(val|test)_step_\d{6}\.png", name):  # one per validation and the test
            name = f"{path.parent.name}/{name.split('/')[1].split('_step_')[0]}_step_"
        assert name in block, f"README's Outputs block does not name {name}"


def test_every_metric_a_run_logs_is_one_its_task_names_for_callbacks_to_monitor(trained_run):
    from supra.models.vlm_nano import VLMNano
    from supra.tasks.captioning import CaptioningTask

    header = (trained_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    logged = {name for name in header if name.startswith(("train/", "val/"))}
    assert "val/CIDEr" in logged and logged <= set(CaptioningTask(VLMNano(), optimizer=None).metric_names())


@pytest.fixture(scope="module")
def default_run_config(tmp_path_factory) -> DictConfig:
    return compose_config("train", tmp_path_factory.mktemp("composed"), [])


def checked_callbacks(cfg: DictConfig, settings: list[str]) -> None:
    """check_callbacks_fit, as train.py runs it, on `cfg` with the command line's `settings` merged in."""
    from supra.runner.callback_checks import check_callbacks_fit
    from supra.runner.components import build_task

    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.merge_with(OmegaConf.from_dotlist([setting.removeprefix("+") for setting in settings]))
    check_callbacks_fit(build_task(cfg.model, None), cfg.callbacks, "default")


EARLY_STOPPING = ["+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping"]


@pytest.mark.parametrize(("settings", "error"), [
    # Lightning: a MisconfigurationException in instantiate's traceback; the summary printed all the same
    (["+trainer.enable_progress_bar=false"], "trainer.enable_progress_bar=false, but callbacks.progress_bar is the run's "
                                             "progress bar (StepsProgressBar): add callbacks.progress_bar=null too"),
    (["+trainer.enable_model_summary=false"], "trainer.enable_model_summary=false, but callbacks.model_summary is the "
                                              "run's model summary (ModelSummaryTable): add callbacks.model_summary=null too"),
    # the validations that do not score see the last score again: no improvement, so an early stop
    ([*EARLY_STOPPING, "+callbacks.stop.monitor=val/CIDEr", "model.score_every_n_val=2"],
     "callbacks.stop watches val/CIDEr, which model.score_every_n_val=2 computes at one validation in 2: EarlyStopping "
     "would count the validations in between as without improvement; watch val/loss (every validation), or set "
     "model.score_every_n_val=1"),
    (["+callbacks.model_checkpoint.save_top_k=3", "callbacks.model_checkpoint.filename='{step}'", "model.score_every_n_val=2"],
     "callbacks.model_checkpoint watches val/CIDEr, which model.score_every_n_val=2 computes at one validation in 2: "
     "save_top_k=3 would rank the checkpoints of those in between by the last value computed"),
    (["+callbacks.model_checkpoint.save_top_k=-1"], "callbacks.model_checkpoint.save_top_k=-1 keeps every checkpoint under "
                                                    "one name (best.ckpt)"),
    # Lightning: a MisconfigurationException after the data's set-up
    (["+callbacks.model_checkpoint.save_top_k=-2"], "callbacks.model_checkpoint.save_top_k=-2 must be -1 (keep every "
                                                    "checkpoint), 0 (none) or the number of best checkpoints to keep"),
    # saved at those steps' ends only, with the validation before's score: a later, better one never became best.ckpt
    (["+callbacks.model_checkpoint.every_n_train_steps=2"],
     "callbacks.model_checkpoint.every_n_train_steps=2 with callbacks.model_checkpoint.monitor=val/CIDEr: Lightning "
     "would save the best at training steps only, each with the score of the validation before, never at a "
     "validation's end: leave every_n_train_steps out, and for checkpoints every N steps add one of your own without a "
     "monitor: +callbacks.periodic._target_=lightning.pytorch.callbacks.ModelCheckpoint"),
    (["+callbacks.model_checkpoint.train_time_interval={_target_: datetime.timedelta, minutes: 30}"],
     "callbacks.model_checkpoint.train_time_interval with callbacks.model_checkpoint.monitor=val/CIDEr: Lightning "
     "would save the best at intervals of time only"),
    ([*EARLY_STOPPING, "+callbacks.stop.monitor=train/los"], "callbacks.stop.monitor=train/los is no metric this run "
                                                             "logs: did you mean train/loss?"),
    # Lightning: a MisconfigurationException at the first validation, and no checkpoint of the steps before it
    (["model.val_metrics=[Bleu]"], "callbacks.model_checkpoint.monitor=val/CIDEr is never scored: "
                                   "model.val_metrics=['Bleu'] leaves out CIDEr: add it (model.val_metrics=[Bleu,CIDEr]), "
                                   "or watch val/loss"),
    ([*EARLY_STOPPING, "+callbacks.stop.monitor=val/Bleu_4", "model.val_metrics=[CIDEr]", "callbacks.model_checkpoint.monitor=val/loss"],
     "callbacks.stop.monitor=val/Bleu_4 is never scored: model.val_metrics=['CIDEr'] leaves out Bleu"),
    # drawn at the first validation's end, before its checkpoint: a traceback there lost the steps trained
    (["callbacks.caption_grid.columns=0"], "callbacks.caption_grid.columns=0 must be a whole number >= 1, or "
                                           "callbacks.caption_grid=null to draw none"),
    (["callbacks.caption_grid.num_images=-3"], "callbacks.caption_grid.num_images=-3 must be a whole number >= 0 "
                                               "(0: no grid)"),
    (["callbacks.attention_maps.num_images=1.5"], "callbacks.attention_maps.num_images=1.5 must be a whole number"),
])
def test_callback_settings_that_would_keep_a_wrong_best_or_stop_wrongly_are_refused(default_run_config, settings, error):
    with pytest.raises(SupraUserError) as refused:
        checked_callbacks(default_run_config, settings)
    assert str(refused.value).startswith(error)


CAPTIONER_LOGS = ("train/loss, val/loss, val/Bleu_1, val/Bleu_2, val/Bleu_3, val/Bleu_4, val/ROUGE_L, val/CIDEr, "
                  "val/attr_acc, val/relation_acc")


@pytest.mark.parametrize("settings", [["callbacks.model_checkpoint.monitor=accuracy"],
                                      [*EARLY_STOPPING, "+callbacks.stop.monitor=accuracy"]])
def test_a_monitor_no_configured_callback_could_log_is_refused_before_training(default_run_config, settings):
    """Supra's callbacks and Lightning's own log no metric to watch: a name the task does not log, and no typo of one,
    trained to the first validation and ended in Lightning's traceback, with no checkpoint of the steps done."""
    option = settings[-1].lstrip("+")
    with pytest.raises(SupraUserError) as refused:
        checked_callbacks(default_run_config, settings)
    assert str(refused.value) == f"{option} is no metric this run logs (CaptioningTask logs {CAPTIONER_LOGS})"


@pytest.mark.parametrize("stop", [False, True])
def test_a_monitor_a_users_callback_may_log_is_taken_and_if_unlogged_is_one_line_at_the_first_validation(
        default_run_config, stop):
    """With a callback of the user's own, which may log it, the name passes the check; if nothing logged it,
    Lightning's refusal at the first validation (ModelCheckpoint's or EarlyStopping's, a traceback) is one line."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from supra.runner.components import build_task
    from supra.runner.training import _fit

    key = "stop" if stop else "model_checkpoint"
    settings = ["+callbacks.mine._target_=my_project.callbacks.LogsAccuracy", f"+callbacks.{key}.monitor=accuracy"]
    checked_callbacks(default_run_config, [*EARLY_STOPPING, *settings] if stop else settings)
    logged = {"val/loss": torch.tensor(1.0)}

    def fit(*_, **__):  # Lightning's own refusal, as the first validation raises it
        if stop:
            EarlyStopping(monitor="accuracy")._validate_condition_metric(logged)
        ran = SimpleNamespace(fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(val_loop=SimpleNamespace(_has_run=True))))
        ModelCheckpoint(monitor="accuracy")._save_topk_checkpoint(ran, logged)

    cfg = copy.deepcopy(default_run_config)
    with open_dict(cfg):
        cfg.merge_with(OmegaConf.from_dotlist([s.lstrip("+") for s in [*EARLY_STOPPING, *settings]]))
    trainer = SimpleNamespace(num_devices=1, num_nodes=1, fit=fit, callback_metrics=logged)
    with pytest.raises(SupraUserError) as refused:
        _fit(cfg, trainer, build_task(cfg.model, None), None)
    assert str(refused.value) == (f"callbacks.{key}.monitor=accuracy was not logged by the first validation: it is no "
                                  f"metric of CaptioningTask's ({CAPTIONER_LOGS}), and no callback logged it")


@pytest.mark.parametrize(("max_steps", "bound"), [(12, "of trainer.max_steps=12"),
                                                 (-1, "in epoch 2 of trainer.max_epochs=5")])
def test_a_run_early_stopping_ends_says_where_it_stopped_on_which_monitor_and_its_best(caplog, max_steps, bound):
    """EarlyStopping stopped a run at step 4 of 12 without a word (Lightning's is verbose=False), where a run that
    reaches its end says so."""
    from lightning.pytorch.callbacks import EarlyStopping

    from supra.runner.training import say_early_stop

    stop = EarlyStopping(monitor="val/loss", patience=1, min_delta=100)
    for value in (5.4321, 5.0):  # the first sets the best; the second improves by less than min_delta
        stop._evaluate_stopping_criteria(torch.tensor(value))
    trainer = SimpleNamespace(early_stopping_callbacks=[stop], is_global_zero=True, max_steps=max_steps, max_epochs=5,
                              current_epoch=1, global_step=4, should_stop=True)
    with caplog.at_level("INFO", logger="supra.runner.training"):
        say_early_stop(trainer)
        say_early_stop(SimpleNamespace(**{**vars(trainer), "early_stopping_callbacks": [EarlyStopping("val/loss")]}))
    assert [r.getMessage() for r in caplog.records] == [
        f"EarlyStopping stopped the run at step 4 {bound}: val/loss (best 5.4321) improved by less than min_delta=100 "
        "in 1 validation (patience=1)"]


def test_a_threshold_early_stop_names_the_value_that_stopped_the_run_not_a_best_it_never_set(caplog):
    """A stop on stopping_threshold at the first validation said '(best inf)': Lightning sets best_score only on
    an improvement, which a threshold stop is not. The line gives the monitor's last value, the one that stopped it."""
    from lightning.pytorch.callbacks import EarlyStopping

    from supra.runner.training import say_early_stop

    lines = []
    for kwargs, value in (({"stopping_threshold": 5.0}, 4.25), ({"divergence_threshold": 9.0}, 12.5),
                          ({}, float("nan"))):
        stop = EarlyStopping(monitor="val/loss", **kwargs)
        stop._evaluate_stopping_criteria(torch.tensor(value))
        trainer = SimpleNamespace(early_stopping_callbacks=[stop], is_global_zero=True, max_steps=12, max_epochs=-1,
                                  current_epoch=0, global_step=3, should_stop=True,
                                  callback_metrics={"val/loss": torch.tensor(value)})
        with caplog.at_level("INFO", logger="supra.runner.training"):
            say_early_stop(trainer)
        lines += [r.getMessage() for r in caplog.records]
        caplog.clear()
    assert lines == [
        "EarlyStopping stopped the run at step 3 of trainer.max_steps=12: val/loss=4.25 reached stopping_threshold=5",
        "EarlyStopping stopped the run at step 3 of trainer.max_steps=12: val/loss=12.5 passed divergence_threshold=9",
        "EarlyStopping stopped the run at step 3 of trainer.max_steps=12: val/loss=nan was not finite"]


def test_a_resumed_run_that_goes_on_to_its_end_does_not_repeat_the_early_stop_of_the_run_it_resumed(caplog):
    """An EarlyStopping's reason comes back with its state from last.ckpt: a run resumed from one that stopped
    early, and trained on to trainer.max_steps, said again that EarlyStopping had stopped it."""
    from lightning.pytorch.callbacks import EarlyStopping

    from supra.runner.training import say_early_stop

    stopped = EarlyStopping(monitor="val/loss", stopping_threshold=100)
    stopped._evaluate_stopping_criteria(torch.tensor(5.0))  # below the threshold: the earlier run stopped there
    resumed = EarlyStopping(monitor="val/loss", stopping_threshold=100)
    resumed.load_state_dict(stopped.state_dict())
    trainer = SimpleNamespace(early_stopping_callbacks=[resumed], is_global_zero=True, max_steps=6, max_epochs=-1,
                              current_epoch=0, global_step=6, should_stop=False)  # this fit reached its max_steps
    with caplog.at_level("INFO", logger="supra.runner.training"):
        say_early_stop(trainer)
    assert caplog.records == []


def test_scores_of_the_shapes_objects_are_no_monitor_or_optimized_metric_with_photos(default_run_config, tmp_path):
    """attr_acc and relation_acc need the objects in each image, which only the shapes data knows: with photos
    Lightning would refuse the monitor at the first validation, after its steps (an optimized one, after the fit)."""
    from supra.data.captioning.photos import PhotoCaptionsDataModule
    from supra.data.captioning.shapes import ShapesDataModule
    from supra.runner.callback_checks import check_callbacks_fit, check_optimized_metric
    from supra.runner.components import build_task

    task = build_task(default_run_config.model, None)
    photos = PhotoCaptionsDataModule(source="folder", root=str(tmp_path))
    callbacks = copy.deepcopy(default_run_config.callbacks)
    callbacks.model_checkpoint.monitor = "val/attr_acc"
    with pytest.raises(SupraUserError, match=r"^callbacks.model_checkpoint.monitor=val/attr_acc is not logged with "
                                             r"this data \(PhotoCaptionsDataModule\): it is scored where the data knows "
                                             r"each image's objects \(data=shapes\); CaptioningTask logs train/loss, "
                                             r"val/loss, .*val/CIDEr here$"):
        check_callbacks_fit(task, callbacks, "default", photos)
    with pytest.raises(SupraUserError, match=r"^optimized_metric=val/relation_acc is not logged with this data"):
        check_optimized_metric(task, "val/relation_acc", photos)
    check_callbacks_fit(task, callbacks, "default", ShapesDataModule(num_train=8, num_val=2, num_test=2))


def test_a_data_option_the_model_dictates_is_refused_unless_it_is_the_models(default_run_config):
    """+data.image_size=224 ran at the model's 112 px without a word (the model's image size, caption length
    and vocabulary are passed to the data): another value is now one line; the model's own is accepted."""
    from supra.runner.components import build_datamodule, build_task

    task = build_task(default_run_config.model, None)
    data_cfg = OmegaConf.to_container(default_run_config.data, resolve=True)
    for key, value, where in (("image_size", 224, "112 (model.net.IMG_SIZE, or a pretrained tower's own)"),
                              ("max_caption_tokens", 64, "48 (model.net.MAX_SEQ)"),
                              ("vocab_size", 4096, "2048 (model.net.VOCAB_SIZE)")):
        with pytest.raises(SupraUserError, match=rf"^data.{key}={value} is not used: the data follows the model, whose "
                                                 rf"{key} is {re.escape(where)}; leave data.{key} out$"):
            build_datamodule({**data_cfg, key: value}, task)
    same = {"image_size": 112, "max_caption_tokens": 48, "vocab_size": 2048}
    assert build_datamodule({**data_cfg, **same}, task).image_size == 112
    assert build_datamodule({**data_cfg, "image_size": None}, task).image_size == 112  # null: the model's
    # evaluate.py: the checkpoint's stored data config is scored as its run trained; the command's options are checked
    with pytest.raises(SupraUserError, match=r"^data.image_size=224 is not used"):
        build_datamodule(data_cfg, task, loaded_from="ckpt=x", given={"split": "test", "image_size": 224})
    build_datamodule({**data_cfg, "image_size": 224}, task, loaded_from="ckpt=x", given={"split": "test"})


@pytest.mark.parametrize("data", ["shapes", "flickr8k", "coco", "flickr30k", "caption_folder", "hf_disk", "shards"])
def test_a_data_option_the_model_dictates_given_bare_reaches_the_one_line(default_run_config, tmp_path, data):
    """`data=coco data.image_size=64` was Hydra's multi-line "Key 'image_size' is not in struct" (only
    +data.image_size reached the one line): each captioning data config holds the keys, null (the model's)."""
    from supra.runner.components import build_datamodule, build_task

    task = build_task(default_run_config.model, None)
    for command in ("train", "eval"):
        cfg = compose_config(command, tmp_path, [*(["ckpt=x"] if command == "eval" else []), f"data={data}",
                                                 "data.image_size=64", "data.vocab_size=4096"])
        with pytest.raises(SupraUserError, match=r"^data.image_size=64 is not used: the data follows the model, whose "
                                                 r"image_size is 112 .*; leave data.image_size out$"):
            build_datamodule(cfg.data, task, loaded_from="ckpt=x", given=cfg.data)
    # left out, the data takes the model's (the keys' null is not passed on)
    cfg = compose_config("train", tmp_path, [f"data={data}"])
    built = build_datamodule(cfg.data, task)
    assert (built.image_size, built.max_caption_tokens, built.vocab_size) == (112, 48, 2048)


@pytest.mark.parametrize(("data", "option"), [
    ("coco", "data.gpt2_tokenizer=/nonexistent"), ("shapes", "data.gpt2_tokenizer=/nonexistent"),
    ("shards", "data.tokenizer_sample=10"), ("a2a_mixture", "data.text_tokenizer=/nonexistent"),
    ("a2a_mixture", "data.text_vocab_size=512"),
])
def test_evaluate_refuses_the_tokenizer_options_of_a_new_run_it_never_reads(tmp_path, data, option):
    """evaluate.py data=coco data.gpt2_tokenizer=/nonexistent scored with the model's own tokenizer without a
    word about the option: one line now. Left at their defaults, the data configs pass."""
    from hydra.utils import get_class

    from supra.runner.evaluation import refuse_tokenizer_options

    key, value = option.removeprefix("data.").split("=")
    cfg = compose_config("eval", tmp_path, ["ckpt=x", f"data={data}", option])
    data_class = get_class(cfg.data._target_)
    with pytest.raises(SupraUserError, match=rf"^data.{key}={value} is not used: evaluate.py scores ckpt=x with the "
                                             rf"model's own tokenizer \(stored with it\); leave data.{key} out$"):
        refuse_tokenizer_options(cfg.data, data_class, "x")
    # a checkpoint's data.x: the command's own options alone
    with pytest.raises(SupraUserError, match=rf"^data.{key}={value} is not used"):
        refuse_tokenizer_options({"split": "test", key: value}, data_class, "x")
    refuse_tokenizer_options(compose_config("eval", tmp_path, ["ckpt=x", f"data={data}"]).data, data_class, "x",
                             str(tmp_path / "tokenizer.json"))


def test_evaluate_refuses_a_tokenizer_path_it_would_never_read(tmp_path):
    """evaluate.py data.tokenizer_path=OTHER.json scored with the checkpoint's tokenizer and said nothing; the
    path evaluate.py writes the model's own to (a data config's default) passes."""
    from hydra.utils import get_class

    from supra.runner.evaluation import refuse_tokenizer_options

    written_to = str(tmp_path / "tokenizer.json")
    with pytest.raises(SupraUserError) as err:
        refuse_tokenizer_options({"split": "test", "tokenizer_path": "/elsewhere/other_tok.json"}, object, "x",
                                 written_to)
    assert str(err.value) == ("data.tokenizer_path=/elsewhere/other_tok.json is not used: evaluate.py scores ckpt=x "
                              "with the model's own tokenizer (stored with it) and writes it beside the scores; leave "
                              "data.tokenizer_path out")
    cfg = compose_config("eval", tmp_path, ["ckpt=x", "data=coco"])  # its tokenizer_path: ${paths.output_dir}/...
    refuse_tokenizer_options(cfg.data, get_class(cfg.data._target_), "x", written_to)


def test_evaluate_with_another_data_refuses_its_gpt2_tokenizer_before_scoring(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "data=shapes", "data.gpt2_tokenizer=/nonexistent"])
    with pytest.raises(SupraUserError, match=r"^data.gpt2_tokenizer=/nonexistent is not used: evaluate.py scores "):
        evaluate(cfg)
    assert not (tmp_path / "eval" / "metrics.json").exists()


@pytest.mark.parametrize("settings", [
    ["+callbacks.model_checkpoint.save_top_k=3", "callbacks.model_checkpoint.filename='best-{step}'"],  # a name each
    # no best kept (nothing overwritten); no bar and no summary at all
    ["+callbacks.model_checkpoint.save_top_k=0", "+trainer.enable_progress_bar=false", "callbacks.progress_bar=null",
     "+trainer.enable_model_summary=false", "callbacks.model_summary=null"],
    # a monitor like no metric of the model, with a callback of the user's own that may log it; val/CIDEr computed at
    # every validation
    ["+callbacks.mine._target_=my_project.callbacks.LogsMyScore", "callbacks.model_checkpoint.monitor=val/my_score",
     *EARLY_STOPPING, "+callbacks.stop.monitor=val/CIDEr"],
    [*EARLY_STOPPING, "+callbacks.stop.monitor=val/loss", "model.score_every_n_val=2"],  # computed every validation
    ["callbacks.caption_grid.num_images=0", "callbacks.caption_grid.columns=1"],  # no grid; a grid of one column
    # checkpoints every N steps beside the best, as the refusal of every_n_train_steps on the best's says
    [setting.strip("'").replace("=N", "=2") for setting in PERIODIC_CHECKPOINTS.split()],
])
def test_callback_settings_that_keep_the_best_and_stop_rightly_pass_the_checks(default_run_config, settings):
    checked_callbacks(default_run_config, settings)


def test_the_test_pictures_after_a_fit_are_named_by_the_step_of_the_best_checkpoint_tested(train_config):
    # val/loss at its highest: the first validation's checkpoint is the "best", and is tested
    cfg = train_config("trainer.max_steps=4", "trainer.val_check_interval=2", "callbacks.model_checkpoint.monitor=val/loss",
                       "callbacks.model_checkpoint.mode=max", "data.num_test=4", "data.eval_batch_size=4")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    assert torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["global_step"] == 2
    for folder in ("samples", "attention_maps"):
        assert sorted(p.name for p in (out / folder).iterdir()) == [
            "test_step_000002.png", "val_step_000002.png", "val_step_000004.png"], folder


def test_checkpoint_holds_config_and_tokenizer_and_loads_weights_only(trained_run):
    ckpt = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["supra"]["kind"] == "supra.captioning"
    assert ckpt["supra"]["tokenizer"] == (trained_run / "tokenizer.json").read_text()
    assert ckpt["supra"]["run_config"]["model"]["net"]["D_MODEL"] == 128


def test_evaluate_reproduces_the_run_test_metrics(trained_run, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="supra.runner.scored_data")
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}"])
    evaluate(cfg)
    # generated pictures name no files to compare with the run's: said once, both counts null
    assert [r.getMessage() for r in caplog.records if r.name == "supra.runner.scored_data"] == [
        f"cannot check whether ckpt={cfg.ckpt} trained or validated on the test images scored: the data scored names "
        "no image files to compare with its run's (generated pictures, a dataset's rows)"]
    run_metrics = json.loads((trained_run / "metrics.json").read_text())
    eval_metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in CAPTION_KEYS | {"attr_acc"}:
        assert round(eval_metrics[key], 3) == round(run_metrics[key], 3), key
    assert eval_metrics["loss"] == run_metrics["loss"]  # to all digits: the same sum over the same tokens
    assert (tmp_path / "eval" / "predictions.json").read_text() == (trained_run / "predictions.json").read_text()
    assert (tmp_path / "eval" / "samples.png").is_file()
    # named by the step of the checkpoint scored, not by evaluate's own trainer, which trained none
    step = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)["global_step"]
    assert [p.name for p in (tmp_path / "eval" / "samples").iterdir()] == [f"test_step_{step:06d}.png"]
    # and metrics.json says what it scored, copied out of its run folder too
    assert eval_metrics["ckpt"] == str(trained_run / "checkpoints" / "best.ckpt") and eval_metrics["step"] == step


def test_evaluate_scores_a_captioner_with_its_runs_test_metrics(trained_run, tmp_path):
    from supra.artifacts.checkpoints import artifact_kind
    from supra.runner.evaluation import LOADERS

    # train.py model.test_metrics=[Bleu,CIDEr]: evaluate.py scores those again, not METEOR (Java) and ROUGE_L too
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["test_metrics"] = ["Bleu", "CIDEr"]
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(checkpoint, ckpt)
    kind = artifact_kind(ckpt)
    task, *_ = LOADERS[kind](compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}"]), kind)
    assert list(task.hparams.test_metrics) == ["Bleu", "CIDEr"]
    task, *_ = LOADERS[kind](  # the recipe's run: all four, as before
        compose_config("eval", tmp_path / "recipe", [f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}"]), kind)
    assert list(task.hparams.test_metrics) == ["Bleu", "METEOR", "ROUGE_L", "CIDEr"]


def test_evaluate_scores_the_metrics_given_in_place_of_the_runs(trained_run, tmp_path):
    """METEOR's failure line advised leaving it out, which evaluate.py had no option for: metrics= replaces the
    run's model.test_metrics (METEOR's ~1 GB Java process not started), checked as model.test_metrics is."""
    from supra.artifacts.checkpoints import artifact_kind
    from supra.runner.evaluation import LOADERS

    best = trained_run / "checkpoints" / "best.ckpt"
    kind = artifact_kind(best)
    task, *_ = LOADERS[kind](compose_config("eval", tmp_path / "eval", [f"ckpt={best}", "metrics=[Bleu,ROUGE_L,CIDEr]"]),
                             kind)
    assert list(task.hparams.test_metrics) == ["Bleu", "ROUGE_L", "CIDEr"]
    for given, refusal in (("metrics=[Bleu,CIDer]", "metrics: unknown caption metric ['CIDer']: choose from"),
                           ("metrics=CIDEr", "metrics='CIDEr' must be a list of caption metrics, e.g. [CIDEr]"),
                           ("metrics=[]", "metrics=[] scores no captions: name some, e.g. metrics=[Bleu,ROUGE_L,CIDEr]")):
        with pytest.raises(SupraUserError, match=re.escape(refusal)):
            LOADERS[kind](compose_config("eval", tmp_path / "refused", [f"ckpt={best}", given]), kind)


@pytest.mark.parametrize(("split", "images"), [("val", []), ("train", ["+data.num_train=6"])])
def test_evaluate_scores_another_split_with_another_decoding(trained_run, tmp_path, split, images):
    cfg = compose_config("eval", tmp_path / "eval", [
        f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"data.split={split}", "decode=greedy", *images,
    ])
    evaluate(cfg)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # the train split too: each image once, scored against all its references, as val and test are
    assert metrics["split"] == split and metrics["n_images"] == {"val": 24, "train": 6}[split]
    assert metrics["decode"] == "greedy" and metrics["decode_settings"] == {"strategy": "greedy", "max_new_tokens": 47}
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert len({p["image_id"] for p in predictions}) == len(predictions) == metrics["n_images"]
    assert [p.name.split("_")[0] for p in (tmp_path / "eval" / "samples").iterdir()] == [split]


@pytest.mark.parametrize(("split", "run_did"), [
    ("train", "trained on by ckpt={ckpt}"),
    ("val", "validated on by the run of ckpt={ckpt}, which picks its best checkpoint by them")])
def test_the_runs_own_generated_train_or_val_split_is_warned_of_as_not_held_out(trained_run, tmp_path, caplog, split,
                                                                                 run_did):
    # generated pictures have no files to compare, but the run's own data config makes the very same split
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", f"data.split={split}", "decode=greedy",
                                                         "metrics=[Bleu]", "num_grid_images=0"]))
    images = {"train": "training images", "val": "validation images"}[split]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"the {split} images scored are those {run_did.format(ckpt=ckpt)} (its run's data config, the same): "
        f"data.split={split} scores the run's {images}; these are not held-out scores"]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["trained_on"] is None and metrics["validated_on"] is None  # not counted: no files


def test_scoring_a_checkpoint_caches_its_data_under_the_scoring_commands_paths_cache_dir(tmp_path):
    """The run config is stored resolved: a model trained on Kaggle cached its data, scored at home, in
    /kaggle/working/.cache/supra/... whatever paths.cache_dir said. Its cache folders (an a2a mixture's sources
    cache in data.cache_dir/<name>/) now move under the scoring command's; a folder of its own or data.cache_dir
    given stays."""
    from supra.runner.components import chosen_data_config

    kaggle = "/kaggle/working/.cache/supra"
    run_cfg = {"paths": {"cache_dir": kaggle}, "data": {
        "_target_": "supra.data.a2a.mixture.A2AMixtureDataModule", "cache_dir": f"{kaggle}/a2a_codes",
        "sources": {"coco": {"source": "coco", "root": "/kaggle/input/coco"},
                    "mine": {"source": "folder", "root": "/kaggle/input/mine", "cache_dir": "/fast/disk/mine"}}}}
    home = str(tmp_path / "cache")  # this command's paths.cache_dir
    data_cfg = chosen_data_config(OmegaConf.create({"split": "test"}), run_cfg, "", home)
    assert data_cfg.cache_dir == f"{home}/a2a_codes" and data_cfg.sources.coco.root == "/kaggle/input/coco"
    assert data_cfg.sources.mine.cache_dir == "/fast/disk/mine"
    codes = str(tmp_path / "codes")
    given = chosen_data_config(OmegaConf.create({"cache_dir": codes}), run_cfg, "", home)
    assert given.cache_dir == codes
    assert chosen_data_config(None, run_cfg, "", kaggle).cache_dir == f"{kaggle}/a2a_codes"  # scored where trained


def test_scoring_references_the_scorer_tokenizes_to_nothing_is_one_line_naming_the_split(default_run_config, tmp_path):
    """A caption folder whose captions are all emoji (PTB tokenization drops them) ended validation and
    evaluate.py alike in CIDEr's traceback (max() arg is an empty sequence)."""
    from PIL import Image

    from supra.data.captioning.photos import PhotoCaptionsDataModule
    from supra.runner.components import build_task

    (tmp_path / "photos").mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tmp_path / "photos" / f"p{i:02d}.jpg")
    (tmp_path / "photos" / "captions.jsonl").write_text(
        "".join(json.dumps({"file": f"p{i:02d}.jpg", "caption": "\U0001F600"}) + "\n" for i in range(6)))
    photos = PhotoCaptionsDataModule(source="folder", root=str(tmp_path / "photos"), cache_dir=str(tmp_path / "cache"),
                                     show_progress=False)
    photos.photos.load(show_progress=False)
    task = build_task(default_run_config.model, None)
    task.trainer = SimpleNamespace(is_global_zero=True, datamodule=photos)  # what a validation or a test scores with
    task._predictions = {0: "a red square"}
    with pytest.raises(SupraUserError, match=rf"^the val split of data.root={tmp_path / 'photos'} \(data.source="
                                             r"folder\): every reference caption is empty after the scorer's PTB "
                                             r"tokenization, which drops emoji and punctuation \(e.g. "
                                             r"'\U0001f600'\), so there is nothing to score against: give the images "
                                             r"captions in words \(the scores compare words\), or score other data$"):
        task._score_epoch("val", "val", ["Bleu", "CIDEr"])


def checkpoint_decoding_so(trained_run: Path, folder: Path, **decode: object) -> Path:
    """trained_run's best.ckpt, as a run that set model.decode.<key>=<value> for each of `decode` wrote it."""
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["decode"] |= decode
    ckpt = folder / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(checkpoint, ckpt)
    return ckpt


def test_evaluate_decodes_as_the_run_did_whatever_the_batch_size_and_records_the_settings(trained_run, tmp_path):
    from supra.artifacts.captioner_release import load_captioner
    from supra.data.captioning.shapes import ShapesDataModule
    from supra.data.images import normalize_images
    from supra.models.vlm_generation import DecodeConfig, generate

    # a run that sampled its test captions (model.decode.strategy=sample, its own seed and width too)
    run = {"strategy": "sample", "beam_width": 6, "temperature": 1.5, "top_k": None, "seed": 11}
    ckpt = checkpoint_decoding_so(trained_run, tmp_path / "run", **run)
    evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "+data.eval_batch_size=1"]))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["decode_settings"] == {"strategy": "sample", "temperature": 1.5, "top_k": None, "top_p": None,
                                          "seed": 11, "max_new_tokens": 47}
    # one image at a time gives the captions of all 15 in one batch: each image samples its own stream
    net, tokenizer, _ = load_captioner(ckpt)
    images = ShapesDataModule(num_test=15, image_size=112).load_split("test").images
    ids = generate(net, normalize_images(images, net.image_input.mean, net.image_input.std), tokenizer.bos_id,
                   tokenizer.eos_id, DecodeConfig(**run))
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert [p["caption"] for p in predictions] == tokenizer.decode_batch(ids)


def test_the_test_loss_is_the_mean_over_caption_tokens_whatever_the_batch_size_to_all_digits(train_config):
    # a mean of the batches' means weighed by their images moved with data.eval_batch_size; weighed by their tokens
    # in float32 (Lightning's mean), it still moved in the 7th digit: a release folder, scored at data=shapes'
    # own eval_batch_size, did not give its checkpoint's loss. Untrained weights (train=false, the seed's): the
    # same model each time, and two caption tokens decoded, as the loss is what is compared.
    losses = []
    for size in (1, 3, 4, 8, 15):
        cfg = train_config("train=false", "data.num_test=15", f"data.eval_batch_size={size}",
                           "model.test_metrics=[Bleu]", "model.decode.max_new_tokens=2", run=f"batch{size}")
        train(cfg)
        losses.append(json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["loss"])
    assert losses == [losses[0]] * 5


def test_a_checkpoints_decoding_with_the_users_settings_over_it(trained_run, tmp_path):
    from supra.artifacts.captioner_release import checkpoint_decoding, load_captioner
    from supra.models.vlm_generation import DecodeConfig

    ckpt = checkpoint_decoding_so(trained_run, tmp_path, beam_width=6, length_penalty=1.0)
    run_config = load_captioner(ckpt)[2]
    assert checkpoint_decoding(ckpt, run_config) == DecodeConfig(beam_width=6, length_penalty=1.0)
    assert checkpoint_decoding(ckpt, run_config, strategy=None, beam_width=2, seed=None) == DecodeConfig(
        beam_width=2, length_penalty=1.0)  # None: not given


def test_training_into_a_folder_that_holds_a_run_is_refused_and_leaves_it_whole(trained_run):
    before = {p: p.stat().st_mtime_ns for p in (trained_run / "checkpoints").iterdir()}
    with pytest.raises(SupraUserError, match=f"the output directory {trained_run} already holds a run "
                                             r"\(checkpoints/best.ckpt\): choose another with hydra.run.dir=DIR"):
        train(compose_config("train", trained_run, ["trainer.max_steps=2"]))
    assert {p: p.stat().st_mtime_ns for p in (trained_run / "checkpoints").iterdir()} == before


def test_a_sweep_job_into_a_folder_that_holds_another_jobs_records_names_the_sweep_options(tmp_path):
    """The last check, inside the job (after Hydra wrote its .hydra/): a sweep job's folder is
    hydra.sweep.dir/hydra.sweep.subdir, and hydra.run.dir does not choose it."""
    job = tmp_path / "sweep" / "x"
    (job / "csv").mkdir(parents=True)
    (job / "csv" / "metrics.csv").write_text("step,val/loss\n2,1.0\n")  # job 0's curves, no checkpoint
    cfg = compose_config("train", job, ["trainer.max_steps=2"])
    with read_write(HydraConfig.get()):
        HydraConfig.get().mode = RunMode.MULTIRUN
    with pytest.raises(SupraUserError, match=re.escape(
            f"the output directory {job} already holds a run (csv/metrics.csv): choose another with "
            "hydra.sweep.dir=DIR, and give each job a folder of its own with ${hydra.job.num} in hydra.sweep.subdir")):
        train(cfg)


def test_resume_from_last_checkpoint_continues_at_the_same_step(trained_run, train_config, caplog):
    last = trained_run / "checkpoints" / "last.ckpt"
    cfg = train_config(f"ckpt_path={last}", "trainer.max_steps=37", "trainer.val_check_interval=15", "test=false",
                       "model.scheduler.warmup_steps=5", "model.optimizer.lr=1e-2", "model.weight_decay=0.2",
                       run="resumed")  # the run's: lr 3e-3, weight decay 0.01
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        train(cfg)
    # the checkpoint's optimizer and schedule go on: the settings given now are said to be unused
    said = [r.getMessage() for r in caplog.records if r.name == "supra.runner.training"]
    assert said == [f"resuming ckpt_path={last} with model.optimizer.lr=0.01 (was 0.003): not used: the checkpoint's "
                    "optimizer state goes on",
                    f"resuming ckpt_path={last} with model.weight_decay=0.2 (was 0.01): not used: the checkpoint's "
                    "optimizer state (its weight decay) goes on",  # the schedule and the data as the run's
                    # ... and the 30-step schedule, done, goes on at its min_lr
                    f"resuming ckpt_path={last} with trainer.max_steps=37, past its learning-rate schedule's 30 steps "
                    "(which goes on): the 7 steps after step 30 train at its min_lr 1e-05; for an lr that decays over "
                    "all 37 steps, train a new run with trainer.max_steps=37"]
    resumed = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    before = torch.load(last, weights_only=True)
    assert [g["weight_decay"] for g in resumed["optimizer_states"][0]["param_groups"]] == [0.01, 0.0]
    # and what the run used is what it records (for a release card, a further resume), not what was given
    used = resumed["supra"]["run_config"]["model"]
    assert (used["optimizer"]["lr"], used["weight_decay"]) == (0.003, 0.01)
    assert "lr: 0.003" in (Path(cfg.paths.output_dir) / "csv" / "hparams.yaml").read_text()
    # 37 is no multiple of the validation interval: last.ckpt still holds the final step
    assert before["global_step"] == 30 and resumed["global_step"] == 37
    # the optimizer and scheduler went on from step 30 rather than starting again
    assert resumed["lr_schedulers"][0]["last_epoch"] == 37
    assert resumed["optimizer_states"][0]["state"][0]["step"] == 37
    # the tokenizer of the checkpoint was kept, not retrained
    assert (Path(cfg.paths.output_dir) / "tokenizer.json").read_text() == before["supra"]["tokenizer"]
    # no validation since (the next is at 45): the best so far came along into the new folder with its score,
    # so a worse later one cannot pass for it
    (key,) = [k for k in before["callbacks"] if k.startswith("LastStepModelCheckpoint")]
    assert resumed["callbacks"][key]["best_model_score"] == before["callbacks"][key]["best_model_score"]
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    assert resumed["callbacks"][key]["best_model_path"] == str(best)
    assert best.read_bytes() == (trained_run / "checkpoints" / "best.ckpt").read_bytes()
    # and said before training: the 7 steps left end before the validation at 45, the test scores that best
    (ends,) = [r.getMessage() for r in caplog.records if r.name == "supra.callbacks.validation_within_run"]
    assert ends.startswith("this run ends after 7 more training batches (trainer.max_steps=37, resumed at step 30), "
                           "before its next validation at batch 45 (trainer.val_check_interval=15): no validation (the "
                           f"test scores the best checkpoint carried over from the resumed run, {best}, not this run's")


def test_a_resume_on_other_data_says_so(train_config, caplog):
    from omegaconf import OmegaConf

    from supra.runner.training import say_resumed_changes

    run_config = OmegaConf.to_container(train_config(run="first"), resolve=True)  # the run the checkpoint holds
    resumed = train_config("ckpt_path=first/last.ckpt", "data.seed=7", "data.batch_size=8", run="second")
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(resumed, run_config)
    assert [r.getMessage() for r in caplog.records] == [  # the batch size (and the folder) may change unsaid
        "resuming ckpt_path=first/last.ckpt with data.seed=7 (was 0): used: this run trains on other data than the "
        "checkpoint's run"]


def test_a_resume_with_the_relative_data_root_its_run_recorded_absolute_says_nothing_of_the_data(caplog, tmp_path,
                                                                                                    monkeypatch):
    from supra.runner.training import recorded_run_config, say_resumed_changes

    monkeypatch.chdir(tmp_path)
    photos = ["experiment=vlm_caption_folder", "data.root=photos"]
    run_config = recorded_run_config(compose_config("train", tmp_path / "first", photos))  # as its checkpoint holds it
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(compose_config("train", tmp_path / "second", [*photos, "ckpt_path=first/last.ckpt"]),
                            run_config)
    assert caplog.messages == []


def test_a_resume_with_another_seed_says_once_what_it_changes(train_config, caplog):
    from omegaconf import OmegaConf

    from supra.runner.training import say_resumed_changes

    run_config = OmegaConf.to_container(train_config(run="first"), resolve=True)  # seed=0
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(train_config("ckpt_path=first/last.ckpt", "seed=5", run="second"), run_config)
        say_resumed_changes(train_config("ckpt_path=first/last.ckpt", run="third"), run_config)  # the same seed: unsaid
    assert caplog.messages == [
        "resuming ckpt_path=first/last.ckpt with seed=5 (was 0): used: later epochs' shuffles (and the run's other "
        "random draws) follow it; the rest of the epoch the checkpoint stopped in keeps its own shuffle"]


def test_a_resume_with_another_precision_or_gradient_accumulation_says_so(train_config, caplog):
    from omegaconf import OmegaConf

    from supra.runner.training import say_resumed_changes

    run_config = OmegaConf.to_container(train_config(run="first"), resolve=True)  # 32-true, one batch a step
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(train_config("ckpt_path=first/last.ckpt", "trainer.precision=bf16-mixed",
                                         "trainer.accumulate_grad_batches=2", run="second"), run_config)
        say_resumed_changes(train_config("ckpt_path=first/last.ckpt", "trainer.precision=32", run="third"),
                            run_config)  # 32-true's older name: the same precision, unsaid
    assert caplog.messages == [
        "resuming ckpt_path=first/last.ckpt with trainer.precision=bf16-mixed (was 32-true), "
        "trainer.accumulate_grad_batches=2 (was 1): used: the checkpoint's weights train on with them"]


def test_a_resume_within_an_epoch_at_another_batch_size_finishes_it_where_the_data_can_and_is_refused_where_not(
        train_config, tmp_path, caplog):
    from supra.runner.resume import RestOfEpochAtBatchSize
    from supra.runner.training import rest_of_epoch_at_batch_size

    def fit_loop(batches_trained: int, is_last_batch: bool) -> dict:  # as Lightning keeps it in a checkpoint
        counts = dict.fromkeys(("ready", "started", "processed", "completed"), batches_trained)
        return {"loops": {"fit_loop": {"epoch_loop.batch_progress": {"current": counts, "is_last_batch": is_last_batch}}}}

    within, at_end, trained_at_8 = fit_loop(2, is_last_batch=False), fit_loop(5, is_last_batch=True), {"data": {"batch_size": 8}}
    with caplog.at_level("INFO", logger="supra.runner.training"):
        (finishing,) = rest_of_epoch_at_batch_size(train_config("data.batch_size=16").data, within, trained_at_8, "l.ckpt")
    assert isinstance(finishing, RestOfEpochAtBatchSize) and finishing.checkpoint_batch_size == 8
    assert caplog.messages == ["ckpt_path=l.ckpt stopped within an epoch begun at data.batch_size=8: the rest of its "
                               "samples are trained in batches of 16"]
    # an unchanged size resumes as it always did, and an epoch's end has nothing left to finish
    assert rest_of_epoch_at_batch_size(train_config("data.batch_size=8").data, within, trained_at_8, "l.ckpt") == []
    assert rest_of_epoch_at_batch_size(train_config("data.batch_size=16").data, at_end, trained_at_8, "l.ckpt") == []
    # data that draws its own batches (the a2a mixture, streamed shards) drew them at the checkpoint's size
    for data in ("data=a2a_mixture", "data=shards"):
        with pytest.raises(SupraUserError) as refused:
            data_cfg = compose_config("train", tmp_path / "run", [data, "data.batch_size=16"]).data
            rest_of_epoch_at_batch_size(data_cfg, within, trained_at_8, "l.ckpt")
        assert str(refused.value) == (
            "ckpt_path=l.ckpt stopped within an epoch begun at data.batch_size=8, whose data draws its own batches at "
            "that size: it cannot finish at data.batch_size=16; resume with data.batch_size=8, or from a checkpoint "
            "written at an epoch's end")


def test_a_resume_of_photo_data_into_a_new_run_folder_says_nothing_of_its_data(tmp_path, caplog):
    from omegaconf import OmegaConf

    from supra.runner.training import say_resumed_changes

    # data.output_dir is the run folder (where the split lists go), new with every resume: not other data
    photos = ["data=caption_folder", "data.root=/photos"]
    run_config = OmegaConf.to_container(compose_config("train", tmp_path / "first", photos), resolve=True)
    resumed = compose_config("train", tmp_path / "second", [*photos, "ckpt_path=first/last.ckpt"])
    assert resumed.data.output_dir != run_config["data"]["output_dir"]
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(resumed, run_config)
    assert [r.getMessage() for r in caplog.records] == []


def test_a_resume_with_other_model_settings_says_they_are_used(train_config, caplog):
    from omegaconf import OmegaConf

    from supra.runner.training import say_resumed_changes

    run_config = OmegaConf.to_container(train_config(run="first"), resolve=True)  # the run the checkpoint holds
    resumed = train_config("ckpt_path=first/last.ckpt", "model.net.dropout=0.3", "model.decode.beam_width=2",
                           "model.compile=true", "model.score_every_n_val=2", run="second")
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(resumed, run_config)
    assert [r.getMessage() for r in caplog.records] == [  # speed switches may change unsaid
        "resuming ckpt_path=first/last.ckpt with model.decode.beam_width=2 (was 3), model.net.dropout=0.3 (was 0.0): "
        "used: the checkpoint's weights go on with them"]


def test_a_checkpoint_of_another_kind_given_to_resume_is_refused_naming_the_experiment_that_resumes_it(tmp_path):
    """ckpt_path= asks for a resume: the line says how to resume the file given, where evaluate.py's ckpt= names
    what reads it."""
    from supra.artifacts.checkpoints import load_supra_checkpoint
    from supra.artifacts.kinds import A2A_CHECKPOINT, CAPTIONER_CHECKPOINT, VQVAE_CHECKPOINT
    from supra.runner.training import check_resumable

    def checkpoint(kind: str) -> Path:  # all a kind's refusal reads of the file
        path = tmp_path / f"{kind}.ckpt"
        torch.save({"state_dict": {}, "supra": {"kind": kind}}, path)
        return path

    vqvae, a2a, captioner = checkpoint(VQVAE_CHECKPOINT), checkpoint(A2A_CHECKPOINT), checkpoint(CAPTIONER_CHECKPOINT)
    for given, task_kind, said in (
            (vqvae, CAPTIONER_CHECKPOINT, f"ckpt_path={vqvae} is a VQ-VAE checkpoint, not a captioner: resume it with "
                                          f"python train.py experiment=vqvae_shapes ckpt_path={vqvae} and its run's "
                                          "other overrides"),
            (vqvae, A2A_CHECKPOINT, f"ckpt_path={vqvae} is a VQ-VAE checkpoint, not an a2a_nano one: resume it with "
                                    f"python train.py experiment=vqvae_shapes ckpt_path={vqvae} and its run's other "
                                    f"overrides; to train an a2a_nano model over it, give it as model.vqvae_ckpt={vqvae} "
                                    "instead"),
            (a2a, CAPTIONER_CHECKPOINT, f"ckpt_path={a2a} is an a2a_nano checkpoint (GPT + VQ-VAE), not a captioner: "
                                        f"resume it with python train.py experiment=a2a_shapes ckpt_path={a2a} and its "
                                        "run's other overrides"),
            (captioner, VQVAE_CHECKPOINT, f"ckpt_path={captioner} is a captioner checkpoint, not a VQ-VAE: resume it "
                                          f"with python train.py experiment=vlm_shapes (or the captioner experiment its "
                                          f"run used) ckpt_path={captioner} and its run's other overrides")):
        with pytest.raises(SupraUserError) as refused:
            check_resumable(SimpleNamespace(checkpoint_kind=task_kind), str(given), max_steps=10)
        assert str(refused.value) == said
    with pytest.raises(SupraUserError) as refused:  # evaluate.py's, as it was
        load_supra_checkpoint(vqvae, kind=CAPTIONER_CHECKPOINT)
    assert str(refused.value) == (f"ckpt={vqvae} is a VQ-VAE checkpoint, not a captioner: python -m "
                                  "supra.tokenize_media and evaluate.py read it")


def test_a_resume_of_a_checkpoint_whose_decode_listed_fewer_keys_says_nothing_of_them(train_config, caplog):
    """model.decode came to list every DecodeConfig field (seed, temperature, top_k, ...); a checkpoint from before
    decoded with those at their defaults, which are no change."""
    from omegaconf import OmegaConf

    from supra.runner.training import say_resumed_changes

    run_config = OmegaConf.to_container(train_config(run="first"), resolve=True)
    run_config["model"]["decode"] = {"strategy": "beam", "beam_width": 3, "length_penalty": 0.0}  # as saved then
    resumed = train_config("ckpt_path=first/last.ckpt", "model.decode.top_k=20", run="second")
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(resumed, run_config)
    assert [r.getMessage() for r in caplog.records] == [  # a change of a key it lacked is still said
        "resuming ckpt_path=first/last.ckpt with model.decode.top_k=20 (was 50): used: the checkpoint's weights go on "
        "with them"]


def test_a_resume_of_an_older_supras_checkpoint_says_nothing_of_the_settings_added_since_at_their_old_values(
        tmp_path, caplog):
    """Settings added since an older Supra recorded its run config are read at what that run did: a caption
    folder's 10% val and test splits, the release's CNN encoder and prefix fusion; the data settings the model
    dictates were recorded at its values, and pin_memory as false. A real change of them is still said."""
    from supra.runner.training import recorded_run_config, say_resumed_changes

    photos = ["experiment=vlm_caption_folder", "data.root=/photos"]
    run_config = recorded_run_config(compose_config("train", tmp_path / "first", photos))
    for key in ("val_fraction", "test_fraction"):
        del run_config["data"][key]
    for key in ("encoder", "fusion", "resampler_layers"):
        del run_config["model"]["net"][key]
    run_config["data"] |= {"image_size": 112, "max_caption_tokens": 48, "vocab_size": 2048, "pin_memory": False}
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(compose_config("train", tmp_path / "second", [*photos, "ckpt_path=first/last.ckpt"]),
                            run_config)
        assert caplog.messages == []
        say_resumed_changes(compose_config("train", tmp_path / "third", [
            *photos, "ckpt_path=first/last.ckpt", "data.val_fraction=0.2", "model.net.resampler_layers=2"]), run_config)
    assert caplog.messages == [
        "resuming ckpt_path=first/last.ckpt with data.val_fraction=0.2 (was 0.1): used: this run trains on other data "
        "than the checkpoint's run",
        "resuming ckpt_path=first/last.ckpt with model.net.resampler_layers=2 (was 0): used: the checkpoint's weights "
        "go on with them"]


def test_a_resume_of_an_older_supras_checkpoint_lacking_a_setting_of_unknown_old_value_says_so_once(
        train_config, caplog):
    from omegaconf import OmegaConf

    from supra.runner.training import say_resumed_changes

    run_config = OmegaConf.to_container(train_config(run="first"), resolve=True)
    del run_config["data"]["canvas_size"], run_config["model"]["net"]["dropout"]  # as if added since
    with caplog.at_level("WARNING", logger="supra.runner.training"):
        say_resumed_changes(train_config("ckpt_path=first/last.ckpt", run="second"), run_config)
    assert caplog.messages == [  # not said to train on other data, or with other model settings
        "resuming ckpt_path=first/last.ckpt, which comes from an older Supra that did not record data.canvas_size or "
        "model.net.dropout: this run uses data.canvas_size=128, model.net.dropout=0.0 as given now, its run's not "
        "known"]


def test_a_resumed_copy_of_a_run_carries_its_own_best_not_a_file_since_written_where_the_run_was(
        trained_run, train_config, tmp_path):
    # the run's checkpoints copied to a backup, and its old folder since reused by another run (its best
    # scored otherwise): here written at the path the checkpoint recorded
    (key,) = [k for k in torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
              if k.startswith("LastStepModelCheckpoint")]
    backup, reused = tmp_path / "backup" / "checkpoints", tmp_path / "reused" / "checkpoints"
    backup.mkdir(parents=True)
    reused.mkdir(parents=True)
    last = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
    last["callbacks"][key] |= {"dirpath": str(reused), "best_model_path": str(reused / "best.ckpt")}
    torch.save(last, backup / "last.ckpt")
    shutil.copyfile(trained_run / "checkpoints" / "best.ckpt", backup / "best.ckpt")
    other = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    other["callbacks"][key]["best_model_score"] = torch.tensor(99.0)
    torch.save(other, reused / "best.ckpt")

    cfg = train_config(f"ckpt_path={backup / 'last.ckpt'}", "trainer.max_steps=31", "test=false", run="from_backup")
    train(cfg)
    carried = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    assert carried.read_bytes() == (backup / "best.ckpt").read_bytes()


def test_a_checkpoint_without_training_state_is_refused_for_training_in_one_line(trained_run, train_config, tmp_path):
    weights_only = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
    for key in ("optimizer_states", "lr_schedulers", "callbacks"):  # as save_weights_only=true writes it
        del weights_only[key]
    torch.save(weights_only, tmp_path / "weights.ckpt")
    with pytest.raises(SupraUserError, match=r"weights.ckpt holds no training state \(optimizer_states, lr_schedulers "
                                             r"missing: weights only\?\), so training cannot go on from it"):
        train(train_config(f"ckpt_path={tmp_path / 'weights.ckpt'}", "trainer.max_steps=40", run="weights_only"))


def test_resuming_at_or_past_max_steps_is_refused_rather_than_training_nothing(trained_run, train_config):
    last = trained_run / "checkpoints" / "last.ckpt"
    with pytest.raises(SupraUserError, match=r"last.ckpt is at step 30: trainer.max_steps=30 trains nothing more; "
                                             r"raise trainer.max_steps to go on"):
        train(train_config(f"ckpt_path={last}", "trainer.max_steps=30", run="resumed_to_nothing"))


def test_resuming_at_max_steps_says_where_the_lr_goes_on_from(trained_run, train_config, tmp_path):
    """Raising trainer.max_steps goes on at min_lr only where the checkpoint's schedule had ended; a checkpoint
    written before its end (at a validation, at Ctrl-C) goes on down the schedule."""
    last = trained_run / "checkpoints" / "last.ckpt"  # step 30 of a 30-step schedule: its end
    with pytest.raises(SupraUserError, match=r"is at step 30: trainer.max_steps=30 trains nothing more; raise "
                                             r"trainer.max_steps to go on, at the schedule's min_lr \(its 30 steps are "
                                             r"done\) \(or train=false"):
        train(train_config(f"ckpt_path={last}", "trainer.max_steps=30", run="at_the_end"))
    # the same step of a 60-step schedule (5 of warm-up, then the cosine's 55)
    midway = torch.load(last, weights_only=True)
    midway["lr_schedulers"][0]["_schedulers"][1]["T_max"] = 55
    torch.save(midway, tmp_path / "midway.ckpt")
    with pytest.raises(SupraUserError, match=r"is at step 30: trainer.max_steps=30 trains nothing more; raise "
                                             r"trainer.max_steps to go on, down the rest of its learning-rate schedule "
                                             r"\(min_lr at step 60, trainer.max_steps=60\) \(or train=false"):
        train(train_config(f"ckpt_path={tmp_path / 'midway.ckpt'}", "trainer.max_steps=30", run="midway"))


def test_resuming_past_max_epochs_is_refused_in_one_line_not_lightnings_traceback(train_config):
    # 16 images x 5 captions in batches of 16: 5 batches an epoch, so step 11 is in the third epoch (current_epoch=2);
    # Lightning refuses max_epochs=1 from deep in its restore (a MisconfigurationException traceback)
    short = ["data.num_train=16", "trainer.val_check_interval=5", "test=false"]
    first = train_config(*short, "trainer.max_steps=11", run="three_epochs")
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(SupraUserError, match=r"last.ckpt has trained 2 epochs: trainer.max_epochs=1 trains nothing "
                                             r"more; raise trainer.max_epochs above 2 to go on"):
        train(train_config(*short, f"ckpt_path={last}", "trainer.max_steps=-1", "trainer.max_epochs=1", run="past"))


def test_resuming_a_checkpoint_that_has_trained_max_epochs_is_refused_one_within_its_last_epoch_goes_on(train_config):
    """A checkpoint at trainer.max_epochs trained nothing, validated once, exited 0 and tested again into a new
    folder. Epochs are counted as Lightning counts them: a run stopped mid-epoch by trainer.max_steps wrote a
    last.ckpt that counts its epoch as processed, yet it has that epoch's rest to train."""
    # 16 images x 5 captions in batches of 16: 5 batches an epoch; step 8 is the third batch of the second epoch
    short = ["data.num_train=16", "trainer.val_check_interval=5", "test=false"]
    midway = train_config(*short, "trainer.max_steps=8", run="midway")
    train(midway)
    two_epochs = train_config(*short, f"ckpt_path={Path(midway.paths.output_dir) / 'checkpoints' / 'last.ckpt'}",
                              "trainer.max_steps=-1", "trainer.max_epochs=2", run="two_epochs")
    train(two_epochs)
    last = Path(two_epochs.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 10  # the second epoch's last 2 batches
    with pytest.raises(SupraUserError, match=re.escape(
            f"ckpt_path={last} has trained 2 epochs: trainer.max_epochs=2 trains nothing more; raise "
            f"trainer.max_epochs above 2 to go on, or score it with evaluate.py ckpt={last}")):
        train(train_config(*short, f"ckpt_path={last}", "trainer.max_steps=-1", "trainer.max_epochs=2", run="again"))


def resume_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The runner's warnings of a resume's schedule (not the first run's, of a warm-up squeezed into it)."""
    return [r.getMessage() for r in caplog.records if r.name == "supra.runner.training" and "schedule" in r.getMessage()]


def test_a_resume_bounded_by_max_epochs_is_warned_once_its_steps_are_known_if_they_pass_its_schedule(train_config,
                                                                                                   caplog):
    """With trainer.max_steps=-1 the run's steps are known only once its data is: counted then, as Lightning
    counts them, and said in the words of a resume given more trainer.max_steps."""
    # 16 images x 5 captions in batches of 16: 5 batches an epoch; a 2-epoch run's 10-step schedule, checkpointed
    # at its validation at step 5
    short = ["data.num_train=16", "trainer.val_check_interval=5", "test=false", "trainer.max_steps=-1"]
    first = train_config(*short, "trainer.max_epochs=2", "callbacks.model_checkpoint.filename='{step}'",
                         "+callbacks.model_checkpoint.save_top_k=-1", run="first")
    train(first)
    midway = Path(first.paths.output_dir) / "checkpoints" / "5.ckpt"
    with caplog.at_level(logging.WARNING, logger="supra.runner.training"):
        train(train_config(*short, f"ckpt_path={midway}", "trainer.max_epochs=2", run="within"))
        assert not resume_warnings(caplog)  # it ends with its schedule
        train(train_config(*short, f"ckpt_path={midway}", "trainer.max_epochs=3", run="past"))
    assert resume_warnings(caplog) == [
        f"resuming ckpt_path={midway} with trainer.max_epochs=3 (15 steps), past its learning-rate schedule's 10 steps "
        "(which goes on): the 5 steps after step 10 train at its min_lr 1e-05; for an lr that decays over all 15 "
        "steps, train a new run with trainer.max_steps=15 (or end with its schedule: trainer.max_steps=10)"]


def _lr_per_step(run: DictConfig) -> dict[int, str]:
    with open(Path(run.paths.output_dir) / "csv" / "metrics.csv", newline="") as f:
        return {int(row["step"]): row["lr-AdamW/pg1"] for row in csv.DictReader(f) if row.get("lr-AdamW/pg1")}


def test_a_resume_given_another_warm_up_goes_on_with_its_checkpoints_schedule_as_it_says(train_config, caplog):
    """Settings of model.scheduler given with ckpt_path= are not used (README): warmup_steps=0 over a checkpoint
    whose schedule warms up was warned of as "not used", then refused as the fit started."""
    short = ["data.num_train=16", "trainer.val_check_interval=2", "test=false", "trainer.max_steps=6",
             "model.optimizer.lr=1e-3", "model.scheduler.min_lr=1e-4", "model.val_metrics=[]", "data.num_val=8",
             "callbacks.model_checkpoint.monitor=val/loss", "callbacks.model_checkpoint.mode=min"]
    first = train_config(*short, "model.scheduler.warmup_steps=4", "callbacks.model_checkpoint.filename='{step}'",
                         "+callbacks.model_checkpoint.save_top_k=-1", run="first")
    train(first)
    midway = Path(first.paths.output_dir) / "checkpoints" / "2.ckpt"
    resumed = train_config(*short, "model.scheduler.warmup_steps=0", f"ckpt_path={midway}", run="resumed")
    with caplog.at_level(logging.WARNING, logger="supra.runner.training"):
        train(resumed)
    assert any(message.endswith("model.scheduler.warmup_steps=0 (was 4): not used: the checkpoint's learning-rate "
                                "schedule goes on") for message in caplog.messages)
    uninterrupted, went_on = _lr_per_step(first), _lr_per_step(resumed)
    assert sorted(went_on) == [2, 3, 4, 5] and went_on == {step: uninterrupted[step] for step in went_on}


def warmup_then_constant(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 100,
                         min_lr: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """A schedule of another target than warmup_cosine, taking the same settings: a linear warm-up, then constant."""
    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / max(1, warmup_steps), total_iters=warmup_steps)


@pytest.mark.parametrize(("trained_with", "resumed_with", "said"), [
    ("model.scheduler.warmup_steps=4", "model.scheduler=null",
     "with model.scheduler=null (was supra.tasks.lr_schedules.warmup_cosine): not used: the checkpoint's learning-rate "
     "schedule goes on"),
    ("model.scheduler=null", "model.scheduler.warmup_steps=4",
     "with model.scheduler=supra.tasks.lr_schedules.warmup_cosine (was null): not used: the checkpoint's run had no "
     "learning-rate schedule, and its learning rate goes on unchanged"),
    ("model.scheduler.warmup_steps=4", "model.scheduler._target_=tests.test_train_and_evaluate.warmup_then_constant",
     "with model.scheduler._target_=tests.test_train_and_evaluate.warmup_then_constant (was "
     "supra.tasks.lr_schedules.warmup_cosine), model.scheduler.warmup_steps=100 (was 4): not used: the checkpoint's "
     "learning-rate schedule goes on")])
def test_a_resume_that_drops_adds_or_swaps_a_schedule_goes_on_with_its_checkpoints_lr_as_it_says(
        trained_with, resumed_with, said, train_config, caplog):
    """model.scheduler=null over a checkpoint's schedule was warned "not used", and the lr stayed at the checkpoint's
    last step's to the end; a schedule over a checkpoint trained without one warmed up again from its first step,
    midway through the run, unsaid; a schedule of another target, warned "not used", was built and given the
    checkpoint's schedule's state, which it went on from by its own rule."""
    short = ["data.num_train=16", "trainer.val_check_interval=2", "test=false", "trainer.max_steps=6",
             "model.optimizer.lr=1e-3", "model.val_metrics=[]", "data.num_val=8",
             "callbacks.model_checkpoint.monitor=val/loss", "callbacks.model_checkpoint.mode=min"]
    first = train_config(*short, trained_with, "callbacks.model_checkpoint.filename='{step}'",
                         "+callbacks.model_checkpoint.save_top_k=-1", run="first")
    train(first)
    midway = Path(first.paths.output_dir) / "checkpoints" / "2.ckpt"
    resumed = train_config(*short, resumed_with, f"ckpt_path={midway}", run="resumed")
    with caplog.at_level(logging.WARNING, logger="supra.runner.training"):
        train(resumed)
    uninterrupted, went_on = _lr_per_step(first), _lr_per_step(resumed)
    assert sorted(went_on) == [2, 3, 4, 5] and went_on == {step: uninterrupted[step] for step in went_on}
    assert f"resuming ckpt_path={midway} {said}" in caplog.messages
    # and what the run records is what it used: a further resume goes on with it again
    used = torch.load(Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert used["supra"]["run_config"]["model"]["scheduler"] == first.model.get("scheduler") and \
        len(used["lr_schedulers"]) == len(torch.load(midway, weights_only=True)["lr_schedulers"])


@pytest.mark.parametrize("warmup_steps", [0, 10, 100])  # 100: clamped to the run's 59, as a short run's is
def test_a_resume_that_ends_before_its_checkpoints_schedule_is_warned_that_the_lr_never_reaches_min_lr(warmup_steps,
                                                                                                      caplog):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    # the checkpoint of a 60-step run stopped at step 20: its schedule goes on where a resumed run takes it up
    checkpoint = {"lr_schedulers": [warmup_cosine(optimizer, total_steps=60, warmup_steps=warmup_steps).state_dict()]}
    assert schedule_length(checkpoint) == 60
    with caplog.at_level(logging.WARNING):
        for max_steps in (40, 60, 80, -1):  # only 40 ends partway through it
            say_shorter_than_schedule("r1/last.ckpt", schedule_length(checkpoint), max_steps)
    assert [record.getMessage() for record in caplog.records] == [
        "resuming ckpt_path=r1/last.ckpt with trainer.max_steps=40, short of its learning-rate schedule's 60 steps "
        "(which goes on): the run ends partway through it, and its lr never reaches min_lr"]


def test_the_schedule_warms_up_to_the_peak_at_step_warmup_plus_one_and_reaches_min_lr_one_step_after_the_last():
    """As warmup_cosine's docstring and the README say: the last step of a run trains just above min_lr, not at it."""
    import math

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = warmup_cosine(optimizer, total_steps=20, warmup_steps=5, min_lr=1e-5)
    lrs = []  # the lr each step trains at, steps 1 to 21
    for _ in range(21):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(1e-3 / 5) and lrs[5] == pytest.approx(1e-3)  # step 1, step warmup_steps + 1
    assert lrs[19] == pytest.approx(1e-5 + (1e-3 - 1e-5) * (1 - math.cos(math.pi / 15)) / 2)  # step 20, the last
    assert lrs[20] == pytest.approx(1e-5)  # step 21, one after the run


@pytest.mark.parametrize("warmup_steps", [0, 2])
def test_a_resume_that_trains_past_its_checkpoints_schedule_is_warned_of_the_steps_at_min_lr(warmup_steps, caplog):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = warmup_cosine(optimizer, total_steps=4, warmup_steps=warmup_steps, min_lr=3e-5)
    # a 4-step run stopped by trainer.max_steps=4 at its end, then one stopped at step 2 of it
    at_end = {"global_step": 4, "lr_schedulers": [schedule.state_dict()]}
    midway = {"global_step": 2, "lr_schedulers": [schedule.state_dict()]}
    assert schedule_length(at_end) == 4
    with caplog.at_level(logging.WARNING):
        for max_steps in (4, -1):  # nothing past the schedule, or no step bound to count by
            say_past_schedule("r1/last.ckpt", midway, max_steps)
        say_past_schedule("r1/last.ckpt", at_end, 8)
        say_past_schedule("r1/last.ckpt", midway, 8)
    assert [record.getMessage() for record in caplog.records] == [
        "resuming ckpt_path=r1/last.ckpt with trainer.max_steps=8, past its learning-rate schedule's 4 steps (which "
        "goes on): the 4 steps after step 4 train at its min_lr 3e-05; for an lr that decays over all 8 steps, train "
        "a new run with trainer.max_steps=8",
        "resuming ckpt_path=r1/last.ckpt with trainer.max_steps=8, past its learning-rate schedule's 4 steps (which "
        "goes on): the 4 steps after step 4 train at its min_lr 3e-05; for an lr that decays over all 8 steps, train "
        "a new run with trainer.max_steps=8 (or end with its schedule: trainer.max_steps=4)"]


def test_train_cli_fast_dev_run_and_help(train_py_runs):
    result = train_py_runs["fast_dev_run"]
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Trainable params" in output  # the model summary, without noise every run would repeat:
    assert "litlogger" not in output and "FLOPs" not in output  # no advert, no FLOPs column that reads 0
    assert "ModelSummary" not in output  # nor Lightning's word that the project's summary stands in for its own
    help_run = train_py_runs["--help"]
    assert help_run.returncode == 0
    help_text = help_run.stdout
    for group in ("data:", "model:", "trainer:", "logger:", "callbacks:", "paths:", "experiment:", "debug:",
                  "hydra/launcher: slurm"):  # Hydra's own list leaves its hydra/ groups out
        assert group in help_text
    assert "Hydra's own basic (the default" in help_text and "submitit_local" in help_text  # as README names them


BAD_TRAIN_INPUTS = {
    "trainer=kaggle_2xt4": "trainer=kaggle_2xt4 needs 2 CUDA GPUs per node",
    "trainer=gpu": "trainer=gpu needs 1 CUDA GPU per node",
    "trainer.devices=0": "error: trainer.devices=0 must be a whole number >= 1 (processes on the CPU",
    "trainer.accelerator=gpu": "error: trainer.accelerator=gpu needs 1 CUDA GPU per node (1 in all) but this "
                               "machine has 0: leave trainer.accelerator at cpu",
    "data.num_train=0": "data.num_train=0",
    "model.optimizer.lr=abc": "error: model.optimizer.lr='abc' must be a number (or null)",
    "trainer.val_check_interval=0": "error: trainer.val_check_interval=0 must be > 0",
    "seed=-1": "error: seed=-1 must be from 0 to 4294967295 (or null: no fixed seed)",
    "seed=99999999999": "error: seed=99999999999 must be from 0 to 4294967295",
    "trainer.accumulate_grad_batches=0": "error: trainer.accumulate_grad_batches=0 must be >= 1",
    "trainer.max_steps=-1": "error: trainer.max_steps=-1 with trainer.max_epochs=-1 trains without end, but the "
                            "learning-rate schedule (model.scheduler) decays over the run's steps: set a finite "
                            "trainer.max_steps or trainer.max_epochs",
    "trainer.precision=16-true": "error: trainer.precision=16-true keeps the optimizer's state in float16",
    "model=vqvae_f8": "error: VQAutoencodingTask trains and scores on MediaDataModules but the data is a "
                      "ShapesDataModule: choose data=shapes_images, shapes_video or media_folder",
    "data=shapes_images": "error: CaptioningTask trains and scores on CaptionDataModules but the data is a "
                          "ShapesImagesDataModule: choose data=shapes, flickr8k",
    # --help shows the default choices' options: the message names the file that explains this one
    # run from a folder outside the checkout: the file it names is one the user can open from there
    "model/encoder=pretrained": "error: missing model.net.pretrained.weights=... (explained in "
                                f"{ROOT / 'conf' / 'model' / 'encoder' / 'pretrained.yaml'})",
    "model.net.encoder=pretrained": "error: encoder=pretrained needs the tower's weights file: choose "
                                    "model/encoder=pretrained model.net.pretrained.weights=/path/to/",
    "+model.net.vit.layers=4": "error: model.net.vit.layers=4: a setting of encoder=vit, but the encoder is cnn: "
                               "choose model/encoder=vit, or leave it out",
    "ckpt_path=.": "error: ckpt_path=. is a folder: give a last.ckpt or best.ckpt of a run",
    "logger=null": "error: logger=null: a config group takes one of its options, csv, many, none, tensorboard, wandb "
                   "(logger=none: without one), or leave it out for the default",
    "optimized_metric=test/CIDEr test=false": "error: optimized_metric=test/CIDEr is a test score, but test=false: set "
                                              "test=true, or optimize a validation score (optimized_metric=val/CIDEr)",
    "trainer=kaggle_2xt4 trainer.accelerator=cpu": "error: trainer.sync_batchnorm=true needs CUDA GPUs but "
                                                   "trainer.accelerator=cpu: add trainer.sync_batchnorm=false",
    "trainer=multi_node trainer.accelerator=cpu": "error: trainer.num_nodes=2 needs its nodes started together",
    "trainer.val_check_interval=0.5": "error: trainer.val_check_interval=0.5 is a share of an epoch, which needs "
                                      "epochs: add trainer.check_val_every_n_epoch=1",
    # its val and test sets small: the epoch's training batches are counted as its data is set up
    "trainer.check_val_every_n_epoch=1 data.num_train=64 data.num_val=8 data.num_test=8":
        "error: trainer.val_check_interval=500 is more than an epoch's 5 training batches: with "
        "trainer.check_val_every_n_epoch=1 it counts within each epoch; use trainer.val_check_interval=1.0 (each "
        "epoch's end) or a number up to 5, or trainer.check_val_every_n_epoch=null (every 500 batches across epochs)",
    "+trainer.enable_checkpointing=false": "error: trainer.enable_checkpointing=false: add callbacks.model_checkpoint=null "
                                           "too (the run then tests its last weights)",
    # another model's callbacks: their checkpoint would look for a metric this model never logs
    "model=vqvae_f8 data=shapes_images": "error: callbacks=default is made for another model (its checkpoint keeps "
                                         "the best val/CIDEr): VQAutoencodingTask takes callbacks=vqvae, add it",
    "callbacks=vqvae": "error: callbacks=vqvae is made for another model (its checkpoint keeps the best val/psnr): "
                       "CaptioningTask takes callbacks=default, add it",
    # checkpoints and stops that would be wrong, and a monitor Lightning would miss only at the first validation
    "+callbacks.model_checkpoint.save_top_k=2": "error: callbacks.model_checkpoint.save_top_k=2 keeps the best 2 "
                                                "checkpoints under one name (best.ckpt): each would replace the one "
                                                "before, and best.ckpt would hold the latest, not the best",
    "callbacks.model_checkpoint.monitor=val/cider": "error: callbacks.model_checkpoint.monitor=val/cider is no metric "
                                                    "this run logs: did you mean val/CIDEr? (CaptioningTask logs "
                                                    "train/loss, val/loss, val/Bleu_1,",
    # a key its class does not take: instantiate's TypeError, a traceback, without the check
    "+model.weightdecay=0.1": "error: model.weightdecay=0.1: CaptioningTask has no option weightdecay: did you mean "
                              "model.weight_decay?",
}


@pytest.fixture(scope="module")
def train_py_runs(tmp_path_factory, trained_run) -> dict[str, subprocess.CompletedProcess]:
    """train.py given a fast_dev_run, each bad input, an output directory it cannot create (named, or the default
    `logs` of the folder it is run from), a finished run's folder and --help: all run in one interpreter
    (command_lines), as `python train.py <case>` runs them from one folder, where `logs` is a file."""
    tmp = tmp_path_factory.mktemp("train_py_runs")
    blocker = tmp / "a_file"
    blocker.write_text("a file where a directory should go")
    (tmp / "logs").write_text("a file where the default log folder should go")  # every other case names its folder
    # a smaller shapes set than the default's 4,000 images, and no METEOR (a Java start-up; a fast_dev_run's test/METEOR
    # is checked in process, above): the entry point and its output are under test here
    cases = {"fast_dev_run": ["debug=fast_dev_run", f"hydra.run.dir={tmp / 'fast_dev_run'}", "data.num_train=200",
                              "data.num_val=16", "data.num_test=16", "callbacks.progress_bar=null",
                              "model.test_metrics=[Bleu,ROUGE_L,CIDEr]"]}
    cases |= {case: [*case.split(), f"hydra.run.dir={tmp / str(i)}"] for i, case in enumerate(BAD_TRAIN_INPUTS)}
    cases |= {"unwritable": [f"hydra.run.dir={blocker / 'run'}"], "unwritable logs": [f"paths.log_dir={blocker / 'logs'}"],
              "unwritable sweep": ["-m", "seed=1,2", f"hydra.sweep.dir={blocker / 'sweep'}"],
              "--help": ["--help"], "finished run": ["model.optimizer.lr=0.5", f"hydra.run.dir={trained_run}"],
              "default logs unwritable": ["debug=fast_dev_run"]}
    runs = command_lines(*([str(ROOT / "train.py"), *argv] for argv in cases.values()), cwd=tmp)
    return dict(zip(cases, runs, strict=True))


def test_train_cli_run_from_a_folder_where_runs_cannot_go_gives_one_line(train_py_runs):
    result = train_py_runs["default logs unwritable"]  # run where `logs` is a file, with no folder named
    assert result.returncode == 2 and "Traceback" not in result.stderr
    said = re.fullmatch(r"error: cannot write to (.+) \(logs is a file, not a folder\), where runs go by default: run from a folder "
                        r"you can write to, or choose one with paths.log_dir=DIR\n", result.stderr)
    assert said and Path(said[1]).name == "logs" and Path(said[1]).is_file()  # the file in the folder it ran from


@pytest.mark.parametrize("case", BAD_TRAIN_INPUTS)
def test_train_cli_bad_input_gives_one_line(case, train_py_runs):
    result = train_py_runs[case]
    assert result.returncode == 2
    assert BAD_TRAIN_INPUTS[case] in result.stderr
    assert "Traceback" not in result.stderr


BAD_EVALUATE_INPUTS = {
    "decode=nucleus": "error: decode='nucleus' is unknown: choose beam, greedy or sample",
    "beam_width=0": "error: beam_width=0 must be >= 1",
    "decode=sample seed=abc": "error: seed='abc' must be a whole number",
    "decode=sample seed=-4": "error: seed=-4 must be from 0 to 4294967295",
    # options the decoding used does not read: said, not ignored
    "decode=greedy beam_width=5": "error: beam_width=5: decode=greedy does not read it; leave it out",
    "seed=3": "error: seed=3: decode=beam (the model's run's) does not read it (it reads beam_width); leave it out",
    "beam_width=200000": "error: beam_width=200000 is more than the model's 2048 tokens: give beam_width <= 2048",
    "fps=3": "error: fps=3: no such option (the options there are: accelerator, beam_width, ckpt, data, decode, "
             "metrics, num_grid_images, paths, seed, task_name)",
    "data.bogus=1": "error: data.bogus is not an option of the data this model was trained on (ShapesDataModule: ",
    "accelerator=tpu": "error: accelerator=tpu is not one of auto, cpu, gpu",
    "num_grid_images=-1": "error: num_grid_images=-1 must be a whole number >= 0 (0: no sample pictures)",
}


@pytest.fixture(scope="module")
def evaluate_py_runs(tmp_path_factory, trained_run) -> dict[str, subprocess.CompletedProcess]:
    """evaluate.py given each bad option, no checkpoint, a missing checkpoint, a finished run's folder, an output
    directory it cannot create and --help: all run in one interpreter (command_lines), as `python evaluate.py
    <case>` runs them."""
    tmp = tmp_path_factory.mktemp("evaluate_py_runs")
    blocker = tmp / "a_file"
    blocker.write_text("a file where a directory should go")
    ckpt = f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}"
    cases = {case: [ckpt, *case.split(), f"hydra.run.dir={tmp / str(i)}"] for i, case in enumerate(BAD_EVALUATE_INPUTS)}
    cases |= {"no ckpt": [f"hydra.run.dir={tmp / 'no_ckpt'}"],
              "missing ckpt": [f"ckpt={tmp / 'missing.ckpt'}", f"hydra.run.dir={tmp / 'eval'}"],
              "finished run": [ckpt, f"hydra.run.dir={trained_run}"],
              "unwritable": ["ckpt=some.ckpt", f"hydra.run.dir={blocker / 'run'}"], "--help": ["--help"]}
    runs = command_lines(*([str(ROOT / "evaluate.py"), *argv] for argv in cases.values()), cwd=tmp)
    return dict(zip(cases, runs, strict=True))


def test_evaluate_cli_bad_options_give_one_line_and_help_is_its_own(tmp_path, trained_run, evaluate_py_runs):
    for case, message in BAD_EVALUATE_INPUTS.items():
        result = evaluate_py_runs[case]
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, (case, result.stderr)
    into_a_run = evaluate_py_runs["finished run"]  # refused before anything is written there: its metrics.json stays
    assert into_a_run.returncode == 2 and "already holds a finished run (checkpoints/best.ckpt)" in into_a_run.stderr
    assert json.loads((trained_run / "metrics.json").read_text())["split"] == "test"
    no_ckpt = evaluate_py_runs["no ckpt"]
    assert no_ckpt.returncode == 2 and no_ckpt.stderr == "error: missing ckpt=... (--help lists every option)\n"
    ckpt = f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}"
    # a data option of the checkpoint's own data (not in conf/eval.yaml) changes it: the command line as evaluate.py
    # hands it to Hydra (data_for_release), scored in process (a subprocess would start METEOR's Java again)
    evaluate(compose_config("eval", tmp_path / "five", data_for_release([ckpt, "data.num_test=5"])))
    assert json.loads((tmp_path / "five" / "metrics.json").read_text())["n_images"] == 5
    help_text = evaluate_py_runs["--help"].stdout
    assert evaluate_py_runs["--help"].returncode == 0 and help_text.startswith("python evaluate.py: score a train.py checkpoint")
    assert "python train.py" not in help_text and "# beam | greedy | sample" in help_text
    assert all(p.stem in help_text for p in (ROOT / "conf" / "data").glob("*.yaml"))  # every data set it can score on


def test_evaluate_cli_bad_checkpoints_give_one_line(tmp_path, evaluate_py_runs):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    text = tmp_path / "text.ckpt"  # torch's legacy unpickler answers short text with a KeyError
    text.write_text("hello\n")
    bare_vqvae = tmp_path / "bare_vqvae.ckpt"
    torch.save({"state_dict": {}, "supra": {"kind": "supra.vqvae"}}, bare_vqvae)
    unknown = tmp_path / "unknown.ckpt"
    torch.save({"state_dict": {}, "supra": {"kind": "supra.diffusion"}}, unknown)
    cases = {
        "missing.ckpt": "does not exist",
        str(garbage): "is not a readable PyTorch checkpoint",
        str(text): "is not a readable PyTorch checkpoint (not a PyTorch file)",
        str(bare_vqvae): "holds no VQ-VAE config (model.net)",
        str(unknown): "is a supra.diffusion checkpoint, which this version of Supra does not know: give a captioner "
                      "checkpoint, a VQ-VAE checkpoint, an a2a_nano checkpoint",
    }
    # the first through the real command line (one line, no traceback), the others in process (the same
    # SupraUserError the command prints; a subprocess each would only repeat its start-up)
    (_, first_message), *others = cases.items()
    result = evaluate_py_runs["missing ckpt"]
    assert result.returncode != 0 and first_message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for ckpt, message in others:
        with pytest.raises(SupraUserError, match=re.escape(message)):
            evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}"]))


def test_tensorboard_logger_receives_metrics_and_the_sample_grid_at_the_same_step(train_config):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = train_config("logger=tensorboard", "trainer.max_steps=3", "test=false", run="tb")
    train(cfg)
    events = EventAccumulator(str(Path(cfg.paths.output_dir) / "tensorboard")).Reload()
    assert "val/samples" in events.Tags()["images"]
    assert "val/CIDEr" in events.Tags()["scalars"]
    # the validation of step 3: its scalars and pictures side by side (Lightning logs them at 2)
    scalar_steps = [event.step for event in events.Scalars("val/CIDEr")]
    assert [event.step for event in events.Images("val/samples")] == scalar_steps == [2]
    assert [event.step for event in events.Images("val/attention_maps")] == scalar_steps
    assert (Path(cfg.paths.output_dir) / "samples" / "val_step_000003.png").is_file()  # named by global_step


def test_a_tensorboard_run_is_listed_in_the_hparams_tab_with_its_settings_and_final_scores(train_config):
    """Each run (each sweep job) can be compared in TensorBoard's HPARAMS tab by its real scores: the last
    validation's, the best of the checkpoint's monitor and the test's, tied to its flattened config."""
    from tests.test_tensorboard_hparams import hparams_tab

    cfg = train_config("logger=tensorboard", "model.optimizer.lr=0.002", "model.test_metrics=[CIDEr]", run="tb_hparams")
    _, metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    settings, scores = hparams_tab(out / "tensorboard")
    assert settings["model/optimizer/lr"] == 0.002 and settings["data/batch_size"] == 16 and settings["seed"] == 0
    best = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    [checkpoint_state] = [state for key, state in best["callbacks"].items() if "ModelCheckpoint" in key]
    assert scores["hp/best/val/CIDEr"] == pytest.approx(float(checkpoint_state["best_model_score"]))
    assert scores["hp/val/loss"] == pytest.approx(metrics["val/loss"])
    assert scores["hp/test/CIDEr"] == pytest.approx(json.loads((out / "metrics.json").read_text())["CIDEr"])


def test_tensorboard_logger_records_the_config_without_a_placeholder_score(tmp_path):
    """Lightning's default hp_metric=-1 scalar looked like a score of the run in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from supra.runner.components import instantiate_group

    cfg = compose_config("train", tmp_path, ["logger=tensorboard"])
    [tensorboard] = instantiate_group(cfg.logger, "logger")
    tensorboard.log_hyperparams({"seed": 1})
    tensorboard.log_metrics({"train/loss": 2.0}, step=0)
    tensorboard.finalize("success")
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert events.Tags()["scalars"] == ["train/loss"]
    assert "seed: 1" in (tmp_path / "tensorboard" / "hparams.yaml").read_text()


def test_a_test_alone_logs_its_scores_at_the_step_of_its_checkpoint(trained_run, train_config):
    """As the run's own test did, and as its pictures are named: not at epoch 0, step 0."""
    best = trained_run / "checkpoints" / "best.ckpt"
    step = torch.load(best, map_location="cpu", weights_only=True, mmap=True)["global_step"]
    cfg = train_config("train=false", f"ckpt_path={best}", "data.num_test=4", "model.test_metrics=[CIDEr]",
                       "callbacks.attention_maps=null", "callbacks.caption_grid.num_images=1", run="test_alone")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    with open(out / "csv" / "metrics.csv", newline="") as f:
        assert [int(row["step"]) for row in csv.DictReader(f) if row["test/CIDEr"]] == [step]
    assert [p.name for p in (out / "samples").iterdir()] == [f"test_step_{step:06d}.png"]


def test_a_run_without_a_logger_leaves_out_the_learning_rate_monitor_that_needs_one(tmp_path):
    from lightning.pytorch.callbacks import LearningRateMonitor

    from supra.runner.training import without_unloggable

    cfg = compose_config("train", tmp_path / "run", ["logger=none"])
    assert not cfg.get("logger")  # logger=none: no logger at all (logger=null is refused: tested with train.py)
    monitor = LearningRateMonitor()
    assert without_unloggable([monitor], loggers=[]) == []  # Lightning refuses it with no logger (after the data set-up)
    assert without_unloggable([monitor], loggers=[object()]) == [monitor]


LATE_LOGGER_FAILURES = {  # what a logger refused only after the data set-up or training steps, or never (a hang)
    "logger=wandb logger.wandb.init_timeout=0": "logger.wandb.init_timeout=0 must be a number of seconds > 0",
    "logger=wandb logger.wandb.init_timeout=-1": "logger.wandb.init_timeout=-1 must be a number of seconds > 0",
    "logger=wandb logger.wandb.init_timeout=abc": "logger.wandb.init_timeout='abc' must be a number of seconds > 0",
    "logger=wandb logger.wandb.project=my/proj": "logger.wandb.project=my/proj holds /: a W&B project name has at "
                                                 "most 128 characters, none of / \\ # ? % :",
    f"logger=wandb tags=[{'x' * 65}]": f"logger.wandb.tags holds the tag '{'x' * 65}' (65 characters): a W&B tag has "
                                        "1 to 64 characters",
    "logger=wandb tags=['']": "logger.wandb.tags holds the tag '' (0 characters)",
    "+logger.csv.flush_logs_every_n_steps=0": "logger.csv.flush_logs_every_n_steps=0 must be a whole number >= 1",
    "+logger.csv.flush_logs_every_n_steps=abc": "logger.csv.flush_logs_every_n_steps='abc' must be a whole number >= 1",
    "logger=tensorboard logger.tensorboard.save_dir=BLOCKED": "cannot write to logger.tensorboard.save_dir=BLOCKED "
                                                              "(A_FILE is a file, not a folder): choose another "
                                                              "with logger.tensorboard.save_dir=DIR",
}


@pytest.mark.parametrize("case", LATE_LOGGER_FAILURES)
def test_logger_settings_its_logger_would_fail_on_late_are_refused_before_any_work(case, tmp_path):
    from supra.runner.run_checks import check_run_config

    blocked = str(tmp_path / "a_file" / "logs")
    (tmp_path / "a_file").write_text("a file where a folder should go")
    cfg = compose_config("train", tmp_path / "run", case.replace("BLOCKED", blocked).split())
    refusal = LATE_LOGGER_FAILURES[case].replace("BLOCKED", blocked).replace("A_FILE", str(tmp_path / "a_file"))
    with pytest.raises(SupraUserError, match="^" + re.escape(refusal)):
        check_run_config(cfg)


LATE_TRAINER_FAILURES = {  # what Lightning refused only as the Trainer was built or in its loop, or took silently
    # Lightning clips nothing at or below 0: -1 trained as 0 did, recorded (and on the release card) as -1
    "trainer.gradient_clip_val=-1": "trainer.gradient_clip_val=-1 must be a finite number >= 0: the largest gradient "
                                    "norm (or element) kept (0 or null: no clipping)",
    "trainer.gradient_clip_val=abc": "trainer.gradient_clip_val='abc' must be a finite number >= 0",
    "trainer.gradient_clip_algorithm=nrom": "trainer.gradient_clip_algorithm='nrom' must be norm (clip the gradients' "
                                            "global norm) or value (each element)",
    # a ZeroDivisionError in Lightning's loop, after the data set-up
    "trainer.check_val_every_n_epoch=0 trainer.val_check_interval=1.0": "trainer.check_val_every_n_epoch=0 must be a "
                                                                        "whole number >= 1: the epochs between "
                                                                        "validations (or null: every "
                                                                        "trainer.val_check_interval training batches, "
                                                                        "across epochs)",
    "trainer.check_val_every_n_epoch=1.5": "trainer.check_val_every_n_epoch=1.5 must be a whole number >= 1",
    # Lightning logs no training curve at 0 (a negative interval: every step), without a word
    "trainer.log_every_n_steps=0": "trainer.log_every_n_steps=0 must be a whole number >= 1: the optimizer steps "
                                   "between the train/loss and learning-rate points logged (1: every step)",
    "trainer.log_every_n_steps=-1": "trainer.log_every_n_steps=-1 must be a whole number >= 1",
    "trainer.log_every_n_steps=2.5": "trainer.log_every_n_steps=2.5 must be a whole number >= 1",
    "+trainer.limit_train_batches=1.5": "trainer.limit_train_batches=1.5 must be a share of the batches from 0.0 to "
                                        "1.0 (0.5), or a whole number of batches (10)",
    "+trainer.limit_val_batches=-1": "trainer.limit_val_batches=-1 must be a share of the batches from 0.0 to 1.0",
    "+trainer.limit_test_batches=abc": "trainer.limit_test_batches='abc' must be a share of the batches",
    "trainer.val_check_interval=1.5": "trainer.val_check_interval=1.5 must be a whole number of training batches "
                                      "(written without a decimal point: 500) or a share of an epoch from 0.0 to 1.0",
    # a float counts batches only within epochs
    "trainer.val_check_interval=2.0": "trainer.val_check_interval=2.0 must be a whole number of training batches",
    "trainer.val_check_interval=nan trainer.check_val_every_n_epoch=1": "trainer.val_check_interval=nan must be a "
                                                                        "whole number of training batches",
    # Hydra's "Error in call to target" as the Trainer was built, after the data set-up; tpu advised installing torch_xla
    "trainer.devices=0": "trainer.devices=0 must be a whole number >= 1 (processes on the CPU: 1, or 2 and more for "
                         "DDP) or auto (one)",
    "trainer.devices=-1": "trainer.devices=-1 must be a whole number >= 1 (processes on the CPU",
    "trainer.devices=2.5": "trainer.devices=2.5 must be a whole number >= 1 (processes on the CPU",
    "trainer.devices=abc": "trainer.devices='abc' must be a whole number >= 1 (processes on the CPU",
    "trainer.accelerator=mps": "trainer.accelerator=mps is not one of cpu, gpu, cuda, auto: use trainer.accelerator=cpu, "
                               "or gpu where there are CUDA GPUs (auto: a GPU if there is one)",
    "trainer.accelerator=tpu": "trainer.accelerator=tpu is not one of cpu, gpu, cuda, auto",
    "+trainer.num_nodes=0": "trainer.num_nodes=0 must be a whole number >= 1: the machines the run spans",
    # a GPU trainer's 0 GPUs is no count, not a want of 1 GPU
    "trainer=gpu trainer.devices=0": "trainer.devices=0 must be a whole number >= 1 (GPUs per node), -1 or auto "
                                     "(every GPU), or the GPUs' indices ([0,1] or '0,1')",
    "trainer=gpu trainer.devices=[]": "trainer.devices=[] must be a whole number >= 1 (GPUs per node)",
}


@pytest.mark.parametrize("case", LATE_TRAINER_FAILURES)
def test_trainer_settings_lightning_would_fail_on_late_or_ignore_are_refused_before_any_work(case, tmp_path):
    from supra.runner.run_checks import check_run_config

    with pytest.raises(SupraUserError, match="^" + re.escape(LATE_TRAINER_FAILURES[case])):
        check_run_config(compose_config("train", tmp_path / "run", case.split()))


@pytest.mark.parametrize(("batches", "processes", "whose"), [
    (1, 1, "an epoch's 1 training batch"),
    (2, 1, "an epoch's 2 training batches"),
    (1, 2, "the 1 training batch each of the 2 DDP processes has per epoch (each trains its share of the epoch)"),
    (2, 2, "the 2 training batches each of the 2 DDP processes has per epoch (each trains its share of the epoch)"),
])
def test_a_validation_interval_beyond_an_epoch_of_one_batch_says_it_in_the_singular(batches, processes, whose):
    from supra.runner.training import interval_beyond_epoch

    assert interval_beyond_epoch(3, batches, processes, 1) == (
        f"trainer.val_check_interval=3 is more than {whose}: with trainer.check_val_every_n_epoch=1 it counts within "
        f"each epoch; use trainer.val_check_interval=1.0 (each epoch's end) or a number up to {batches}, or "
        "trainer.check_val_every_n_epoch=null (every 3 batches across epochs)")


def test_a_run_shorter_than_the_logging_interval_is_warned_that_it_logs_no_training_curve(tmp_path, caplog):
    """Lightning logs train/loss and the lr every trainer.log_every_n_steps steps only: a 10-step run logged
    neither, without a word. Runs that log some, or log otherwise, are not warned."""
    from supra.runner.run_checks import say_no_training_curve

    silent = [["trainer.max_steps=25"], ["trainer.max_steps=10", "trainer.log_every_n_steps=10"],
              ["trainer.max_steps=-1", "trainer.max_epochs=1"], ["trainer.max_steps=10", "train=false"],
              ["trainer.max_steps=10", "logger=none"], ["trainer.max_steps=10", "debug=fast_dev_run"],
              ["debug=overfit", "trainer.max_steps=8"], []]
    with caplog.at_level(logging.WARNING, logger="supra.runner.run_checks"):
        for overrides in silent:
            say_no_training_curve(compose_config("train", tmp_path / "run", overrides))
        assert not caplog.records
        say_no_training_curve(compose_config("train", tmp_path / "run", ["trainer.max_steps=10"]))
    assert caplog.messages == ["trainer.max_steps=10 is below trainer.log_every_n_steps=25: no train/loss or learning "
                               "rate will be logged; add trainer.log_every_n_steps=10 or less (1: every step)"]


def test_trainer_settings_as_lightning_reads_them_pass(tmp_path):
    from supra.runner.run_checks import check_run_config

    check_run_config(compose_config("train", tmp_path / "run", [
        "trainer.gradient_clip_val=0", "trainer.gradient_clip_algorithm=value", "+trainer.limit_train_batches=0.5",
        "+trainer.limit_val_batches=0", "+trainer.limit_test_batches=2.0", "trainer.check_val_every_n_epoch=2",
        "trainer.val_check_interval=3.0"]))  # within epochs, a whole float counts batches
    check_run_config(compose_config("train", tmp_path / "nulls", [
        "trainer.gradient_clip_val=null", "trainer.gradient_clip_algorithm=null", "trainer.check_val_every_n_epoch=null"]))


@pytest.mark.parametrize("command", ["train", "eval"])
def test_hydra_job_chdir_is_refused_as_relative_paths_are_read_from_where_the_command_starts(command, tmp_path,
                                                                                               monkeypatch):
    """Hydra would move into the run folder first: ckpt_path=ck/best.ckpt, there, "does not exist"."""
    from supra.runner.run_checks import check_run_config
    from supra.utils.cli import JOB_CHDIR

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "best.ckpt").write_bytes(b"")
    given = ["train=false", "ckpt_path=ck/best.ckpt"] if command == "train" else ["ckpt=ck/best.ckpt"]
    cfg = compose_config(command, tmp_path / "run", [*given, "hydra.job.chdir=true"])
    with pytest.raises(SupraUserError) as refused:
        check_run_config(cfg) if command == "train" else evaluate(cfg)
    assert str(refused.value) == JOB_CHDIR == (
        "hydra.job.chdir=true: the commands read every relative path given (ckpt_path=, data.root=, ...) from the "
        "folder they are started in, not from the run folder Hydra would move into (their outputs go there anyway): "
        "leave it out")


def test_wandb_giving_up_its_wait_is_answered_as_no_answer_from_its_server(monkeypatch, tmp_path, caplog):
    """wandb's TimeoutError (not a CommError) was a traceback, and its process then kept the run from ending."""
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    init = wandb.init

    def timing_out(**settings):
        if settings.get("mode") != "offline":
            raise TimeoutError("timed out")
        return init(**settings)

    monkeypatch.setattr(wandb, "init", timing_out)
    wandb.finish()
    with caplog.at_level(logging.WARNING, logger="supra.loggers.wandb_logger"):
        logger = build_wandb_logger(str(tmp_path / "run"), init_timeout=5)
    assert caplog.messages[0].startswith("W&B offline: no answer from the W&B server within 5 s (timed out); ")
    assert (tmp_path / "run" / "wandb_run_id.txt").read_text().strip() == logger._wandb_init["id"]  # the offline run's
    with pytest.raises(SupraUserError, match=r"^logger.wandb.offline=false: no answer from the W&B server within 5 s"):
        build_wandb_logger(str(tmp_path / "forced"), offline=False, init_timeout=5)
    # refused before its work: the folder is free for the corrected command
    assert finished_run_file(tmp_path / "forced") is None


def test_wandb_runs_offline_without_an_account_and_a_resumed_run_is_a_new_wandb_run_naming_the_first(
        train_config, monkeypatch, tmp_path, capfd, caplog):
    """wandb cannot continue a run offline (its history starts at step 0 again; synced under the first run's
    id it would replace that run's history): the resumed run gets an id of its own and notes the first's."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, so not logged in
    first = train_config("logger=wandb", "trainer.max_steps=3", "test=false", run="wandb1")
    with caplog.at_level(logging.INFO, logger="supra.loggers.wandb_logger"):
        train(first)
    assert "anonymous setting" not in capfd.readouterr().err  # Lightning's unasked anonymous=None, not passed on
    run_dir = Path(first.paths.output_dir)
    run_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    offline_runs = list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))
    assert offline_runs
    said = "W&B offline (not logged in: `wandb login` to go online): upload the run later with `wandb sync "
    assert said + f"{run_dir / 'wandb' / f'offline-run-*-{run_id}'}`" in caplog.messages  # the glob finds the run
    resumed = train_config("logger=wandb", "trainer.max_steps=4", "test=false",
                           f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", run="wandb2")
    with caplog.at_level(logging.INFO, logger="supra.loggers.wandb_logger"):
        train(resumed)
    resumed_dir = Path(resumed.paths.output_dir)
    resumed_id = (resumed_dir / "wandb_run_id.txt").read_text().strip()
    assert resumed_id != run_id and list((resumed_dir / "wandb").glob(f"offline-run-*-{resumed_id}"))
    assert ("W&B offline: a W&B run cannot be continued offline (syncing both under one id would replace the first's "
            f"history): this resumed run is a new W&B run that notes it continues {run_id}") in caplog.messages
    # each run says why it is offline: the first did not leave WANDB_MODE set for the second to take as the user's
    assert [m.partition(":")[0] for m in caplog.messages if m.startswith("W&B offline (")] == [
        "W&B offline (not logged in", "W&B offline (not logged in"]


def test_each_run_of_one_process_logs_to_its_own_wandb_run(monkeypatch, tmp_path):
    """A sweep's jobs share one process: Lightning takes over a W&B run still open, so every job logged into the
    first job's run (its wandb_run_id.txt naming a run that was never written)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    for job in ("0", "1"):
        logger = build_wandb_logger(str(tmp_path / job))
        logger.log_metrics({"train/loss": 1.0}, step=0)
        assert logger.experiment.id == (tmp_path / job / "wandb_run_id.txt").read_text().strip()
        assert list((tmp_path / job / "wandb").glob(f"offline-run-*-{logger.experiment.id}"))
    wandb.finish()


def test_wandb_sync_hint_can_be_pasted_into_a_shell_when_the_run_folder_holds_a_space(monkeypatch, tmp_path, caplog):
    """`wandb sync <dir>/offline-run-*-ID` unquoted: a space in hydra.run.dir split the pasted path in two."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="supra.loggers.wandb_logger"):
        logger = build_wandb_logger(str(tmp_path / "many grid" / "0"))
    run_id = logger.experiment.id
    [said] = [m for m in caplog.messages if m.startswith("W&B offline (")]
    command = said.partition("`")[2].rstrip("`")
    assert command == f"wandb sync '{tmp_path / 'many grid' / '0' / 'wandb'}/'offline-run-*-{run_id}"
    # as the shell reads it: one path, whose glob finds the offline run
    program, verb, path = shlex.split(command)
    assert [Path(found).name for found in glob.glob(path)] == [
        folder.name for folder in (tmp_path / "many grid" / "0" / "wandb").glob(f"offline-run-*-{run_id}")]
    wandb.finish()


def refused_by_the_run_check_and_the_logger(said: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`said`, one line, from the checks before any work and from the logger itself, which then logs nothing and
    writes no folder (no "upload the run later": there is no run)."""
    with pytest.raises(SupraUserError) as refused:
        check_run_config(compose_config("train", tmp_path / "run", ["logger=wandb"]))
    assert str(refused.value) == said
    with caplog.at_level(logging.INFO, logger="supra.loggers.wandb_logger"), pytest.raises(SupraUserError) as refused:
        build_wandb_logger(str(tmp_path / "direct"))
    assert str(refused.value) == said
    assert not caplog.messages and not (tmp_path / "direct").exists()


def test_a_mistyped_wandb_mode_is_refused_in_one_line_before_any_work(monkeypatch, tmp_path, caplog):
    """WANDB_MODE=offlien was wandb's multi-line validation error, after a line telling to upload the run later."""
    monkeypatch.setenv("WANDB_MODE", "offlien")
    monkeypatch.setenv("HOME", str(tmp_path))
    said = ("WANDB_MODE=offlien is not a W&B mode: set it to one of online, offline, disabled, dryrun, run, shared, "
            "or unset it (the run then logs online when logged in, else offline)")
    refused_by_the_run_check_and_the_logger(said, tmp_path, caplog)


def test_wandb_mode_online_without_a_login_is_refused_in_one_line_as_offline_false_is(monkeypatch, tmp_path, caplog):
    """WANDB_MODE=online without a login went offline as if unset, where logger.wandb.offline=false stops."""
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, so not logged in
    said = ("WANDB_MODE=online needs a W&B login: run `wandb login` or set WANDB_API_KEY (or unset WANDB_MODE: the "
            "run then logs offline)")
    refused_by_the_run_check_and_the_logger(said, tmp_path, caplog)
    # logger.wandb.offline=true, asked for in the config, still logs offline
    logger = build_wandb_logger(str(tmp_path / "offline"), offline=True)
    assert list((tmp_path / "offline" / "wandb").glob(f"offline-run-*-{logger.experiment.id}"))
    wandb.finish()


def test_wandb_tags_hydra_reads_as_numbers_or_booleans_are_given_to_wandb_as_typed(monkeypatch, tmp_path):
    """tags=[exp,2024,true]: Hydra gives the number 2024 and True, which wandb.init refused in a traceback."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    logger = build_wandb_logger(str(tmp_path / "run"), tags=OmegaConf.create(["exp", 2024, True, 1.5]))
    assert logger.experiment.tags == ("exp", "2024", "true", "1.5")
    wandb.finish()


def test_a_wandb_run_that_wandb_refuses_to_start_offline_leaves_its_folder_free(monkeypatch, tmp_path):
    """wandb.init, run as Lightning first logs, failed after wandb_run_id.txt marked the folder as a finished run's."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))

    def refusing(**settings):
        raise ValueError("refused")

    monkeypatch.setattr(wandb, "init", refusing)
    with pytest.raises(ValueError, match="refused"):
        build_wandb_logger(str(tmp_path / "run"))
    assert finished_run_file(tmp_path / "run") is None and not list(tmp_path.glob("run/wandb/*run-*"))


def test_wandb_mode_disabled_writes_no_wandb_run(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")  # Lightning's offline mode would set it to dryrun: a run after all
    wandb.finish()  # Lightning would take over a run another test left open in this process, writing nothing
    logger = build_wandb_logger(str(tmp_path))
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.finalize("success")
    assert not list(tmp_path.glob("wandb/*run-*")) and not (tmp_path / "wandb_run_id.txt").exists()


def test_wandb_logged_in_without_network_logs_offline_within_its_init_timeout_and_says_how_to_sync(
        monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)  # logged in...
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # ...to a server that never answers, network or not
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    wandb.finish()  # a run another test left open would be taken over
    wandb.teardown()  # wandb reads its settings from the environment once per process: afresh here
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="supra.loggers.wandb_logger"):
        logger = build_wandb_logger(str(tmp_path / "run"), init_timeout=1)
    assert time.monotonic() - started < 20  # not wandb's 90 s, then a CommError that ends the run
    run_id = (tmp_path / "run" / "wandb_run_id.txt").read_text().strip()
    [said] = [r.getMessage() for r in caplog.records if r.name == "supra.loggers.wandb_logger"]  # wandb's own: its log
    assert said.startswith("W&B offline: no answer from the W&B server within 1 s (Failed to get resume status")
    assert said.endswith(f"upload the run later with `wandb sync {tmp_path / 'run' / 'wandb' / f'offline-run-*-{run_id}'}`")
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.finalize("success")
    wandb.finish()  # else the next logger takes over this run
    wandb.teardown()
    assert [p.name.split("-")[0] for p in (tmp_path / "run" / "wandb").glob(f"*run-*-{run_id}")] == ["offline"]
    # forced online, the same is one line (and no login at all too, where wandb would raise its UsageError)
    # the offline run left WANDB_MODE as it was (Lightning's offline logger sets it to dryrun for the whole process,
    # which a sweep's next job took for the user's choice): each run decides alone
    assert "WANDB_MODE" not in os.environ
    with pytest.raises(SupraUserError, match=r"^logger.wandb.offline=false: no answer from the W&B server within 1 s "):
        build_wandb_logger(str(tmp_path / "forced"), offline=False, init_timeout=1)
    assert finished_run_file(tmp_path / "forced") is None  # refused before its work: free for the corrected command
    # a key cut short is a refused login (wandb's AuthenticationError is a CommError too), not "no answer"
    monkeypatch.setenv("WANDB_API_KEY", "abc")
    wandb.teardown()
    with pytest.raises(SupraUserError, match=r"^W&B refused the login \(WANDB_API_KEY invalid: API key must have 40\+ "
                                             r"characters, has 3.\): run `wandb login` again or fix WANDB_API_KEY"):
        build_wandb_logger(str(tmp_path / "bad_key"), init_timeout=1)
    assert finished_run_file(tmp_path / "bad_key") is None
    monkeypatch.delenv("WANDB_API_KEY")
    with pytest.raises(SupraUserError, match=r"^logger.wandb.offline=false needs a W&B login: run `wandb login`"):
        build_wandb_logger(str(tmp_path / "no_login"), offline=False)


def test_a_finished_runs_folder_is_refused_before_anything_is_written_into_it(trained_run, train_py_runs):
    refused = train_py_runs["finished run"]
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (f"error: hydra.run.dir={trained_run} already holds a finished run (checkpoints/best.ckpt): choose another "
            "with hydra.run.dir=DIR, or leave it out for a new dated folder") in refused.stderr
    assert not (trained_run / ".hydra").exists()  # Hydra saves the job's config before the job runs: not here


def test_unwritable_output_directory_gives_one_line(train_py_runs, evaluate_py_runs):
    for case, option in (("unwritable", "hydra.run.dir"), ("unwritable logs", "paths.log_dir"),
                         ("unwritable sweep", "hydra.sweep.dir")):
        unwritable = train_py_runs[case]
        assert unwritable.returncode == 2 and "Traceback" not in unwritable.stderr
        assert f"cannot write to {option}=" in unwritable.stderr and f"choose another with {option}=DIR" in unwritable.stderr
    result = evaluate_py_runs["unwritable"]
    assert result.returncode == 2
    assert "cannot write to hydra.run.dir=" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.ddp
def test_ddp_sim_fits_then_tests_into_one_run_directory_scoring_each_image_once(train_config, tmp_path, monkeypatch,
                                                                                capfd):
    cfg = train_config("trainer=ddp_sim", "trainer.max_steps=3", run="ddp_fit")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the spawned ranks' temp folder
    _, metrics = train(cfg)
    console = capfd.readouterr()  # the spawned ranks print to this process's stdout and stderr
    assert list((tmp_path / "tmp").iterdir()) == []  # rank 0's last weights handed back, and their folder removed
    out = Path(cfg.paths.output_dir)
    assert {"val/CIDEr", "test/CIDEr"} <= set(metrics)
    header = (out / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/CIDEr", "test/CIDEr"} <= set(header)
    # the test, in processes of its own too, logs at the step the fit ended at, as in one process (not at 0)
    with open(out / "csv" / "metrics.csv", newline="") as f:
        assert [(row["epoch"], row["step"]) for row in csv.DictReader(f) if row["test/CIDEr"]] == [("1", "3")]
    assert (out / "checkpoints" / "last.ckpt").is_file()
    # the ranks log as the run does: what the data holds, from rank 0 in the run's log, from rank 1 in its own
    for log in ("train.log", "train_ddp_process_1.log"):
        assert "[supra.data.captioning.shapes][INFO] - shapes train: 96 images" in (out / log).read_text(), log
    # and the console says it once, for the fit and once for the test (rank 1's INFO lines are its log's alone)
    assert console.out.count("shapes train: 96 images") == 1 and console.out.count("shapes test: 15 images") == 1
    # rank 0 alone trains the tokenizer; rank 1 waits for it (it said "trained", or "reusing" it, itself)
    assert "tokenizer: trained" in (out / "train.log").read_text()
    assert "tokenizer:" not in (out / "train_ddp_process_1.log").read_text()
    # each rank's batches of the val and test splits are exact: Lightning's warning of a length that could be
    # inaccurate (an IterableDataset each worker serves whole) is not printed
    assert "could be inaccurate" not in console.err
    # the fit and the test ran in processes of their own: the run's time accounting holds both
    accounting = json.loads((out / "time_accounting.json").read_text())
    assert accounting["after"] == "test" and accounting["counts"]["train_steps"] == 3
    assert accounting["counts"]["test_steps"] > 0 and accounting["seconds"]["train_steps"] > 0
    # The same weights tested on one process give the scores of the two ranks (15 images: the sampler pads
    # one, which must not be scored twice).
    single = train_config("train=false", f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", run="single")
    train(single)
    two = json.loads((out / "metrics.json").read_text())
    one = json.loads((Path(single.paths.output_dir) / "metrics.json").read_text())
    assert one["n_images"] == two["n_images"] == 15
    for key in CAPTION_KEYS | {"attr_acc"}:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key


def test_evaluate_builds_a_task_with_the_settings_its_run_set_and_the_tasks_defaults_for_the_rest():
    """The task's defaults (its metrics, loss) are its own only copy: evaluate.py passes the run's settings it
    finds and leaves a null or empty one to the task."""
    run_model = {"code_softmax": False, "test_metrics": None, "recon_loss": "l1", "lr": 0.1}
    assert run_settings(run_model, ("code_softmax", "test_metrics", "recon_loss")) == {"code_softmax": False,
                                                                                       "recon_loss": "l1"}
    assert run_settings({"test_metrics": []}, ("test_metrics",)) == {}
    assert run_settings({"test_metrics": ["CIDEr"]}, ("test_metrics",)) == {"test_metrics": ["CIDEr"]}
