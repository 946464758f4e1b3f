"""Atomic writes: a temp file (or folder) beside the target, then os.replace, so readers never see half of one."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from supra.utils.errors import SupraUserError
from supra.utils.folder_walk import link_loops
from supra.utils.numbers import counted


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
    with _written_temp_file(Path(path)) as tmp:
        yield tmp
        give_plain_permissions(tmp)
        os.replace(tmp, path)


@contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """atomic_path for files that describe one run together: a temp path beside each to write to, all renamed
    in only once every one is written; any error removes them all, leaving the earlier set whole. A write cut
    short in the middle (a full disk) never leaves a new file beside an earlier run's others, nor does a rename
    that fails (a folder in the way): the earlier files are moved aside first and put back."""
    paths = [Path(path) for path in paths]
    with ExitStack() as stack:
        temps = [stack.enter_context(_written_temp_file(path)) for path in paths]
        yield temps
        for temp in temps:
            give_plain_permissions(temp)
        # renamed in one by one: each earlier file waits under a hidden name beside it until all are in, so that
        # a rename failing half-way can give back the whole earlier set, not one new file among the old
        aside: dict[Path, Path] = {}
        renamed: list[Path] = []
        try:
            for path in paths:
                if (old := _moved_aside(path)) is not None:
                    aside[path] = old
            for temp, path in zip(temps, paths, strict=True):
                os.replace(temp, path)
                renamed.append(path)
        except BaseException:
            for path in renamed:
                path.unlink(missing_ok=True)
            for path, old in aside.items():
                try:
                    os.replace(old, path)
                except OSError as err:  # kept, never removed: the error above is the one raised
                    logging.getLogger(__name__).warning("could not put %s back (%s): it is kept as %s", path,
                                                        err.strerror or err, old)
            raise
        for old in aside.values():
            old.unlink(missing_ok=True)


@contextmanager
def _written_temp_file(path: Path) -> Iterator[Path]:
    """A locked temp file beside `path` to write (atomic_path's, atomic_paths'), without a rename: removed on any
    error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _claimed_temp_file(path)
    try:
        yield Path(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)  # the lock goes with it


def _moved_aside(path: Path) -> Path | None:
    """The file at `path` renamed to a hidden name beside it (None where there is none); a folder in the way is
    left where it is, for the rename onto it to fail on."""
    if not path.is_symlink() and not path.is_file():
        return None
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old")
    os.close(fd)
    try:
        os.replace(path, aside)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        raise
    return Path(aside)


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


def remove_leftovers(leftovers: list[Path], alone: bool, warning: Callable[[str], str], removed: str,
                     noun: str = "temp folder") -> None:
    """Temp folders of atomic_dir (atomic_dir_leftovers), or temp files of atomic_path (stale_temp_files, with
    noun="temp file"), that a run killed before it finished left: removed, and said (`removed`, before their
    names), where this run holds their place alone; else only named in a warning (`warning` of their names), as
    they may be another run's at work."""
    if not leftovers:
        return
    names = some_names([p.name for p in leftovers])
    if not alone:
        logging.getLogger(__name__).warning(warning(names))
        return
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with suppress(OSError):
                path.unlink(missing_ok=True)
    print(f"removed {counted(len(leftovers), noun)} {removed}: {names}")


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


def refuse_folders_in_the_way(out: str | os.PathLike, names: Iterable[str], option: str = "out",
                              remedy: str = "move the folder away or give another out= folder") -> None:
    """A folder where this run writes one of its files `names` into `out` (out/grid.png/): one line before
    any work, not an IsADirectoryError from atomic_path's rename after it, with half the outputs written.
    `option`: the command's option that named `out` (dir= for a report written into the folder it reads)."""
    for name in names:
        if (Path(out) / name).is_dir():
            raise SupraUserError(f"{option}={out} holds a folder {name} where this run writes its file {name}: "
                                 f"{remedy}")


