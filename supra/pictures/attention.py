"""Attention maps as pictures: heatmaps over the image at the model's grid, a strip of one tile per token,
and one self-contained HTML page (every picture embedded) with each layer's and head's maps.

The colour map is written here (a few anchor colours, linearly blended) rather than taken from
matplotlib, which Supra would need for nothing else.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from supra.pictures.grids import LINE_HEIGHT, draw_title, font, title_height, title_lines, to_pil, wrap

TILE = 160  # px per heatmap tile
HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)
OVERLAY = 0.55  # how much of a tile is heat, how much the picture under it
# what the strip's first tile shows, said under it: the given picture, the picture an a2a model sees of a
# given one (its VQ-VAE codes decoded: not the picture itself), or the picture the model drew
INPUT_PICTURE = "input"
DECODED_INPUT = "input, decoded from its VQ-VAE codes"
GENERATED_PICTURE = "generated picture"
# the strip's last title line: shared alone, attention.png must say what the page says of its tiles
TILE_SCALE_NOTE = "each tile is scaled to its own brightest cell: compare shapes, not brightness"


@dataclass(frozen=True)
class MapShare:
    """What the percentage the page prints under each map says of it (`meaning`), read from the map's weights
    [positions]: their sum where the map is one token's attention over the grid, their mean where it is each
    grid position's attention to one word."""

    meaning: str
    mean: bool = False

    def of(self, weights: torch.Tensor) -> float:
        return float(weights.float().mean() if self.mean else weights.float().sum())


# a captioner's or image2text's token: how much of its attention the image holds, whose map's shape is drawn
TOKEN_ON_IMAGE = MapShare("how much of that token's attention is on the image (the rest, if any, is on the tokens "
                          "before it)")
# text2image's word: each generated code's attention to it, averaged over the codes
CODES_ON_WORD = MapShare("how much of each generated code's attention is on that word, averaged over the codes",
                         mean=True)


def share_text(share: float) -> str:
    """A share as the page prints it: whole percent, "<1%" for a little above none (not "0%")."""
    if math.isnan(share) or share >= 0.01 or share <= 0:
        return f"{share:.0%}"
    return "<1%"


def probability_text(probability: float) -> str:
    """A probability as the pictures and the page print it: two decimals from 0.1, two significant figures below
    (an early model's 0.0031 read "0.00" for every token), "<0.001" below that."""
    if math.isnan(probability) or probability >= 0.1:
        return f"{probability:.2f}"
    if probability >= 0.001:
        return f"{probability:.2g}"
    return "0" if probability == 0 else "<0.001"


