"""Animated GIF -> its frames as a browser shows them: uint8 RGB [H, W, 3] at the logical screen size.

Why not just `Image.seek` through Pillow's frames: Pillow 13 composites frames itself, but not the way
Chrome and Firefox do, and every difference shows up as wrong pixels in training data:
- it keeps the last non-zero disposal method for later frames that say 0 ("unspecified");
- disposal 2 fills the frame's rectangle with the global background colour (when the frame has no
  transparent index); browsers ignore that colour and clear the rectangle to transparent (the page, here
  the matte, shows through);
- the area outside a first frame smaller than the screen is palette index 0 (often black), not transparent;
- a frame reaching past the logical screen grows the image in the middle of the animation, so frames of
  one file differ in size; browsers clip it to the screen;
- its decompression-bomb check is its global MAX_IMAGE_PIXELS (only a warning up to twice that), and a
  frame's size is checked only when seeking reaches it, after the frames before it were decoded.
So this module reads the GIF's block structure itself (every size is checked against `max_pixels` before
any pixel is decoded), lets Pillow's C decoder turn each frame's LZW data into palette indices (that part it
does right, interlacing included) and does the compositing here, with numpy.

Browser rules followed: the canvas starts transparent; a frame's transparent index leaves what is under
it; disposal 0/1 keep the frame, 2 clears its rectangle to transparent, 3 (and 4, which some encoders write
for it) restores the rectangle to what it was before the frame; a first frame larger than the screen grows
the screen, later frames are clipped to it; a byte that starts no known block ends the file, as a trailer
would. Each shown frame is then put over `matte` (white by default, as `images.load_rgb` does).
One difference remains: a frame whose LZW data stops before the frame is full is drawn partly by browsers,
but Pillow's decoder refuses it, so the animation ends before that frame (`problem` says so).
"""

from __future__ import annotations

import io
import statistics
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image

from supra.utils.errors import first_line
from supra.utils.numbers import counted

WHITE = (255, 255, 255)
DEFAULT_MAX_PIXELS = 100_000_000  # as images.load_rgb

# A frame's time on screen where its delay is missing or at most 10 ms (0 or 1 hundredth): Chromium and Firefox
# show such a frame for 100 ms (a delay of 0, written by tools that set none, would otherwise flash)
BROWSER_MS, BROWSER_MIN_DELAY_MS = 100, 20

# MediaDecodeError.kind values, so callers can count skipped files by reason
UNREADABLE = "unreadable"
TOO_LARGE = "too large"
EMPTY = "empty"
# a file of 0 bytes: its kind and its reason, in the words every reader of pictures says it (images.why_unreadable)
EMPTY_FILE = "empty file (0 bytes)"


