"""Pictures from files to tensors, the one pipeline every dataset shares: decode any still to RGB (EXIF
orientation, any mode, transparency over white, decompression bombs refused from the header), square it
(squash, crop or pad), resize to uint8 [3, S, S]; then, on the device, ImageNet normalisation for the
captioner or [-1, 1] for the VQ-VAE. Procedural shapes and real photos reach the models alike.
GIF animations are decoded in gif_frames.py, and so is a still taken from a GIF (its first frame)."""

from __future__ import annotations

import functools
import io
import math
import re
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import simplejpeg
import torch
from PIL import ExifTags, Image, ImageOps
from torchvision.transforms.v2 import functional as TF

from supra.data.gif_frames import EMPTY, EMPTY_FILE, TOO_LARGE, MediaDecodeError, open_gif
from supra.utils.errors import SupraUserError, first_line
from supra.utils.folder_walk import link_loops, not_regular
from supra.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from supra.utils.numbers import is_whole, whole_hint

PAD_VALUE = 0  # black: the letterbox convention, and apart from the white transparency turns into
# What Pillow raises on a corrupt or unsupported still, across its plugins (and on a decompression bomb).
STILL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError)
UNREADABLE = (*STILL_ERRORS, Image.DecompressionBombError)
# Bump when load_rgb gives other pixels for some file (2: a GIF still's first frame by the GIF reader, a PNG's
# colour key over white, float pictures and 32-bit ones beyond 16 bits refused rather than clipped to black or
# white): what was cached from files decoded before (a2a codes) is made anew.
DECODE_VERSION = 2
# The limit load_rgb reads up to when its caller has no max_pixels option: its refusal then says what to do instead.
MAX_PIXELS = 100_000_000
# The limit on a picture given to an a2a model: generate's default max_pixels= (conf/generate.yaml), explain's and
# the demo's (they have no such option): the model sees it at 64x64 or so, so a smaller bound than MAX_PIXELS.
GENERATE_MAX_PIXELS = 50_000_000
SIXTEEN_BIT_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # "I" is 32-bit: taken as 16-bit when its values fit


class PixelRangeError(ValueError):
    """A picture whose pixels have no known range (float, or 32-bit beyond 16-bit values): unreadable, as
    sources count it (a ValueError), with what to do instead of another file."""


# The picture formats people's files come in, by Pillow's names. Their suffixes are all those Pillow registers for
# them (.jfif and .jpe are JPEGs as browsers and cameras name them, .pgm and .ppm PPM's), where this Pillow opens
# the format (AVIF needs its plugin): every other format it registers is no photo (.pdf, .eps, .h5, .mpeg, ...).
PICTURE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "AVIF", "PPM", "ICO")
IMAGE_SUFFIXES = frozenset(suffix for suffix, format_name in Image.registered_extensions().items()
                           if format_name in PICTURE_FORMATS and format_name in Image.OPEN)  # what caption looks for


# how a picture over the pixels read is recorded where it is skipped (the image cache, write_shards), so that the
# set-up summaries count it as too large (resize it), as caption does, not as unreadable
TOO_LARGE_PREFIX = "too large: "
# ... and how caches written before it recorded one (read as they are, not rebuilt): the loader's refusal alone
# ("400,000,000 pixels, over the 100,000,000 pixels read: ..."), or after the class name of Pillow's error
TOO_LARGE_BEFORE = re.compile(r"^(DecompressionBombError: |[\dx,= ]+ pixels, over )")


def recorded_too_large(reason: str) -> bool:
    """Whether `reason`, recorded for a picture the image cache or write_shards (after the file's name) skipped, says
    it is too large: as recorded now (TOO_LARGE_PREFIX), or by an older image cache (TOO_LARGE_BEFORE)."""
    return TOO_LARGE_PREFIX in reason or TOO_LARGE_BEFORE.match(reason) is not None


