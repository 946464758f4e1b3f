"""The text2image fidelity judge: it reads the right objects back from real held-out shapes pictures,
and it says "wrong" when colour, shape or the number of objects differ from the prompt."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from supra.metrics.shape_fidelity import (
    connected_components,
    matches,
    see_objects,
)
from supra.procedural.shapes_scenes import (
    SPLIT_SEED_OFFSET,
    Scene,
    ShapeObject,
    generate_scenes,
    parse_places,
    render_objects,
    render_scene,
)

TEST_SEED = 0 + SPLIT_SEED_OFFSET["test"]  # the shapes test split (the thresholds were set on scenes of seed 12345)


def judge_images(images: torch.Tensor | np.ndarray) -> list[Counter[tuple[str, str]]]:
    """uint8 [N, 3, H, W] (or one [3, H, W]) -> the multiset of (colour, shape) objects each picture shows, as
    matches compares them with a prompt's."""
    return [Counter((o.colour, o.shape) for o in objects) for objects in see_objects(images)]


def _pictures(scenes: list[Scene], size: int = 64) -> torch.Tensor:
    return torch.from_numpy(np.stack([render_scene(s, size) for s in scenes])).permute(0, 3, 1, 2).contiguous()


def _truth(scene: Scene) -> list[tuple[str, str]]:
    return [(o.colour, o.shape) for o in scene.objects]


def _fidelity(images: torch.Tensor, intended: list[list[tuple[str, str]]]) -> dict[str, float]:
    """The share of pictures that match their prompt exactly, and by colours alone."""
    found = matches(images, intended)
    return {"fidelity": sum(m.exact for m in found) / len(found), "colour_fidelity": sum(m.colours for m in found) / len(found)}


@pytest.fixture(scope="module")
def held_out_scenes() -> tuple[torch.Tensor, list[Scene]]:
    pixels, scenes = generate_scenes(300, TEST_SEED, 64)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), scenes


def test_the_judge_reads_colour_and_shape_of_held_out_shapes_pictures_at_least_98_percent_right(held_out_scenes):
    pictures, scenes = held_out_scenes
    scores = _fidelity(pictures, [_truth(s) for s in scenes])
    assert scores["fidelity"] >= 0.98 and scores["colour_fidelity"] >= 0.98
    shapes = Counter(o.shape for s in scenes for o in s.objects)
    assert min(shapes.values()) > 50  # every shape is tested, singles and pairs alike
    assert sum(len(s.objects) == 2 for s in scenes) > 100


def test_the_judge_also_reads_larger_pictures():
    pixels, scenes = generate_scenes(40, TEST_SEED + 7, 128)
    assert _fidelity(torch.from_numpy(pixels).permute(0, 3, 1, 2), [_truth(s) for s in scenes])["fidelity"] >= 0.95


def _recoloured(scene: Scene) -> Scene:
    first = scene.objects[0]
    colour = "blue" if first.colour != "blue" else "red"
    return dataclasses.replace(scene, objects=(dataclasses.replace(first, colour=colour), *scene.objects[1:]))


def _reshaped(scene: Scene) -> Scene:
    first = scene.objects[0]
    shape = "square" if first.shape != "square" else "triangle"
    return dataclasses.replace(scene, objects=(dataclasses.replace(first, shape=shape), *scene.objects[1:]))


def test_a_picture_with_a_wrong_colour_or_shape_is_judged_wrong(held_out_scenes):
    _, scenes = held_out_scenes
    scenes = scenes[:40]
    prompts = [_truth(s) for s in scenes]
    assert _fidelity(_pictures([_recoloured(s) for s in scenes]), prompts)["fidelity"] == 0.0
    assert _fidelity(_pictures([_recoloured(s) for s in scenes]), prompts)["colour_fidelity"] == 0.0
    wrong_shapes = _fidelity(_pictures([_reshaped(s) for s in scenes]), prompts)
    assert wrong_shapes["fidelity"] == 0.0 and wrong_shapes["colour_fidelity"] == 1.0  # colours right, shapes not


def test_a_missing_or_an_extra_object_makes_the_picture_wrong(held_out_scenes):
    _, scenes = held_out_scenes
    pair = next(s for s in scenes if len(s.objects) == 2)
    single = dataclasses.replace(pair, objects=pair.objects[:1])
    assert judge_images(_pictures([pair])[0])[0] == Counter(_truth(pair))
    assert _fidelity(_pictures([single]), [_truth(pair)])["fidelity"] == 0.0  # one object missing
    assert _fidelity(_pictures([pair]), [_truth(single)])["fidelity"] == 0.0  # one object too many
    blank = torch.full((1, 3, 64, 64), 235, dtype=torch.uint8)
    assert judge_images(blank) == [Counter()]
    assert _fidelity(blank, [_truth(single)])["fidelity"] == 0.0


