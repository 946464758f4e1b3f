"""The built-in `shapes` captioning data: procedural scenes of one or two coloured shapes, each with
5 true captions, generated from a seed in seconds (no download). The default data of `train.py`."""

from __future__ import annotations

import logging
import time

from supra.data.caption_datamodule import CaptionDataModule, CaptionedImages
from supra.data.image_transforms import channels_first, resize_uint8
from supra.data.shapes_scenes import Scene, generate_scenes
from supra.metrics.attr_acc import attribute_accuracy
from supra.utils.errors import SupraUserError

log = logging.getLogger(__name__)

# Each split draws from its own seed so no split's scenes are a prefix of another's.
SPLIT_SEED_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_003}


class ShapesDataModule(CaptionDataModule):
    """Shapes scenes drawn at `canvas_size`, then resized to the model's image size like any photo."""

    def __init__(
        self, num_train: int = 4000, num_val: int = 250, num_test: int = 500, canvas_size: int = 128,
        seed: int = 0, **common,
    ) -> None:
        super().__init__(**common)
        sizes = {"num_train": num_train, "num_val": num_val, "num_test": num_test}
        for name, n in sizes.items():
            if n < 1:
                raise SupraUserError(f"data.{name}={n}: every split needs at least 1 image")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.canvas_size, self.seed = canvas_size, seed
        self.scenes: dict[str, list[Scene]] = {}

    def load_split(self, split: str) -> CaptionedImages:
        start = time.perf_counter()
        pixels, scenes = generate_scenes(self.sizes[split], self.seed + SPLIT_SEED_OFFSET[split], self.canvas_size)
        images = resize_uint8(channels_first(pixels), self.image_size)
        self.scenes[split] = scenes
        log.info("shapes %s: %d images, %d captions (%.1fs)", split, len(scenes), 5 * len(scenes), time.perf_counter() - start)
        return CaptionedImages(images, [list(s.captions) for s in scenes], [f"{split}_{i:05d}" for i in range(len(scenes))])

    def extra_caption_scores(self, split: str, predictions: dict[int, str]) -> dict[str, float]:
        """attr_acc: share of images whose caption names exactly their objects' colours and shapes."""
        self._load(split)
        truths = {i: [(o.colour, o.shape) for o in s.objects] for i, s in enumerate(self.scenes[split])}
        truths = {i: truths[i] for i in predictions}
        return {"attr_acc": attribute_accuracy(predictions, truths)}
