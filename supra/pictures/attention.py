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


def explain_page(title: str, summary: str, strip: Image.Image, image: torch.Tensor, grid: tuple[int, int],
                 rows: Sequence[dict]) -> str:
    """One self-contained HTML page: the strip (whose drawn title says `summary`: the page does not repeat it;
    scaled down to a narrower window), then per token a row with its probability, alternatives, the averaged
    map and every layer's heads. rows: {"token", "probability", "alternatives": [(text, p)],
    "maps": float [layers, heads, positions]} (probability and alternatives may be None)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em;color:#222}img{image-rendering:pixelated}"
             ".strip{max-width:100%;height:auto;image-rendering:auto}"  # its text stays legible scaled down
             "table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top}"
             ".heads img{width:64px;height:64px;margin:1px}.small{color:#666;font-size:90%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p><img class='strip' alt='{html.escape(summary, quote=True)}' src='{png_data_uri(strip)}'></p>",
             "<table><tr><th>token</th><th>probability</th><th>top alternatives</th><th>mean of layers and heads</th>"
             "<th>each layer (rows) and head (columns)</th></tr>"]
    for row in rows:
        maps = row["maps"]
        mean = heatmap_tile(image, maps.mean(dim=(0, 1)), grid, 128)
        heads = "<br>".join(
            f"<span class='small'>layer {layer}</span> " + "".join(
                f"<img title='layer {layer}, head {head}' src='{png_data_uri(heatmap_tile(image, maps[layer, head], grid, 64))}'>"
                for head in range(maps.shape[1]))
            for layer in range(maps.shape[0]))
        probability = "" if row.get("probability") is None else html.escape(probability_text(row["probability"]))
        alternatives = ", ".join(html.escape(f"{t!r} {probability_text(p)}") for t, p in row.get("alternatives") or [])
        parts.append(f"<tr><td><b>{html.escape(repr(row['token']))}</b></td><td>{probability}</td>"
                     f"<td class='small'>{alternatives}</td><td><img src='{png_data_uri(mean)}'></td>"
                     f"<td class='heads'>{heads}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
