"""The text2image fidelity judge: it reads the right objects back from real held-out shapes pictures,
and it says "wrong" when colour, shape or the number of objects differ from the prompt."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from supra.data.captioning.shapes import SPLIT_SEED_OFFSET
from supra.metrics.shape_fidelity import connected_components, judge_image, judge_images, prompt_fidelity
from supra.procedural.shapes_scenes import Scene, generate_scenes, render_scene

TEST_SEED = 0 + SPLIT_SEED_OFFSET["test"]  # the shapes test split (the thresholds were set on scenes of seed 12345)


def _pictures(scenes: list[Scene], size: int = 64) -> torch.Tensor:
    return torch.from_numpy(np.stack([render_scene(s, size) for s in scenes])).permute(0, 3, 1, 2).contiguous()


def _truth(scene: Scene) -> list[tuple[str, str]]:
    return [(o.colour, o.shape) for o in scene.objects]


@pytest.fixture(scope="module")
def test_scenes() -> tuple[torch.Tensor, list[Scene]]:
    pixels, scenes = generate_scenes(300, TEST_SEED, 64)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), scenes


def test_the_judge_reads_colour_and_shape_of_held_out_shapes_pictures_at_least_98_percent_right(test_scenes):
    pictures, scenes = test_scenes
    scores = prompt_fidelity(pictures, [_truth(s) for s in scenes])
    assert scores["fidelity"] >= 0.98 and scores["colour_fidelity"] >= 0.98
    shapes = Counter(o.shape for s in scenes for o in s.objects)
    assert min(shapes.values()) > 50  # every shape is tested, singles and pairs alike
    assert sum(len(s.objects) == 2 for s in scenes) > 100


def test_the_judge_also_reads_larger_pictures():
    pixels, scenes = generate_scenes(40, TEST_SEED + 7, 128)
    assert prompt_fidelity(torch.from_numpy(pixels).permute(0, 3, 1, 2), [_truth(s) for s in scenes])["fidelity"] >= 0.95


def _recoloured(scene: Scene) -> Scene:
    first = scene.objects[0]
    colour = "blue" if first.colour != "blue" else "red"
    return dataclasses.replace(scene, objects=(dataclasses.replace(first, colour=colour), *scene.objects[1:]))


def _reshaped(scene: Scene) -> Scene:
    first = scene.objects[0]
    shape = "square" if first.shape != "square" else "triangle"
    return dataclasses.replace(scene, objects=(dataclasses.replace(first, shape=shape), *scene.objects[1:]))


def test_a_picture_with_a_wrong_colour_or_shape_is_judged_wrong(test_scenes):
    _, scenes = test_scenes
    scenes = scenes[:40]
    prompts = [_truth(s) for s in scenes]
    assert prompt_fidelity(_pictures([_recoloured(s) for s in scenes]), prompts)["fidelity"] == 0.0
    assert prompt_fidelity(_pictures([_recoloured(s) for s in scenes]), prompts)["colour_fidelity"] == 0.0
    wrong_shapes = prompt_fidelity(_pictures([_reshaped(s) for s in scenes]), prompts)
    assert wrong_shapes["fidelity"] == 0.0 and wrong_shapes["colour_fidelity"] == 1.0  # colours right, shapes not


def test_a_missing_or_an_extra_object_makes_the_picture_wrong(test_scenes):
    _, scenes = test_scenes
    pair = next(s for s in scenes if len(s.objects) == 2)
    single = dataclasses.replace(pair, objects=pair.objects[:1])
    assert judge_image(_pictures([pair])[0]) == Counter(_truth(pair))
    assert prompt_fidelity(_pictures([single]), [_truth(pair)])["fidelity"] == 0.0  # one object missing
    assert prompt_fidelity(_pictures([pair]), [_truth(single)])["fidelity"] == 0.0  # one object too many
    blank = torch.full((1, 3, 64, 64), 235, dtype=torch.uint8)
    assert judge_images(blank) == [Counter()]
    assert prompt_fidelity(blank, [_truth(single)])["fidelity"] == 0.0


def test_fidelity_is_the_share_of_pictures_that_match(test_scenes):
    pictures, scenes = test_scenes
    good = [s for s, judged in zip(scenes[:8], judge_images(pictures[:8]), strict=True) if judged == Counter(_truth(s))][:3]
    mixed = _pictures([*good, _recoloured(good[0])])
    assert prompt_fidelity(mixed, [_truth(s) for s in [*good, good[0]]])["fidelity"] == pytest.approx(0.75)


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
