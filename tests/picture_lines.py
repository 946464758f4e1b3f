"""Reading a line of text back from a picture the grids drew: the line drawn alone, compared pixel for pixel."""

import numpy as np
from PIL import Image, ImageDraw

from supra.pictures.grids import LINE_HEIGHT, font, title_lines


def drawn_at(picture: Image.Image, top: int, text: str, colour: tuple[int, int, int]) -> bool:
    """Whether `text` is the line drawn `top` px down the picture, 4 px in, as the grids draw it."""
    line = Image.new("RGB", (picture.width, LINE_HEIGHT), "white")
    ImageDraw.Draw(line).text((4, 0), text, fill=colour, font=font())
    rows = picture.convert("RGB").crop((0, top, picture.width, top + LINE_HEIGHT))
    return np.array_equal(np.asarray(rows), np.asarray(line))


def titled(picture: Image.Image, title: str) -> bool:
    """Whether the picture's title is `title`, wrapped as the grids wrap it to the picture's width: every word
    of it drawn, in order (the lines come from the code under test, so they are checked against the title too:
    no lines, or lines that lost words, would pass a check of the lines alone)."""
    lines = title_lines(title, font(), picture.width - 8)
    every_word_kept = " ".join(lines).split() == title.split()
    return bool(lines) and every_word_kept and all(
        drawn_at(picture, 4 + i * LINE_HEIGHT, line, (0, 0, 0)) for i, line in enumerate(lines))
