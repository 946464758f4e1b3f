"""The built-in `shapes_video` clips: one shape (sometimes beside a still second one) moving, turning or
changing colour over a few frames, 5 true captions each (see procedural/shapes_clips.py). As GIF files:
`python -m supra.shapes_gifs out=DIR n=100`."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import torch

from supra.data.base import check_drawing, check_split_memory, check_split_sizes
from supra.data.media.datamodule import MediaDataModule, MediaItems
from supra.procedural.shapes_clips import Clip, generate_clips
from supra.procedural.shapes_scenes import MIN_DRAWING_SIZE, SPLIT_SEED_OFFSET
from supra.utils.cli import check_option_types
from supra.utils.errors import SupraUserError

log = logging.getLogger(__name__)


class ShapesVideoDataModule(MediaDataModule):
    """Shapes clips drawn at `image_size`: pixels uint8 [N, frames, 3, S, S]; split i of a seed is the
    same on every machine."""

    min_image_size = MIN_DRAWING_SIZE

    def __init__(
        self, num_train: int = 5000, num_val: int = 250, num_test: int = 250, frames: int = 4, seed: int = 0,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.sizes = check_split_sizes(num_train, num_val, num_test, "clip")
        check_option_types({"data.frames": frames}, whole=["data.frames"])  # 2.5 failed once the split was drawn
        if frames < 2:
            raise SupraUserError(f"data.frames={frames}: a clip needs at least 2 frames to show a change")
        check_drawing(seed, self.image_size, "image_size")
        size = self.image_size  # held twice at its peak: as drawn and turned channels-first
        check_split_memory(self.sizes, 2 * frames * size**2 * 3, f"{frames}-frame clip at {size} px",
                           f"of data.frames={frames} at data.image_size={size}")
        self.frames, self.seed = frames, seed
        self.clips: dict[str, list[Clip]] = {}  # records of the loaded splits (motion, objects per frame)

    @classmethod
    def gives_clips(cls, options: Mapping[str, Any]) -> bool:
        return True

    def load_split(self, split: str) -> MediaItems:
        start = time.perf_counter()
        pixels, clips = generate_clips(self.sizes[split], self.seed + SPLIT_SEED_OFFSET[split], self.frames, self.image_size)
        self.clips[split] = clips
        log.info("shapes_video %s: %d clips of %d frames at %dpx (%.1fs)", split, len(clips), self.frames,
                 self.image_size, time.perf_counter() - start)
        return MediaItems(torch.from_numpy(pixels).permute(0, 1, 4, 2, 3).contiguous(),
                          [list(c.captions) for c in clips], [f"{split}_{i:05d}" for i in range(len(clips))],
                          [[(o.colour, o.shape) for o in c.objects] for c in clips])
