"""Caption text as every source reads it: whitespace collapsed (line breaks inside a caption would break
pycocoevalcap's line protocol), and for sources whose captions end in a tokenised full stop (Flickr8k's
"... grass ."), that stop dropped."""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

_FINAL_STOP = re.compile(r"\s*\.$")


def clean_caption(caption: str, drop_final_stop: bool = False) -> str:
    """Strip the caption, collapse its inner whitespace to single spaces, and with `drop_final_stop`
    remove a trailing '.' or ' .'."""
    caption = " ".join(caption.split())
    return _FINAL_STOP.sub("", caption).strip() if drop_final_stop else caption


def read_lines(path: Path) -> list[str]:
    """A caption file's lines: a UTF-8 BOM dropped, CRLF and CR line ends handled. A file that is not UTF-8
    (Notepad's Windows-1252, say: "café" as one byte) is read as Windows-1252, with a warning naming it,
    rather than with its accents silently turned into replacement characters."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        log.warning("%s is not UTF-8 (byte %d): read as Windows-1252; save it as UTF-8 if its captions look wrong",
                    path, err.start)
        return data.decode("cp1252", errors="replace").splitlines()
