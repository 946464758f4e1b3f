"""Checkpoints a run can always go on from: a failed write keeps the earlier file whole, and a resumed run
goes on where its checkpoint stopped, in its logs too."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import pytest
import torch

from supra.runner.training import train
from supra.utils.errors import SupraUserError


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


def csv_rows(run: Path, column: str) -> list[tuple[int, float]]:
    """(step, value) of each row of the run's metrics.csv that holds `column`."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [(int(row["step"]), float(row[column])) for row in csv.DictReader(f) if row.get(column)]


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
