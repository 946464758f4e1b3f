"""One tar shard's samples: its files read in order by libarchive where the system has it (else by
webdataset's own tar iterator) and grouped by key as webdataset groups them ({"__key__", "__url__",
"jpg": bytes, "txt": bytes, ...}).

Why libarchive: img2dataset writes its shards with webdataset's TarWriter, which stores each file's mtime
as a float, so every member carries a PAX header, and Python's tarfile (webdataset's reader) parses each
header in Python: ~0.25 ms for a sample's three files, about a sixth of a streamed sample's work on 2
cores. libarchive, in C, reads the same files in ~0.1 ms (benchmarks/shard_pipeline.py). It is a system
library (Debian/Ubuntu `libarchive13`, conda `libarchive`, built into macOS) reached through its
`libarchive-c` binding; where it cannot be loaded, shards are read by tarfile instead, slower, to the same
files (tests/test_shards.py reads every trap both ways). Either reader raises on a damaged tar after
yielding the files before the damage; the caller counts it.

Grouping is webdataset's rule (a sample is the run of files sharing the name before the first dot, the
extensions lower-cased) but not its `group_by_keys`, which would hand on the sample a damaged tar cut
short: here that sample is dropped with the damage, since what was lost may be its caption.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any, BinaryIO

from supra.utils.errors import first_line

log = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 16  # what libarchive asks of the stream at a time: a photo in one or two reads
MAX_BLOCK_BYTES = 1 << 24  # a file's bytes are taken in blocks of its size up to this
# keys remembered to notice a sample's files apart in a tar: all of an img2dataset shard's (10,000), a
# bounded ~10 MB of a single huge tar's
FINISHED_KEYS = 100_000


@functools.cache
def libarchive_or_none() -> ModuleType | None:
    """The libarchive-c binding, or None (said once) when the system's libarchive cannot be loaded."""
    # its import says at INFO what the system's library lacks (entry digests, encryption), none of which we use
    logging.getLogger("libarchive").setLevel(logging.WARNING)
    try:
        import libarchive

        return libarchive
    except (ImportError, OSError, AttributeError) as exn:  # the binding fails at import without the library
        log.warning("libarchive could not be loaded (%s): tar shards are read by Python's tarfile, ~0.2 ms a "
                    "sample slower; install the system's libarchive (apt-get install libarchive13, conda "
                    "install libarchive) for the faster reader", first_line(exn, 120))
        return None


def tar_samples(url: str, stream: BinaryIO, reader: str = "auto") -> Iterator[dict[str, Any]]:
    """The samples of the tar `stream` read from `url`, in order; raises (the sample in progress dropped)
    on a damaged tar. A key met again after other keys (a tar made by `tar cf x.tar *.jpg *.txt`) starts a
    sample marked `__apart__`: its files were not adjacent, so webdataset's rule split it (the caller says so
    where that leaves a part unusable)."""
    from webdataset.tariterators import base_plus_ext

    sample: dict[str, Any] | None = None
    finished: set[str] = set()  # the tar's keys so far (~100 bytes each), up to FINISHED_KEYS of them
    for name, data in tar_members(stream, reader):
        key, extension = base_plus_ext(name)
        if key is None:
            continue
        if sample is not None and key != sample["__key__"]:
            if len(finished) < FINISHED_KEYS:
                finished.add(sample["__key__"])
            yield sample
            sample = None
        if sample is None:
            sample = {"__key__": key, "__url__": url}
            if key in finished:
                sample["__apart__"] = True
        sample[extension.lower()] = data
    if sample is not None:
        yield sample


def tar_members(stream: BinaryIO, reader: str = "auto") -> Iterator[tuple[str, bytes]]:
    """Each regular file of the tar (or compressed tar) `stream`, as (name, bytes). `reader`: "auto"
    (libarchive where it loads), "libarchive" or "tarfile"."""
    libarchive = libarchive_or_none() if reader in ("auto", "libarchive") else None
    if libarchive is None:
        import tarfile

        from webdataset import tariterators

        try:
            for member in tariterators.tar_file_iterator(stream, handler=tariterators.reraise_exception):
                yield member["fname"], member["data"]
        except tarfile.TarError as exn:  # tarfile's words, less the " @ <stream's repr>" webdataset adds
            raise damaged_tar("tarfile", str(exn.args[0]).split(" @ ")[0] if exn.args else None) from exn
        return
    pulled = _Pulled(stream)
    try:
        with libarchive.stream_reader(pulled, block_size=BLOCK_BYTES) as archive:
            for entry in archive:
                if entry.isfile:  # read in one block (libarchive-c's default is a page: ~20 calls a photo)
                    block = min(max(entry.size or 0, 4096), MAX_BLOCK_BYTES)
                    yield entry.pathname, b"".join(entry.get_blocks(block))
    except Exception as exn:
        if pulled.error is not None:  # what the stream raised says more than libarchive's "read failed"
            raise pulled.error from None
        # libarchive's words where it has some (a tar cut in its first member has none), never its pointers
        raise damaged_tar("libarchive", getattr(exn, "msg", None)) from exn


def damaged_tar(reader: str, reason: str | None) -> OSError:
    """A tar that `reader` could not read to its end, in words, with the reader's own `reason` where it gave one."""
    return OSError("damaged or cut-short tar" + (f" ({reader}: {reason})" if reason else ""))


class _Pulled:
    """The stream as libarchive-c's read callback pulls it: through readinto(), or read() for webdataset's
    `pipe:` streams, which have no readinto(). An exception must not escape the callback: ctypes would
    print it and hand libarchive a stale buffer (a segfault, seen with a `pipe:` command that failed), so
    it is kept and the callback answers -1, which libarchive raises as an error."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.error = stream, None

    def readinto(self, buffer: Any) -> int:
        try:
            if hasattr(self.stream, "readinto"):
                return self.stream.readinto(buffer)
            data = self.stream.read(len(buffer))
            memoryview(buffer).cast("B")[: len(data)] = data
            return len(data)
        except Exception as exn:
            self.error = exn
            return -1

    def seekable(self) -> bool:  # no seek callback either: libarchive reads a shard straight through
        return False
