"""Atomic folders: a folder written by atomic_dir appears whole or not at all, and one it replaces is
deleted only once the new one is in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supra.utils.files import atomic_dir


def test_a_replaced_folder_is_deleted_only_once_the_new_one_is_in_place(tmp_path, monkeypatch):
    release = tmp_path / "release"
    release.mkdir()
    (release / "model.safetensors").write_text("old")
    rename = os.replace

    def new_folder_cannot_move_in(src, dst):  # e.g. the disk fails at the last step
        if Path(src).name.startswith(".release.") and ".old." not in Path(src).name:
            raise OSError("input/output error")
        return rename(src, dst)

    with monkeypatch.context() as failing:
        failing.setattr(os, "replace", new_folder_cannot_move_in)
        with pytest.raises(OSError), atomic_dir(release) as tmp:
            (tmp / "model.safetensors").write_text("new")
    assert (release / "model.safetensors").read_text() == "old"  # set aside, then put back
    assert [p.name for p in tmp_path.iterdir()] == ["release"]

    with atomic_dir(release) as tmp:
        (tmp / "model.safetensors").write_text("new")
    assert (release / "model.safetensors").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["release"]  # the old one deleted, no temp folder left
