"""Sample pictures as grids, shared by the training callbacks (logged and saved each validation) and the
commands (caption, generate): images with text beside them, and rows of images (originals over
reconstructions, film strips of clips). Pure drawing: uint8 tensors in, PIL images out.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, features
from torchvision.utils import make_grid

log = logging.getLogger(__name__)

TILE = 192  # px per tile of a text grid: small images are upscaled so captions stay readable beside them
FONT_SIZE = 13
LINE_HEIGHT = 16
MAX_LINES = 8  # per text block
ROW_TILE = 128  # px an image of a row grid is upscaled towards (by a whole factor, nearest): codes stay crisp

NAME_COLOUR = (40, 70, 150)  # a tile's file name, apart from the captions' dark and the references' grey

# (text, RGB colour) lines under or over one tile
TextBlock = list[tuple[str, tuple[int, int, int]]]


@functools.cache
def _dejavu_sans() -> Path | None:
    """matplotlib's DejaVu Sans (matplotlib is a dependency: the study's plot), found without importing it."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return path if path.is_file() else None


def font() -> ImageFont.ImageFont:
    """DejaVu Sans, which draws accented Latin, Greek, Cyrillic and typographic punctuation (é, ü, —); text with
    a character it lacks (CJK, emoji) is drawn in an installed font fontconfig finds covering that text, or,
    where there is none, as boxes, said once per run (_FallbackFont). Where DejaVu Sans is missing, Pillow's
    bundled font, which draws ASCII alone (others as boxes)."""
    path = _dejavu_sans()
    if path is not None and features.check("freetype2"):
        return _FallbackFont(str(path), FONT_SIZE)
    try:
        return ImageFont.load_default(size=FONT_SIZE)  # Pillow >= 10.1: a scalable bundled font
    except TypeError:
        return ImageFont.load_default()


@functools.cache
def _characters_of(path: str) -> frozenset[str]:
    """The characters a font file has glyphs for (its cmap, read by fontTools: matplotlib's dependency)."""
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True, fontNumber=0) as face:
        return frozenset(map(chr, face.getBestCmap() or {}))


@functools.cache
def _fonts_covering(characters: frozenset[str]) -> tuple[str, ...]:
    """Installed font files that fontconfig says cover `characters`, sorted (none without fontconfig)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return ()
    charset = " ".join(f"{ord(c):x}" for c in sorted(characters))
    try:
        listed = subprocess.run([fc_list, f":charset={charset}", "file"], capture_output=True, text=True,
                                timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(sorted({line.rsplit(":", 1)[0].strip() for line in listed.splitlines() if line.strip()}))


@functools.cache
def _loaded(path: str) -> ImageFont.FreeTypeFont | None:
    try:
        return ImageFont.truetype(path, FONT_SIZE)
    except OSError:  # a bitmap-only face (Noto Color Emoji) has no glyphs at this size
        return None


_said_undrawable: set[str] = set()  # once per run: the first text that could not be drawn is named


class _FallbackFont(ImageFont.FreeTypeFont):
    """DejaVu Sans that hands a text holding a character it lacks to an installed font covering the whole
    text (a Noto CJK font draws Latin too), so a caption is drawn in one font and measured as drawn; text
    DejaVu Sans covers is drawn by it alone, as before. Without such a font the text is drawn as boxes and a
    warning names its characters, once per run."""

    def _face_for(self, text: str, drawing: bool = False) -> ImageFont.FreeTypeFont | None:
        visible = {c for c in text if unicodedata.category(c)[0] not in "CZ"}  # not spaces, controls, ZWSP
        missing = frozenset(visible - _characters_of(str(self.path)))
        if not missing:
            return None
        for path in _fonts_covering(missing):
            face = _loaded(path)
            if face is not None and visible <= _characters_of(path):
                return face
        if drawing and not _said_undrawable:  # said of a line drawn, not of the pieces wrapping measures
            _said_undrawable.add(text)
            shown = ", ".join(f"{c} (U+{ord(c):04X})" for c in sorted(missing)[:8])
            log.warning("pictures draw %s as boxes: no installed font has them (fontconfig finds a font such as "
                        "Noto Sans CJK once installed)", shown)
        return None

    def getlength(self, text: str, *args: Any, **kwargs: Any) -> float:  # type: ignore[override]
        face = self._face_for(text)
        return super().getlength(text, *args, **kwargs) if face is None else face.getlength(text, *args, **kwargs)

    def getbbox(self, text: str, *args: Any, **kwargs: Any) -> tuple[float, float, float, float]:  # type: ignore[override]
        face = self._face_for(text)
        return super().getbbox(text, *args, **kwargs) if face is None else face.getbbox(text, *args, **kwargs)

    def getmask2(self, text: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        face = self._face_for(text, drawing=True)
        return super().getmask2(text, *args, **kwargs) if face is None else face.getmask2(text, *args, **kwargs)


def _split_long_word(word: str, face: ImageFont.ImageFont, width: int) -> list[str]:
    """A word wider than the tile, cut into pieces that fit (or it would spill into the next tile)."""
    pieces = [""]
    for char in word:
        if pieces[-1] and face.getlength(pieces[-1] + char) > width:
            pieces.append("")
        pieces[-1] += char
    return pieces


def _wrap_paragraph(paragraph: str, face: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap of text without line breaks, by measured width (the font is proportional)."""
    lines = [""]
    for word in paragraph.split():
        for piece in _split_long_word(word, face, width):
            trial = f"{lines[-1]} {piece}".strip()
            if lines[-1] and face.getlength(trial) > width:
                lines.append(piece)
            else:
                lines[-1] = trial
    return lines


