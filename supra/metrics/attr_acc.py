"""Accuracy of generated captions on procedural data, where the generator knows the truth: the objects
(`attribute_accuracy`) and where they stand (`relation_accuracy`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from supra.procedural.shapes_scenes import ShapeObject, claim_holds, parse_objects, parse_places

SCENE_SCORES = ("attr_acc", "relation_acc")  # what a captioner scores where the data knows each image's objects


def attribute_accuracy(
    predictions: Mapping[Hashable, str], truths: Mapping[Hashable, Sequence[tuple[str, str]]]
) -> float:
    """Share of images whose caption names the colour and shape of every object in the image and no
    object that is not there (multiset equality of (colour, shape) pairs). Scored over the ids of
    `truths`; a missing prediction counts as wrong."""
    if not truths:
        raise ValueError("attribute_accuracy needs at least one image with known objects")
    correct = sum(parse_objects(predictions.get(i, "")) == Counter(objects) for i, objects in truths.items())
    return correct / len(truths)


def relation_accuracy(predictions: Mapping[Hashable, str], scenes: Mapping[Hashable, Sequence[ShapeObject]]) -> float:
    """Share of images whose caption places its objects where they are: it states at least one place ("on
    the left", "at the top", "above", "to the right of", ...) and every place it states holds for the
    image's objects (a named object the image lacks makes it wrong). Colours and shapes alone are
    attribute_accuracy's; a caption that states no place places nothing, so it counts as wrong. Scored over
    the ids of `scenes`."""
    if not scenes:
        raise ValueError("relation_accuracy needs at least one image with known objects")
    correct = 0
    for i, objects in scenes.items():
        claims = parse_places(predictions.get(i, ""))
        centres = {(o.colour, o.shape): o.center for o in objects}
        correct += bool(claims) and all(claim_holds(claim, centres) for claim in claims)
    return correct / len(scenes)