def channels_first(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] (numpy, as decoders give) -> a contiguous uint8 torch tensor [..., 3, H, W].

    The transpose is copied by numpy: torch's permute().contiguous() on uint8 takes a slow strided path
    (it was most of the GIF pipeline's time: benchmarks/vqvae_throughput.py).
    """
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(pixels, -1, -3)))


def channels_first_view(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] (numpy) -> uint8 torch [..., 3, H, W] sharing its memory (channels-last strides), for
    resize_uint8: torch's uint8 kernel works channels-last, so channels_first's copy would be copied back (a
    4,000-scene split: about 1 s of 1.2 s resizing)."""
    return torch.from_numpy(pixels).movedim(-1, -3)


# Torch resizes uint8 through Pillow-SIMD's fixed-point kernel where its CPU capability has AVX2, and through
# another path elsewhere (ARM, older x86) whose pixels differ by 1 here and there: there, the kernel's
# arithmetic is done in portable integer ops instead, so that the data is the same on every machine.
TORCH_RESIZES_WITH_AVX2 = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
PORTABLE_BATCH = 64  # images resized at once by the portable path: its int32 sums stay a few MB


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> uint8 [..., 3, size, size]: squashed to a square, no crop (as the release).
    The pixels of torch's AVX2 kernel on every CPU (resize_uint8_portable where torch lacks it)."""
    if images.shape[-2:] == (size, size):
        return images
    if not TORCH_RESIZES_WITH_AVX2:
        return resize_uint8_portable(images, size)
    # resize()'s kernel for plain tensors, called directly: the same pixels without the dispatch, which
    # cost a third as much again as the resize of one photo to 112 px
    return TF.resize_image(images, [size, size], antialias=True)


def resize_uint8_portable(images: torch.Tensor, size: int) -> torch.Tensor:
    """resize_uint8 (CPU tensors) in integer ops that give the same pixels on any CPU: those of torch's AVX2 kernel
    for antialiased bilinear uint8 (tested). Slower: a 500x375 photo to 112 px in 3.3 ms on one thread, against
    0.11 ms by that kernel and 1.1 ms by torch's path for CPUs without AVX2."""
    flat = images.reshape(math.prod(images.shape[:-3]), *images.shape[-3:])
    out = torch.empty((*flat.shape[:-2], size, size), dtype=torch.uint8)
    for start in range(0, len(flat), PORTABLE_BATCH):
        chunk = flat[start:start + PORTABLE_BATCH]
        # as torch: rows first, then columns; a side that keeps its size is not resampled
        if chunk.shape[-1] != size:
            chunk = _resample(chunk, -1, size)
        if chunk.shape[-2] != size:
            chunk = _resample(chunk, -2, size)
        out[start:start + PORTABLE_BATCH] = chunk
    return out.view(*images.shape[:-2], size, size)


def _resample(images: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """One pass of the kernel along `dim` (-1 or -2): int32 sums of int16 weights times pixels, rounded half up
    at the weights' precision and clamped to uint8, which the next pass reads."""
    taps, weights, precision = _int16_weights(images.shape[dim], size)
    shape = list(images.shape)
    shape[dim] = size
    total = torch.full(shape, 1 << (precision - 1), dtype=torch.int32)
    for tap in range(taps.shape[1]):
        weight = weights[:, tap] if dim == -1 else weights[:, tap, None]
        total += images.index_select(dim, taps[:, tap]).to(torch.int32) * weight
    return (total >> precision).clamp_(0, 255).to(torch.uint8)


@functools.lru_cache(maxsize=32)
def _int16_weights(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Torch's weights for antialiased bilinear, align_corners=False (aten's UpSampleKernel.cpp, in the same
    float64 operations in the same order): for output i, the input index of each tap [out, taps], its int16
    weight (0 past the taps it has, whose index is clamped into range) and the weights' precision in bits."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0  # the triangle's half-width, widened to the step when shrinking
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    starts, rows = [], []
    for i in range(out_size):
        center = scale * (i + 0.5)
        xmin = max(int(center - support + 0.5), 0)
        xsize = min(int(center + support + 0.5), in_size) - xmin
        row = [max(1.0 - abs((j + xmin - center + 0.5) * invscale), 0.0) for j in range(xsize)]
        total = 0.0
        for w in row:  # in order, as torch: sum() compensates its rounding from Python 3.12
            total += w
        starts.append(xmin)
        rows.append([w / total for w in row] if total != 0.0 else row)
    # the most bits (up to 22) that keep the largest weight within int16, as torch finds them
    w_max = max((w for row in rows for w in row), default=0.0)
    precision = 0
    while precision < 22 and int(0.5 + w_max * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    width = max(map(len, rows))
    taps = [[min(xmin + j, in_size - 1) for j in range(width)] for xmin in starts]
    weights = [[int(0.5 + w * (1 << precision)) for w in row] + [0] * (width - len(row)) for row in rows]
    return torch.tensor(taps), torch.tensor(weights, dtype=torch.int32), precision


def normalize_images(
    images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 [B, 3, H, W], scaled to [0, 1] then normalised per channel (ImageNet's
    statistics unless the encoder brings its own: a captioner's `net.image_input`). Float input is refused
    (SupraUserError): its range is not known, and divided by 255 again a [0, 1] picture would read as black.
    So is another shape (one picture [3, H, W], channels last), in one line naming it."""
    if images.dtype != torch.uint8:
        raise SupraUserError(f"images are {str(images.dtype).removeprefix('torch.')}: give uint8 pixels in 0..255 "
                             "(for floats in [0, 1], (images * 255).round().to(torch.uint8))")
    if images.ndim != 4 or images.shape[1] != 3:  # else torch broadcasts [3, H, W] or fails on channels last
        raise SupraUserError(f"images are of shape {list(images.shape)}: give a batch [B, 3, H, W], channels first "
                             "(one picture: pixels[None]; channels last: images.permute(0, 3, 1, 2))")
    mean_ = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    std_ = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean_) / std_


# -- value ranges and shapes ----------------------------------------------------------------------


def as_images(pixels: torch.Tensor) -> torch.Tensor:
    """[B, 3, S, S] or clips [B, T, 3, S, S] -> images [B*T, 3, S, S] (a clip's frames are images to the VQ-VAE)."""
    return pixels.flatten(0, 1) if pixels.ndim == 5 else pixels


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1], the VQ-VAE's input range."""
    return pixels.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 in [0, 255] (for pictures and GIFs)."""
    return ((images.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


# -- decoding ----------------------------------------------------------------------------------


def require_image_file(path: str | Path, key: str = "image") -> Path:
    """`path` when it is a file, else one line naming `key=` and what is there instead (a folder, a named pipe
    or other special file, which is never opened: reading a pipe waits forever; a looping link; nothing)."""
    path = Path(path)
    if path.is_dir():
        raise SupraUserError(f"{key}={path} is a folder: give one image file in it")
    if not_regular(path):
        raise SupraUserError(f"{key}={path} is not a regular file (a named pipe, socket or device): give an image file")
    if link_loops(path):
        raise SupraUserError(f"{key}={path} is a link that loops to itself (or through others back to it): "
                             "give an image file")
    if not path.is_file():
        raise SupraUserError(f"{key}={path} does not exist: give an image file")
    return path


def load_rgb(path: str | Path | BinaryIO, max_pixels: int | None = None, draft: int | None = None) -> Image.Image:
    """Any image file -> RGB PIL image: EXIF orientation applied, any mode (L, CMYK, P, RGBA, ICC, 16-bit grey)
    converted, transparency (an alpha channel, or the colour a PNG's tRNS names in any mode) over white; a GIF's
    first frame as browsers show it (gif_frames.py), as training and video2video read it.
    `max_pixels`: the caller's option of that name, which a larger picture's refusal names; left out, MAX_PIXELS,
    and the refusal says to resize the picture (caption, shards and caches have no such option).
    `draft`: a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) still at least this on each side.
    Float pictures (mode F), and 32-bit ones beyond 16-bit values, are refused (ValueError): their range is not
    known (0-1, 0-255, HDR), and converted they would be clipped to black or white without a word."""
    if max_pixels is None:
        max_pixels, limit_said = MAX_PIXELS, f"the {MAX_PIXELS:,} pixels read: resize the picture"
    else:
        limit_said = f"max_pixels={max_pixels}"
    # Decompression bombs raise instead of eating memory. Pillow's limit is a process global that it checks
    # elsewhere too (text drawn on a grid): set for this open only, or a small max_pixels (generate's) would
    # refuse the process's later pictures.
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    with warnings.catch_warnings():  # Pillow only warns up to twice its limit: refused here from the header
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as err:  # over twice the limit, Pillow names that: say ours
            found = re.search(r"\((\d+) pixels\)", str(err))
            pixels = f"{int(found.group(1)):,}" if found else f"over {2 * max_pixels:,}"  # as the limit beside it
            raise Image.DecompressionBombError(f"{pixels} pixels, over {limit_said}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    with image:
        if image.width * image.height > max_pixels:
            raise Image.DecompressionBombError(f"{image.width}x{image.height} = {image.width * image.height:,} "
                                               f"pixels, over {limit_said}")
        if image.mode == "F":  # known from the header: refused before decoding (as_rgb would, after)
            raise PixelRangeError("float pixels (mode F), of no known range: convert the picture to 8 or 16-bit")
        if image.format == "GIF":
            return _gif_first_frame(path, max_pixels, limit_said)
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", (draft, draft))
        return as_rgb(ImageOps.exif_transpose(image))


def as_rgb(image: Image.Image) -> Image.Image:
    """An upright PIL image of any mode -> a new RGB image, as load_rgb converts a file's: 16-bit grey scaled to
    8 bits, transparency (an alpha channel, or a tRNS colour key) over white, float pixels (mode F) refused."""
    if image.mode == "F":
        raise PixelRangeError("float pixels (mode F), of no known range: convert the picture to 8 or 16-bit")
    if image.mode in SIXTEEN_BIT_GREY:  # convert() would clip it at 255, not scale
        image = _grey_8bit(image)
    # an alpha channel, or a colour key (tRNS: the value or colour given is transparent) in any mode
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.split()[-1])
        return background
    return image.convert("RGB")


def _grey_8bit(image: Image.Image) -> Image.Image:
    """16-bit grey -> L (the top 8 bits), its colour key (the 16-bit value given as transparent) kept as alpha: LA.
    32-bit grey (mode I) beyond 0-65535 is refused: its range is not known, and 8 bits of it would be clipped."""
    values = np.asarray(image, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise PixelRangeError(f"32-bit pixels from {values.min()} to {values.max()}, of no known range: "
                         "convert the picture to 8 or 16-bit")
    grey = Image.fromarray((values >> 8).clip(0, 255).astype(np.uint8))
    key = image.info.get("transparency")
    if isinstance(key, int):
        grey.putalpha(Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8)))
    return grey


def _gif_first_frame(source: str | Path | BinaryIO, max_pixels: int, limit_said: str) -> Image.Image:
    """A GIF's first frame as gif_frames.py composites it (browsers' way: the screen around a smaller first frame
    is transparent, here white), not Pillow's (palette index 0 there, often black or a colour of the picture)."""
    if not isinstance(source, (str, Path)):
        source.seek(0)
        source = source.read()
    try:
        return Image.fromarray(next(open_gif(source, max_pixels, max_frames=1).frames()))
    except MediaDecodeError as err:
        if err.kind == TOO_LARGE:  # as a still over max_pixels is said
            reason = str(err).replace(f"max_pixels={max_pixels}", limit_said)
            raise Image.DecompressionBombError(reason) from None
        raise


def jpeg_draft_pixels(data: bytes, draft: int, max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """A JPEG's RGB pixels, uint8 [H, W, 3], decoded by libjpeg-turbo through simplejpeg at the DCT scale
    `load_rgb(..., draft=draft)` picks, to the same pixels (tested), in ~30% less time per photo: PIL
    decodes in chunks and copies the picture twice more (benchmarks/shard_pipeline.py). None where this
    path does not apply and load_rgb decides: not a JPEG, an EXIF rotation to apply, CMYK or YCCK (PIL
    inverts Adobe's CMYK), a decompression bomb, or any fault, which load_rgb then names."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in ("YCbCr", "Gray") or height * width > max_pixels or _rotated(data):
            return None
        # PIL's draft rule: the largest of 1/8, 1/4, 1/2 whose divisor fits min(W // draft, H // draft)
        fits = min(width // draft, height // draft)
        scale = next((a for a in (8, 4, 2) if fits >= a), 1)
        return simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=-(-height // scale),
                                      min_width=-(-width // scale))
    except UNREADABLE:  # simplejpeg raises ValueError
        return None


def _rotated(data: bytes) -> bool:
    """Whether the JPEG's EXIF asks for a rotation or flip, or anything in its header is odd (then PIL
    decides). EXIF is an APP1 segment before the start of scan, where PIL looks for it: the header's
    segments are stepped through (a dozen steps) rather than the file searched (~40 us a photo), and the
    orientation is read by PIL only when there is EXIF."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return True
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
        elif marker == 0xDA:  # start of scan: the header holds no EXIF
            return False
        elif marker == 0xE1 and data[at + 4: at + 10] == b"Exif\x00\x00":
            with Image.open(io.BytesIO(data)) as image:
                return image.getexif().get(ExifTags.Base.Orientation, 1) != 1
        else:
            at += 2 + int.from_bytes(data[at + 2: at + 4], "big")
    return True


def squashed(pixels: np.ndarray, size: int) -> torch.Tensor:
    """uint8 RGB [H, W, 3] (as decoders give) -> contiguous uint8 [3, size, size], squashed to a square like
    the release (no crop). The resize reads the channels-last pixels in place: the same pixels as from a
    [3, H, W] copy (tests/test_shards.py), in half the time (a crop's view is made contiguous first)."""
    resized = resize_uint8(torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1), size)
    return torch.from_numpy(np.ascontiguousarray(resized.numpy()))  # numpy's copy: 2x torch's contiguous()


def image_to_uint8(image: Image.Image | np.ndarray | str | Path, size: int) -> torch.Tensor:
    """A PIL image of any mode (read as load_rgb reads a file: EXIF orientation applied, RGBA over white, L to
    RGB), an image file's path (read by load_rgb), or uint8 pixels [H, W, 3] (or [H, W] grey, [H, W, 4] RGBA;
    uint16 ones, as 16-bit PNGs load, read by their top 8 bits as PIL's 16-bit grey is) -> uint8 [3, size, size],
    squashed to a square like the release (no crop). Arrays of another dtype are refused (SupraUserError): a float
    picture's range is not known (0-1 or 0-255), and cast to uint8 a [0, 1] one would be black; an integer one is
    told whether its values fit 0..255. A `size` that is no whole number >= 1 is refused in one line (torch's
    resize failed on 0 and on 32.0, as `cfg.x / 2` gives)."""
    if not is_whole(size if not isinstance(size, np.integer) else int(size), 1):
        raise SupraUserError(f"size={size!r} must be a whole number >= 1{whole_hint(size)}: the side in pixels the "
                             "model takes, net.image_input.size")
    return squashed(np.array(upright_rgb(image), dtype=np.uint8), size)  # a writable copy, for torch


def upright_rgb(image: Image.Image | np.ndarray | str | Path) -> Image.Image:
    """image_to_uint8's input as an upright RGB PIL image; one already so is returned as it is (no copy)."""
    if isinstance(image, str | Path):
        return _image_of_file(image)
    if isinstance(image, np.ndarray):
        image = _image_of_array(image)
    elif not isinstance(image, Image.Image):
        raise SupraUserError(f"image is a {type(image).__name__}: give a PIL image, an image file's path or uint8 "
                             "pixels [H, W, 3] (a numpy array)")
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" and "transparency" not in image.info else as_rgb(image)


def _image_of_file(path: str | Path) -> Image.Image:
    """The picture at `path` as load_rgb reads it (up to MAX_PIXELS), or one line saying why not, as explain says it."""
    path = require_image_file(path)
    try:
        return load_rgb(path)
    except Image.DecompressionBombError as err:  # readable, but too large to decode safely
        raise SupraUserError(f"image={path}: {first_line(err)}") from None
    except UNREADABLE as err:  # PixelRangeError too: its reason says what to do
        raise unreadable_picture(path, err) from None


def _image_of_array(pixels: np.ndarray) -> Image.Image:
    """uint8 [H, W], [H, W, 3] or [H, W, 4] -> a PIL image (L, RGB or RGBA); anything else refused in one line.
    uint16 pixels are taken by their top 8 bits, as as_rgb takes PIL's 16-bit grey (I;16)."""
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.dtype != np.uint8:
        article = "an" if pixels.dtype.name[0] in "io" else "a"  # an int64, an object; a uint32, a float32
        raise SupraUserError(f"image is {article} {pixels.dtype.name} array: give uint8 pixels in 0..255"
                             f"{_uint8_hint(pixels)} or a PIL image")
    if pixels.ndim != 2 and not (pixels.ndim == 3 and pixels.shape[2] in (3, 4)):
        raise SupraUserError(f"image is an array of shape {list(pixels.shape)}: give pixels [H, W, 3] "
                             "(or [H, W] grey, [H, W, 4] RGBA), channels last")
    return Image.fromarray(pixels)


def _uint8_hint(pixels: np.ndarray) -> str:
    """How to make `pixels` (an array of another dtype than uint8) uint8, in brackets after a space; "" where
    nothing short says it (bool, complex, object)."""
    if np.issubdtype(pixels.dtype, np.floating):
        return " (for floats in [0, 1], (image * 255).round().astype(np.uint8))"
    if not np.issubdtype(pixels.dtype, np.integer):
        return ""
    low, high = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
    if low >= 0 and high <= 255:
        return " (its values are all in 0..255: image.astype(np.uint8))"
    # cast as it is, a value past 255 would wrap round to another brightness
    return f" (its values run from {low} to {high}: scale them into 0..255, then .astype(np.uint8))"


def to_square(picture: np.ndarray, resize: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """uint8 [H, W, 3] -> [side, side, 3]: the centre square (crop) or padded with black (pad).
    Done in numpy, channels last: squashed() makes a crop's view contiguous by numpy's copy, which torch's
    strided uint8 copy would do slower (see channels_first).
    A padded square over `max_pixels` (the caller's bound on a picture) is refused as a picture that large
    is (MediaDecodeError, TOO_LARGE): a long thin picture (1x60000) would pad to side^2 pixels (10 GiB). Refused,
    not padded some cheaper way, because only the full square resized gives its pixels exactly; every square
    within the bound pads as before."""
    h, w = picture.shape[:2]
    if resize == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return picture[top:top + side, left:left + side]
    side = max(h, w)
    if side * side > max_pixels:
        raise MediaDecodeError(f"{w}x{h} padded to a {side}x{side} square = {side * side} pixels, over "
                               f"max_pixels={max_pixels}: the padded square is too large (crop it, or pad a "
                               "smaller copy)", TOO_LARGE)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.full((side, side, picture.shape[2]), PAD_VALUE, dtype=picture.dtype)
    out[top:top + h, left:left + w] = picture
    return out


def fit(picture: np.ndarray, size: int, resize: str, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> uint8 [3, size, size], squared as `resize` says then resized; "squash": resized
    whole, as photo sources (COCO, Flickr, caption folders, shards) give their pictures to training.
    `max_pixels`: the caller's bound, which a padded square may not pass either (to_square)."""
    return squashed(picture if resize == "squash" else to_square(picture, resize, max_pixels), size)


# Why a picture file cannot be read, in the words caption, explain and the demo all say it (why_unreadable)
DAMAGED, NOT_A_PICTURE = "damaged or cut short", "not a picture file"  # and EMPTY_FILE, the GIF reader's too
# how the picture files people have start: one that starts so but that Pillow cannot identify was cut short
PICTURE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def why_unreadable(path: Path, err: BaseException) -> str:
    """Why `path` could not be read as a picture (`err`: what load_rgb or load_still raised, of UNREADABLE or a
    MediaDecodeError), in plain words: EMPTY_FILE, NOT_A_PICTURE (no format Pillow knows, nor a picture's start),
    else DAMAGED; the loaders' own texts name Pillow's internals. A picture too large or of no known pixel range
    is readable: its caller says what to do instead."""
    try:
        with open(path, "rb") as file:
            start = file.read(8)
    except OSError:  # gone meanwhile, or unreadable: nothing to tell it by
        return DAMAGED
    return why_bytes_unreadable(start, err)


def why_bytes_unreadable(start: bytes, err: BaseException) -> str:
    """why_unreadable of a picture held as bytes (a dataset's row) that start with `start` (8 bytes or fewer)."""
    cause = err.__context__ if isinstance(err, MediaDecodeError) and err.__context__ is not None else err
    if not start:
        return EMPTY_FILE
    if isinstance(cause, Image.UnidentifiedImageError) and not start.startswith(PICTURE_SIGNATURES):
        return NOT_A_PICTURE
    return DAMAGED


def unreadable_picture(path: Path, err: Exception) -> SupraUserError:
    """A picture given as image=path that cannot be read, said alike by every command that takes one (explain,
    generate), in the words caption and the demo use (why_unreadable), and what to give instead. A readable one of
    no known range keeps its reason (load_still keeps it as the context of its MediaDecodeError): it says what to do."""
    cause = err.__context__ if isinstance(err, MediaDecodeError) and isinstance(err.__context__, Exception) else err
    if isinstance(cause, PixelRangeError):
        return SupraUserError(f"image={path}: {cause}")
    return SupraUserError(f"image={path} cannot be read as a picture: {why_unreadable(path, err)}; "
                          "give a PNG, JPEG, ...")


def load_still(path: Path, max_pixels: int) -> np.ndarray:
    """A still as uint8 RGB [H, W, 3] (via load_rgb: EXIF, any mode, transparency over white, a size over
    max_pixels refused from the header before decoding). MediaDecodeError (with `kind`) for anything unusable."""
    try:
        picture = np.array(load_rgb(path, max_pixels), dtype=np.uint8)  # a writable copy, for torch
    except MediaDecodeError:  # a GIF's, already one line with its kind
        raise
    except Image.DecompressionBombError as err:
        raise MediaDecodeError(first_line(err), TOO_LARGE) from None
    except UNREADABLE as err:
        if why_unreadable(path, err) == EMPTY_FILE:  # said as every reader says it, not in Pillow's words
            raise MediaDecodeError(EMPTY_FILE, EMPTY_FILE) from None
        raise MediaDecodeError(first_line(err, 100, with_type=True)) from None
    if picture.size == 0:
        raise MediaDecodeError(f"{picture.shape[1]}x{picture.shape[0]}: no pixels", EMPTY)
    return picture


