"""A write that fails for want of room (a full disk or quota, a file size limit) said in one line, whichever
writer failed; and room taken before a memory-mapped file is written through."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from supra.utils.errors import SupraUserError

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
