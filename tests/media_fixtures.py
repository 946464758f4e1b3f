"""GIFs and image folders for the media tests, written here so every byte is known.

`gif_bytes` assembles a GIF by hand (Pillow's writer re-optimises frames and cannot express sub-rectangles,
a missing global palette, a truncated stream or a header claiming 30000x30000); `save_pillow_gif` writes
one the ordinary way, as most GIFs in the wild are.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
PALETTE = [BLACK, RED, GREEN, BLUE, YELLOW, WHITE, (128, 128, 128), (0, 255, 255)]  # index -> colour


@dataclass
class Frame:
    """One image block: palette indices placed at (left, top), with its graphic control extension."""

    indices: np.ndarray  # uint8 [h, w]
    left: int = 0
    top: int = 0
    palette: list[tuple[int, int, int]] | None = None  # a local colour table
    transparency: int | None = None
    disposal: int = 0
    delay_cs: int = 10
    interlace: bool = False
    control: bool = True  # False: no graphic control extension at all
    claimed_size: tuple[int, int] | None = None  # (w, h) written in the descriptor instead of the real one


def solid(w: int, h: int, index: int) -> np.ndarray:
    return np.full((h, w), index, dtype=np.uint8)


def _colour_table(palette: list[tuple[int, int, int]]) -> tuple[bytes, int]:
    """Palette padded to a power of two (>= 2 entries), and the 3-bit size field."""
    bits = max(1, (len(palette) - 1).bit_length())
    padded = list(palette) + [BLACK] * ((1 << bits) - len(palette))
    return b"".join(bytes(c) for c in padded), bits - 1


def lzw_blocks(indices: np.ndarray, min_code_size: int) -> bytes:
    """Indices as a valid GIF LZW stream in data sub-blocks, without compression: every pixel a literal
    code, with a clear code before the table would grow the code width (the "uncompressed GIF" trick)."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    width = min_code_size + 1
    run = (1 << min_code_size) - 2  # literals per clear: the table never reaches 2**width entries
    codes = []
    flat = indices.reshape(-1).tolist()
    for start in range(0, len(flat), run):
        codes.append(clear)
        codes.extend(flat[start:start + run])
    codes.append(end)
    bits = acc = 0
    out = bytearray()
    for code in codes:
        acc |= code << bits
        bits += width
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc & 0xFF)
    blocks = bytearray()
    for start in range(0, len(out), 255):
        chunk = out[start:start + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks) + b"\x00"


def _interlaced(indices: np.ndarray) -> np.ndarray:
    """Rows in GIF interlace order: every 8th from 0, every 8th from 4, every 4th from 2, every 2nd from 1."""
    h = len(indices)
    order = [*range(0, h, 8), *range(4, h, 8), *range(2, h, 4), *range(1, h, 2)]
    return indices[order]


def frame_bytes(frame: Frame) -> bytes:
    out = bytearray()
    if frame.control:
        flags = (frame.disposal & 7) << 2 | (frame.transparency is not None)
        out += b"!\xf9\x04" + struct.pack("<BHB", flags, frame.delay_cs, frame.transparency or 0) + b"\x00"
    h, w = frame.indices.shape
    cw, ch = frame.claimed_size or (w, h)
    flags = 0x40 if frame.interlace else 0
    table = b""
    if frame.palette is not None:
        table, bits = _colour_table(frame.palette)
        flags |= 0x80 | bits
    out += b"," + struct.pack("<HHHHB", frame.left, frame.top, cw, ch, flags) + table
    min_code_size = 8
    pixels = _interlaced(frame.indices) if frame.interlace else frame.indices
    out += bytes([min_code_size]) + lzw_blocks(pixels, min_code_size)
    return bytes(out)


