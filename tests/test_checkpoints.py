"""Checkpoints a run can always go on from: a failed write keeps the earlier file whole."""

from __future__ import annotations

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
