"""Checkpoints a run can always go on from: a failed write keeps the earlier file whole, and a resumed run
goes on where its checkpoint stopped, in its logs too."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.data import _update_dataloader
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, TensorDataset

from supra.callbacks.checkpoint import AtomicCheckpointIO, LastStepModelCheckpoint
from supra.data.base import SplitDataModule
from supra.data.epoch_loader import EpochLoader, EpochProgress, trainer_progress
from supra.runner.evaluation import evaluate, interrupted_evaluation
from supra.runner.resume import EpochWhereStopped, RestOfEpochAtBatchSize, stopped_within_epoch
from supra.runner.spawned_ranks import SpawnedRanks
from supra.runner.training import interrupted_run, interrupted_test, train
from supra.tasks.captioning import CaptioningTask
from supra.utils.cli import SIGINT_EXIT, exit_on_ctrl_c
from supra.utils.errors import SupraUserError
from supra.utils.private_apis import logging_step
from supra.utils.run_folders import KeepFinishedRuns
from supra.utils.state_dicts import same_state
from tests.conftest import ROOT, TINY_RUN, compose_config, file_size_limit
from tests.test_run_folders import hydra_config


def test_a_checkpoint_write_that_fails_half_way_leaves_the_earlier_last_ckpt_whole(train_config, monkeypatch):
    cfg = train_config("trainer.max_steps=4", "trainer.val_check_interval=2", "test=false")
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    real_save, before = torch.save, {}

    def disk_fills_at_step_4(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == 4:  # the step-2 checkpoints are written by now
            before["last"] = (checkpoints / "last.ckpt").read_bytes()
            if isinstance(f, str | Path):
                Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
            else:
                f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_at_step_4)
    with pytest.raises(SupraUserError, match=rf"could not write the checkpoint \w+\.ckpt into {checkpoints} \(No space "
                                             r"left on device\): any earlier \w+\.ckpt there is intact"):
        train(cfg)
    monkeypatch.undo()
    assert (checkpoints / "last.ckpt").read_bytes() == before["last"]
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 2  # resumable as it was
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]  # no half-written temp file


def test_torch_cut_short_by_a_full_disk_is_the_same_one_line_and_other_torch_errors_stay_as_they_are(tmp_path,
                                                                                                      monkeypatch):
    """torch's own zip writer reports a full disk (here a file size limit) as a RuntimeError ("[enforce fail at
    inline_container.cc] unexpected pos ..."), not an OSError."""
    last = tmp_path / "last.ckpt"
    last.write_bytes(b"the earlier checkpoint")
    with file_size_limit(64 * 1024), pytest.raises(SupraUserError, match=(
            rf"could not write the checkpoint last\.ckpt into {tmp_path} \(the write was cut short: the disk full, or "
            r"a file size limit\): any earlier last\.ckpt there is intact; free space there .* ckpt_path=")):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(100_000)}}, last)
    assert last.read_bytes() == b"the earlier checkpoint" and list(tmp_path.iterdir()) == [last]

    def bug(*args, **kwargs):
        raise RuntimeError("a bug, no full disk")

    monkeypatch.setattr(torch, "save", bug)
    with pytest.raises(RuntimeError, match="^a bug, no full disk$"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, last)


def csv_rows(run: Path, column: str) -> list[tuple[int, float]]:
    """(step, value) of each row of the run's metrics.csv that holds `column`."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [(int(row["step"]), float(row[column])) for row in csv.DictReader(f) if row.get(column)]


def wait_for_training_step(run: Path, step: int, process: subprocess.Popen, timeout: float = 240) -> None:
    """Until the run's metrics.csv holds the training row of `step` (written as the batch ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if any(logged >= step for logged, _ in csv_rows(run, "train/loss")):
                return
        except (OSError, ValueError, KeyError):  # not there yet, or caught half written
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"no training row of step {step}: {process.communicate()[1][-2000:]}")


# Python running the script after it, with Ctrl-C as a command typed at a terminal gets it: a test worker may run
# with SIGINT ignored (pytest-xdist's do), which its children inherit, and a run started so keeps it ignored, as
# a script's background job does. (Not preexec_fn: unsafe in a process with threads.)
CTRL_C_AS_AT_A_TERMINAL = [sys.executable, "-c", "import runpy, signal, sys; "
                           "signal.signal(signal.SIGINT, signal.default_int_handler); sys.argv = sys.argv[1:]; "
                           "runpy.run_path(sys.argv[0], run_name='__main__')"]


