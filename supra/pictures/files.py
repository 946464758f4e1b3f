"""Pictures and animations written to disk atomically (a temp file, then one rename): never half a file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from supra.utils.files import atomic_path


def save_image_atomic(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def save_gif_atomic(frames: list[Image.Image], path: str | os.PathLike, duration_ms: int | list[int] = 250) -> Path:
    """Write a looping animated GIF of every frame atomically, each frame in its own palette of its 255 most
    telling colours (median cut: close, not exact; write_exact_gif is exact but takes 256 colours in all).
    `duration_ms`: every frame's time on screen, or each one's (a GIF keeps steps of 10 ms).

    A frame identical to the one before is kept, not merged into it as Pillow does (one frame, summed
    delay: a 4-frame video read back as 2): every palette keeps its 256th entry for the colour of its
    top-left pixel, and such a frame draws that pixel with it, the same colour by another index."""
    images: list[Image.Image] = []
    for frame in frames:
        image = frame.convert("RGB").quantize(colors=255)
        palette = (image.getpalette() or [])[: 255 * 3]
        palette += [0] * (255 * 3 - len(palette))
        corner = image.getpixel((0, 0))
        image.putpalette(palette + palette[3 * corner: 3 * corner + 3])
        if images and image.tobytes() == images[-1].tobytes() and image.getpalette() == images[-1].getpalette():
            image.putpixel((0, 0), 255)
        images.append(image)
    with atomic_path(path) as tmp:
        # optimize=False: Pillow would otherwise rebuild each frame's palette and drop the twin entry.
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0,
                       optimize=False)
    return Path(path)


def write_exact_gif(frames: np.ndarray, path: str | os.PathLike, duration_ms: int = 250) -> Path:
    """uint8 [T, H, W, 3] -> a looping animated GIF of T frames that decode to exactly these pixels,
    written atomically. ValueError if the frames hold more colours than one GIF palette (256).

    Pillow merges a frame identical to the one before into it (one frame, summed delay); to keep every
    frame, such a frame draws its top-left pixel with a twin palette entry of the same colour."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {list(frames.shape)}")
    packed = (frames[..., 0].astype(np.uint32) << 16) | (frames[..., 1].astype(np.uint32) << 8) | frames[..., 2]
    colours, indices = np.unique(packed, return_inverse=True)
    indices = indices.reshape(packed.shape).astype(np.int64)
    twins: dict[int, int] = {}  # palette index -> the index of its twin entry
    for t in range(1, len(frames)):
        if np.array_equal(packed[t], packed[t - 1]) and indices[t - 1, 0, 0] == indices[t, 0, 0]:
            indices[t, 0, 0] = twins.setdefault(int(indices[t, 0, 0]), len(colours) + len(twins))
    if len(colours) + len(twins) > 256:
        raise ValueError(f"the frames hold {len(colours)} colours: too many for an exact GIF (256 at most, "
                         "with one spare per colour in the top-left corner of repeated frames)")
    palette = [*colours.tolist(), *(int(colours[i]) for i in twins)]
    rgb = bytes(b for c in palette for b in ((c >> 16) & 255, (c >> 8) & 255, c & 255))
    indices = indices.astype(np.uint8)
    images = []
    for frame in indices:
        image = Image.frombytes("P", (frame.shape[1], frame.shape[0]), frame.tobytes())
        image.putpalette(rgb)
        images.append(image)
    with atomic_path(path) as tmp:
        # optimize=False: Pillow would otherwise rebuild each frame's palette and drop the twin entries.
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms,
                       loop=0, optimize=False)
    return Path(path)
