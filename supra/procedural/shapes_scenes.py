"""Procedural shapes scenes: one or two flat coloured shapes on a plain background, 5 true captions each.

Pure numpy and exact arithmetic (no PIL drawing, no sqrt), all randomness from one PCG64 generator,
so the same seed gives byte-identical images and captions on any machine. Every caption mentions
objects as `[size] colour shape`, the phrase `parse_objects` reads back. The drawing code also turns
shapes (`ShapeObject.angle`) for the `shapes_clips` animations; scenes never do.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "green": (34, 160, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 200, 20),
    "purple": (140, 60, 190),
    "orange": (245, 135, 20),
}
SIZES: tuple[str, ...] = ("small", "large")
# Each split draws from its own seed (seed + offset), so no split's scenes are a prefix of another's.
SPLIT_SEED_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}
MIN_DRAWING_SIZE = 32  # px: below this, small shapes are a few pixels and the judges cannot read them
# Half-extent of a shape in canvas units; the two sizes differ by 1.7x so they are easy to tell apart.
SIZE_RADIUS = {"small": 0.10, "large": 0.17}

SINGLE_POSITIONS = {  # name -> (x range, y range) of the centre, canvas units, y down
    "left": ((0.20, 0.30), (0.40, 0.60)),
    "right": ((0.70, 0.80), (0.40, 0.60)),
    "top": ((0.40, 0.60), (0.20, 0.30)),
    "bottom": ((0.40, 0.60), (0.70, 0.80)),
    "middle": ((0.45, 0.55), (0.45, 0.55)),
}
POSITION_PHRASE = {"left": "on the left", "right": "on the right", "top": "at the top",
                   "bottom": "at the bottom", "middle": "in the middle"}
# For two objects, the first is left of / above the second: relation and its inverse.
RELATIONS = {"horizontal": ("to the left of", "to the right of"), "vertical": ("above", "below")}

# "a" becomes "an" before a vowel when the caption is finished ("an orange circle").
SINGLE_TEMPLATES = (
    "a {size} {colour} {shape} {where}",
    "a {colour} {shape} {where}",
    "there is a {size} {colour} {shape} {where} of the picture",
    "a {size} {colour} {shape}",
    "a picture of a {colour} {shape} {where}",
)
PAIR_TEMPLATES = (
    "a {a} {rel} a {b}",
    "a {b} {inverse} a {a}",
    "a {size_a} {a} and a {size_b} {b}",
    "there is a {a} {rel} a {b}",
    "a {size_a} {a} {rel} a {size_b} {b}",
)


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    center: tuple[float, float]  # (x, y) in [0, 1] canvas units, y down
    angle: float = 0.0  # degrees clockwise on screen, about the shape's centroid; scenes never turn (clips do)


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]  # 1 or 2; for 2, the first is left of / above the second
    background: tuple[int, int, int]
    layout: str  # left/right/top/bottom/middle for one object, horizontal/vertical for two
    captions: tuple[str, ...]  # exactly 5


# -- sampling ---------------------------------------------------------------------------------------

def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _sample_object(rng: np.random.Generator, center: tuple[float, float], exclude: tuple[str, str] | None = None) -> ShapeObject:
    while True:
        shape, colour = SHAPES[rng.integers(len(SHAPES))], list(COLOURS)[rng.integers(len(COLOURS))]
        if (colour, shape) != exclude:  # two objects never share both colour and shape
            return ShapeObject(shape, colour, SIZES[rng.integers(len(SIZES))], center)


def _with_articles(caption: str) -> str:
    words = caption.split()
    return " ".join("an" if w == "a" and nxt[0] in "aeiou" else w for w, nxt in pairwise([*words, "x"]))


def _single_captions(obj: ShapeObject, layout: str) -> tuple[str, ...]:
    words = {"size": obj.size, "colour": obj.colour, "shape": obj.shape, "where": POSITION_PHRASE[layout]}
    return tuple(_with_articles(t.format(**words)) for t in SINGLE_TEMPLATES)


def _pair_captions(first: ShapeObject, second: ShapeObject, layout: str) -> tuple[str, ...]:
    rel, inverse = RELATIONS[layout]
    words = {"a": f"{first.colour} {first.shape}", "b": f"{second.colour} {second.shape}", "rel": rel,
             "inverse": inverse, "size_a": first.size, "size_b": second.size}
    return tuple(_with_articles(t.format(**words)) for t in PAIR_TEMPLATES)


def sample_background(rng: np.random.Generator) -> tuple[int, int, int]:
    """A light, slightly tinted grey: never close to any shape colour."""
    base = int(rng.integers(226, 246))
    return tuple(int(c) for c in np.clip(base + rng.integers(-6, 7, size=3), 0, 255))


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw one scene (objects, background, captions) from `rng`."""
    background = sample_background(rng)
    if rng.random() < 0.5:
        layout = list(SINGLE_POSITIONS)[rng.integers(len(SINGLE_POSITIONS))]
        xs, ys = SINGLE_POSITIONS[layout]
        obj = _sample_object(rng, (_uniform(rng, xs), _uniform(rng, ys)))
        return Scene((obj,), background, layout, _single_captions(obj, layout))
    layout = ("horizontal", "vertical")[rng.integers(2)]
    # Centres >= 0.36 apart along the layout axis, radii <= 0.17 each: never touching, always inside.
    near, far, across = (0.20, 0.32), (0.68, 0.80), (0.30, 0.70)
    a_axis, b_axis = _uniform(rng, near), _uniform(rng, far)
    a_cross, b_cross = _uniform(rng, across), _uniform(rng, across)
    if layout == "horizontal":
        a_center, b_center = (a_axis, a_cross), (b_axis, b_cross)
    else:
        a_center, b_center = (a_cross, a_axis), (b_cross, b_axis)
    first = _sample_object(rng, a_center)
    second = _sample_object(rng, b_center, exclude=(first.colour, first.shape))
    return Scene((first, second), background, layout, _pair_captions(first, second, layout))