def wrap(text: str, face: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap by measured width, at most MAX_LINES lines; a line break in the text starts a new
    line (each line is drawn and counted on its own, so no line lands on the next one's place)."""
    lines = [line for paragraph in text.splitlines() or [""] for line in _wrap_paragraph(paragraph, face, width)]
    if len(lines) > MAX_LINES:  # an untrained model's endless caption must not make the grid endless
        last = lines[MAX_LINES - 1]
        while last and face.getlength(last + " ...") > width:
            last = last[:-1]
        lines = lines[: MAX_LINES - 1] + [last + " ..."]
    return lines


def title_lines(title: str | None, face: ImageFont.ImageFont, width: int) -> list[str]:
    """A picture's title as the lines it is drawn in, `width` px wide at most: split at its line breaks (a
    prompt's), then each line as it is where it fits, else wrapped (a long one was cut off at the picture's
    edge); none without a title."""
    if not title:
        return []
    return [piece for line in title.splitlines()
            for piece in ([line] if face.getlength(line) <= width else wrap(line, face, width))]


def title_height(lines: list[str]) -> int:
    """The px the title's lines take at the picture's top (0 for none)."""
    return len(lines) * LINE_HEIGHT + 8 if lines else 0


def draw_title(draw: ImageDraw.ImageDraw, lines: list[str], face: ImageFont.ImageFont) -> None:
    for i, line in enumerate(lines):
        draw.text((4, 4 + i * LINE_HEIGHT), line, fill=(0, 0, 0), font=face)


def _text_grid(images: torch.Tensor, blocks: Sequence[TextBlock], columns: int, title: str | None,
               text_above: bool, resample: int) -> Image.Image:
    """Tiles of TILE px in rows of `columns`, each with its wrapped text block under it (or above it)."""
    face = font()
    wrapped = [[(line, colour) for text, colour in block for line in wrap(text, face, TILE - 8)] for block in blocks]
    text_height = max(map(len, wrapped)) * LINE_HEIGHT + 8
    rows = -(-len(images) // columns)
    heading = title_lines(title, face, columns * TILE - 8)
    top = title_height(heading)
    grid = Image.new("RGB", (columns * TILE, top + rows * (TILE + text_height)), "white")
    draw = ImageDraw.Draw(grid)
    draw_title(draw, heading, face)
    for i, (image, lines) in enumerate(zip(images, wrapped, strict=True)):
        x, y = (i % columns) * TILE, top + (i // columns) * (TILE + text_height)
        tile = Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).resize((TILE - 8, TILE - 8), resample)
        grid.paste(tile, (x + 4, y + text_height if text_above else y + 4))
        text_y = y + 4 if text_above else y + TILE
        for j, (line, colour) in enumerate(lines):
            draw.text((x + 4, text_y + j * LINE_HEIGHT), line, fill=colour, font=face)
    return grid


def _check_images(images: torch.Tensor, texts: int, references: Sequence[str] | None = None,
                  names: Sequence[str] | None = None) -> None:
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {list(images.shape)}")
    n = len(images)
    if n == 0 or texts != n or any(given is not None and len(given) != n for given in (references, names)):
        raise ValueError(f"{n} images need as many captions (got {texts}), references "
                         f"(got {None if references is None else len(references)}) and names "
                         f"(got {None if names is None else len(names)}), at least one")


def render_caption_grid(
    images: torch.Tensor, captions: Sequence[str], references: Sequence[str] | None = None,
    columns: int = 4, title: str | None = None, names: Sequence[str] | None = None,
) -> Image.Image:
    """images uint8 [N, 3, H, W] -> one RGB picture: each image with its name (a file's, where given),
    'model: ...' (and 'ref: ...') under it.

    Tiles are TILE px square (images resized, bicubic) in rows of `columns`; the picture is
    columns * TILE px wide whatever the captions, which wrap onto more lines instead.
    """
    _check_images(images, len(captions), references, names)
    blocks = [([(names[i], NAME_COLOUR)] if names is not None else []) + [("model: " + caption, (20, 20, 20))]
              + ([("ref: " + references[i], (110, 110, 110))] if references is not None else [])
              for i, caption in enumerate(captions)]
    return _text_grid(images, blocks, columns, title, text_above=False, resample=Image.BICUBIC)


def render_generated_grid(images: torch.Tensor, labels: Sequence[str], columns: int = 4,
                          title: str | None = None) -> Image.Image:
    """Generated images uint8 [N, 3, H, W], each under its label, upscaled without smoothing (nearest), so
    every code's patch shows as generated -> one RGB picture."""
    _check_images(images, len(labels))
    return _text_grid(images, [[(label, (20, 20, 20))] for label in labels], columns, title, text_above=True,
                      resample=Image.NEAREST)


def render_prompt_grid(images: torch.Tensor, prompts: Sequence[str], columns: int = 4, title: str | None = None) -> Image.Image:
    """Generated images uint8 [N, 3, H, W], each under its prompt (render_generated_grid)."""
    return render_generated_grid(images, ["prompt: " + prompt for prompt in prompts], columns, title)


def render_pictures_captions(pictures: torch.Tensor, labels: Sequence[str], captions: Sequence[str],
                             title: str | None = None) -> Image.Image:
    """Pictures uint8 [K, 3, H, W] side by side, each under its label (upscaled sharp, as generated ones), then
    each caption on its own wrapped lines, "sample i: ..." -> one RGB picture (generate's image2text: the
    picture given and what the model read of it, then what it said)."""
    _check_images(pictures, len(labels))
    top = _text_grid(pictures, [[(label, NAME_COLOUR)] for label in labels], len(pictures), title, text_above=True,
                     resample=Image.NEAREST)
    face = font()
    lines = [line for i, caption in enumerate(captions) for line in wrap(f"sample {i}: {caption}", face, top.width - 8)]
    picture = Image.new("RGB", (top.width, top.height + len(lines) * LINE_HEIGHT + 4), "white")
    picture.paste(top, (0, 0))
    draw = ImageDraw.Draw(picture)
    for i, line in enumerate(lines):
        draw.text((4, top.height + i * LINE_HEIGHT), line, fill=(20, 20, 20), font=face)
    return picture


def first_frames(count: int) -> str:
    """How a clip's row names the frames it was given: "the first frame", "the first 3 frames"."""
    return "the first frame" if count == 1 else f"the first {count} frames"


def to_pil(image: torch.Tensor) -> Image.Image:
    """uint8 [3, H, W] -> PIL RGB."""
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def render_image_rows(rows: Sequence[torch.Tensor], columns: int | None = None, title: str | None = None,
                      labels: Sequence[str] | None = None) -> Image.Image:
    """Rows of images, each uint8 [n, 3, H, W] (n may differ; short rows are padded with white tiles),
    upscaled by a whole factor towards ROW_TILE px (nearest) -> one picture, `columns` tiles wide
    (default: the longest row), under its `title`, each row under its line of `labels` where given."""
    columns = columns or max(len(row) for row in rows)
    tiles = [F.pad(row, (0, 0, 0, 0, 0, 0, 0, columns - len(row)), value=255) if len(row) < columns else row
             for row in rows]
    scale = max(1, ROW_TILE // rows[0].shape[-1])
    strips = [to_pil(make_grid(F.interpolate(row.float(), scale_factor=scale, mode="nearest").to(torch.uint8),
                               nrow=columns, padding=4, pad_value=255)) for row in tiles]
    return _stack_labelled(strips, title, labels)


def _stack_labelled(strips: list[Image.Image], title: str | None, labels: Sequence[str] | None) -> Image.Image:
    """Strips of tiles (each with a 4 px white border) one under another, sharing their borders, the title
    over them and each strip's wrapped label over it."""
    face, width = font(), strips[0].width
    heading = title_lines(title, face, width - 8)
    label_lines = [wrap(label, face, width - 8) for label in labels] if labels else [[] for _ in strips]
    bands = [len(lines) * LINE_HEIGHT + 4 if lines else 0 for lines in label_lines]
    height = title_height(heading) + sum(bands) + sum(strip.height - 4 for strip in strips) + 4
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    draw_title(draw, heading, face)
    y = title_height(heading)
    for strip, lines, band in zip(strips, label_lines, bands, strict=True):
        for i, line in enumerate(lines):
            draw.text((4, y + 4 + i * LINE_HEIGHT), line, fill=(20, 20, 20), font=face)
        picture.paste(strip, (0, y + band))
        y += band + strip.height - 4  # the next strip's top border is this one's bottom border
    return picture


def _paired_rows(originals: torch.Tensor, others: torch.Tensor, columns: int) -> list[torch.Tensor]:
    """A row of originals, the row of their counterparts under it, and so on."""
    return [block for start in range(0, len(originals), columns)
            for block in (originals[start:start + columns], others[start:start + columns])]


ROLES = ("originals", "reconstructions")  # what the two rows of each pair of a reconstruction picture show


def render_reconstructions(originals: torch.Tensor, reconstructions: torch.Tensor, columns: int = 8,
                           title: str | None = None, roles: tuple[str, str] = ROLES) -> Image.Image:
    """Images uint8 [N, 3, H, W] -> a picture of originals over reconstructions; clips [N, T, 3, H, W]
    -> a film strip per clip (its frames left to right), original strip over reconstructed strip. Each
    row is labelled with its role (`roles`: the originals', the others'), the picture with `title`."""
    if originals.ndim == 5:
        originals, reconstructions = (torch.cat(clips.unbind(1), dim=-1) for clips in (originals, reconstructions))
        columns = 1
    columns = min(columns, len(originals))  # a few images make a narrow picture, not a row of blanks
    rows = _paired_rows(originals, reconstructions, columns)
    return render_image_rows(rows, columns, title, roles * (len(rows) // 2))


def render_reconstruction_frames(originals: torch.Tensor, reconstructions: torch.Tensor, columns: int = 8,
                                 title: str | None = None, roles: tuple[str, str] = ROLES) -> list[Image.Image]:
    """Clips uint8 [N, T, 3, H, W] -> T pictures (originals over reconstructions), the frames of a GIF."""
    return [render_reconstructions(originals[:, t], reconstructions[:, t], columns, title, roles)
            for t in range(originals.shape[1])]
