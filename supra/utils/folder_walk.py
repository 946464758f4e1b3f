"""What a folder holds, as the data readers list it: visible regular files, each real folder once (links to
folders followed, aliases named), and stamps that change when a file is added, removed or rewritten."""

from __future__ import annotations

import errno
import hashlib
import heapq
import os
import stat as stat_mode
from dataclasses import dataclass, field
from pathlib import Path


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
            links = set(linked)  # a set: thousands of linked folders in one are no quadratic search
            dirs[:] = [d for d in visible if d not in links]
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
    """A file's size, modification time, change time and inode, which change when it is rewritten or
    another file takes its name ("missing" when it is not there: a dangling link, a file removed meanwhile).
    Size and mtime alone miss two files of one size swapped by name where an unpacked archive gave every file
    one mtime; the change time and inode do not (a rename sets the one, a new file has the other)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


def tree_stamp(root: str | os.PathLike) -> str:
    """A stamp of the visible files under `root` (visible_files) that changes when one is added, removed,
    renamed or rewritten: each one's path and file_stamp. A copy stamps differently (its files are new
    inodes): what the stamp keys is built again for it."""
    digest = hashlib.sha256()
    for name in visible_files(root):
        digest.update(f"{name}|{file_stamp(Path(root) / name)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]