# -- drawing ----------------------------------------------------------------------------------------

SUPERSAMPLE = 2  # draw at 2x and average 2x2 blocks: smooth edges, still exact arithmetic
# A turned shape reaches at most this many radii from its `center`: 1.2r from the triangle's centroid
# (its apex), which is 0.2r below the centre. The square's corners reach 0.85 * sqrt(2) r < 1.21r.
TURNED_REACH = 1.4


def _centroid_offset(shape: str, r: float) -> float:
    """How far below `center` the shape's centroid lies: the triangle's apex is at -r, its base at 0.8r."""
    return 0.2 * r if shape == "triangle" else 0.0


def _unturn(obj: ShapeObject, x: np.ndarray, y: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample offsets from the centre, rotated back by the object's angle about its centroid: the upright
    shape's inside tests then draw the turned shape (screen y is down, so this matrix turns clockwise).

    cos and sin come from the C library, which may differ in the last bit between machines; rounded to
    9 decimals they are the same numbers everywhere (and a 1e-9 change of scale is invisible)."""
    theta = math.radians(obj.angle)
    cos, sin, pivot = round(math.cos(theta), 9), round(math.sin(theta), 9), _centroid_offset(obj.shape, r)
    y = y - pivot
    return cos * x + sin * y, -sin * x + cos * y + pivot


def _coverage(obj: ShapeObject, size: int) -> tuple[slice, slice, np.ndarray]:
    """Where the shape is: rows, columns and a float mask in [0, 1] over them, the share of each
    pixel's subsamples inside the shape. Only the shape's bounding box is computed (speed)."""
    cx, cy = obj.center
    r = SIZE_RADIUS[obj.size]
    reach = TURNED_REACH * r if obj.angle else r  # upright shapes keep the scenes' exact bounding box
    x0, x1 = max(0, int((cx - reach) * size) - 1), min(size, int((cx + reach) * size) + 2)
    y0, y1 = max(0, int((cy - reach) * size) - 1), min(size, int((cy + reach) * size) + 2)
    n = size * SUPERSAMPLE
    x = ((np.arange(x0 * SUPERSAMPLE, x1 * SUPERSAMPLE, dtype=np.float64) + 0.5) / n)[None, :] - cx
    y = ((np.arange(y0 * SUPERSAMPLE, y1 * SUPERSAMPLE, dtype=np.float64) + 0.5) / n)[:, None] - cy
    if obj.angle:
        x, y = _unturn(obj, x, y, r)
    if obj.shape == "circle":
        inside = x * x + y * y <= r * r
    elif obj.shape == "square":
        half = 0.85 * r  # about the circle's area
        inside = (np.abs(x) <= half) & (np.abs(y) <= half)
    else:  # triangle pointing up: apex above the centre, base below it
        apex_y, base_y, half_base = -r, 0.8 * r, 0.95 * r
        # under the base line and inside both slanted edges (half-plane tests, no division)
        inside = (y <= base_y) & (np.abs(x) * (base_y - apex_y) <= half_base * (y - apex_y))
    mask = inside.reshape(y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE).mean(axis=(1, 3))
    return slice(y0, y1), slice(x0, x1), mask


def render_scene(scene: Scene, canvas_size: int) -> np.ndarray:
    """The scene as uint8 [canvas_size, canvas_size, 3]."""
    return render_objects(scene.objects, scene.background, canvas_size)


def render_objects(objects: tuple[ShapeObject, ...], background: tuple[int, int, int], canvas_size: int) -> np.ndarray:
    """Shapes drawn in order over a plain background: uint8 [canvas_size, canvas_size, 3]."""
    image = np.empty((canvas_size, canvas_size, 3), dtype=np.float64)
    image[:] = background
    for obj in objects:
        rows, cols, mask = _coverage(obj, canvas_size)
        alpha = mask[..., None]
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float64)
        image[rows, cols] = image[rows, cols] * (1.0 - alpha) + colour * alpha
    return np.rint(image).astype(np.uint8)


def generate_scenes(n: int, seed: int, canvas_size: int = 128) -> tuple[np.ndarray, list[Scene]]:
    """n scenes from `seed`: images uint8 [n, canvas_size, canvas_size, 3] and their Scene records.

    Scenes come from one generator in order, so the first k of n scenes equal the scenes of n=k.
    """
    if n < 0:
        raise ValueError(f"number of scenes n={n} must be >= 0")
    if canvas_size < 32:
        raise ValueError(f"canvas_size={canvas_size} is too small to draw shapes: use >= 32")
    rng = np.random.default_rng(seed)
    images = np.empty((n, canvas_size, canvas_size, 3), dtype=np.uint8)  # first: too large fails before any drawing
    scenes = []
    for i in range(n):  # drawing takes nothing from rng: the scenes of sampling them all first
        scenes.append(sample_scene(rng))
        images[i] = render_scene(scenes[i], canvas_size)
    return images, scenes


# -- reading captions back --------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def _words(caption: str) -> list[str]:
    """A caption's lower-case words without punctuation, as the caption metrics' PTB tokenizer reads them: split
    at spaces alone, "a red circle." named no circle and "a red circle, on the left" no place."""
    return _WORD.findall(caption.lower())


def parse_objects(caption: str) -> Counter[tuple[str, str]]:
    """The (colour, shape) pairs a caption mentions, as a multiset: every `colour shape` word pair
    (an optional size word before it changes nothing); other words, case and punctuation are ignored."""
    words = _words(caption)
    return Counter((w, nxt) for w, nxt in pairwise(words) if w in COLOURS and nxt in SHAPES)


@dataclass(frozen=True)
class PlaceClaim:
    """Where a caption puts its objects: one object at a place of the picture ("on the left"), or one
    object in a relation to another ("a red circle above a blue square")."""

    first: tuple[str, str]  # (colour, shape)
    place: str | None = None  # a SINGLE_POSITIONS name: left, right, top, bottom, middle
    relation: str | None = None  # "to the left of", "to the right of", "above", "below"
    second: tuple[str, str] | None = None


RELATION_PHRASES = tuple(phrase for pair in RELATIONS.values() for phrase in pair)
_PLACE_BY_PHRASE = {phrase: place for place, phrase in POSITION_PHRASE.items()}


def parse_places(caption: str) -> list[PlaceClaim]:
    """The places a shapes caption states (none for "a red circle and a blue square"): a place phrase
    after a lone object, a relation phrase between two objects, read as the templates write them (case and
    punctuation ignored)."""
    words = _words(caption)
    text = " " + " ".join(words) + " "
    mentions = [(i, (w, nxt)) for i, (w, nxt) in enumerate(pairwise(words)) if w in COLOURS and nxt in SHAPES]
    claims: list[PlaceClaim] = []
    if len(mentions) == 1:
        for phrase, place in _PLACE_BY_PHRASE.items():
            if f" {phrase} " in text:
                claims.append(PlaceClaim(mentions[0][1], place=place))
    elif len(mentions) == 2:
        (i, first), (j, second) = mentions
        between = " " + " ".join(words[i + 2 : j]) + " "
        for phrase in RELATION_PHRASES:
            if f" {phrase} " in between:
                claims.append(PlaceClaim(first, relation=phrase, second=second))
    return claims


# Where a place phrase puts an object's centre (canvas units, y down): scenes draw single objects at 0.20-0.30
# or 0.70-0.80 along the named side and 0.45-0.55 in the middle, and pairs >= 0.36 apart along their axis.
PLACE_HOLDS = {
    "left": lambda x, y: x < 0.4, "right": lambda x, y: x > 0.6, "top": lambda x, y: y < 0.4,
    "bottom": lambda x, y: y > 0.6, "middle": lambda x, y: 0.35 < x < 0.65 and 0.35 < y < 0.65,
}
RELATION_MARGIN = 0.1  # "a above b" holds when a's centre is this much higher: no near ties pass
RELATION_HOLDS = {
    "to the left of": lambda a, b: a[0] + RELATION_MARGIN < b[0], "to the right of": lambda a, b: a[0] > b[0] + RELATION_MARGIN,
    "above": lambda a, b: a[1] + RELATION_MARGIN < b[1], "below": lambda a, b: a[1] > b[1] + RELATION_MARGIN,
}


def claim_holds(claim: PlaceClaim, centres: dict[tuple[str, str], tuple[float, float]]) -> bool:
    """Whether objects with these centres ({(colour, shape): (x, y)}) stand where `claim` says; False when a
    named object is not there."""
    first = centres.get(claim.first)
    if first is None:
        return False
    if claim.place is not None:
        return PLACE_HOLDS[claim.place](*first)
    second = centres.get(claim.second)
    return second is not None and RELATION_HOLDS[claim.relation](first, second)
