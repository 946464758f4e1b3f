"""Atomic folders: a folder written by atomic_dir appears whole or not at all, and one it replaces is
deleted only once the new one is in place; the temp folders of a killed one (and temp files of a killed
atomic_path) are found by the lock they lost, never a user's folder named like one, and a
folder written alone refuses a second writer; a write that finds no room is one line. Listing a data folder: linked folders followed, each real
folder listed once."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from supra.utils.disk_room import room_to_write
from supra.utils.errors import SupraUserError
from supra.utils.files import (
    atomic_dir,
    atomic_dir_leftovers,
    atomic_path,
    atomic_paths,
    is_mount_point,
    refuse_overwriting_input,
    remove_leftovers,
    require_writable_dir,
    stale_temp_files,
    writing_alone,
)
from supra.utils.folder_walk import tree_stamp, visible_files, walk_visible
from tests.conftest import file_size_limit, killed_in_atomic_dir


def test_a_replaced_folder_is_deleted_only_once_the_new_one_is_in_place(tmp_path, monkeypatch):
    release = tmp_path / "release"
    release.mkdir()
    (release / "model.safetensors").write_text("old")
    rename = os.replace

    def new_folder_cannot_move_in(src, dst):  # e.g. the disk fails at the last step
        if Path(src).name == "new" and Path(dst) == release:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return rename(src, dst)

    with monkeypatch.context() as failing:
        failing.setattr(os, "replace", new_folder_cannot_move_in)
        with pytest.raises(SupraUserError, match=f"^{release} cannot be replaced \\(Input/output error"), \
                atomic_dir(release) as tmp:
            (tmp / "model.safetensors").write_text("new")
    assert (release / "model.safetensors").read_text() == "old"  # set aside, then put back
    assert [p.name for p in tmp_path.iterdir()] == ["release"]

    with atomic_dir(release) as tmp:
        (tmp / "model.safetensors").write_text("new")
    assert (release / "model.safetensors").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["release"]  # the old one deleted, no temp folder left


def test_a_folder_that_cannot_be_renamed_is_one_line_and_left_as_it_was(tmp_path, monkeypatch):
    """A mount point (EBUSY) or an immutable folder (EPERM) cannot be set aside to be replaced: said in one
    line once the new folder is written (a mount point is not seen in a rename's place), the folder as it was."""
    release = tmp_path / "release"
    release.mkdir()
    (release / "model.safetensors").write_text("old")
    rename = os.replace

    def busy(src, dst):  # as Linux answers renaming a mount point
        if Path(src) == release:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(src), None, str(dst))
        return rename(src, dst)

    monkeypatch.setattr(os, "replace", busy)
    with pytest.raises(SupraUserError) as err, atomic_dir(release) as tmp:
        (tmp / "model.safetensors").write_text("new")
    assert str(err.value) == (f"{release} cannot be replaced (Device or resource busy: a mount point or an immutable "
                              "folder?), so it is left as it was and what was written beside it removed: write into a "
                              "new folder inside it, or another one")
    assert [p.name for p in tmp_path.iterdir()] == ["release"]
    assert (release / "model.safetensors").read_text() == "old"


def test_a_bind_mount_on_its_own_file_system_is_a_mount_point(tmp_path):
    """os.path.ismount compares devices, so misses a folder bound onto itself; the mount table lists it."""
    folder = tmp_path / "with space"
    folder.mkdir()
    assert is_mount_point("/") and not is_mount_point(folder)
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, check=False).returncode:
        pytest.skip("mount --bind needs root (and a container allowed to mount)")
    try:
        assert is_mount_point(folder) and not os.path.ismount(folder)
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_only_the_temp_folder_a_killed_atomic_dir_left_is_a_leftover_never_a_users_folder_named_like_one(tmp_path):
    """A process killed while it filled the folder leaves its temp folder, whose claim file it held locked: that
    lock, lost, tells it from one being filled now (its lock held) and from a user's own folder, however named."""
    (tmp_path / "train").mkdir()
    for name in (".train.20240101", ".train.previous", ".train.backup01", ".train.old.0123abcd", ".val.abcd1234"):
        (tmp_path / name).mkdir()  # the user's, named as atomic_dir's temp folders are
        (tmp_path / name / "NOTES.txt").write_text("the user's")
    killed = killed_in_atomic_dir(tmp_path / "train", "00000.tar")
    assert killed.name.startswith(".train.")
    with atomic_dir(tmp_path / "train") as filling:  # one at work now
        assert atomic_dir_leftovers(tmp_path / "train") == [killed]
    assert not filling.parent.exists()  # done: nothing of it left