# str.splitlines breaks a line at each of these; written as escapes (the backslash too, so they read back
# unambiguously), a file of one record per line (generate's text.txt, a run's splits/*.txt) holds exactly that.
ONE_LINE = str.maketrans({c: c.encode("unicode_escape").decode("ascii") for c in "\\\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})
_ESCAPED = {escape: chr(code) for code, escape in ONE_LINE.items()}
_ESCAPE = re.compile("|".join(re.escape(e) for e in sorted(_ESCAPED, key=len, reverse=True)))


def one_line_records(text: str) -> list[str]:
    """The records of a file written one a line with ONE_LINE's escapes (a run's splits/*.txt), as they were."""
    return [_ESCAPE.sub(lambda m: _ESCAPED[m.group()], line) for line in text.split("\n") if line]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# what readable_json still escapes: a lone surrogate (a file name's undecodable bytes, as os.walk gives them)
# has no UTF-8, and NEL / U+2028 / U+2029, which str.splitlines breaks at, would split a one-record-per-line file
_STILL_ESCAPED = re.compile("[\x85\u2028\u2029\ud800-\udfff]")


def parse_json(text: str | bytes) -> Any:
    """`json.loads(text)`, where text nested too deeply for Python's parser (`{"a":{"a":...}}` 100,000 deep, a
    RecursionError from json) is a json.JSONDecodeError too, so every reader's "not readable JSON" covers it."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", text if isinstance(text, str) else "", 0) from None


def readable_json(obj: Any, indent: int | None = None) -> str:
    """`obj` as JSON text that keeps non-ASCII characters as they are (`"猫 cat.png"`, not `"\\u732b cat.png"`),
    to be written as UTF-8, so captions and file names can be read and grepped; ASCII-only content is the
    same as json.dumps gives."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return _STILL_ESCAPED.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def write_json_atomic(path: str | os.PathLike, obj: Any, readable: bool = False) -> Path:
    """`obj` as indented JSON, written whole or not at all. `readable`: non-ASCII text as it is (readable_json),
    for the files people read (metrics.json, predictions.json); otherwise escaped, for files read back by code."""
    return write_text_atomic(path, (readable_json(obj, indent=2) if readable else json.dumps(obj, indent=2)) + "\n")


def outputs_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """A command's record of the files it wrote (generate's generation.json, shapes_gifs' .shapes_gifs.json):
    a JSON object whose "files" lists their names; None when there is none, or it is not one."""
    try:
        record = parse_json(Path(path).read_text(encoding="utf-8"))
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
        raise SupraUserError(f"cannot write to {what} ({unwritable_reason(Path(path), err)}): {remedy}") from None


def unwritable_reason(path: Path, err: OSError) -> str:
    """Why the folder `path` could not be written (`err`), for a one-line message: the file in its way, named
    ("... is a file, not a folder"), where there is one; else the OS's words."""
    in_the_way = file_in_the_way(path)
    # the OS's words for a file in the way, "File exists" or "Not a directory", would not say which file
    if in_the_way is not None:
        return f"{in_the_way} is a file, not a folder"
    return err.strerror or str(err)


def file_in_the_way(path: Path) -> Path | None:
    """The file at `path`, or at a folder above it, that keeps it from being a folder; None if there is none."""
    for part in (path, *path.parents):
        if part.exists():
            return None if part.is_dir() else part
    return None


URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # s3://, gs://, memory://, ... (a path has none)


def local_path_of(value: str) -> str | None:
    """`value` as a local path: a path as it is, file:///p (or file:/p) as /p; None for any other URL."""
    if value.startswith("file:"):
        return "/" + value.removeprefix("file:").lstrip("/")
    return None if URL_SCHEME.match(value) else value


def require_local_folder(value: str, option: str) -> str:
    """`value` as local_path_of gives it; a URL (s3://...) refused in one line: Path() would collapse its `//`
    and write a folder named `s3:` in the current one."""
    local = local_path_of(value)
    if local is None:
        raise SupraUserError(f"{option}={value} is a URL: this command writes a local folder, which runs read; give "
                             f"a local folder as {option}")
    return local


def absolute_path(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """`path` absolute, read against `base` (default: the current folder) where relative, with `..` and `.`
    taken out where that names the same file (after a link, `link/..` is not the folder the link sits in)."""
    joined = os.path.join(os.fspath(base) if base is not None else os.getcwd(), os.fspath(path))
    tidy = os.path.normpath(joined)
    return tidy if os.path.realpath(tidy) == os.path.realpath(joined) else joined


def openable_path(path: str | os.PathLike) -> str:
    """`path` as the reader of a message can open it from where they are: relative to the current folder where it
    lies inside it, else absolute (a file of the checkout, conf/ or docs/, named to a user who works elsewhere)."""
    full = absolute_path(path)
    inside = os.path.commonpath([full, os.getcwd()]) == os.getcwd()
    return os.path.relpath(full) if inside else full


def as_typed_and_absolute(path: str | os.PathLike) -> str:
    """`path` as typed, with its absolute form beside it where that differs: `../photos (/data/photos)`, for a line
    that says a path is missing (a relative one was read against the current folder, which the reader may not
    have had in mind)."""
    typed, full = os.fspath(path), absolute_path(path)
    return typed if typed == full else f"{typed} ({full})"
