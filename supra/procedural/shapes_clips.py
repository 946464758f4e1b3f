"""Procedural shapes clips: the shapes scenes' objects, animated over a few frames, 5 true captions each.

In every clip one object changes: it moves (left, right, up or down), turns (squares and triangles only:
a turning circle looks still) or changes from one named colour to another. Half the clips have a second
object that stands still. Frames are drawn with the scenes' anti-aliased numpy code directly at
`canvas_size`, so a clip has the background plus at most 3 colours (and their edge blends).

Clip i is drawn from its own generator, seeded with (seed, i): it depends on nothing else, so the first
k of n clips are the clips of n=k, and any range of clips can be drawn alone (`start`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from supra.procedural.shapes_scenes import (
    COLOURS,
    POSITION_PHRASE,
    SHAPES,
    SIZES,
    ShapeObject,
    _with_articles,
    render_objects,
    sample_background,
)

MOTIONS: tuple[str, ...] = ("move", "rotate", "recolour")
TURNING_SHAPES: tuple[str, ...] = ("square", "triangle")
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1)}  # (dx, dy), y down
DIRECTION_PHRASE = {"right": "to the right", "left": "to the left", "up": "up", "down": "down"}
SPINS: tuple[str, ...] = ("clockwise", "anticlockwise")

# Whole-clip changes, spread evenly over the frames. A move is >= 5 px a step at 64 px and 4 frames; a
# turn stays under 90 degrees, so a square never ends looking as it started (a triangle repeats at 120).
MOVE_DISTANCE = (0.25, 0.40)
MOVE_SPAN = (0.20, 0.80)  # a moving centre stays in here: radius <= 0.17, so the shape stays inside
TURN_DEGREES = (40.0, 80.0)
# A square turned by a looks like one turned by a - 90, a (nearly equilateral) triangle by a - 120, and
# the eye takes the smaller turn: steps of more than 30 degrees (short clips) could look like the wrong way.
MAX_TURN_STEP = 30.0

# Still objects (turning or recolouring): a turned shape, up to 1.4 radii from its centre, stays inside.
# A table like shapes_scenes.SINGLE_POSITIONS, with narrower ranges that leave a turned shape that room.
STILL_POSITIONS = {  # name -> (x range, y range) of the centre, canvas units, y down
    "left": ((0.25, 0.32), (0.40, 0.60)),
    "right": ((0.68, 0.75), (0.40, 0.60)),
    "top": ((0.40, 0.60), (0.25, 0.30)),
    "bottom": ((0.40, 0.60), (0.68, 0.74)),
    "middle": ((0.45, 0.55), (0.45, 0.55)),
}
# Two objects: centres >= 0.41 apart along one axis, more than a large shape turned by <= 80 degrees
# reaches (1.33 * 0.17: a triangle's base corner) plus an upright one's (0.17), so they never touch; and
# inside the canvas by more than a pixel at 32 px. A moving pair uses the axis across the motion.
NEAR, FAR, ACROSS = (0.24, 0.29), (0.70, 0.74), (0.30, 0.70)
MOVING_NEAR, MOVING_FAR, MOVING_ALONG = (0.20, 0.30), (0.70, 0.80), (0.25, 0.75)

# {mover}: "colour shape" at the first frame, {sized}: "size colour shape", {other}/{other_sized}: the
# still object; {old}/{new}: colours; {dir}, {spin}, {where} as the phrases above. "a" becomes "an"
# before a vowel. Every caption names the changing object as `[size] colour shape` (its first colour).
TEMPLATES = {
    ("move", 1): (
        "a {mover} moves {dir}",
        "a {sized} moves {dir}",
        "a {sized} slides {dir}",
        "a {mover} is moving {dir}",
        "a {mover} goes {dir}",
    ),
    ("move", 2): (
        "a {mover} moves {dir}",
        "a {sized} slides {dir}",
        "a {mover} moves {dir} and a {other} stays still",
        "a {sized} is moving {dir} while a {other_sized} does not move",
        "a {other} stays still as a {mover} goes {dir}",
    ),
    ("rotate", 1): (
        "a {mover} turns",
        "a {sized} rotates {spin}",
        "a {mover} is spinning {spin}",
        "a {sized} {where} turns",
        "a {mover} {where} rotates",
    ),
    ("rotate", 2): (
        "a {mover} turns",
        "a {sized} rotates {spin}",
        "a {mover} is spinning {spin}",
        "a {mover} turns and a {other} stays still",
        "a {sized} rotates while a {other_sized} does not move",
    ),
    ("recolour", 1): (
        "a {mover} changes from {old} to {new}",
        "a {sized} becomes {new}",
        "a {mover} changes colour to {new}",
        "a {sized} {where} changes to {new}",
        "a {mover} goes from {old} to {new}",
    ),
    ("recolour", 2): (
        "a {mover} changes from {old} to {new}",
        "a {sized} becomes {new}",
        "a {mover} changes colour to {new}",
        "a {mover} becomes {new} and a {other} stays the same",
        "a {sized} goes from {old} to {new} while a {other_sized} does not change",
    ),
}


@dataclass(frozen=True)
class Clip:
    motion: str  # move | rotate | recolour
    change: str  # move: right/left/up/down; rotate: clockwise/anticlockwise; recolour: the new colour
    states: tuple[tuple[ShapeObject, ...], ...]  # the objects in each frame; [0] changes, [1] stands still
    background: tuple[int, int, int]
    layout: str  # one still object: left/right/top/bottom/middle; one moving: "moving"; two: horizontal/vertical
    captions: tuple[str, ...]  # exactly 5

    @property
    def objects(self) -> tuple[ShapeObject, ...]:
        """The objects as the clip starts."""
        return self.states[0]


# -- sampling ---------------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[rng.integers(len(options))]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


class Look(NamedTuple):
    shape: str
    colour: str
    size: str


def _sample_look(rng: np.random.Generator, shapes: tuple[str, ...], exclude: Look | None = None) -> Look:
    """Never `exclude`'s colour and shape together, so two objects always differ in words."""
    while True:
        shape, colour = _pick(rng, shapes), _pick(rng, list(COLOURS))
        if exclude is None or (shape, colour) != (exclude.shape, exclude.colour):
            return Look(shape, colour, _pick(rng, SIZES))


