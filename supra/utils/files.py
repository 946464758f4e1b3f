"""Atomic writes: a temp file (or folder) beside the target, then os.replace, so readers never see half of one."""

from __future__ import annotations

import errno
import hashlib
import heapq
import json
import logging
import os
import re
import shutil
import stat as stat_mode
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supra.utils.errors import SupraUserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_plain_permissions(path: str | os.PathLike) -> None:
    """The permissions a plain open() gives, for files a library writes 0600 (safetensors does)."""
    os.chmod(path, 0o666 & ~_umask())


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path` to write to; on success it replaces `path` in one rename, on any
    error it is removed. The file gets the permissions a plain open() would give (mkstemp's are 0600).
    While it is written this process holds a lock on it, so that one a killed process left (SIGKILL, a
    power cut: no error to remove it on) can be told from one being written: stale_temp_files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _claimed_temp_file(path)
    try:
        yield Path(tmp)
        give_plain_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)  # the lock goes with it


def _claimed_temp_file(path: Path) -> tuple[int, str]:
    """mkstemp's file beside `path`, open and locked (flock, where there is one)."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".tmp")
        try:
            import fcntl
        except ImportError:  # off POSIX: unclaimed
            return fd, tmp
        if not flock_had(fd, fcntl.LOCK_EX):  # a file system without locks: unclaimed
            return fd, tmp
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)  # taken for stale and removed before the lock was held: another name


def stale_temp_files(folder: str | os.PathLike, name: str) -> list[Path]:
    """Temp files of atomic_path in `folder` whose names fully match the regular expression `name` and that no
    process is writing: those a killed one left (its lock went with it). Where locks are unknown, none."""
    try:
        import fcntl
    except ImportError:
        return []
    folder, found = Path(folder), []
    if not folder.is_dir():
        return []
    for path in sorted(folder.iterdir()):
        if not re.fullmatch(name, path.name) or not path.is_file() or path.is_symlink():
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if flock_had(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):  # else held: being written now (or no locks here)
                found.append(path)
        finally:
            os.close(fd)
    return found


def flock_had(fd: int, operation: int) -> bool:
    """fcntl.flock(fd, operation), and whether the lock was had: False where another process holds it, or on a
    file system without locks (some network ones)."""
    import fcntl

    try:
        fcntl.flock(fd, operation)
    except OSError:  # BlockingIOError among them
        return False
    return True


ATOMIC_DIR_CLAIM = ".supra_atomic_dir.claim"  # in atomic_dir's work folder: locked while its process lives


@contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield a temp folder beside `path` to fill; on success it becomes `path` in one rename, on any error
    it is removed. An existing `path` is replaced, or with replace=False kept (another process finished
    the same folder first: its copy is as good). The folder gets a plain mkdir's permissions (not 0700).
    A replaced folder is renamed aside first and deleted only once the new one is in place: a process
    killed in between leaves both, never neither; one that cannot be renamed (a mount point) is one line,
    and left as it was. Both lie in one work folder beside `path`,
    `.{name}.XXXXXXXX`, with a claim file this process holds locked (as atomic_path's temp file): what a
    killed process left is told by it from a folder at work, and from a user's own (atomic_dir_leftovers)."""
    path = Path(path).resolve()
    if replace and _holds(path, Path.cwd()):  # replacing it would delete the working directory
        raise SupraUserError(f"{path} holds the working directory: write to a new folder instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    claim, aside = None, work / "old"
    try:
        claim = _claimed_folder(work)
        tmp = work / "new"
        tmp.mkdir()  # a plain mkdir's permissions (the work folder has mkdtemp's 0700)
        yield tmp
        try:
            if replace and path.exists():
                os.replace(path, aside)
            os.replace(tmp, path)
        except OSError as err:
            if aside.exists():  # the old folder back where it was
                os.replace(aside, path)
            if not replace and path.is_dir():  # another process finished it first: its copy is as good
                return
            # a mount point (EBUSY) or an immutable folder (EPERM) cannot be renamed: the work is lost, not `path`
            raise SupraUserError(f"{path} cannot be replaced ({err.strerror or err}: a mount point or an immutable "
                                 "folder?), so it is left as it was and what was written beside it removed: write "
                                 "into a new folder inside it, or another one") from None
    finally:
        if path.exists() or not aside.exists():  # else the old folder could not be put back: kept with it
            shutil.rmtree(work, ignore_errors=True)
        if claim is not None:
            os.close(claim)  # the lock goes with it


def _claimed_folder(folder: Path) -> int:
    """ATOMIC_DIR_CLAIM in `folder`, open and locked (flock, where there is one) while the descriptor returned
    is open. Locked before it takes its name: no other process sees it unlocked while this one lives."""
    fd, tmp = tempfile.mkstemp(dir=folder)
    try:
        import fcntl
    except ImportError:  # off POSIX: unclaimed, so never taken for a leftover
        pass
    else:
        flock_had(fd, fcntl.LOCK_EX)  # a file system without locks: never taken for a leftover either
    os.replace(tmp, folder / ATOMIC_DIR_CLAIM)
    return fd


def is_mount_point(path: str | os.PathLike) -> bool:
    """Whether `path` is a mount point, which a rename cannot move (EBUSY): os.path.ismount, or on Linux one
    listed in /proc/self/mountinfo, as is a bind mount of a folder of the same file system (ismount compares
    devices, so misses it)."""
    if os.path.ismount(path):
        return True
    try:
        mounts = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:  # not Linux
        return False
    real = os.path.realpath(path)
    # the fifth field is the mount point, a space, tab, newline or backslash in it written in octal (\040)
    return any(len(fields) > 4 and re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4]) == real
               for fields in (line.split(" ") for line in mounts))


def atomic_dir_leftovers(path: str | os.PathLike) -> list[Path]:
    """The work folders atomic_dir(path) left beside `path` when its process was killed (SIGKILL, a power
    cut) before it finished: `.{name}.XXXXXXXX` (mkdtemp's name) holding the claim file that process had
    locked, unlocked now (stale_temp_files). Nothing else: a folder of the user's, however it is named
    (`.{name}.20240101`), holds no claim, and one at work holds it locked. Where locks are unknown, none."""
    path = Path(path)
    ours = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}")  # mkdtemp's 8 characters
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if ours.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
                  and stale_temp_files(p, re.escape(ATOMIC_DIR_CLAIM)))


def remove_leftovers(leftovers: list[Path], alone: bool, warning: Callable[[str], str], removed: str) -> None:
    """Temp folders of atomic_dir (atomic_dir_leftovers) that a run killed before it finished left: removed,
    and said (`removed`, before their names), where this run holds their place alone; else only named in a
    warning (`warning` of their names), as they may be another run's at work."""
    if not leftovers:
        return
    names = some_names([p.name for p in leftovers])
    if not alone:
        logging.getLogger(__name__).warning(warning(names))
        return
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    print(f"removed {len(leftovers)} temp folder(s) {removed}: {names}")


@contextmanager
def writing_alone(folder: str | os.PathLike, what: str) -> Iterator[bool]:
    """An exclusive lock on `folder` (flock on the folder itself: no lock file is left in it) while a command
    writes there: a second run into it meanwhile is refused in one line naming `what` (e.g. "out=DIR"),
    rather than mixing its outputs with the first's or taking its temp folders for leftovers. Yields
    whether the lock is held: False on a file system without locks (some network ones), or off POSIX."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            raise SupraUserError(f"{what} is being written by another run now: wait for it to finish, or choose "
                                 "another folder") from None
        except OSError:
            held = False
        yield held
    finally:
        os.close(fd)  # the lock goes with it


def _holds(folder: Path, path: Path) -> bool:
    folder, path = folder.resolve(), path.resolve()
    return path == folder or folder in path.parents


def check_replaceable_dir(path: str | os.PathLike, what: str, expected: Iterable[str],
                          inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False) -> Path:
    """Before a command replaces the folder `path` whole (atomic_dir): refuse, as one line naming `what`
    (e.g. "out=DIR"), a path that is a file, that holds the working directory or one of the command's own
    `inputs`, or, unless `overwrite`, that holds anything but the `expected` names (someone else's files)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SupraUserError(f"{what} is a file, not a folder: choose a folder to write")
    for kept in [Path.cwd(), *map(Path, inputs)]:
        if _holds(path, kept):
            raise SupraUserError(f"{what} holds {kept}, which replacing the folder would delete: choose a new folder")
    others = sorted(p.name for p in path.iterdir() if p.name not in set(expected)) if path.is_dir() else []
    if others and not overwrite:
        raise SupraUserError(f"{what} already holds other files ({some_names(others)}), which replacing the folder "
                             "would delete: choose a new folder, or add overwrite=true")
    return path


def some_names(names: list[str], most: int = 3) -> str:
    """The first `most` of `names` for a one-line message, and how many more ("a, b, c and 4 more")."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def refuse_overwriting_input(given: str | os.PathLike | None, what: str, out: str | os.PathLike,
                             names: Iterable[str]) -> None:
    """The input `given` (the option `what`, e.g. "image") that this run would replace with one of its
    outputs `names` in `out` (image=DIR/grid.png with out=DIR): one line before any work. Compared as
    out/name, not resolved through a link: a link there is replaced, not what it points to."""
    if not given:
        return
    for option, value in ((what, given), ("out", out)):
        if link_loops(value):  # resolve() would raise RuntimeError: a traceback, not a line
            raise SupraUserError(f"{option}={value} is a link that loops to itself (or through others back to "
                                 "it): point it at a real file or folder, or give that instead")
    path, folder = Path(given).resolve(), Path(out).resolve()
    for name in names:
        if path == folder / name:
            raise SupraUserError(f"{what}={given} is {name} in out={out}, which this run writes: "
                                 "give another out= folder (or copy the image out of it)")


def refuse_replacing_others(out: str | os.PathLike, names: Iterable[str], ours: Iterable[str], earlier: str) -> None:
    """Those of `names` in `out` that this run would write over but are not `ours` (what an earlier run of the
    command wrote, by its own record, `earlier` saying how that is known): one line before any work. The
    user's own files are never written over."""
    theirs = [name for name in names if os.path.lexists(Path(out) / name) and name not in set(ours)]
    if theirs:
        raise SupraUserError(f"out={out} already holds {some_names(theirs)}, which this run would write over and "
                             f"no earlier {earlier}: choose a new out= folder, or move them away")


def refuse_folders_in_the_way(out: str | os.PathLike, names: Iterable[str]) -> None:
    """A folder where this run writes one of its files `names` into `out` (out/grid.png/): one line before
    any work, not an IsADirectoryError from atomic_path's rename after it, with half the outputs written."""
    for name in names:
        if (Path(out) / name).is_dir():
            raise SupraUserError(f"out={out} holds a folder {name} where this run writes its file {name}: "
                                 "move the folder away or give another out= folder")


# str.splitlines breaks a line at each of these; written as escapes (the backslash too, so they read back
# unambiguously), a file of one record per line (generate's text.txt, a run's splits/*.txt) holds exactly that.
ONE_LINE = str.maketrans({c: c.encode("unicode_escape").decode("ascii") for c in "\\\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def outputs_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """A command's record of the files it wrote (generate's generation.json, shapes_gifs' .shapes_gifs.json):
    a JSON object whose "files" lists their names; None when there is none, or it is not one."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    listed = record.get("files") if isinstance(record, dict) else None
    return record if isinstance(listed, list) and all(isinstance(name, str) for name in listed) else None


def remove_earlier_outputs(folder: Path, earlier: Iterable[str], written: Iterable[str]) -> None:
    """The files an earlier run of a command listed as its outputs in `folder` (its record of them) that this
    run did not write again: removed, so the folder never mixes two runs' outputs. Only names directly in
    `folder`, and only those listed: nothing else there is touched."""
    for name in set(map(str, earlier)) - set(written):
        path = folder / Path(name).name
        if path.is_file():
            path.unlink()


# A write refused for want of room: the disk or a quota full, or a file past the process's size limit (ulimit -f)
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# ... as the writers that give no errno report it: numpy's .npy writer (a short fwrite), torch's zip writer
# (caffe2's inline_container.cc, a RuntimeError) and safetensors (a SafetensorError naming the errno); and as
# datasets reports its Arrow copy's failed write (a DatasetGenerationError raised from the OSError)
SHORT_NUMPY_WRITE = re.compile(r"\d+ requested and \d+ written")
SHORT_TORCH_WRITE = re.compile(r"inline_container\.cc.*unexpected pos \d+ vs \d+|PytorchStreamWriter failed")
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def no_room_reason(err: BaseException) -> str | None:
    """Why a write failed for want of room (NO_ROOM), for a one-line message; None for any other error, which
    is no full disk's and stays as it is."""
    if isinstance(err, OSError) and err.errno in NO_ROOM:
        return err.strerror or str(err)
    if (isinstance(err, OSError) and err.errno is None and SHORT_NUMPY_WRITE.search(str(err))) or (
            isinstance(err, RuntimeError) and SHORT_TORCH_WRITE.search(str(err))):
        return "the write was cut short: the disk full, or a file size limit"
    rust = RUST_OS_ERROR.search(str(err)) if type(err).__name__ == "SafetensorError" else None
    if rust and int(rust[1]) in NO_ROOM:
        return os.strerror(int(rust[1]))
    if type(err).__name__ == "DatasetGenerationError" and err.__cause__ is not None:
        return no_room_reason(err.__cause__)
    return None


@contextmanager
def room_to_write(what: str, remedy: str) -> Iterator[None]:
    """A write in the block that fails for want of room (no_room_reason) as one line naming where (`what`,
    e.g. "out=DIR") and what to do, as require_writable_dir's, rather than a traceback (numpy's and torch's
    name no file)."""
    try:
        yield
    except Exception as err:  # safetensors' errors are no OSError
        reason = no_room_reason(err)
        if reason is None:
            raise
        raise SupraUserError(f"cannot write to {what} ({reason}): {remedy}") from None


def reserve_space(path: str | os.PathLike) -> None:
    """The file's whole size taken on disk now (posix_fallocate), where the file system can: a memory-mapped file
    is sparse, its pages found room for only as they are written, and a write through the map that finds
    none is a SIGBUS (the process dies with no message); here it is an OSError (ENOSPC), before any work."""
    if not hasattr(os, "posix_fallocate"):  # off Linux and the BSDs
        return
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a file system that cannot: as before
            raise
    finally:
        os.close(fd)


def check_writable_dir(path: str | os.PathLike, create: bool = True) -> Path:
    """Create `path` if needed (unless not `create`) and prove a file can be written there; raise
    PermissionError/OSError if not."""
    path = Path(path)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test."):
        pass
    return path


def require_writable_dir(path: str | os.PathLike, what: str, remedy: str = "choose another folder",
                         create: bool = True) -> Path:
    """`check_writable_dir`, failing as one line that names the folder (`what`, e.g. "out=DIR") and what to do."""
    try:
        return check_writable_dir(path, create)
    except OSError as err:
        raise SupraUserError(f"cannot write to {what} ({err.strerror or err}): {remedy}") from None


@dataclass
class VisibleFiles:
    """What `walk_visible` found: the files, and each link to a folder that was listed already."""

    files: list[str]
    aliases: dict[str, str]  # a link's path -> the path its folder's files are listed under ("." the root)
    # named pipes, sockets and devices (or links to them), passed over: reading a pipe waits for a writer forever
    special: list[str] = field(default_factory=list)


def walk_visible(root: str | os.PathLike) -> VisibleFiles:
    """Every file under `root` as a relative posix path, sorted: hidden files and folders (a leading dot:
    .git, .DS_Store, a `.supra_cache` inside a data folder) passed over. Symlinked folders are followed
    (data sets are often linked into place: `train2014 -> /datasets/coco/train2014`), but each real folder
    is listed once: a second path to it (`latest -> 2024`, two links to one place, a link back up the tree)
    is an alias, not walked. Its files would be listed again under other names, which splits drawn by name
    put in train and test alike. A folder reached through no link keeps its own path (a link made to it
    renames nothing); otherwise the path through the fewest links wins, a link to a link counting as two (a
    folder moved away and linked back, `2024 -> /disk2/2024`, keeps its name beside `latest -> 2024`), then
    the oldest: a path is as old as the newest link on it (its modification time, in whole seconds, which
    `cp -a`, `rsync -a` and tar keep), so a link added beside one to the same place (`albums -> ../store`
    beside `photos -> ../store`) renames nothing either; then the first in sorted order. A copy that dates
    its links anew (`cp -r`) may choose another of tied paths.

    Links to files are listed as files: a content-addressed store (a Hugging Face snapshot) links two
    different files with the same bytes to one blob, which is no alias. So are links that lead nowhere (broken,
    or looping), which their readers name as unreadable. What is there but no regular file (a named pipe,
    a socket, a device, or a link to one) is in `special`, not `files`: opening a pipe hangs."""
    root, found, special, aliases = Path(root), [], [], {}
    listed: dict[tuple[int, int], str] = {}  # each folder walked (device, inode) -> the path it is listed under
    # folders to walk without following links, the one of fewest links, then oldest, then first in order
    # first (see above): (links on its path, the time its path came to be (_made_s), its parts, it)
    tops: list[tuple[int, int, tuple[str, ...], Path]] = [(0, 0, (), root)]
    while tops:
        links_on_path, since, _, top = heapq.heappop(tops)
        for folder, dirs, files in os.walk(top):
            here = Path(folder)
            base = here.relative_to(root)
            try:
                stat = here.stat()
            except OSError:  # gone meanwhile: os.walk passes over folders it cannot read too
                dirs[:] = []
                continue
            if (stat.st_dev, stat.st_ino) in listed:
                aliases[base.as_posix()] = listed[stat.st_dev, stat.st_ino]
                dirs[:] = []
                continue
            listed[stat.st_dev, stat.st_ino] = base.as_posix()
            visible = sorted(d for d in dirs if not d.startswith("."))
            linked = [d for d in visible if (here / d).is_symlink()]
            for d in linked:  # a link's own folders come out of the heap after every path of fewer links
                heapq.heappush(tops, (links_on_path + _chain_length(here / d), max(since, _made_s(here / d)),
                                      (here / d).relative_to(root).parts, here / d))
            dirs[:] = [d for d in visible if d not in linked]
            for name in files:
                if not name.startswith("."):
                    (found if _regular_or_nowhere(here / name) else special).append((base / name).as_posix())
    return VisibleFiles(sorted(found), aliases, sorted(special))


def _regular_or_nowhere(path: Path) -> bool:
    """A regular file, or a name that leads to nothing (a broken or looping link, a file gone meanwhile)."""
    try:
        return stat_mode.S_ISREG(path.stat().st_mode)
    except OSError:
        return True


def link_loops(path: str | os.PathLike) -> bool:
    """Whether `path` is a link that loops (to itself, or through others back to it): Path.exists says False,
    as for a broken link, and Path.resolve raises."""
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def not_regular(path: str | os.PathLike) -> bool:
    """Whether `path` is there (links followed) but neither a regular file nor a folder: a named pipe, a socket,
    a device. Reading a pipe waits for a writer forever, so such a path is named, never opened."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat_mode.S_ISREG(mode) or stat_mode.S_ISDIR(mode))


def _chain_length(link: Path, most: int = 40) -> int:
    """How many links `link` leads through to what is not one (`latest -> 2024 -> /disk2/2024`: 2); `most`
    (the system's own limit) for a loop."""
    n, path = 0, link
    while path.is_symlink() and n < most:
        path, n = path.parent / os.readlink(path), n + 1
    return n


def _made_s(link: Path) -> int:
    """When a link was made: its own modification time, in whole seconds (tar's usual formats keep no
    more, so a finer time could order two links made within a second otherwise after a copy)."""
    try:
        return os.lstat(link).st_mtime_ns // 1_000_000_000
    except OSError:  # gone meanwhile: os.walk finds nothing there either
        return 0


def listed_path(name: str, aliases: dict[str, str]) -> str:
    """`name`, a relative posix path that may pass through an alias of `walk_visible` (`latest/a.png`), as
    its file is listed (`2024/a.png`): what a caption file or an annotation naming either path means."""
    parts = name.split("/")
    for end in range(1, len(parts)):
        listed = aliases.get("/".join(parts[:end]))
        if listed is not None:  # no alias lies inside another (an alias is not walked): at most one matches
            rest = "/".join(parts[end:])
            # again for an alias inside the listed folder (2024/sub -> elsewhere): the path a link leads to
            # never starts with an alias, so the part after it shrinks each time
            return listed_path(rest if listed == "." else f"{listed}/{rest}", aliases)
    return name


def visible_files(root: str | os.PathLike) -> list[str]:
    """The files `walk_visible` lists under `root`."""
    return walk_visible(root).files


def file_stamp(path: str | os.PathLike) -> str:
    """A file's size and modification time, which change when it is rewritten ("missing" when it is not
    there: a dangling link, a file removed meanwhile)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def tree_stamp(root: str | os.PathLike) -> str:
    """A stamp of the visible files under `root` (visible_files) that changes when one is added, removed,
    renamed or rewritten: each one's path and file_stamp. Copies made without keeping modification times
    (`cp -r`) stamp differently: what the stamp keys is built again for them."""
    digest = hashlib.sha256()
    for name in visible_files(root):
        digest.update(f"{name}|{file_stamp(Path(root) / name)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]