def gif_bytes(
    width: int, height: int, frames: list[Frame], global_palette: list[tuple[int, int, int]] | None = PALETTE,
    background: int = 0, trailer: bool = True, loop: bool = True,
) -> bytes:
    """A whole GIF89a file: logical screen, optional global colour table, NETSCAPE loop, frames, trailer."""
    flags, table = 0, b""
    if global_palette is not None:
        table, bits = _colour_table(global_palette)
        flags = 0x80 | 0x70 | bits
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, flags, background, 0) + table)
    if loop:
        out += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for frame in frames:
        out += frame_bytes(frame)
    if trailer:
        out += b";"
    return bytes(out)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims width x height pixels (a decompression bomb's), and a little data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def rgb(*rows: list[tuple[int, int, int]]) -> np.ndarray:
    """Expected pixels written as rows of colours: uint8 [H, W, 3]."""
    return np.array(rows, dtype=np.uint8)


def paint(indices: np.ndarray, palette: list[tuple[int, int, int]] = PALETTE) -> np.ndarray:
    return np.array(palette, dtype=np.uint8)[indices]


def save_pillow_gif(
    path: Path, colours: list[tuple[int, int, int]], size: tuple[int, int] = (12, 10),
) -> list[np.ndarray]:
    """An animated GIF of solid-colour frames with a moving square, written by Pillow; returns its frames."""
    frames = []
    for i, colour in enumerate(colours):
        array = np.full((size[1], size[0], 3), colour, dtype=np.uint8)
        array[2:5, i % (size[0] - 3): i % (size[0] - 3) + 3] = (i * 37 % 256, 255 - i * 11 % 256, 90)
        frames.append(array)
    images = [Image.fromarray(a) for a in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    return frames


def save_image(
    path: Path, size: tuple[int, int] = (16, 12), colour: tuple[int, int, int] = RED, fmt: str | None = None,
) -> None:
    """A still of one colour with a blue left half (so crops and pads are visible) in the format of its suffix."""
    array = np.full((size[1], size[0], 3), colour, dtype=np.uint8)
    array[:, : size[0] // 2] = BLUE
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if fmt == "WEBP" or path.suffix.lower() == ".webp":
        image.save(path, format="WEBP", lossless=True)
    else:
        image.save(path, format=fmt)


def write_media_folder(root: Path) -> dict:
    """A folder as people have them: stills in five formats (suffixes in any case), GIFs, sidecar and root
    caption files, and junk. Returns what a correct reader must find."""
    save_image(root / "stills" / "a.png", colour=RED)
    save_image(root / "stills" / "b.jpg", colour=GREEN)
    save_image(root / "stills" / "c.JPEG", colour=RED, fmt="JPEG")
    save_image(root / "stills" / "d.webp", colour=YELLOW)
    save_image(root / "e.BMP", colour=RED, fmt="BMP")
    wave = save_pillow_gif(root / "anim" / "wave.gif", [RED, GREEN, BLUE, YELLOW, RED, GREEN])
    blink = gif_bytes(4, 4, [Frame(solid(4, 4, 1)), Frame(solid(2, 2, 2), left=1, top=1)])
    (root / "anim" / "blink.gif").write_bytes(blink)
    (root / "single.gif").write_bytes(gif_bytes(3, 3, [Frame(solid(3, 3, 3))]))
    # captions
    (root / "stills" / "a.txt").write_text("a red and blue picture\n\n  blue on the left  \n")
    (root / "captions.jsonl").write_text(
        '{"file": "anim/wave.gif", "caption": "a square moving over colours"}\n'
        '{"file": "./anim/wave.gif", "caption": "colours change"}\n'
        "this line is not json\n"
        '{"file": "gone.png", "caption": "no such file"}\n'
    )
    (root / "captions.csv").write_text('file,caption\nstills/b.jpg,"green, with blue"\nanim/blink.gif,a blink\n')
    # junk: not media, or media that cannot be used
    (root / "README.md").write_text("my pictures\n")
    (root / "notes.txt").write_text("a .txt beside no media file\n")
    (root / "fake.gif").write_text("GIF? no, just text\n")
    (root / "stills" / "empty.png").write_bytes(b"")
    (root / "bomb.gif").write_bytes(gif_bytes(30000, 30000, [Frame(solid(1, 1, 1))]))
    (root / "no_frames.gif").write_bytes(gif_bytes(5, 5, []))
    (root / "zero_size.gif").write_bytes(gif_bytes(0, 0, [Frame(np.zeros((0, 0), dtype=np.uint8))]))
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return {
        "stills": ["e.BMP", "stills/a.png", "stills/b.jpg", "stills/c.JPEG", "stills/d.webp"],
        "gifs": {"anim/blink.gif": 2, "anim/wave.gif": len(wave), "single.gif": 1},
        "wave": wave,
        "unreadable": ["fake.gif"], "too large": ["bomb.gif"],
        "empty": ["no_frames.gif", "zero_size.gif"],
        "not media": ["README.md", "notes.txt"],
    }