def _steps(frames: int) -> list[float]:
    """Share of the whole change done by each frame: 0 at the first, 1 at the last."""
    return [t / (frames - 1) for t in range(frames)]


def _moving_positions(
    rng: np.random.Generator, direction: str, frames: int, pair: bool,
) -> tuple[list[tuple[float, float]], tuple[float, float] | None]:
    """Centres of the mover in every frame, and of the still object (None without one)."""
    dx, dy = DIRECTIONS[direction]
    sign = dx or dy
    distance = _uniform(rng, MOVE_DISTANCE)
    lo, hi = MOVE_SPAN
    start = _uniform(rng, (lo, hi - distance) if sign > 0 else (lo + distance, hi))
    along = [start + sign * distance * share for share in _steps(frames)]
    if pair:
        bands = (MOVING_NEAR, MOVING_FAR) if rng.random() < 0.5 else (MOVING_FAR, MOVING_NEAR)
        across, other = _uniform(rng, bands[0]), (_uniform(rng, MOVING_ALONG), _uniform(rng, bands[1]))
    else:
        across, other = _uniform(rng, ACROSS), None
    if dx:  # horizontal motion: `across` is y
        return [(a, across) for a in along], other
    return [(across, a) for a in along], None if other is None else (other[1], other[0])


def _still_positions(rng: np.random.Generator, pair: bool) -> tuple[str, tuple[float, float], tuple[float, float] | None]:
    """(layout, mover centre, still object's centre or None) for a clip whose objects stay in place."""
    if not pair:
        layout = _pick(rng, list(STILL_POSITIONS))
        xs, ys = STILL_POSITIONS[layout]
        return layout, (_uniform(rng, xs), _uniform(rng, ys)), None
    layout = _pick(rng, ("horizontal", "vertical"))
    near, far = (_uniform(rng, NEAR), _uniform(rng, ACROSS)), (_uniform(rng, FAR), _uniform(rng, ACROSS))
    if layout == "vertical":
        near, far = near[::-1], far[::-1]
    return (layout, near, far) if rng.random() < 0.5 else (layout, far, near)


