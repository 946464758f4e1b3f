"""Caption text as every source reads it: in Unicode's composed form (NFC: "é" typed on a Mac is often "e" and a
combining accent, which trained, de-duplicated and scored as another word) and whitespace collapsed (line breaks
inside a caption would break pycocoevalcap's line protocol). A caption is scored as that text, as the source publishes it; it is trained on
with its final full stop dropped (sources differ in whether they end captions with one: Flickr8k's "... grass .")
and once per image (training_captions)."""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

from supra.utils.distributed import rank_and_world
from supra.utils.errors import SupraUserError

log = logging.getLogger(__name__)

_FINAL_STOP = re.compile(r"\s*\.$")


def clean_caption(caption: str, drop_final_stop: bool = False) -> str:
    """The caption in NFC (composed, not NFKC's folding of "２３" to "23"), stripped, its inner whitespace
    collapsed to single spaces, and with `drop_final_stop` a trailing '.' or ' .' removed."""
    caption = " ".join(unicodedata.normalize("NFC", caption).split())
    return without_final_stop(caption) if drop_final_stop else caption


def without_final_stop(caption: str) -> str:
    """A caption clean_caption gave, with a trailing '.' or ' .' removed: clean_caption(c, drop_final_stop=True)
    without normalising it again."""
    return _FINAL_STOP.sub("", caption).strip()


def training_captions(references: Iterable[str]) -> list[str]:
    """The captions an image is trained on, from its references as published: each with its final full stop
    dropped, blank ones and repeats left out, in their order. Scoring keeps the references themselves: PTB
    drops a sentence-final stop itself, where dropping it here turns "the U.S." into "the u.s"."""
    kept = (clean_caption(reference, drop_final_stop=True) for reference in references)
    return list(dict.fromkeys(caption for caption in kept if caption))


# Byte-order marks, longest first (UTF-32's little-endian mark begins with UTF-16's): Notepad's and
# Excel's "Unicode" saves are UTF-16 with a mark
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_caption_bytes(data: bytes) -> tuple[str, str | None, int | None]:
    """Caption bytes as text: UTF-8, or the encoding their byte-order mark names (UTF-16 or UTF-32, mark
    dropped); bytes that are neither (Notepad's Windows-1252, say: "café" as one byte) read as
    Windows-1252, rather than with their accents silently turned into replacement characters. Also, for a
    warning: the encoding the mark named (UTF-8, UTF-16, UTF-32; None without one) and the first byte not
    in the encoding tried (None when all were)."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    marked = encoding.upper().removesuffix("-SIG") if encoding else None
    try:
        return data.decode(encoding or "utf-8"), marked, None
    except UnicodeDecodeError as err:
        if encoding is not None:  # its mark names the encoding: a damaged character is one, not the file
            return data.decode(encoding, errors="replace"), marked, err.start
        return data.decode("cp1252", errors="replace"), None, err.start


def read_caption_text(path: Path, not_utf8: list[Path] | None = None) -> str:
    """A caption file's text (decode_caption_bytes), with a warning naming it when its bytes were not all in
    the encoding read. Given `not_utf8`, a file read as Windows-1252 is added to it instead, for the caller to
    say once for all (a folder of 2,000 Notepad sidecars is one line, not 2,000)."""
    text, marked, bad_byte = decode_caption_bytes(path.read_bytes())
    if bad_byte is None:
        return text
    if not marked and not_utf8 is not None:
        not_utf8.append(path)
    elif rank_and_world()[0] != 0:  # every DDP rank reads the captions alike: said by rank 0 alone
        pass
    elif marked:
        log.warning("%s: a byte-order mark says %s, but byte %d is not: read with replacement characters",
                    path, marked, bad_byte)
    else:
        log.warning("%s is not UTF-8 (byte %d): read as Windows-1252; save it as UTF-8 if its captions look wrong",
                    path, bad_byte)
    return text


_LINE_END = re.compile(r"\r\n|\r|\n")


def read_lines(path: Path, not_utf8: list[Path] | None = None) -> list[str]:
    """A caption file's lines (read_caption_text), split at CRLF, CR and LF only: not at the other breaks
    str.splitlines knows (U+2028, U+0085, form feed...), which a caption may hold (json.dumps with
    ensure_ascii=False writes U+2028 as is) and which clean_caption turns into spaces."""
    lines = _LINE_END.split(read_caption_text(path, not_utf8))
    return lines[:-1] if lines and not lines[-1] else lines


def _looks_like_row(line: str, delimiter: str, media_suffixes: tuple[str, ...]) -> bool:
    """Whether `line` starts as a table's row does: a file name (spaces too: `Screen Shot 1.png`) ending in
    one of `media_suffixes` (any case), perhaps in quotes, then the delimiter (`photo.jpg,...`,
    `"photo.JPG",...`). Inside a quoted field, the sign that a quote left open has swallowed rows; a
    caption's own second line (`Price 3.99, today only`, `www.example.com, for more`) is not one."""
    d, suffixes = re.escape(delimiter), "|".join(map(re.escape, media_suffixes))
    return re.match(rf'\s*"?[^"{d}]+?(?:{suffixes})"?\s*{d}', line, re.IGNORECASE) is not None