def _pack(rgb: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] colours -> uint32 [...] opaque RGBA pixels: one element per pixel, so drawing a
    frame is one take/copy over [h, w] instead of per-channel work (faster on big frames)."""
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:-1], 1), 255, dtype=np.uint8)], axis=-1)
    return np.ascontiguousarray(rgba).view(np.uint32)[..., 0]


_GREY_RAMP = _pack(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1))


class MediaDecodeError(ValueError):
    """A media file that cannot be used; `str(err)` is a one-line reason, `kind` one of UNREADABLE,
    TOO_LARGE (a decompression bomb: refused from its header) or EMPTY (no pixels or no frames)."""

    def __init__(self, reason: str, kind: str = UNREADABLE) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass
class _Frame:
    """One image block as the file describes it; `data` spans its LZW sub-blocks, terminator included."""

    left: int
    top: int
    width: int
    height: int
    interlace: bool
    palette: np.ndarray | None  # local colour table, packed RGBA uint32 [256]
    min_code_size: int
    data: slice
    transparency: int | None = None
    disposal: int = 0
    delay_ms: int | None = None  # how long the frame shows; None: the file sets none (no control extension)


@dataclass
class GifAnimation:
    """A parsed GIF: sizes known, nothing decoded yet. `frames()` decodes and composites lazily."""

    source: bytes = field(repr=False)
    width: int
    height: int
    global_palette: np.ndarray | None = field(repr=False)
    records: list[_Frame] = field(repr=False)
    problem: str | None = None  # why reading stopped before the trailer, if it did (frames before it kept)
    capped: bool = False  # max_frames was reached: later frames were not read

    def __len__(self) -> int:
        """Frames found (a frame that then fails to decode ends `frames()` early and sets `problem`)."""
        return len(self.records)

    def durations_ms(self) -> list[int | None]:
        """Each frame's delay as the file gives it (in steps of 10 ms; None where it sets none)."""
        return [record.delay_ms for record in self.records]

    def frames(self, matte: tuple[int, int, int] = WHITE) -> Iterator[np.ndarray]:
        """Each frame as shown: uint8 RGB [height, width, 3], transparent pixels over `matte`.

        A frame whose pixel data cannot be decoded ends the animation there (`problem` says why);
        if that is the first frame, MediaDecodeError instead.
        """
        canvas = np.zeros((self.height, self.width, 4), dtype=np.uint8)  # RGBA, alpha 0 (transparent) or 255
        pixels = canvas.view(np.uint32)[..., 0]  # the same memory, one RGBA pixel per element
        matte_pixel = _pack(np.array(matte, dtype=np.uint8))
        for i, record in enumerate(self.records):
            x1, y1 = min(record.left + record.width, self.width), min(record.top + record.height, self.height)
            region = pixels[record.top:y1, record.left:x1]  # a view: clipped to the screen
            before = region.copy() if record.disposal == 3 else None
            if region.size:
                try:
                    indices = _decode_indices(self.source, record)[: region.shape[0], : region.shape[1]]
                except MediaDecodeError as err:
                    if i == 0:
                        raise
                    self.problem = f"frame {i}: {err}"
                    return
                palette = record.palette if record.palette is not None else self.global_palette
                # No colour table at all: index i is grey (i, i, i), as Pillow reads it.
                colours = np.take(_GREY_RAMP if palette is None else palette, indices)
                if record.transparency is None:
                    region[:] = colours
                else:
                    np.copyto(region, colours, where=indices != record.transparency)
            shown = np.where(canvas[..., 3] != 0, pixels, matte_pixel)
            yield np.ascontiguousarray(shown.view(np.uint8).reshape(self.height, self.width, 4)[..., :3])
            if record.disposal == 2:
                region[:] = 0
            elif before is not None:
                region[:] = before


def _palette(table: bytes) -> np.ndarray:
    """Colour table -> packed RGBA uint32 [256]; indices past its end read as black."""
    out = np.zeros((256, 3), dtype=np.uint8)
    colours = np.frombuffer(table, dtype=np.uint8).reshape(-1, 3)[:256]
    out[: len(colours)] = colours
    return _pack(out)