def sample_clip(rng: np.random.Generator, frames: int) -> Clip:
    """Draw one clip's record (objects in every frame, captions) from `rng`."""
    background = sample_background(rng)
    motion = _pick(rng, MOTIONS)
    pair = bool(rng.random() < 0.5)
    look = _sample_look(rng, TURNING_SHAPES if motion == "rotate" else SHAPES)
    shape, colour, size = look
    other_look = _sample_look(rng, SHAPES, exclude=look) if pair else None
    if motion == "move":
        change = _pick(rng, list(DIRECTIONS))
        centres, other_centre = _moving_positions(rng, change, frames, pair)
        layout = ("vertical" if DIRECTIONS[change][0] else "horizontal") if pair else "moving"
        movers = [ShapeObject(shape, colour, size, c) for c in centres]
    elif motion == "rotate":
        change = _pick(rng, SPINS)
        step = min(_uniform(rng, TURN_DEGREES) / (frames - 1), MAX_TURN_STEP) * (1 if change == "clockwise" else -1)
        layout, centre, other_centre = _still_positions(rng, pair)
        movers = [ShapeObject(shape, colour, size, centre, step * t if t else 0.0) for t in range(frames)]
    else:
        # The new colour never makes the mover look like the still object.
        taken = {colour} | ({other_look.colour} if other_look and other_look.shape == shape else set())
        change = _pick(rng, [c for c in COLOURS if c not in taken])
        switch = int(rng.integers(1, frames))  # the first frame in the new colour
        layout, centre, other_centre = _still_positions(rng, pair)
        movers = [ShapeObject(shape, change if t >= switch else colour, size, centre) for t in range(frames)]
    other = ShapeObject(*other_look, other_centre) if other_look else None
    states = tuple((m, other) if other else (m,) for m in movers)
    return Clip(motion, change, states, background, layout, _captions(motion, change, movers[0], other, layout))


def _captions(motion: str, change: str, mover: ShapeObject, other: ShapeObject | None, layout: str) -> tuple[str, ...]:
    words = {
        "mover": f"{mover.colour} {mover.shape}", "sized": f"{mover.size} {mover.colour} {mover.shape}",
        "old": mover.colour, "new": change, "dir": DIRECTION_PHRASE.get(change, ""), "spin": change,
        "where": POSITION_PHRASE.get(layout, ""),
        "other": f"{other.colour} {other.shape}" if other else "",
        "other_sized": f"{other.size} {other.colour} {other.shape}" if other else "",
    }
    return tuple(_with_articles(t.format(**words)) for t in TEMPLATES[motion, 2 if other else 1])


# -- drawing ----------------------------------------------------------------------------------------

def render_clip(clip: Clip, canvas_size: int) -> np.ndarray:
    """The clip as uint8 [frames, canvas_size, canvas_size, 3]."""
    return np.stack([render_objects(objects, clip.background, canvas_size) for objects in clip.states])


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """Clip `index`'s own generator: a PCG64 seeded with the pair (seed, index)."""
    return np.random.default_rng([seed, index])


def generate_clips(
    n: int, seed: int, frames: int = 4, canvas_size: int = 64, start: int = 0,
) -> tuple[np.ndarray, list[Clip]]:
    """Clips start..start+n-1 of `seed`: uint8 [n, frames, canvas_size, canvas_size, 3] and their records."""
    for name, value, least in (("n", n, 0), ("seed", seed, 0), ("start", start, 0), ("frames", frames, 2)):
        if value < least:
            raise ValueError(f"{name}={value} must be >= {least}")
    if canvas_size < 32:
        raise ValueError(f"canvas_size={canvas_size} is too small to draw shapes: use >= 32")
    pixels = np.empty((n, frames, canvas_size, canvas_size, 3), dtype=np.uint8)  # first: too large fails before any drawing
    clips = [sample_clip(clip_rng(seed, start + i), frames) for i in range(n)]
    for i, clip in enumerate(clips):
        pixels[i] = render_clip(clip, canvas_size)
    return pixels, clips
