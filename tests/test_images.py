"""image_to_uint8, the picture a notebook user hands the captioner: a PIL image of any mode is read as load_rgb
reads its file, uint8 pixels as they are, and a float array (of no known range) is refused, not made black.
normalize_images, the next step, takes only those uint8 pixels."""

import numpy as np
import pytest
import torch
from PIL import Image

from supra.data.images import image_to_uint8, load_rgb, normalize_images
from supra.utils.errors import SupraUserError


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_array_is_refused_in_one_line_naming_its_dtype_not_captioned_as_black(dtype):
    grey = np.full((15, 20, 3), 0.5, dtype)  # as matplotlib and skimage give pictures: floats in [0, 1]
    with pytest.raises(SupraUserError, match=rf"^image is a {np.dtype(dtype).name} array: give uint8 pixels in "
                                             r"0\.\.255 .*astype\(np\.uint8\)") as refused:
        image_to_uint8(grey, 16)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("pixels, message", [
    (np.full((15, 20, 3), 200, np.int64), "image is an int64 array: give uint8 pixels in 0..255 (its values are all in "
                                          "0..255: image.astype(np.uint8)) or a PIL image"),
    (np.arange(15 * 20 * 3, dtype=np.int32).reshape(15, 20, 3) * 4, "image is an int32 array: give uint8 pixels in "
     "0..255 (its values run from 0 to 3596: scale them into 0..255, then .astype(np.uint8)) or a PIL image"),
    (np.zeros((15, 20, 3), np.uint32), "image is a uint32 array: give uint8 pixels in 0..255 (its values are all in "
                                       "0..255: image.astype(np.uint8)) or a PIL image"),
])
def test_an_integer_array_is_refused_with_how_to_make_its_values_uint8_not_the_float_hint(pixels, message):
    with pytest.raises(SupraUserError) as refused:
        image_to_uint8(pixels, 16)
    assert str(refused.value) == message


@pytest.mark.parametrize("given", [torch.zeros(3, 8, 8, dtype=torch.uint8), np.zeros((8, 8, 2), np.uint8)])
def test_what_is_neither_a_pil_image_nor_pixels_channels_last_is_refused_in_one_line(given):
    with pytest.raises(SupraUserError, match=r"^image is (a Tensor: give a PIL image|an array of shape \[8, 8, 2\])"):
        image_to_uint8(given, 16)


@pytest.mark.parametrize("mode, colour", [("RGBA", (255, 0, 0, 128)), ("LA", (90, 200)), ("L", 128),
                                          ("P", 3), ("I;16", 40000)])
def test_a_pil_image_of_any_mode_gives_the_pixels_of_its_file_read_by_load_rgb(tmp_path, mode, colour):
    picture = Image.new(mode, (20, 15), colour)
    picture.save(tmp_path / "picture.png")
    pixels = image_to_uint8(picture, 16)
    assert pixels.shape == (3, 16, 16) and pixels.dtype == torch.uint8
    assert torch.equal(pixels, image_to_uint8(load_rgb(tmp_path / "picture.png"), 16))


def test_uint8_pixels_grey_or_with_alpha_read_as_the_pil_image_they_make():
    rgba = np.random.default_rng(0).integers(0, 256, (15, 20, 4), dtype=np.uint8)
    for pixels in (rgba, rgba[..., 0], np.ascontiguousarray(rgba[..., :3])):
        assert torch.equal(image_to_uint8(pixels, 16), image_to_uint8(Image.fromarray(pixels), 16))


def test_a_pil_image_the_camera_turned_is_read_upright_as_its_file_is(tmp_path):
    picture = Image.new("RGB", (20, 10), (255, 0, 0))
    picture.paste((0, 0, 255), (0, 0, 10, 10))  # blue on the left
    exif = picture.getexif()
    exif[0x0112] = 6  # EXIF Orientation: rotate 90 degrees clockwise to show
    picture.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "turned.jpg") as opened:
        pixels = image_to_uint8(opened, 16)
    assert torch.equal(pixels, image_to_uint8(load_rgb(tmp_path / "turned.jpg"), 16))
    assert pixels[2, 0, 8] > 200 and pixels[0, -1, 8] > 200  # upright: blue on top, red below