def test_ctrl_c_stops_training_at_the_end_of_the_batch_with_a_last_ckpt_to_resume_from(train_config, tmp_path, capsys):
    run = tmp_path / "interrupted"
    process = subprocess.Popen(
        [*CTRL_C_AS_AT_A_TERMINAL, str(ROOT / "train.py"), *TINY_RUN, "trainer.max_steps=1000",
         "trainer.val_check_interval=10", "+logger.csv.flush_logs_every_n_steps=1", f"hydra.run.dir={run}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    wait_for_training_step(run, 11, process)  # past the validation at step 10, which wrote last.ckpt
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == SIGINT_EXIT  # as every command's Ctrl-C: not a finished run (and not tested)
    last = run / "checkpoints" / "last.ckpt"
    step = torch.load(last, weights_only=True)["global_step"]
    assert step > 10  # the steps since the validation are kept
    assert csv_rows(run, "train/loss")[-1][0] == step - 1  # the last batch trained is in last.ckpt
    assert stderr.endswith(f"\ninterrupted at step {step}: resume with ckpt_path={last}\n")  # one line, no traceback
    assert "Traceback" not in stderr
    assert not (run / "metrics.json").exists()

    # its folder is refused as an interrupted run's, not a finished one's
    with pytest.raises(SystemExit):
        KeepFinishedRuns().on_run_start(hydra_config(str(run)))
    assert (f"error: hydra.run.dir={run} already holds an interrupted run (checkpoints/last.ckpt at step {step} of "
            f"1000): resume it with ckpt_path={last} (a resumed run writes a new folder)") in capsys.readouterr().err

    resumed = train_config(f"ckpt_path={last}", f"trainer.max_steps={step + 2}", "trainer.val_check_interval=10",
                           "test=false", run="resumed")
    train(resumed)
    assert [logged for logged, _ in csv_rows(Path(resumed.paths.output_dir), "train/loss")] == [step, step + 1]
    assert torch.load(Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == step + 2


class SigtermInFit(L.Callback):
    """A SIGTERM to this process as the fit's second step ends, as `timeout` or a cluster's preemption sends one."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_stops_a_fit_at_the_batch_end_with_last_ckpt_as_ctrl_c_does_and_exit_status_130(train_config,
                                                                                                  capsys, caplog):
    """As train.py runs it (exit_on_ctrl_c, which takes SIGTERM as Ctrl-C, as SLURM sends at a preemption or time
    limit): within the fit Lightning's own handler stops it at the batch's end and last.ckpt is written at the step reached;
    the run ends with Ctrl-C's one line and status, not a failure's 1, nor cut short mid-batch with nothing saved."""
    cfg = train_config("callbacks.attention_maps=null", "callbacks.caption_grid=null",
                       "+callbacks.sigterm._target_=tests.test_checkpoints.SigtermInFit")
    caplog.set_level(logging.INFO)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a process started from a shell has it
    try:
        with pytest.raises(SystemExit) as ended, exit_on_ctrl_c(lambda: interrupted_run(cfg)):
            train(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert ended.value.code == SIGINT_EXIT
    assert torch.load(last, weights_only=True)["global_step"] == 2
    said = capsys.readouterr().err
    assert said.endswith(f"interrupted at step 2: resume with ckpt_path={last}\n") and said.count("interrupted") == 1
    assert "Received SIGTERM" not in caplog.text  # Lightning's line before ours, which says it
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()  # not tested


class SigtermInTest(L.Callback):
    """A SIGTERM to this process as the test's first batch ends, as `timeout` or a cluster sends one."""

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_during_the_test_ends_the_run_in_one_line_with_exit_status_130(train_config, capsys):
    """As a fit's does (Lightning stops the test at the batch's end), not with the traceback of whatever it cut
    short; the line names the checkpoint to score again where there is one."""
    cfg = train_config("train=false", "model.test_metrics=[Bleu]", "callbacks.attention_maps=null",
                       "callbacks.caption_grid=null", "+callbacks.sigterm._target_=tests.test_checkpoints.SigtermInTest")
    with pytest.raises(SystemExit) as ended:
        train(cfg)
    assert ended.value.code == SIGINT_EXIT and not isinstance(ended.value, SIGTERMException)
    assert capsys.readouterr().err.endswith("interrupted during the test: no test scores\n")
    assert interrupted_test("run/checkpoints/best.ckpt") == ("interrupted during the test: no test scores: score it "
                                                             "with evaluate.py ckpt=run/checkpoints/best.ckpt")


def test_a_sigterm_while_evaluate_scores_ends_it_with_ctrl_c_s_one_line_and_exit_status_130(trained_run, tmp_path,
                                                                                            monkeypatch, capsys):
    """Not the error of whatever the signal cut short (the scorer's Java process, said to lack memory), and not a
    line of its own: as evaluate.py runs it (exit_on_ctrl_c), Ctrl-C's, naming the folder and the checkpoint."""
    real_step = CaptioningTask.test_step

    def sigterm_after_first_batch(self, batch, batch_idx):
        real_step(self, batch, batch_idx)
        if batch_idx == 0:  # as `timeout` or a cluster sends one
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(CaptioningTask, "test_step", sigterm_after_first_batch)
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "num_grid_images=0"])
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a process started from a shell has it
    try:
        with pytest.raises(SystemExit) as ended, exit_on_ctrl_c(lambda: interrupted_evaluation(cfg, time.time())):
            evaluate(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ended.value.code == SIGINT_EXIT
    assert capsys.readouterr().err.endswith(f"interrupted: no scores written into {tmp_path / 'eval'}: score it "
                                            f"again with python evaluate.py ckpt={ckpt}\n")
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_a_sigterm_while_evaluate_draws_its_pictures_stops_them_at_once_keeping_the_scores(trained_run, tmp_path,
                                                                                            monkeypatch, capsys):
    """Lightning's handler only marked the trainer, and no loop reads that after the test's batches: the pictures
    (a minute of generation for the a2a model) went on to the end and evaluate.py exited 0. Now the drawing stops,
    and the run ends as a SIGTERM ends it elsewhere: Ctrl-C's line and status 130, the scores written kept."""
    from supra.callbacks.caption_grid import CaptionGridCallback

    def slow_drawing(self, trainer, pl_module, split, step):
        os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` or a cluster sends one, while the pictures are drawn
        time.sleep(60)  # drawing on, as a2a generation does
        raise AssertionError("drawn on past the SIGTERM")

    monkeypatch.setattr(CaptionGridCallback, "draw", slow_drawing)
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}"])
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a process started from a shell has it
    started = time.time()
    try:
        with pytest.raises(SystemExit) as ended, exit_on_ctrl_c(lambda: interrupted_evaluation(cfg, started)):
            evaluate(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ended.value.code == SIGINT_EXIT and time.time() - started < 50
    scores = tmp_path / "eval" / "metrics.json"
    assert capsys.readouterr().err.endswith(f"interrupted: the scores were written before it stopped: {scores}\n")
    assert scores.is_file() and not list((tmp_path / "eval").glob("*.png"))


def test_evaluate_stopped_after_writing_its_scores_says_they_were_written(tmp_path):
    """A SIGTERM or Ctrl-C in the moment between metrics.json and the command's end: not "no scores written"; but
    an earlier evaluate.py's metrics.json in the same folder is not this run's scores."""
    cfg = compose_config("eval", tmp_path / "eval", ["ckpt=run.ckpt"])
    (tmp_path / "eval").mkdir()
    scores = tmp_path / "eval" / "metrics.json"
    scores.write_text("{}")
    written = scores.stat().st_mtime
    assert interrupted_evaluation(cfg, started=written - 5) == f"the scores were written before it stopped: {scores}"
    assert interrupted_evaluation(cfg, started=written + 60).startswith(f"no scores written into {tmp_path / 'eval'}")


def test_a_run_resumed_from_its_last_checkpoint_logs_its_next_batch_at_the_step_it_reached(train_config):
    # a run that keeps last.ckpt alone, ending on a validation: Lightning wrote no last.ckpt at that
    # validation (it writes one only beside a new best), so the one written at train end is resumed
    first = train_config("trainer.max_steps=4", "trainer.val_check_interval=2", "test=false",
                         "+callbacks.model_checkpoint.save_top_k=0", run="first")
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4
    resumed = train_config(f"ckpt_path={last}", "trainer.max_steps=6", "trainer.val_check_interval=2", "test=false",
                           "+callbacks.model_checkpoint.save_top_k=0", run="resumed")
    train(resumed)
    # the CSV step of a batch is the optimizer steps before it, in the first run as in the resumed one
    assert [step for step, _ in csv_rows(Path(first.paths.output_dir), "train/loss")] == [0, 1, 2, 3]
    assert [step for step, _ in csv_rows(Path(resumed.paths.output_dir), "train/loss")] == [4, 5]
    assert [step for step, _ in csv_rows(Path(resumed.paths.output_dir), "val/CIDEr")] == [5]  # as the first run's 1, 3


def test_a_resumed_runs_test_of_the_best_carried_over_says_nothing_of_lost_checkpoint_state(trained_run, train_config):
    """Lightning's "dirpath has changed ... won't be reloaded" read as if the carried best were lost: the test
    restores the tested checkpoint for its weights alone."""
    last = trained_run / "checkpoints" / "last.ckpt"
    cfg = train_config(f"ckpt_path={last}", "trainer.max_steps=31", "trainer.val_check_interval=15",
                       "model.test_metrics=[Bleu]", "callbacks.attention_maps=null", "callbacks.caption_grid=null",
                       run="resumed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg)
    assert [str(w.message) for w in caught if "dirpath has changed" in str(w.message)] == []
    best = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"  # no validation since: the carried best, tested
    assert best.read_bytes() == (trained_run / "checkpoints" / "best.ckpt").read_bytes()
    assert (Path(cfg.paths.output_dir) / "metrics.json").is_file()


def test_resuming_a_checkpoint_written_before_the_first_validation_says_nothing_of_lost_checkpoint_state(tmp_path):
    """No best existed yet to lose, and a resumed run writes a new folder as documented: Lightning's "dirpath has
    changed ... won't be reloaded" was said on every such resume."""
    def fit(max_steps: int, folder: str, ckpt_path: Path | None = None) -> None:
        trainer = L.Trainer(max_steps=max_steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, default_root_dir=tmp_path, callbacks=[LastStepModelCheckpoint(
                                dirpath=tmp_path / folder, monitor="val/loss", save_last=True)])
        trainer.fit(PressesCtrlCInBatch(None), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2),
                    ckpt_path=ckpt_path)

    fit(2, "first")  # stopped before any validation: no best score in its last.ckpt
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(4, "resumed", ckpt_path=tmp_path / "first" / "last.ckpt")
    assert [str(w.message) for w in caught if "dirpath has changed" in str(w.message)] == []
    resumed = torch.load(tmp_path / "resumed" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 4
    (state,) = [v for k, v in resumed["callbacks"].items() if k.startswith(LastStepModelCheckpoint.__name__)]
    assert state["dirpath"] == str(tmp_path / "resumed") and state["best_model_score"] is None
    assert (tmp_path / "first" / "last.ckpt").is_file()  # the earlier run's kept


def test_a_run_validated_once_per_epoch_keeps_its_best_checkpoint_and_its_last(train_config):
    # as the Flickr8k recipe and the Optuna trials validate: at each epoch's end, where Lightning saves the best
    cfg = train_config("data.num_train=32", "trainer.max_steps=-1", "trainer.max_epochs=3", "trainer.val_check_interval=1.0",
                       "trainer.check_val_every_n_epoch=1", "test=false", run="epochs")
    train(cfg)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    state = next(v for k, v in last["callbacks"].items() if k.startswith(LastStepModelCheckpoint.__name__))
    assert state["best_model_path"] == str(checkpoints / "best.ckpt")
    assert (checkpoints / "best.ckpt").is_file()


class PressesCtrlC(L.LightningModule):
    """A model whose user presses Ctrl-C `presses` times during its second training batch."""

    def __init__(self, presses: int) -> None:
        super().__init__()
        self.layer, self.presses = torch.nn.Linear(2, 1), presses

    def training_step(self, batch, batch_idx):
        if self.global_step == 1:
            for _ in range(self.presses):
                handler = signal.getsignal(signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # each press felt before the next: two pending signals are delivered as one
                    if signal.getsignal(signal.SIGINT) is not handler:
                        break
                    time.sleep(0.001)
        return self.layer(batch[0]).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture
def python_ctrl_c():
    """Ctrl-C as a fresh Python process has it (a KeyboardInterrupt), whatever a library an earlier test loaded
    put in its place in this process; put back afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield signal.default_int_handler
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("presses", [1, 2])
def test_one_ctrl_c_stops_at_the_batch_end_with_last_ckpt_and_a_second_stops_at_once(presses, tmp_path, capsys,
                                                                                    python_ctrl_c):
    ctrl_c = signal.getsignal(signal.SIGINT)
    trainer = L.Trainer(max_steps=5, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=tmp_path,
                        callbacks=[LastStepModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)])
    with pytest.raises(SystemExit) as stopped:
        trainer.fit(PressesCtrlC(presses), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
    if presses == 1:  # the batch finished, its step written
        assert isinstance(stopped.value, SIGTERMException) and trainer.global_step == 2
        assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 2
        assert capsys.readouterr().err == f"interrupted at step 2: resume with ckpt_path={tmp_path / 'last.ckpt'}\n"
    else:  # Lightning's KeyboardInterrupt: ended at once, nothing written
        assert stopped.value.code == 1 and not isinstance(stopped.value, SIGTERMException)
        assert not (tmp_path / "last.ckpt").exists()
    assert signal.getsignal(signal.SIGINT) is ctrl_c  # Ctrl-C as it was, after the fit


def test_a_ctrl_c_in_a_sweeps_job_says_how_the_sweep_goes_on_not_ckpt_path(tmp_path, capsys, python_ctrl_c):
    """Under -m, `resume with ckpt_path=...` would start every job of the sweep from this job's checkpoint."""
    checkpoint = LastStepModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    checkpoint.resume_advice = "job 0 of the sweep in DIR stopped; run the sweep again with a new hydra.sweep.dir"
    trainer = L.Trainer(max_steps=5, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, default_root_dir=tmp_path, callbacks=[checkpoint])
    with pytest.raises(SIGTERMException):
        trainer.fit(PressesCtrlC(1), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
    assert capsys.readouterr().err == (
        "interrupted at step 2: job 0 of the sweep in DIR stopped; run the sweep again with a new hydra.sweep.dir\n")
    assert (tmp_path / "last.ckpt").exists()  # written all the same: the step reached


class PressesCtrlCInTest(PressesCtrlC):
    """A model whose user presses Ctrl-C during its first test batch."""

    def test_step(self, batch, batch_idx):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the KeyboardInterrupt arrives here


def test_ctrl_c_that_lightning_ends_with_its_own_exit_1_is_one_line_and_exit_status_130(tmp_path, capsys,
                                                                                        python_ctrl_c):
    """Lightning ends a test (or a fit Ctrl-C stopped at once) with sys.exit(1) after its graceful shutdown:
    train.py and evaluate.py exit as every command does on Ctrl-C."""
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(SystemExit) as stopped, exit_on_ctrl_c(lambda: "no scores written"):
        trainer.test(PressesCtrlCInTest(0), DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    assert stopped.value.code == SIGINT_EXIT
    assert capsys.readouterr().err == "interrupted: no scores written\n"


def test_exits_of_other_causes_pass_through_the_ctrl_c_handler():
    with pytest.raises(SystemExit) as stopped, exit_on_ctrl_c(lambda: "never said"):
        raise SystemExit(2)
    assert stopped.value.code == 2


class PressesCtrlCInBatch(L.LightningModule):
    """A model whose user presses Ctrl-C once, during its `batch`-th training batch (from 1; None: never)."""

    def __init__(self, batch: int | None) -> None:
        super().__init__()
        self.layer, self.press_in, self.trained = torch.nn.Linear(2, 1), batch, 0

    def training_step(self, batch, batch_idx):
        self.trained += 1
        if self.trained == self.press_in:
            os.kill(os.getpid(), signal.SIGINT)
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("limit", ["trainer.max_steps=4", "trainer.max_epochs=1"])
def test_a_ctrl_c_at_the_fits_last_step_says_its_training_is_done_not_to_resume_it(limit, tmp_path, capsys,
                                                                                  python_ctrl_c):
    """A resume from that last.ckpt would be refused as training nothing more: the line says the fit is done and
    how to score it, or to raise the limit it reached to train on."""
    steps, epochs = (4, -1) if limit == "trainer.max_steps=4" else (-1, 1)
    trainer = L.Trainer(max_steps=steps, max_epochs=epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
                        callbacks=[LastStepModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)])
    with pytest.raises(SIGTERMException):  # pressed in the 4th and last batch (of the one epoch's 4)
        trainer.fit(PressesCtrlCInBatch(4), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
    last = tmp_path / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4
    assert capsys.readouterr().err == (
        f"interrupted at step 4, the fit's last ({limit}): its training is done, nothing to resume, and its test not "
        f"run; score it with evaluate.py ckpt={last}, or raise {limit.partition('=')[0]} and resume with "
        f"ckpt_path={last} to train on\n")


def test_a_run_started_with_ctrl_c_ignored_trains_on_through_it_and_keeps_it_ignored(tmp_path):
    """A background job of a script (`python train.py ... &`) starts with SIGINT ignored: Ctrl-C at the terminal is
    not meant for it, yet the fit put its own handler in place and stopped at the next batch end."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        trainer = L.Trainer(max_steps=4, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, default_root_dir=tmp_path,
                            callbacks=[LastStepModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)])
        trainer.fit(PressesCtrlCInBatch(2), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
        assert trainer.global_step == 4 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_gradients_accumulate_stops_after_the_optimizer_step_and_resumes_to_the_same_weights(
        tmp_path, python_ctrl_c):
    # 2 batches a step, Ctrl-C in the 3rd batch: the fit stops after the batch that steps the optimizer, the 4th.
    # Stopped after the 3rd, the checkpoint lost its gradients and the resumed run's second step took the 4th batch's
    # alone: other weights. (All batches alike: a plain DataLoader resumed mid-epoch starts the epoch's data anew.)
    data = DataLoader(TensorDataset(torch.tensor([[0.5, -1.0]]).repeat(12, 1)), batch_size=2)

    def fit(model: PressesCtrlCInBatch, run: str, ckpt_path: Path | None = None) -> L.Trainer:
        trainer = L.Trainer(max_steps=4, accumulate_grad_batches=2, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
                            callbacks=[LastStepModelCheckpoint(dirpath=tmp_path / run, save_last=True, save_top_k=0),
                                       EpochWhereStopped()])
        trainer.fit(model, data, ckpt_path=ckpt_path)
        return trainer

    torch.manual_seed(0)
    fit(whole := PressesCtrlCInBatch(None), "whole")
    torch.manual_seed(0)
    with pytest.raises(SIGTERMException):
        fit(PressesCtrlCInBatch(3), "interrupted")
    last = torch.load(tmp_path / "interrupted" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2
    assert last["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 4
    fit(resumed := PressesCtrlCInBatch(None), "resumed", tmp_path / "interrupted" / "last.ckpt")
    torch.testing.assert_close(resumed.state_dict(), whole.state_dict(), rtol=0, atol=0)


class RecordsBatches(L.LightningModule):
    """A model that records (epoch, batch index, step) of each batch it trains."""

    def __init__(self) -> None:
        super().__init__()
        self.layer, self.trained = torch.nn.Linear(2, 1), []

    def training_step(self, batch, batch_idx):
        self.trained.append((self.current_epoch, batch_idx, self.global_step))
        return self.layer(batch[0]).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("bound", [{"max_steps": 8}, {"max_epochs": 2}])
@pytest.mark.parametrize("validations", [{"limit_val_batches": 0}, {"val_check_interval": 2, "check_val_every_n_epoch": None}])
def test_a_run_stopped_at_max_steps_mid_epoch_resumes_in_that_epoch_however_the_resumed_run_is_bounded(
        bound, validations, tmp_path):
    # last.ckpt written as the fit stopped, 3 batches into a 4-batch epoch (at that epoch's end hooks, or after a
    # validation at train end): Lightning counted the epoch done, so a resumed run bounded by epochs began the
    # next one (8 steps became 7), and one bounded by steps finished it as the next (its data drawn as epoch 1's)
    def fit(ckpt_path=None, **limits):
        model, data = RecordsBatches(), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)
        trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                            callbacks=[LastStepModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0),
                                       EpochWhereStopped()], **validations, **limits)
        trainer.fit(model, data, data, ckpt_path=ckpt_path)
        return model.trained

    first = fit(max_steps=3)
    resumed = fit(tmp_path / "last.ckpt", **bound)
    assert first + resumed == [(epoch, batch, 4 * epoch + batch) for epoch in (0, 1) for batch in range(4)]


class RecordsBatchesUntilCtrlC(RecordsBatches):
    """RecordsBatches whose user presses Ctrl-C once, during its `press_in`-th training batch (from 1; None: never)."""

    def __init__(self, press_in: int | None = None) -> None:
        super().__init__()
        self.press_in = press_in

    def training_step(self, batch, batch_idx):
        if len(self.trained) + 1 == self.press_in:
            os.kill(os.getpid(), signal.SIGINT)
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("validations", [{"limit_val_batches": 0},  # last.ckpt written in the epoch's end hooks
                                         {"val_check_interval": 3, "check_val_every_n_epoch": 1}])  # at Ctrl-C, after them
def test_ctrl_c_at_an_epochs_last_batch_resumes_with_the_next_epochs_first_batch(validations, tmp_path, python_ctrl_c):
    # Lightning resumed the finished epoch's progress: the resumed run trained a 5th batch of a 4-batch epoch
    # (counted in epoch 0, or in epoch 1 and then began epoch 2), other data than an uninterrupted run's
    def fit(model: RecordsBatchesUntilCtrlC, run: str, ckpt_path: Path | None = None) -> L.Trainer:
        data = DataLoader(TensorDataset(torch.arange(16.0).reshape(8, 2)), batch_size=2)
        trainer = L.Trainer(max_steps=8, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, default_root_dir=tmp_path, **validations,
                            callbacks=[LastStepModelCheckpoint(dirpath=tmp_path / run, save_last=True, save_top_k=0),
                                       EpochWhereStopped()])
        trainer.fit(model, data, data, ckpt_path=ckpt_path)
        return trainer

    torch.manual_seed(0)
    whole = fit(uninterrupted := RecordsBatchesUntilCtrlC(), "whole")
    torch.manual_seed(0)
    with pytest.raises(SIGTERMException):
        fit(interrupted := RecordsBatchesUntilCtrlC(press_in=4), "interrupted")
    resumed = fit(continued := RecordsBatchesUntilCtrlC(), "resumed", tmp_path / "interrupted" / "last.ckpt")
    assert interrupted.trained + continued.trained == uninterrupted.trained == [
        (epoch, batch, 4 * epoch + batch) for epoch in (0, 1) for batch in range(4)]
    assert logging_step(resumed) == logging_step(whole) == 8
    torch.testing.assert_close(continued.state_dict(), uninterrupted.state_dict(), rtol=0, atol=0)


class DrawnPerEpoch(EpochProgress, IterableDataset):
    """4 batches an epoch, each (epoch, batch) of the epoch the loader was told, from the batch it was told to
    skip to; no length, as streamed shards without their _stats.json: Lightning reads its first batch ahead."""

    def __init__(self) -> None:
        self._share_progress()

    def __iter__(self):
        for batch in range(self.skip_batches, 4):
            yield (torch.tensor([[float(self.epoch), float(batch)]]),)


class RecordsDrawn(RecordsBatchesUntilCtrlC):
    def training_step(self, batch, batch_idx):
        self.drawn = [*getattr(self, "drawn", []), tuple(batch[0][0].tolist())]
        return super().training_step(batch, batch_idx)


def test_a_loader_of_unknown_length_resumed_after_an_epochs_last_batch_draws_the_next_epoch_from_its_start(
        tmp_path, python_ctrl_c):
    def fit(model: RecordsDrawn, run: str, ckpt_path: Path | None = None) -> None:
        trainer = L.Trainer(max_steps=8, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            val_check_interval=3, num_sanity_val_steps=0, default_root_dir=tmp_path,
                            callbacks=[LastStepModelCheckpoint(dirpath=tmp_path / run, save_last=True, save_top_k=0),
                                       EpochWhereStopped()])
        trainer.fit(model, EpochLoader(DrawnPerEpoch(), progress=lambda: trainer_progress(trainer)),
                    DataLoader(TensorDataset(torch.zeros(2, 2))), ckpt_path=ckpt_path)

    with pytest.raises(SIGTERMException):
        fit(interrupted := RecordsDrawn(press_in=4), "interrupted")
    fit(resumed := RecordsDrawn(), "resumed", tmp_path / "interrupted" / "last.ckpt")
    assert interrupted.drawn + resumed.drawn == [(epoch, batch) for epoch in (0, 1) for batch in range(4)]


class NumberedItems(Dataset):
    """Items 0..9 served in whole batches (`__getitems__`), as Supra's in-memory datasets serve them."""

    def __len__(self) -> int:
        return 10

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor]:
        return (torch.tensor(indices, dtype=torch.float32)[:, None].repeat(1, 2),)


class NumberedSplits(SplitDataModule):
    """Every split the 10 NumberedItems, through the loaders every captioner and VQ-VAE DataModule has."""

    def load_split(self, split: str) -> range:
        return range(10)

    def dataset(self, split: str) -> Dataset:
        return NumberedItems()


class RecordsItems(RecordsBatches):
    def training_step(self, batch, batch_idx):
        self.items = [*getattr(self, "items", []), batch[0][:, 0].int().tolist()]
        return super().training_step(batch, batch_idx)


def test_a_shuffled_epoch_resumed_midway_in_one_process_trains_the_rest_of_its_permutation(tmp_path):
    # it trained its first batches again (a new shuffle, from the resumed process's random state): some items twice,
    # others never in that epoch
    def fit(run: str, max_steps: int, ckpt_path: Path | None = None) -> list[list[int]]:
        trainer = L.Trainer(max_steps=max_steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, default_root_dir=tmp_path,
                            callbacks=[LastStepModelCheckpoint(dirpath=tmp_path / run, save_last=True, save_top_k=0),
                                       EpochWhereStopped()])
        trainer.fit(model := RecordsItems(), NumberedSplits(batch_size=2), ckpt_path=ckpt_path)
        return model.items

    torch.manual_seed(0)
    whole = fit("whole", max_steps=5)  # 5 batches of 2: one epoch
    torch.manual_seed(0)
    interrupted = fit("interrupted", max_steps=3)
    torch.manual_seed(1)  # the resumed process draws other random numbers
    resumed = fit("resumed", max_steps=5, ckpt_path=tmp_path / "interrupted" / "last.ckpt")
    assert interrupted + resumed == whole
    assert sorted(item for batch in whole for item in batch) == list(range(10))


class FortyItems(NumberedItems):
    def __len__(self) -> int:
        return 40


class FortySplits(NumberedSplits):
    """Every split the items 0..39."""

    def dataset(self, split: str) -> Dataset:
        return FortyItems()


class RecordsEpochItems(RecordsBatches):
    """Records the items of each batch it trains, by epoch, and the epochs it validated in."""

    def __init__(self) -> None:
        super().__init__()
        self.items, self.validated = {}, []

    def training_step(self, batch, batch_idx):
        self.items.setdefault(self.current_epoch, []).append(batch[0][:, 0].int().tolist())
        return super().training_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self.validated.append((self.current_epoch, self.global_step))


@pytest.mark.parametrize("batch_size", [16, 4])
def test_an_epoch_resumed_midway_at_another_batch_size_trains_each_of_its_untrained_items_once(batch_size, tmp_path):
    # 2 batches of 8 trained, then the resumed run skipped 2 batches of its own size: at 16 items 16-31 of the shuffle
    # were never trained in that epoch, at 4 items 8-15 were trained twice
    def fit(run: str, model: RecordsEpochItems, batch_size: int, ckpt_path: Path | None = None, **bound) -> None:
        trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                            limit_val_batches=1, default_root_dir=tmp_path, **bound,
                            callbacks=[LastStepModelCheckpoint(dirpath=tmp_path / run, save_last=True, save_top_k=0),
                                       EpochWhereStopped(), *([RestOfEpochAtBatchSize(8)] if ckpt_path else [])])
        trainer.fit(model, FortySplits(batch_size=batch_size), ckpt_path=ckpt_path)

    torch.manual_seed(0)
    fit("whole", whole := RecordsEpochItems(), 8, max_epochs=1)
    torch.manual_seed(0)
    fit("interrupted", interrupted := RecordsEpochItems(), 8, max_steps=2)
    last = tmp_path / "interrupted" / "last.ckpt"
    assert stopped_within_epoch(torch.load(last, weights_only=False)["loops"]["fit_loop"])  # the runner's test of it
    fit("resumed", resumed := RecordsEpochItems(), batch_size, last, max_epochs=2)
    shuffle = [item for batch in whole.items[0] for item in batch]
    assert interrupted.items[0] == whole.items[0][:2]
    assert resumed.items[0] == [shuffle[start:start + batch_size] for start in range(16, 40, batch_size)]
    # the epoch ended, and validated, after that rest; the next one is whole, at the new size
    assert resumed.validated[0] == (0, 2 + len(resumed.items[0]))
    assert sorted(item for batch in resumed.items[1] for item in batch) == list(range(40))
    assert {len(batch) for batch in resumed.items[1][:-1]} == {batch_size}


def test_a_shuffled_epoch_resumed_midway_under_ddp_at_another_batch_size_trains_the_rest_of_each_ranks_share(
        monkeypatch):
    # each rank skips the items its trained batches held (2 batches of 4), not 2 batches of the new size
    def rank_1_of_2(batch_size: int, items_trained: int | None = None) -> list[int]:
        data, trainer = FortySplits(batch_size=batch_size), L.Trainer(logger=False, enable_progress_bar=False)
        monkeypatch.setattr(data, "trainer", trainer)
        sampler = DistributedSampler(data.dataset("train"), num_replicas=2, rank=1, shuffle=True, seed=0)
        loader = _update_dataloader(data.train_dataloader(), sampler)  # what Lightning makes of it under DDP
        if items_trained is not None:
            assert loader.resume_after(items_trained) == len(range(items_trained, 20, batch_size))
        loader.batch_sampler.sampler.set_epoch(0)
        return [batch[0][:, 0].int().tolist() for batch in loader]

    share = [item for batch in rank_1_of_2(batch_size=4) for item in batch]  # 20 of the 40 items
    assert rank_1_of_2(batch_size=8, items_trained=2 * 4) == [share[8:16], share[16:20]]
    assert rank_1_of_2(batch_size=2, items_trained=2 * 4) == [share[start:start + 2] for start in range(8, 20, 2)]


def test_a_shuffled_epoch_resumed_midway_under_ddp_trains_the_rest_of_each_ranks_share(monkeypatch):
    # Lightning's DistributedSampler, seeded by the seed and the epoch, drew the same permutation again and the resumed
    # run trained it from its first batch: each rank's first batches twice, its last never (data=caption_folder)
    def rank_1_of_2(batches_done: int) -> list[list[int]]:
        data, trainer = NumberedSplits(batch_size=1), L.Trainer(logger=False, enable_progress_bar=False)
        monkeypatch.setattr(data, "trainer", trainer)
        trainer.fit_loop.epoch_loop.batch_progress.current.completed = batches_done  # as restored from a checkpoint
        # what Lightning makes of the loader under DDP, here for rank 1 of 2
        sampler = DistributedSampler(data.dataset("train"), num_replicas=2, rank=1, shuffle=True, seed=0)
        loader = _update_dataloader(data.train_dataloader(), sampler)
        loader.batch_sampler.sampler.set_epoch(0)
        return [batch[0][:, 0].int().tolist() for batch in loader]

    whole = rank_1_of_2(batches_done=0)
    assert len(whole) == 5  # 10 items over 2 ranks in batches of 1
    assert rank_1_of_2(batches_done=3) == whole[3:]


class RecordsRankItems(RecordsEpochItems):
    """RecordsEpochItems under DDP started by spawn: each rank writes the items it trained, by epoch, into
    `folder`/rank<N>.json as its fit ends (a spawned rank's attributes stay in its process)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def on_train_end(self) -> None:
        (self.folder / f"rank{self.global_rank}.json").write_text(json.dumps(self.items))


def test_a_ddp_loader_resumed_with_another_seed_finishes_the_epoch_from_its_checkpoints_seed(monkeypatch):
    # Lightning seeds its DistributedSampler with the resumed run's seed: the loader's state (the checkpoint's seed)
    # draws the rest of the interrupted epoch, and the run's own seed every epoch after it
    def rank_1_of_2(seed: int, epoch: int, batches_done: int = 0, state: dict | None = None) -> tuple[list, dict]:
        data, trainer = FortySplits(batch_size=4), L.Trainer(logger=False, enable_progress_bar=False)
        monkeypatch.setattr(data, "trainer", trainer)
        trainer.fit_loop.epoch_loop.batch_progress.current.completed = batches_done  # as restored from a checkpoint
        sampler = DistributedSampler(data.dataset("train"), num_replicas=2, rank=1, shuffle=True, seed=seed)
        loader = _update_dataloader(data.train_dataloader(), sampler)  # what Lightning makes of it under DDP
        if state is not None:
            loader.load_state_dict(state)
        loader.batch_sampler.sampler.set_epoch(epoch)
        return [batch[0][:, 0].int().tolist() for batch in loader], loader.state_dict()

    epoch_0, checkpoint_state = rank_1_of_2(seed=0, epoch=0)
    assert checkpoint_state == {"distributed_seed": 0}
    assert rank_1_of_2(seed=5, epoch=0, batches_done=2, state=checkpoint_state)[0] == epoch_0[2:]
    assert rank_1_of_2(seed=5, epoch=1)[0] == rank_1_of_2(seed=5, epoch=1, state={})[0] != rank_1_of_2(seed=0, epoch=1)[0]


@pytest.mark.slow  # ~60 s on 2 cores: the loader test above checks its rule in one process
@pytest.mark.ddp
def test_a_shuffled_epoch_resumed_midway_under_ddp_with_another_seed_finishes_on_its_own_items(tmp_path, monkeypatch):
    # Lightning seeds its DistributedSampler with the run's seed: the rest of the interrupted epoch was drawn from the
    # new seed's permutation, which trained some of the epoch's items twice and others never
    def fit(run: str, seed: int, ckpt_path: Path | None = None, **bound) -> list[dict[str, list[list[int]]]]:
        monkeypatch.setenv("PL_GLOBAL_SEED", str(seed))  # as seed_everything(seed) leaves it for Lightning's sampler
        (folder := tmp_path / run).mkdir()
        trainer = L.Trainer(accelerator="cpu", devices=2, strategy=SpawnedRanks(), logger=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            default_root_dir=tmp_path, **bound,
                            callbacks=[LastStepModelCheckpoint(dirpath=folder, save_last=True, save_top_k=0),
                                       EpochWhereStopped()])
        trainer.fit(RecordsRankItems(folder), FortySplits(batch_size=4), ckpt_path=ckpt_path)
        return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]

    def share(rank: int, seed: int, epoch: int) -> list[list[int]]:  # a rank's batches of 4 as the sampler draws them
        sampler = DistributedSampler(FortyItems(), num_replicas=2, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        items = list(sampler)
        return [items[start:start + 4] for start in range(0, len(items), 4)]

    interrupted = fit("interrupted", seed=0, max_steps=2)  # 2 of each rank's 5 batches of epoch 0
    resumed = fit("resumed", seed=5, ckpt_path=tmp_path / "interrupted" / "last.ckpt", max_epochs=2)
    for rank in (0, 1):
        assert interrupted[rank]["0"] + resumed[rank]["0"] == share(rank, seed=0, epoch=0)
        assert resumed[rank]["1"] == share(rank, seed=5, epoch=1)  # the new seed's from the next epoch on
    trained_in_epoch_0 = [item for rank in (0, 1) for run in (interrupted, resumed)
                          for batch in run[rank]["0"] for item in batch]
    assert sorted(trained_in_epoch_0) == list(range(40))


def test_same_state_is_equal_names_and_tensors_wherever_they_lie():
    """One rule for "this is the same VQ-VAE" (a resumed a2a run's, a fine-tune's release's): the same names and
    equal tensors; a tensor that needs grad is compared by value, and one changed value or name makes another model."""
    ours = {"w": torch.ones(2, 3, requires_grad=True), "codebook": torch.arange(4.0)}
    assert same_state({"w": torch.ones(2, 3), "codebook": torch.arange(4.0)}, ours)
    assert not same_state({"w": torch.ones(2, 3), "codebook": torch.arange(4.0) + 1}, ours)
    assert not same_state({"w": torch.ones(2, 3)}, ours)
    assert not same_state({"w": torch.ones(2, 3), "codebook": torch.arange(4.0), "extra": torch.zeros(1)}, ours)


def test_a_checkpoint_read_for_its_records_alone_is_read_and_refused_as_a_whole_one(tmp_path):
    """mmap=True (the run config alone, its weights left on disk) reads a good file to the same records and names a
    cut-short, a foreign or a legacy-format file as a whole read does: torch maps only its zip format."""
    import io

    from supra.artifacts.checkpoints import load_supra_checkpoint
    from supra.utils.errors import SupraUserError

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.arange(6.0)}, "supra": {"kind": "supra.a2a", "run_config": {"seed": 3}}}, good)
    legacy = io.BytesIO()
    torch.save({"state_dict": {}, "supra": {"kind": "supra.a2a"}}, legacy, _use_new_zipfile_serialization=False)
    files = {"good": good.read_bytes(), "cut short": good.read_bytes()[:200], "foreign": b"not a checkpoint" * 8,
             "legacy": legacy.getvalue()}
    for name, content in files.items():
        path = tmp_path / f"{name}.ckpt"
        path.write_bytes(content)
        read = []
        for mmap in (False, True):
            try:
                checkpoint = load_supra_checkpoint(path, mmap=mmap)
                read.append((checkpoint["supra"], {k: v.tolist() for k, v in checkpoint["state_dict"].items()}))
            except SupraUserError as err:
                read.append(str(err))
        assert read[0] == read[1], name
    assert load_supra_checkpoint(good, mmap=True)["supra"]["run_config"] == {"seed": 3}
