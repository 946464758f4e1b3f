"""Caption text as every source reads it: whitespace collapsed (line breaks inside a caption would break
pycocoevalcap's line protocol), and for sources whose captions end in a tokenised full stop (Flickr8k's
"... grass ."), that stop dropped."""

from __future__ import annotations

import re
from pathlib import Path

_FINAL_STOP = re.compile(r"\s*\.$")


def clean_caption(caption: str, drop_final_stop: bool = False) -> str:
    """Strip the caption, collapse its inner whitespace to single spaces, and with `drop_final_stop`
    remove a trailing '.' or ' .'."""
    caption = " ".join(caption.split())
    return _FINAL_STOP.sub("", caption).strip() if drop_final_stop else caption


def read_lines(path: Path) -> list[str]:
    """A caption file's lines: a UTF-8 BOM dropped, CRLF and CR line ends handled, undecodable bytes replaced."""
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