def _check_pixels(what: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        pixels = f"{width}x{height} = {width * height:,} pixels"
        raise MediaDecodeError(f"{what} is {pixels}, over max_pixels={max_pixels}", TOO_LARGE)


class _Truncated(Exception):
    """The data ended inside a block."""


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Truncated
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def sub_blocks(self) -> list[bytes]:
        """Data sub-blocks up to and including the 0-length terminator."""
        blocks = []
        while size := self.take(1)[0]:
            blocks.append(self.take(size))
        return blocks


# what a file given as a clip most often is instead, by its first bytes (WebP: RIFF, then WEBP at byte 8)
OTHER_FORMATS = {b"\x89PNG\r\n\x1a\n": "a PNG picture", b"\xff\xd8\xff": "a JPEG picture", b"II*\x00": "a TIFF picture",
                 b"MM\x00*": "a TIFF picture", b"\x1aE\xdf\xa3": "a WebM or MKV video"}


def not_a_gif(start: bytes) -> MediaDecodeError:
    """The error for a file whose first bytes (12 suffice) are not a GIF's: EMPTY_FILE where there are none, the
    format it is where they tell (a PNG picture), else the bytes themselves."""
    if not start:
        return MediaDecodeError(EMPTY_FILE, EMPTY_FILE)
    known = next((name for magic, name in OTHER_FORMATS.items() if start.startswith(magic)), None)
    if start[:4] == b"RIFF" and start[8:12] == b"WEBP":
        known = "a WebP picture"
    elif start[4:8] == b"ftyp":  # the ISO media box every MP4, MOV and HEIC starts with
        known = "an MP4, MOV or HEIC file"
    return MediaDecodeError(f"it is {known}, not a GIF" if known else f"not a GIF (starts with {start[:6]!r})")


def parse_gif(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int | None = None) -> GifAnimation:
    """The structure of a GIF held in memory, every size checked against `max_pixels`, nothing decoded.

    Raises MediaDecodeError: not a GIF, cut before its first frame (UNREADABLE); the screen or any frame
    over max_pixels (TOO_LARGE); no frames or a 0-pixel screen (EMPTY). A file cut later, or missing
    its trailer, keeps the complete frames before the cut (`problem` says where).
    """
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise not_a_gif(data[:12])
    reader = _Reader(data, 6)
    try:
        width, height, flags, _background, _aspect = struct.unpack("<HHBBB", reader.take(7))
        _check_pixels("the logical screen", width, height, max_pixels)
        global_palette = _palette(reader.take(3 << ((flags & 7) + 1))) if flags & 0x80 else None
    except _Truncated:
        raise MediaDecodeError("the file ends inside its header") from None
    gif = GifAnimation(data, width, height, global_palette, [])
    control: dict[str, int | None] = {}  # the graphic control extension for the next image
    while True:
        start = reader.pos
        try:
            introducer = reader.take(1)
            if introducer == b";":
                break
            if introducer == b"!":
                label = reader.take(1)[0]
                blocks = reader.sub_blocks()
                if label == 0xF9 and blocks and len(blocks[0]) >= 4:
                    packed, delay, index = struct.unpack("<BHB", blocks[0][:4])
                    disposal = (packed >> 2) & 7
                    # 4 is what some encoders write for "restore to previous"; 5-7 are undefined: keep.
                    control = {"disposal": 3 if disposal == 4 else disposal if disposal < 4 else 0,
                               "transparency": index if packed & 1 else None, "delay_ms": 10 * delay}
            elif introducer == b",":
                frame = _read_image_block(reader, gif, control, max_pixels)
                control = {}
                gif.records.append(frame)
                if max_frames is not None and len(gif.records) >= max_frames:
                    gif.capped = reader.pos < len(data) and data[reader.pos:reader.pos + 1] != b";"
                    break
            else:
                # GIF89a calls stray bytes between blocks corrupt; browsers stop there and show what came before.
                gif.problem = f"unknown block 0x{introducer[0]:02x} at byte {start}: treated as the end"
                break
        except _Truncated:
            after = counted(len(gif.records), "frame")
            gif.problem = (f"no trailer: the file ends after {after}" if start == len(data)
                           else f"the file is cut inside the block at byte {start}, after {after}")
            break
    if gif.width == 0 or gif.height == 0:
        raise MediaDecodeError(f"the logical screen is {gif.width}x{gif.height}: no pixels", EMPTY)
    if not gif.records:
        if gif.problem:
            raise MediaDecodeError(f"no complete frame: {gif.problem}")
        raise MediaDecodeError("the GIF has 0 frames", EMPTY)
    return gif


def _read_image_block(reader: _Reader, gif: GifAnimation, control: dict, max_pixels: int) -> _Frame:
    left, top, width, height, flags = struct.unpack("<HHHHB", reader.take(9))
    _check_pixels(f"frame {len(gif.records)}", width, height, max_pixels)
    if not gif.records and (left + width > gif.width or top + height > gif.height):
        # A first frame larger than the screen grows it (as browsers do); later frames are clipped.
        gif.width, gif.height = max(gif.width, left + width), max(gif.height, top + height)
        _check_pixels("the logical screen grown to the first frame", gif.width, gif.height, max_pixels)
    palette = _palette(reader.take(3 << ((flags & 7) + 1))) if flags & 0x80 else None
    min_code_size = reader.take(1)[0]
    start = reader.pos
    reader.sub_blocks()
    interlace = bool(flags & 0x40)
    return _Frame(left, top, width, height, interlace, palette, min_code_size, slice(start, reader.pos), **control)


def _decode_indices(source: bytes, frame: _Frame) -> np.ndarray:
    """One frame's palette indices, uint8 [height, width], decoded by Pillow from a one-frame GIF built
    around its LZW data (no colour table, so Pillow returns the indices themselves, as mode L)."""
    if frame.min_code_size > 8:
        raise MediaDecodeError(f"LZW minimum code size {frame.min_code_size} is over 8")
    one_frame = b"".join([
        b"GIF89a", struct.pack("<HHBBB", frame.width, frame.height, 0, 0, 0),
        b",", struct.pack("<HHHHB", 0, 0, frame.width, frame.height, 0x40 if frame.interlace else 0),
        bytes([frame.min_code_size]), source[frame.data], b";",
    ])
    with warnings.catch_warnings():
        # Sizes were checked against our own max_pixels; Pillow's global limit may be set lower elsewhere.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(one_frame), formats=["GIF"]) as image:
                image.load()
                return np.asarray(image, dtype=np.uint8)
        except Image.DecompressionBombError as err:
            raise MediaDecodeError(first_line(err), TOO_LARGE) from None
        except (OSError, ValueError, SyntaxError, EOFError) as err:
            # Includes a stream that ends before the frame is full: Pillow cannot keep a partial frame.
            raise MediaDecodeError(f"pixel data unreadable ({first_line(err)})") from None


def starts_like_gif(path: str | Path) -> bool:
    """Whether a file's first 6 bytes are a GIF's signature, as Pillow (load_rgb) and open_gif know a GIF: by
    content, whatever its name says (a PNG saved as photo.gif, a GIF as anim.png). A file that cannot be read
    is no GIF here: its decoding then says why."""
    try:
        with open(path, "rb") as f:
            return f.read(6) in (b"GIF87a", b"GIF89a")
    except OSError:
        return False


def open_gif(
    source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int | None = None,
) -> GifAnimation:
    """`parse_gif` of a file (or bytes). A file that does not start like a GIF is refused after 6 bytes."""
    if isinstance(source, bytes):
        return parse_gif(source, max_pixels, max_frames)
    try:
        with open(source, "rb") as f:
            if f.read(6) not in (b"GIF87a", b"GIF89a"):
                f.seek(0)
                raise not_a_gif(f.read(12))
            f.seek(0)
            data = f.read()
    except OSError as err:
        raise MediaDecodeError(f"cannot read the file ({err.strerror or err})") from None
    return parse_gif(data, max_pixels, max_frames)


def read_gif_frames(
    source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int | None = None,
    matte: tuple[int, int, int] = WHITE,
) -> list[np.ndarray]:
    """All frames (up to max_frames) as browsers show them: uint8 RGB [H, W, 3] at the logical screen size.

    A truncated file keeps the frames that decoded; MediaDecodeError (one-line reason, `kind`) when none
    did, when the file is no GIF, has 0 frames or 0 pixels, or claims more than max_pixels anywhere.
    """
    return list(open_gif(source, max_pixels, max_frames).frames(matte))


def shown_ms(delay_ms: int | None) -> int:
    """A frame's time on screen (ms) as browsers show it: its delay, or BROWSER_MS where that is missing or under
    BROWSER_MIN_DELAY_MS."""
    return BROWSER_MS if delay_ms is None or delay_ms < BROWSER_MIN_DELAY_MS else delay_ms


def continued_timing(given_delays_ms: list[int | None], frames: int) -> list[int]:
    """The frame times (ms) of a clip of `frames` frames continuing a GIF's given ones: each given frame as long as
    a browser shows it in the GIF (shown_ms), each frame after them the lower median of those (of an even count,
    the lower of the two middle ones: a time one of the given frames has), so the clip plays at the pace of its
    input."""
    given = [shown_ms(ms) for ms in given_delays_ms]
    return given + [statistics.median_low(given)] * (frames - len(given))


@dataclass
class GifStart:
    """A GIF's first frames (up to those asked for: uint8 RGB [H, W, 3] each), their delays as the file gives them
    (ms, None where it sets none), and why the file ends early where it does (`cut`: the frames before it kept)."""

    frames: list[np.ndarray]
    delays_ms: list[int | None]
    cut: str | None


def read_gif_start(source: str | Path | bytes, frames: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> GifStart:
    """The first `frames` frames of a GIF to continue (generate's video2video, the demo's): the whole file's
    structure is read (nothing decoded past them), so a cut after them is seen too. MediaDecodeError as open_gif."""
    gif = open_gif(source, max_pixels)
    taken = list(islice(gif.frames(), frames))
    return GifStart(taken, gif.durations_ms()[:len(taken)], gif.problem)


def cut_short(start: GifStart) -> str:
    """How a GIF whose file ends early is said, after its name: `is cut short (<where>)`."""
    return f"is cut short ({start.cut})"


def first_frame_cut_note(path: str | Path, what: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                         mark: str = "note:") -> str | None:
    """The note for a picture read for its first frame alone (image2text, explain, caption, the demo's picture
    tabs) that is a GIF cut short, as video2video notes one: `note: <what> is cut short (<where>): its first frame,
    before the cut, is used` (`mark`: the demo's "ℹ️" for "note:"). None for a whole GIF, another format, or a
    file its reader has already refused."""
    with open(path, "rb") as file:
        if file.read(6) not in (b"GIF87a", b"GIF89a"):
            return None
    try:
        start = read_gif_start(path, 1, max_pixels)  # the whole structure read, the first frame alone decoded
    except MediaDecodeError:
        return None
    return f"{mark} {what} {cut_short(start)}: its first frame, before the cut, is used" if start.cut else None