def read_caption_table(path: Path, columns: tuple[str, str], delimiter: str = ",", *,
                       media_suffixes: tuple[str, ...], not_utf8: list[Path] | None = None,
                       ) -> Iterator[tuple[int, str, str]]:
    """(line, name, caption) for each row of a caption table (read_caption_text) whose header starts with
    `columns` (e.g. file,caption), blank rows passed over; the files it names end in `media_suffixes`.
    Any line ends (a Mac spreadsheet's CR ones too). With only the two columns, an unquoted caption holding
    the delimiter arrives split and is taken back as written; with more (file,caption,source,license) the
    caption is its column alone. A header written with a space after each delimiter (`file, caption`) has
    its rows read the same way (`a.jpg, "x, y"` -> `x, y`, `a.jpg, 1,000 people` -> `1,000 people`). A
    quoted caption may hold line breaks (Excel's Alt+Enter).

    One line naming the file for a wrong header, and for a quoted field left open: one that runs to the end
    of the file, or over lines that start as rows of their own do (a media file's name, then the
    delimiter), would swallow the rows after it."""
    text = read_caption_text(path, not_utf8)
    lines = _LINE_END.split(text)  # as the reader counts them: csv takes CR, LF and CRLF as line ends
    spaced = f"{delimiter} " in lines[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=spaced)
    try:
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != list(columns):
            raise SupraUserError(f"{path} must start with the header '{delimiter.join(columns)}' "
                                 f"(found {delimiter.join(header or [])!r})")
        more_columns, start = len(header) > 2, reader.line_num + 1
        for row in reader:
            written = lines[start - 1:reader.line_num]
            if len(written) > 1 and ("".join(written).count('"') % 2 or any(
                    _looks_like_row(line, delimiter, media_suffixes) for line in written[1:])):
                raise SupraUserError(
                    f"{path}:{start}: a quoted field runs over {len(written)} lines (a missing "
                    'closing quote?): close its quote, or write a quote inside a caption as ""')
            if row and "".join(row).strip():
                caption = (row[1] if len(row) > 1 else "") if more_columns else _caption(row, written, delimiter, spaced)
                yield start, row[0], caption
            start = reader.line_num + 1
    except csv.Error as err:
        raise SupraUserError(f"{path}:{reader.line_num} cannot be read as a table ({err}): fix that line") from None


def _caption(row: list[str], written: list[str], delimiter: str, spaced: bool) -> str:
    """A two-column table's caption, which arrives split at each delimiter it holds unquoted: taken from
    its line as written, after the name and its delimiter (rejoined, a spaced table's `1,000` would come
    back `1, 000`; a quote inside, `a 12" pizza`, stays, as does one opening a caption it does not enclose,
    `"Stop" sign, red`), the name written plain or quoted (`"a.jpg",`). A quoted caption (`"x, y"`) or one
    over several lines: its fields, which have lost their quotes, rejoined."""
    line = written[0].lstrip(" ") if spaced else written[0]  # the reader skips those spaces too
    quoted_name = '"' + row[0].replace('"', '""') + '"'
    name_written = next((name + delimiter for name in (row[0], quoted_name) if line.startswith(name + delimiter)), None)
    if len(written) == 1 and name_written is not None:
        caption = line[len(name_written):]
        caption = caption.lstrip(" ") if spaced else caption
        if not re.match(rf'"(?:[^"]|"")*"(?:{re.escape(delimiter)}|\s*$)', caption):
            return caption
    return (f"{delimiter} " if spaced else delimiter).join(row[1:])
