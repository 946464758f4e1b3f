"""Atomic folders: a folder written by atomic_dir appears whole or not at all, and one it replaces is
deleted only once the new one is in place. Listing a data folder: linked folders followed, each real
folder listed once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supra.utils.files import atomic_dir, tree_stamp, visible_files, walk_visible


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


def folder_of(root: Path, *names: str) -> Path:
    root.mkdir(parents=True)
    for name in names:
        (root / name).write_text(name)
    return root


def test_a_folder_reached_by_two_paths_is_listed_once_under_the_path_without_a_link(tmp_path):
    data = folder_of(tmp_path / "data" / "2024", "a.png", "b.png").parent
    (data / "all").symlink_to("2024", target_is_directory=True)  # sorts first, but is the link
    folder_of(tmp_path / "coco", "c.jpg")
    for name in ("coco_train", "train"):  # two links to one folder: the first in sorted order is listed
        (data / name).symlink_to(tmp_path / "coco", target_is_directory=True)
    walk = walk_visible(data)
    assert walk.files == ["2024/a.png", "2024/b.png", "coco_train/c.jpg"]
    assert walk.aliases == {"all": "2024", "train": "coco_train"}


def test_links_back_up_the_tree_and_links_to_each_other_end_with_each_folder_listed_once(tmp_path):
    folder_of(tmp_path / "data" / "a", "1.png")
    folder_of(tmp_path / "data" / "b", "2.png")
    (tmp_path / "data" / "a" / "x").symlink_to("../b", target_is_directory=True)
    (tmp_path / "data" / "b" / "y").symlink_to("../a", target_is_directory=True)
    (tmp_path / "data" / "b" / "up").symlink_to("..", target_is_directory=True)
    walk = walk_visible(tmp_path / "data")
    assert walk.files == ["a/1.png", "b/2.png"]
    assert walk.aliases == {"a/x": "b", "b/y": "a", "b/up": "."}


def test_a_new_link_to_a_folder_listed_already_changes_neither_the_files_nor_the_tree_stamp(tmp_path):
    """So a cache keyed by the stamp (a2a codes, media folders) is not built again for the same pictures."""
    data = folder_of(tmp_path / "data" / "2024", "a.png", "b.png").parent
    files, stamp = visible_files(data), tree_stamp(data)
    (data / "latest").symlink_to("2024", target_is_directory=True)
    assert visible_files(data) == files and tree_stamp(data) == stamp
