"""The built-in `shapes` captioning data: procedural scenes of one or two coloured shapes, each with
5 true captions, generated from a seed in seconds (no download). The default data of `train.py`."""

from __future__ import annotations

import logging
import time
from typing import Any

from supra.data.base import check_drawing, check_split_memory, check_split_sizes
from supra.data.captioning.datamodule import CaptionDataModule, CaptionedImages
from supra.data.images import channels_first_view, resize_uint8
from supra.metrics.attr_acc import SCENE_SCORES, attribute_accuracy, relation_accuracy
from supra.procedural.shapes_scenes import SPLIT_SEED_OFFSET, Scene, generate_scenes
from supra.utils.numbers import counted

log = logging.getLogger(__name__)


class ShapesDataModule(CaptionDataModule):
    """Shapes scenes drawn at `canvas_size`, then resized to the model's image size like any photo."""

    scene_scores = SCENE_SCORES  # extra_caption_scores' names

    def __init__(
        self, num_train: int = 4000, num_val: int = 250, num_test: int = 500, canvas_size: int = 128,
        seed: int = 0, **common: Any,
    ) -> None:
        super().__init__(**common)
        self.sizes = check_split_sizes(num_train, num_val, num_test, "image")
        check_drawing(seed, canvas_size, "canvas_size")
        # at its peak a split is held as drawn and resized twice (channels-last, then laid out channels-first); the
        # second canvas-sized copy counted is room for the resize's own buffers
        check_split_memory(self.sizes, 2 * canvas_size**2 * 3 + 3 * self.image_size**2,
                           f"{canvas_size} px scene and its {self.image_size} px copy", f"at data.canvas_size={canvas_size}")
        self.canvas_size, self.seed = canvas_size, seed
        self.scenes: dict[str, list[Scene]] = {}

    def load_split(self, split: str) -> CaptionedImages:
        # said before the work: seconds for the 4,000 train scenes, more on a busy CPU
        log.info("shapes %s: drawing %s ...", split, counted(self.sizes[split], "scene"))
        start = time.perf_counter()
        pixels, scenes = generate_scenes(self.sizes[split], self.seed + SPLIT_SEED_OFFSET[split], self.canvas_size)
        # the resize reads the drawn pixels as they lie; its channels-last result laid out as every split's is
        images = resize_uint8(channels_first_view(pixels), self.image_size).contiguous()
        self.scenes[split] = scenes
        log.info("shapes %s: %d images, %d captions (%.1fs)", split, len(scenes), 5 * len(scenes), time.perf_counter() - start)
        return CaptionedImages(images, [list(s.captions) for s in scenes], [f"{split}_{i:05d}" for i in range(len(scenes))])

    def extra_caption_scores(self, split: str, predictions: dict[int, str]) -> dict[str, float]:
        """attr_acc: share of images whose caption names exactly their objects' colours and shapes;
        relation_acc: share whose caption places its objects where they are (metrics/attr_acc.py)."""
        self.loaded(split)
        scenes = {i: self.scenes[split][i].objects for i in predictions}
        truths = {i: [(o.colour, o.shape) for o in objects] for i, objects in scenes.items()}
        return {"attr_acc": attribute_accuracy(predictions, truths), "relation_acc": relation_accuracy(predictions, scenes)}
