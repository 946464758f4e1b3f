"""The built-in `shapes` scenes as a media corpus for the VQ-VAE: the procedural images drawn directly at
`image_size` (64x64 by default, the a2a release's image side), with their 5 captions each."""

from __future__ import annotations

import logging
import time
from typing import Any

from supra.data.base import check_drawing, check_split_memory, check_split_sizes
from supra.data.images import channels_first
from supra.data.media.datamodule import MediaDataModule, MediaItems
from supra.procedural.shapes_scenes import MIN_DRAWING_SIZE, SPLIT_SEED_OFFSET, Scene, generate_scenes

log = logging.getLogger(__name__)


class ShapesImagesDataModule(MediaDataModule):
    """Shapes scenes as images; split i of a seed is the same on every machine."""

    min_image_size = MIN_DRAWING_SIZE

    def __init__(self, num_train: int = 20000, num_val: int = 500, num_test: int = 500, seed: int = 0,
                 **common: Any) -> None:
        super().__init__(**common)
        self.sizes = check_split_sizes(num_train, num_val, num_test, "image")
        check_drawing(seed, self.image_size, "image_size")
        size = self.image_size  # held twice at its peak: as drawn and turned channels-first
        check_split_memory(self.sizes, 2 * size**2 * 3, f"{size} px scene", f"at data.image_size={size}")
        self.seed = seed
        self.scenes: dict[str, list[Scene]] = {}  # the records of the loaded splits

    def load_split(self, split: str) -> MediaItems:
        start = time.perf_counter()
        pixels, scenes = generate_scenes(self.sizes[split], self.seed + SPLIT_SEED_OFFSET[split], self.image_size)
        self.scenes[split] = scenes
        log.info("shapes %s: %d images at %dpx (%.1fs)", split, len(scenes), self.image_size, time.perf_counter() - start)
        return MediaItems(channels_first(pixels), [list(s.captions) for s in scenes],
                          [f"{split}_{i:05d}" for i in range(len(scenes))],
                          [[(o.colour, o.shape) for o in s.objects] for s in scenes])
