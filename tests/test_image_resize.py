"""resize_uint8 gives the same pixels on every CPU: torch's own uint8 kernel for antialiased bilinear needs AVX2,
and its path elsewhere (ARM, older x86) differs by 1 here and there; there the kernel's arithmetic is done in
portable integer ops."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from supra.data.images import TORCH_RESIZES_WITH_AVX2, resize_uint8, resize_uint8_portable

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]  # not conftest's: importing that would load Lightning in the subprocess

# (height, width) -> size: shrunk and enlarged, square or not, odd, one side kept, one pixel, a line, no change
SHAPES = [((128, 128), 112), ((375, 500), 112), ((500, 375), 64), ((37, 53), 112), ((1, 1), 112), ((3000, 1), 64),
          ((112, 112), 112), ((113, 111), 112), ((112, 300), 112), ((9, 7), 5), ((50, 50), 113)]
# sha256 prefix of resize_uint8 of seeded noise to each of SHAPES: torch's AVX2 kernel's pixels
GOLDEN_SHA256_PREFIX = "aad34a5f91ed52ae"


def resized_digest() -> str:
    """sha256 prefix of resize_uint8 of PCG64 noise (the same on every machine) to each of SHAPES."""
    rng, digest = np.random.default_rng(0), hashlib.sha256()
    for (height, width), size in SHAPES:
        pixels = torch.from_numpy(rng.integers(0, 256, (3, height, width), dtype=np.uint8))
        digest.update(resize_uint8(pixels, size).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.skipif(not TORCH_RESIZES_WITH_AVX2, reason="torch's AVX2 kernel is what the portable one is checked against")
@pytest.mark.parametrize(("shape", "size"), SHAPES, ids=[f"{h}x{w}-{s}" for (h, w), s in SHAPES])
def test_the_portable_resize_gives_the_pixels_of_torchs_avx2_kernel(shape, size):
    rng = np.random.default_rng(size)
    noise = torch.from_numpy(rng.integers(0, 256, (2, 3, *shape), dtype=np.uint8))
    flat = torch.tensor([255, 0, 128], dtype=torch.uint8).view(3, 1, 1).expand(3, *shape).contiguous()
    channels_last = noise[0].permute(1, 2, 0).contiguous().permute(2, 0, 1)  # as squashed() passes a decoder's
    for images in (noise, flat, channels_last):
        assert torch.equal(resize_uint8_portable(images, size), TF.resize_image(images, [size, size], antialias=True))


def test_resized_pixels_are_the_same_on_every_cpu():
    """Here, and in a process whose torch is limited to its kernels for CPUs without AVX2 (as on ARM)."""
    assert resized_digest() == GOLDEN_SHA256_PREFIX
    result = subprocess.run(
        [sys.executable, "-c", "from supra.data.images import TORCH_RESIZES_WITH_AVX2 as avx2; "
         "from tests.test_image_resize import resized_digest; print(avx2, resized_digest())"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", GOLDEN_SHA256_PREFIX]


def test_pad_refuses_a_padded_square_over_max_pixels_and_pads_any_other_exactly_as_before():
    """A long thin picture (1x60000, 60,000 pixels) would pad to a 60000x60000 square (10 GiB): refused as a
    picture over max_pixels is, in words saying the padded square is too large. Within the bound the square
    is the picture on black, resized."""
    from supra.data.gif_frames import TOO_LARGE, MediaDecodeError
    from supra.data.images import PAD_VALUE, fit, squashed

    with pytest.raises(MediaDecodeError, match=r"^1x60000 padded to a 60000x60000 square = 3600000000 pixels, over "
                                               r"max_pixels=100000: the padded square is too large") as err:
        fit(np.zeros((60000, 1, 3), dtype=np.uint8), 16, "pad", max_pixels=100_000)
    assert err.value.kind == TOO_LARGE
    picture = np.random.default_rng(0).integers(0, 256, (10, 30, 3), dtype=np.uint8)
    square = np.full((30, 30, 3), PAD_VALUE, dtype=np.uint8)
    square[10:20] = picture
    assert torch.equal(fit(picture, 16, "pad", max_pixels=900), squashed(square, 16))
