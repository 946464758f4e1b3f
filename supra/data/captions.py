"""Caption text as every source reads it: whitespace collapsed (line breaks inside a caption would break
pycocoevalcap's line protocol), and for sources whose captions end in a tokenised full stop (Flickr8k's
"... grass ."), that stop dropped."""

from __future__ import annotations

import codecs
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


# Byte-order marks, longest first (UTF-32's little-endian mark begins with UTF-16's): Notepad's and
# Excel's "Unicode" saves are UTF-16 with a mark
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_caption_text(path: Path) -> str:
    """A caption file's text: UTF-8, or the encoding its byte-order mark names (UTF-16 or UTF-32, mark
    dropped). A file that is neither (Notepad's Windows-1252, say: "café" as one byte) is read as
    Windows-1252, with a warning naming it, rather than with its accents silently turned into replacement
    characters."""
    data = path.read_bytes()
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    try:
        return data.decode(encoding or "utf-8")
    except UnicodeDecodeError as err:
        if encoding is not None:  # its mark names the encoding: a damaged character is one, not the file
            log.warning("%s: a byte-order mark says %s, but byte %d is not: read with replacement characters",
                        path, encoding.upper().removesuffix("-SIG"), err.start)
            return data.decode(encoding, errors="replace")
        log.warning("%s is not UTF-8 (byte %d): read as Windows-1252; save it as UTF-8 if its captions look wrong",
                    path, err.start)
        return data.decode("cp1252", errors="replace")


def read_lines(path: Path) -> list[str]:
    """A caption file's lines (read_caption_text), CRLF and CR line ends handled."""
    return read_caption_text(path).splitlines()