def test_fidelity_is_the_share_of_pictures_that_match(held_out_scenes):
    pictures, scenes = held_out_scenes
    good = [s for s, judged in zip(scenes[:8], judge_images(pictures[:8]), strict=True) if judged == Counter(_truth(s))][:3]
    mixed = _pictures([*good, _recoloured(good[0])])
    assert _fidelity(mixed, [_truth(s) for s in [*good, good[0]]])["fidelity"] == pytest.approx(0.75)


def test_connected_components_keep_blobs_apart_even_when_corners_touch():
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, 0:2, 0:2] = True  # blob A
    mask[0, 2, 2] = True  # touches A only diagonally: its own component
    mask[0, 4:6, 1:5] = True  # blob C
    labels = connected_components(mask)
    assert len(labels[labels >= 0].unique()) == 3
    assert labels[0, 0, 0] == labels[0, 1, 1] != labels[0, 2, 2]
    assert (labels[~mask] == -1).all()


def test_the_judge_refuses_what_is_not_an_rgb_picture():
    with pytest.raises(ValueError, match="uint8 RGB"):
        judge_images(torch.zeros(2, 3, 64, 64))  # float, not uint8


# -- places and relations ---------------------------------------------------------------------------

BACKGROUND = (236, 236, 236)


def _drawn(*objects: ShapeObject) -> torch.Tensor:
    return torch.from_numpy(render_objects(objects, BACKGROUND, 64)).permute(2, 0, 1)[None].contiguous()


def _placed(picture: torch.Tensor, objects: list[tuple[str, str]], caption: str) -> bool:
    return matches(picture, [objects], [caption])[0].placed


YELLOW_SQUARE, PURPLE_SQUARE = ("yellow", "square"), ("purple", "square")


def test_a_relation_is_right_when_drawn_as_said_and_wrong_upside_down_or_side_by_side():
    upper = ShapeObject("square", "yellow", "large", (0.5, 0.26))
    lower = ShapeObject("square", "purple", "large", (0.5, 0.74))
    pair = [YELLOW_SQUARE, PURPLE_SQUARE]
    as_said = _drawn(upper, lower)
    assert _placed(as_said, pair, "a yellow square above a purple square")
    assert _placed(as_said, pair, "a purple square below a yellow square")
    upside_down = _drawn(ShapeObject("square", "yellow", "large", (0.5, 0.74)), ShapeObject("square", "purple", "large", (0.5, 0.26)))
    assert not _placed(upside_down, pair, "a yellow square above a purple square")
    assert matches(upside_down, [pair])[0].exact  # the right objects: only their places are wrong
    side_by_side = _drawn(ShapeObject("square", "yellow", "large", (0.26, 0.5)), ShapeObject("square", "purple", "large", (0.74, 0.5)))
    assert not _placed(side_by_side, pair, "a yellow square above a purple square")  # the relation is missing
    assert _placed(side_by_side, pair, "a yellow square to the left of a purple square")
    assert _placed(side_by_side, pair, "a large yellow square and a large purple square")  # no place stated
    missing = _drawn(upper)
    assert not _placed(missing, pair, "a yellow square above a purple square")  # an object is missing


def test_a_single_objects_place_is_judged_where_its_centre_is():
    left = _drawn(ShapeObject("circle", "red", "small", (0.25, 0.5)))
    assert _placed(left, [("red", "circle")], "a small red circle on the left")
    assert not _placed(left, [("red", "circle")], "a small red circle on the right")
    assert not _placed(left, [("red", "circle")], "there is a small red circle at the top of the picture")
    assert _placed(left, [("red", "circle")], "a small red circle")


def test_true_scenes_stand_where_all_their_captions_say(held_out_scenes):
    pictures, scenes = held_out_scenes
    rows = [(i, caption) for i, scene in enumerate(scenes[:100]) for caption in scene.captions]
    placed = matches(pictures[[i for i, _ in rows]], [_truth(scenes[i]) for i, _ in rows], [c for _, c in rows])
    exact = [m for m in placed if m.exact]
    assert len(exact) >= 0.97 * len(rows) and all(m.placed for m in exact)  # every stated place holds


def test_captions_state_places_and_relations_as_the_templates_write_them():
    assert parse_places("a yellow square below a purple square")[0].relation == "below"
    assert parse_places("there is a large blue triangle at the bottom of the picture")[0].place == "bottom"
    assert parse_places("a red circle and a blue square") == []