def heat_colours(values: np.ndarray) -> np.ndarray:
    """float [...] in [0, 1] -> uint8 RGB [..., 3] from dark (0) through purple and orange to pale yellow (1); NaN
    is dark."""
    # NaN (a diverged model's attention) drawn as 0, not cast to an arbitrary int with numpy's RuntimeWarning
    position = np.nan_to_num(np.clip(values, 0, 1), nan=0.0) * (len(HEAT_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(HEAT_ANCHORS) - 2)
    frac = (position - low)[..., None]
    return (HEAT_ANCHORS[low] * (1 - frac) + HEAT_ANCHORS[low + 1] * frac).round().astype(np.uint8)


def heatmap_tile(image: torch.Tensor, weights: torch.Tensor, grid: tuple[int, int], size: int = TILE) -> Image.Image:
    """image uint8 [3, H, W] and weights float [h * w] over its grid (raster order) -> the image at `size`
    px with the weights as heat over it, each grid cell one block (scaled to the map's own maximum)."""
    cells = weights.float().reshape(grid).numpy()
    peak = cells.max()
    heat = heat_colours(cells / peak if peak > 0 else cells)  # [h, w, 3]
    heat_image = Image.fromarray(heat).resize((size, size), Image.NEAREST)
    base = to_pil(image.cpu()).resize((size, size), Image.BICUBIC)
    return Image.blend(base, heat_image, OVERLAY)


def square_grid(n: int) -> tuple[int, int]:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{n} positions are no square grid")
    return side, side


def render_token_strip(image: torch.Tensor, tokens: Sequence[str], maps: Sequence[torch.Tensor],
                       captions: Sequence[str], grid: tuple[int, int], columns: int = 8, title: str | None = None,
                       *, picture_label: str) -> Image.Image:
    """The image, labelled `picture_label` (INPUT_PICTURE, DECODED_INPUT or GENERATED_PICTURE), then one heat
    tile per token (its map over `grid`), the token and `captions[i]` (e.g. its probability) under each tile,
    in rows of `columns` tiles."""
    face = font()
    tiles = [(to_pil(image.cpu()).resize((TILE, TILE), Image.BICUBIC), [picture_label])]
    tiles += [(heatmap_tile(image, m, grid), [repr(t.strip() or t), c]) for t, m, c in zip(tokens, maps, captions, strict=True)]
    text_rows = max(len(wrap(" ".join(lines), face, TILE - 8)) for _, lines in tiles) + 1
    text_height = text_rows * LINE_HEIGHT + 8
    rows = -(-len(tiles) // columns)
    width = min(columns, len(tiles)) * (TILE + 8)
    heading = title_lines(title, face, width - 8)
    top = title_height(heading)
    picture = Image.new("RGB", (width, top + rows * (TILE + 8 + text_height)), "white")
    draw = ImageDraw.Draw(picture)
    draw_title(draw, heading, face)
    for i, (tile, lines) in enumerate(tiles):
        x, y = (i % columns) * (TILE + 8) + 4, top + (i // columns) * (TILE + 8 + text_height) + 4
        picture.paste(tile, (x, y))
        ty = y + TILE + 2
        for line in lines:
            for piece in wrap(line, face, TILE - 4):
                draw.text((x, ty), piece, fill=(20, 20, 20), font=face)
                ty += LINE_HEIGHT
    return picture


def png_data_uri(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _tile_with_share(tile: Image.Image, weights: torch.Tensor, share: MapShare, label: str = "") -> str:
    """A map's tile with its share printed under it: the tile alone, scaled to its own maximum, cannot show it."""
    text = share_text(share.of(weights))
    return (f"<span class='tile'><img title='{html.escape(label + text, quote=True)}' src='{png_data_uri(tile)}'>"
            f"<br><span class='small'>{html.escape(text)}</span></span>")


def explain_page(title: str, summary: str, strip: Image.Image, image: torch.Tensor, grid: tuple[int, int],
                 rows: Sequence[dict], share: MapShare = TOKEN_ON_IMAGE) -> str:
    """One self-contained HTML page: the strip (whose drawn title says `summary`: the page does not repeat it;
    scaled down to a narrower window), then per token a row with its probability, alternatives, the averaged
    map and every layer's heads, each map with its `share` under it. rows: {"token", "probability",
    "alternatives": [(text, p)], "maps": float [layers, heads, positions]} (probability and alternatives may
    be None)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em;color:#222}img{image-rendering:pixelated}"
             ".strip{max-width:100%;height:auto;image-rendering:auto}"  # its text stays legible scaled down
             "table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top}"
             ".heads img{width:64px;height:64px;margin:1px}.small{color:#666;font-size:90%}"
             ".tile{display:inline-block;text-align:center;vertical-align:top}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p><img class='strip' alt='{html.escape(summary, quote=True)}' src='{png_data_uri(strip)}'></p>",
             # each tile is scaled to its own maximum, so that its shape reads: its brightness says nothing of its weight
             "<p class='small'>Each map is scaled to its own brightest cell, so that its shape reads: a map that holds "
             "little of the attention is drawn as bright as one that holds most of it. The percentage under each map "
             f"is {html.escape(share.meaning)}.</p>",
             "<table><tr><th>token</th><th>probability</th><th>top alternatives</th><th>mean of layers and heads</th>"
             "<th>each layer (rows) and head (columns)</th></tr>"]
    for row in rows:
        maps = row["maps"]
        mean_map = maps.mean(dim=(0, 1))
        mean = _tile_with_share(heatmap_tile(image, mean_map, grid, 128), mean_map, share, "mean of layers and heads: ")
        heads = "<br>".join(
            f"<span class='small'>layer {layer}</span> " + "".join(
                _tile_with_share(heatmap_tile(image, maps[layer, head], grid, 64), maps[layer, head], share,
                                 f"layer {layer}, head {head}: ")
                for head in range(maps.shape[1]))
            for layer in range(maps.shape[0]))
        probability = "" if row.get("probability") is None else html.escape(probability_text(row["probability"]))
        alternatives = ", ".join(html.escape(f"{t!r} {probability_text(p)}") for t, p in row.get("alternatives") or [])
        parts.append(f"<tr><td><b>{html.escape(repr(row['token']))}</b></td><td>{probability}</td>"
                     f"<td class='small'>{alternatives}</td><td>{mean}</td>"
                     f"<td class='heads'>{heads}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
