"""Attribute accuracy of generated captions on procedural data, where the generator knows the truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from supra.procedural.shapes_scenes import parse_objects


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