def test_the_temp_file_of_a_killed_atomic_path_is_stale_and_one_being_written_is_not(tmp_path):
    """A process killed while writing (SIGKILL: no error to clean up on) leaves its temp file; the lock it held
    went with it, which tells that file from one another run is writing now."""
    killed = ("import os, signal, sys; from supra.utils.files import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", killed, str(tmp_path / "cache.npy")], cwd=root, check=False,
                   env={**os.environ, "PYTHONPATH": str(root)})
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".cache.") and left.read_bytes() == b"half"
    with atomic_path(tmp_path / "cache.npy") as writing:
        writing.write_bytes(b"whole")
        assert stale_temp_files(tmp_path, r"\.cache\.\w{8}\.npy") == [left]  # not `writing`
    assert stale_temp_files(tmp_path, r"\.other\.\w{8}\.npy") == []  # only names asked for
    assert (tmp_path / "cache.npy").read_bytes() == b"whole"


def test_files_written_together_are_all_renamed_in_or_none_though_a_rename_fails(tmp_path, monkeypatch):
    """Renamed in one by one, a rename failing after another was done (a folder in the way, EPERM) left a new
    file among the earlier run's."""
    (tmp_path / "records.json").mkdir()  # a folder in the way of the first: its rename fails
    (tmp_path / "records.json" / "mine.txt").write_text("mine")
    (tmp_path / "grid.png").write_text("old")
    with pytest.raises(IsADirectoryError), atomic_paths(tmp_path / "records.json", tmp_path / "grid.png") as (a, b):
        a.write_text("new")
        b.write_text("new")
    assert (tmp_path / "grid.png").read_text() == "old" and (tmp_path / "records.json" / "mine.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "records.json"]  # no temp file, none aside
    (tmp_path / "records.json" / "mine.txt").unlink()
    (tmp_path / "records.json").rmdir()
    (tmp_path / "records.json").write_text("old")
    replace = os.replace

    def second_rename_fails(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        if Path(dst).name == "grid.png" and not Path(src).name.endswith(".old"):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", second_rename_fails)
    with pytest.raises(PermissionError), atomic_paths(tmp_path / "records.json", tmp_path / "grid.png") as (a, b):
        a.write_text("new")
        b.write_text("new")
    assert [(tmp_path / n).read_text() for n in ("records.json", "grid.png")] == ["old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "records.json"]
    monkeypatch.setattr(os, "replace", replace)
    with atomic_paths(tmp_path / "records.json", tmp_path / "grid.png", tmp_path / "new.txt") as (a, b, c):
        for path in (a, b, c):
            path.write_text("new")
    assert [(tmp_path / n).read_text() for n in ("records.json", "grid.png", "new.txt")] == ["new"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "new.txt", "records.json"]


def test_a_folder_written_alone_refuses_a_second_writer_until_the_first_is_done(tmp_path):
    with writing_alone(tmp_path, "out=DIR") as held:
        assert held
        with pytest.raises(SupraUserError, match="out=DIR is being written by another run now"), \
                writing_alone(tmp_path, "out=DIR"):
            pass
    with writing_alone(tmp_path, "out=DIR") as held:
        assert held
    assert list(tmp_path.iterdir()) == []  # no lock file left behind


def test_a_write_that_finds_no_room_is_one_line_naming_where_and_other_errors_stay_as_they_are(tmp_path):
    with pytest.raises(SupraUserError, match=r"^cannot write to out=DIR \(No space left on device\): free space$"), \
            room_to_write("out=DIR", "free space"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    # numpy names no errno ("409600 requested and 8176 written"), past a file size limit as on a full disk
    with pytest.raises(SupraUserError, match=r"^cannot write to out=DIR \(the write was cut short: the disk full, or a "
                                             r"file size limit\): free space$"), \
            room_to_write("out=DIR", "free space"), file_size_limit(4096):
        np.save(tmp_path / "codes.npy", np.zeros(100_000, np.uint32))
    with pytest.raises(PermissionError), room_to_write("out=DIR", "free space"):  # no want of room: as it was
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def test_an_out_folder_that_is_a_file_or_lies_below_one_is_said_to_be_a_file_not_a_folder(tmp_path):
    (tmp_path / "codes.tar").write_text("a file")
    with pytest.raises(SupraUserError, match=rf"^cannot write to out=codes.tar \({tmp_path / 'codes.tar'} is a file, "
                                             r"not a folder\): choose another folder$"):
        require_writable_dir(tmp_path / "codes.tar", "out=codes.tar")
    below = tmp_path / "codes.tar" / "more"
    with pytest.raises(SupraUserError, match=rf"^cannot write to out=more \({tmp_path / 'codes.tar'} is a file, not "
                                             r"a folder\): choose another folder$"):
        require_writable_dir(below, "out=more")


def folder_of(root: Path, *names: str) -> Path:
    root.mkdir(parents=True)
    for name in names:
        (root / name).write_text(name)
    return root


def link_made(link: Path, target: str, at_s: int) -> None:
    """A link to a folder, dated `at_s` (as `cp -a` keeps a link's own time)."""
    link.symlink_to(target, target_is_directory=True)
    os.utime(link, ns=(at_s * 10**9, at_s * 10**9), follow_symlinks=False)


def test_a_folder_reached_by_two_paths_is_listed_once_under_the_path_without_a_link(tmp_path):
    data = folder_of(tmp_path / "data" / "2024", "a.png", "b.png").parent
    (data / "all").symlink_to("2024", target_is_directory=True)  # sorts first, but is the link
    folder_of(tmp_path / "coco", "c.jpg")
    for name in ("train", "coco_train"):  # two links to one folder made together: the first in sorted order
        link_made(data / name, str(tmp_path / "coco"), at_s=1_700_000_000)
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


def test_a_new_link_beside_one_to_the_same_folder_renames_nothing_though_it_sorts_first(tmp_path):
    """Renamed files would change their split by name (a held-out image moved into train) and the stamp."""
    folder_of(tmp_path / "store", *(f"img{i:02d}.jpg" for i in range(40)))
    (tmp_path / "root").mkdir()
    link_made(tmp_path / "root" / "photos", "../store", at_s=1_700_000_000)
    files, stamp = visible_files(tmp_path / "root"), tree_stamp(tmp_path / "root")
    link_made(tmp_path / "root" / "albums", "../store", at_s=1_700_000_060)  # a minute later
    walk = walk_visible(tmp_path / "root")
    assert walk.files == files == [f"photos/img{i:02d}.jpg" for i in range(40)]
    assert walk.aliases == {"albums": "photos"} and tree_stamp(tmp_path / "root") == stamp


def test_a_path_through_links_is_as_old_as_its_newest_link(tmp_path):
    """A new link to a folder holding an old link must not take over what that old link leads to."""
    folder_of(tmp_path / "store", "a.jpg")
    link_made(folder_of(tmp_path / "box") / "store", "../store", at_s=1_700_000_060)
    link_made(folder_of(tmp_path / "shelf") / "store", "../store", at_s=1_700_000_000)  # older, unreached
    (tmp_path / "root").mkdir()
    link_made(tmp_path / "root" / "photos", "../box", at_s=1_700_000_060)
    link_made(tmp_path / "root" / "albums", "../shelf", at_s=1_700_000_120)  # albums/store: made now
    walk = walk_visible(tmp_path / "root")
    assert walk.files == ["photos/store/a.jpg"] and walk.aliases == {"albums/store": "photos/store"}


def test_a_folder_moved_away_and_linked_back_keeps_its_name_beside_an_older_link_to_it(tmp_path):
    """`latest -> 2024` made long ago, then 2024 moved to another disk and linked back: latest leads through
    two links, 2024 through one, so the pictures keep their names (and their splits)."""
    data = folder_of(tmp_path / "data" / "2024", *(f"img{i:02d}.png" for i in range(40))).parent
    link_made(data / "latest", "2024", at_s=1_600_000_000)
    files, stamp = visible_files(data), tree_stamp(data)
    (data / "2024").rename(tmp_path / "disk2")
    link_made(data / "2024", str(tmp_path / "disk2"), at_s=1_700_000_000)
    walk = walk_visible(data)
    assert walk.files == files == [f"2024/img{i:02d}.png" for i in range(40)]
    assert walk.aliases == {"latest": "2024"} and tree_stamp(data) == stamp


def test_named_pipes_are_passed_over_by_the_walk_never_listed_as_files(tmp_path, pipes_never_opened):
    """Opening a named pipe waits for a writer forever: a pipe (or a link to one) with a picture's name is in
    `special`, not `files`; a broken link is still a file, which its reader names as unreadable."""
    (tmp_path / "a.png").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "to_pipe.png").symlink_to(tmp_path / "pipe.jpg")
    (tmp_path / "moved.png").symlink_to(tmp_path / "gone.png")
    walk = walk_visible(tmp_path)
    assert walk.files == ["a.png", "moved.png"] and walk.special == ["pipe.jpg", "to_pipe.png"]
    assert tree_stamp(tmp_path)  # stamping the tree opens no pipe either


def test_the_walk_finds_linked_folders_among_the_others_without_comparing_every_pair(tmp_path, monkeypatch):
    """32,000 linked folders in one took 9.5 s when each folder's name was looked up in a list of the links."""
    compared = []

    class Name(str):
        def __eq__(self, other: object) -> bool:
            compared.append(1)
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    walk = os.walk

    def names_counting_comparisons(top, *args, **kwargs):
        for folder, dirs, files in walk(top, *args, **kwargs):
            dirs[:] = [Name(d) for d in dirs]
            yield folder, dirs, files

    (tmp_path / "real").mkdir()
    for i in range(40):
        (tmp_path / f"dir{i}").mkdir()
        (tmp_path / f"link{i}").symlink_to(tmp_path / "real", target_is_directory=True)
    monkeypatch.setattr(os, "walk", names_counting_comparisons)
    assert len(walk_visible(tmp_path).aliases) == 40  # each link a second path to real/
    assert len(compared) < 200  # each of 81 folders against 40 links before


def test_an_input_that_is_a_looping_link_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "L.png").symlink_to(tmp_path / "L.png")
    with pytest.raises(SupraUserError, match=r"^image=.*L\.png is a link that loops to itself .*: point it at a real "
                                             r"file or folder, or give that instead$"):
        refuse_overwriting_input(tmp_path / "L.png", "image", tmp_path / "out", ["grid.png"])


def test_the_tree_stamp_changes_when_two_files_of_one_size_and_mtime_swap_names(tmp_path):
    """What it keys (the a2a mixture's codes) is built again: the files' sizes and times alone stay as they were."""
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(name.encode())
        os.utime(tmp_path / name, ns=(10**18, 10**18))
    stamp = tree_stamp(tmp_path)
    (tmp_path / "a.bin").rename(tmp_path / "swap")
    (tmp_path / "b.bin").rename(tmp_path / "a.bin")
    (tmp_path / "swap").rename(tmp_path / "b.bin")
    assert tree_stamp(tmp_path) != stamp


def test_removed_leftovers_are_counted_one_temp_folder_and_two_temp_folders(tmp_path, capsys):
    """"removed 1 temp folder", "removed 2 temp folders", never "temp folder(s)"."""
    for count in (1, 2):
        leftovers = [tmp_path / f".out.killed{count}{i}" for i in range(count)]
        for path in leftovers:
            path.mkdir()
        remove_leftovers(leftovers, True, lambda names: names, "that a killed run left")
        noun = "1 temp folder" if count == 1 else "2 temp folders"
        names = ", ".join(path.name for path in leftovers)
        assert capsys.readouterr().out == f"removed {noun} that a killed run left: {names}\n"
        assert not any(path.exists() for path in leftovers)


def test_readable_json_keeps_other_scripts_as_written_and_ascii_exactly_as_json_dumps_gives_it():
    import json

    from supra.utils.files import readable_json

    record = {"file": "猫 cat.png", "caption": "un café crème 🐶"}
    assert readable_json(record) == '{"file": "猫 cat.png", "caption": "un café crème 🐶"}'
    ascii_only = {"file": "a.png", "scores": [0.5, None], "nested": {"k": "tab\there"}}
    assert readable_json(ascii_only, indent=2) == json.dumps(ascii_only, indent=2)
    # what cannot be UTF-8 (a file name's undecodable byte) or would split a line-per-record file stays escaped
    odd = {"file": "b\udcff.png", "caption": "one\u2028line\x85"}
    assert readable_json(odd) == '{"file": "b\\udcff.png", "caption": "one\\u2028line\\u0085"}'
    assert json.loads(readable_json(odd)) == odd and len(readable_json(odd).splitlines()) == 1