def test_normalize_images_refuses_float_pixels_in_one_line_rather_than_read_them_as_black():
    as_to_tensor_gives = torch.rand(1, 3, 8, 8)  # torchvision's ToTensor: floats in [0, 1]
    with pytest.raises(SupraUserError) as refused:
        normalize_images(as_to_tensor_gives)
    assert str(refused.value) == ("images are float32: give uint8 pixels in 0..255 (for floats in [0, 1], "
                                  "(images * 255).round().to(torch.uint8))")


@pytest.mark.parametrize("shape", [(1, 8, 8, 3), (3, 8, 8)])  # channels last, as numpy and PIL give; one picture
def test_normalize_images_refuses_what_is_not_a_batch_channels_first_in_one_line_naming_its_shape(shape):
    with pytest.raises(SupraUserError) as refused:
        normalize_images(torch.zeros(shape, dtype=torch.uint8))
    assert str(refused.value) == (f"images are of shape {list(shape)}: give a batch [B, 3, H, W], channels first "
                                  "(one picture: pixels[None]; channels last: images.permute(0, 3, 1, 2))")


@pytest.mark.parametrize("size, said", [(0, "size=0 must be a whole number >= 1"),
                                        (32.0, "size=32.0 must be a whole number >= 1 (write 32, not 32.0)"),
                                        ("32", "size='32' must be a whole number >= 1")])
def test_a_size_that_is_no_whole_number_of_pixels_is_refused_in_one_line_naming_it(size, said):
    with pytest.raises(SupraUserError) as refused:
        image_to_uint8(np.zeros((10, 10, 3), np.uint8), size)  # 32.0: as `cfg.x / 2` gives
    assert str(refused.value) == f"{said}: the side in pixels the model takes, net.image_input.size"


def test_a_numpy_integer_size_is_taken_as_the_int_it_holds():
    pixels = np.zeros((10, 10, 3), np.uint8)
    assert torch.equal(image_to_uint8(pixels, np.int64(16)), image_to_uint8(pixels, 16))


def test_uint16_pixels_read_by_their_top_8_bits_as_a_16_bit_grey_pil_image_is():
    grey = np.random.default_rng(0).integers(0, 65536, (15, 20), dtype=np.uint16)  # as a 16-bit PNG loads
    from_pil = image_to_uint8(Image.fromarray(grey), 16)  # mode I;16
    assert torch.equal(image_to_uint8(grey, 16), from_pil)
    assert torch.equal(image_to_uint8(np.stack([grey] * 3, axis=2), 16), from_pil)


def test_an_image_files_path_is_read_as_load_rgb_reads_it_and_a_missing_one_refused_in_one_line(tmp_path):
    Image.new("RGBA", (20, 15), (255, 0, 0, 128)).save(tmp_path / "picture.png")
    expected = image_to_uint8(load_rgb(tmp_path / "picture.png"), 16)
    assert torch.equal(image_to_uint8(tmp_path / "picture.png", 16), expected)
    assert torch.equal(image_to_uint8(str(tmp_path / "picture.png"), 16), expected)
    with pytest.raises(SupraUserError) as refused:
        image_to_uint8(tmp_path / "photo.png", 16)
    assert str(refused.value) == f"image={tmp_path / 'photo.png'} does not exist: give an image file"
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(SupraUserError) as refused:
        image_to_uint8(tmp_path / "notes.png", 16)
    assert str(refused.value) == (f"image={tmp_path / 'notes.png'} cannot be read as a picture: not a picture file; "
                                  "give a PNG, JPEG, ...")
