"""GIF frames as a browser shows them: disposal, transparency, sub-rectangles, palettes, broken files, bombs.

Expected pixels are written out by hand (W = white, the matte that transparent pixels show)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from supra.data.gif_frames import (
    EMPTY,
    EMPTY_FILE,
    TOO_LARGE,
    UNREADABLE,
    MediaDecodeError,
    continued_timing,
    open_gif,
    read_gif_frames,
)
from tests.media_fixtures import (
    BLACK,
    BLUE,
    GREEN,
    PALETTE,
    RED,
    WHITE,
    YELLOW,
    Frame,
    gif_bytes,
    paint,
    rgb,
    save_pillow_gif,
    solid,
)

R, G, B, Y, W, K = RED, GREEN, BLUE, YELLOW, WHITE, BLACK
I_RED, I_GREEN, I_BLUE, I_YELLOW = (PALETTE.index(c) for c in (RED, GREEN, BLUE, YELLOW))


def frames_of(data: bytes, **kwargs) -> list[np.ndarray]:
    return read_gif_frames(data, **kwargs)


def test_single_frame_gif_is_one_rgb_frame_at_the_screen_size():
    indices = np.array([[1, 2, 3], [4, 5, 0]], dtype=np.uint8)
    (frame,) = frames_of(gif_bytes(3, 2, [Frame(indices)]))
    assert frame.dtype == np.uint8 and frame.shape == (2, 3, 3)
    np.testing.assert_array_equal(frame, rgb([R, G, B], [Y, W, K]))


@pytest.mark.parametrize("disposal", [0, 1])
def test_disposal_0_and_1_leave_the_frame_for_the_next_to_draw_over(disposal):
    gif = gif_bytes(2, 2, [Frame(solid(2, 2, I_RED), disposal=disposal), Frame(solid(1, 1, I_GREEN), left=1, top=1)])
    first, second = frames_of(gif)
    np.testing.assert_array_equal(first, rgb([R, R], [R, R]))
    np.testing.assert_array_equal(second, rgb([R, R], [R, G]))


def test_disposal_2_clears_the_frame_rectangle_to_transparent_not_to_the_background_colour():
    # The background index is yellow: browsers ignore it, the cleared rectangle shows the matte.
    gif = gif_bytes(2, 2, [
        Frame(solid(2, 2, I_RED)),
        Frame(solid(1, 1, I_GREEN), disposal=2),
        Frame(solid(1, 1, I_BLUE), left=1, top=1),
    ], background=I_YELLOW)
    frames = frames_of(gif)
    np.testing.assert_array_equal(frames[1], rgb([G, R], [R, R]))
    np.testing.assert_array_equal(frames[2], rgb([W, R], [R, B]))


def test_disposal_3_restores_what_was_under_the_frame():
    gif = gif_bytes(2, 2, [
        Frame(solid(2, 2, I_RED)),
        Frame(solid(1, 2, I_GREEN), disposal=3),
        Frame(solid(1, 1, I_BLUE), left=1, top=1, disposal=3),
        Frame(solid(1, 1, I_YELLOW), left=1, top=0),
    ])
    frames = frames_of(gif)
    np.testing.assert_array_equal(frames[1], rgb([G, R], [G, R]))
    np.testing.assert_array_equal(frames[2], rgb([R, R], [R, B]))  # green gone, red back
    np.testing.assert_array_equal(frames[3], rgb([R, Y], [R, R]))  # blue gone too


def test_disposal_4_is_read_as_restore_to_previous_and_3_on_the_first_frame_restores_transparency():
    gif = gif_bytes(2, 1, [Frame(solid(2, 1, I_RED), disposal=3), Frame(solid(1, 1, I_GREEN), disposal=4),
                           Frame(solid(1, 1, I_BLUE), left=1)])
    frames = frames_of(gif)
    np.testing.assert_array_equal(frames[1], rgb([G, W]))  # the first frame's area went back to transparent
    np.testing.assert_array_equal(frames[2], rgb([W, B]))  # disposal 4 acted as 3: green gone


def test_each_frame_uses_its_own_disposal_not_the_last_non_zero_one():
    # Pillow 13 would keep disposal 2 for the blue frame (which says 0) and clear it before the yellow one.
    gif = gif_bytes(2, 2, [
        Frame(solid(2, 2, I_RED)),
        Frame(solid(1, 1, I_GREEN), disposal=2),
        Frame(solid(1, 1, I_BLUE), left=1, top=1, disposal=0),
        Frame(solid(1, 1, I_YELLOW), left=1, top=0),
    ])
    np.testing.assert_array_equal(frames_of(gif)[3], rgb([W, Y], [R, B]))


def test_transparent_pixels_show_what_is_under_them_and_the_matte_on_an_empty_canvas():
    holes = np.array([[I_GREEN, 7], [7, I_GREEN]], dtype=np.uint8)  # index 7 is transparent
    gif = gif_bytes(2, 2, [Frame(holes, transparency=7), Frame(solid(2, 2, I_RED)), Frame(holes, transparency=7)])
    frames = frames_of(gif)
    np.testing.assert_array_equal(frames[0], rgb([G, W], [W, G]))
    np.testing.assert_array_equal(frames[2], rgb([G, R], [R, G]))
    grey = (10, 20, 30)
    np.testing.assert_array_equal(frames_of(gif, matte=grey)[0], rgb([G, grey], [grey, G]))


def test_a_first_frame_smaller_than_the_screen_leaves_the_rest_transparent():
    (frame,) = frames_of(gif_bytes(3, 2, [Frame(solid(1, 1, I_RED), left=1, top=1)]))
    np.testing.assert_array_equal(frame, rgb([W, W, W], [W, R, W]))


def test_a_still_taken_from_a_gif_is_its_first_frame_as_shown_not_pillows(tmp_path):
    # Pillow fills the screen around a smaller first frame with palette index 0 (black here): every still
    # loader (generate's and explain's image=, the demo, captioning a folder, a caption source's cache) reads
    # the frame training and video2video read instead
    import io

    from PIL import Image

    from supra.data.images import load_rgb, load_still

    data = gif_bytes(8, 8, [Frame(solid(2, 2, I_RED), left=3, top=3)])
    (tmp_path / "framed.gif").write_bytes(data)
    shown = frames_of(data)[0]
    assert tuple(shown[0, 0]) == W and tuple(shown[3, 3]) == R
    with Image.open(tmp_path / "framed.gif") as pillows:
        assert pillows.convert("RGB").getpixel((0, 0)) == K  # what it read before
    np.testing.assert_array_equal(load_still(tmp_path / "framed.gif", 1000), shown)
    np.testing.assert_array_equal(np.asarray(load_rgb(io.BytesIO(data))), shown)  # a shard's bytes alike
    with pytest.raises(MediaDecodeError, match="over max_pixels=63") as err:  # a GIF bomb: the kind a still's has
        load_still(tmp_path / "framed.gif", 63)
    assert err.value.kind == TOO_LARGE
    # Pillow's limit is a global it checks when drawing text too: a small max_pixels is for that file only
    assert Image.MAX_IMAGE_PIXELS != 63


def test_frames_that_change_size_and_position_are_placed_and_clipped_to_the_screen():
    gif = gif_bytes(4, 3, [
        Frame(solid(4, 3, I_RED)),
        Frame(solid(2, 1, I_GREEN), left=1, top=1),
        Frame(solid(3, 3, I_BLUE), left=3, top=2),  # reaches past the screen: only its corner shows
    ])
    frames = frames_of(gif)
    assert [f.shape for f in frames] == [(3, 4, 3)] * 3
    np.testing.assert_array_equal(frames[1], rgb([R, R, R, R], [R, G, G, R], [R, R, R, R]))
    np.testing.assert_array_equal(frames[2], rgb([R, R, R, R], [R, G, G, R], [R, R, R, B]))


def test_a_first_frame_larger_than_the_screen_grows_the_screen_as_browsers_do():
    frames = frames_of(gif_bytes(1, 1, [Frame(solid(2, 2, I_RED)), Frame(solid(1, 1, I_GREEN), left=1)]))
    np.testing.assert_array_equal(frames[1], rgb([R, G], [R, R]))


def test_local_palettes_without_a_global_one_and_palette_changes_between_frames():
    gif = gif_bytes(2, 1, [
        Frame(np.array([[0, 1]], dtype=np.uint8), palette=[RED, GREEN]),
        Frame(np.array([[0, 1]], dtype=np.uint8), palette=[BLUE, YELLOW, BLACK, WHITE], transparency=1),
    ], global_palette=None)
    frames = frames_of(gif)
    np.testing.assert_array_equal(frames[0], rgb([R, G]))
    np.testing.assert_array_equal(frames[1], rgb([B, G]))  # index 1 transparent in the second frame only


def test_a_gif_with_no_colour_table_at_all_reads_indices_as_greys():
    (frame,) = frames_of(gif_bytes(2, 1, [Frame(np.array([[0, 200]], dtype=np.uint8))], global_palette=None))
    np.testing.assert_array_equal(frame, rgb([(0, 0, 0), (200, 200, 200)]))


def test_interlaced_frames_come_out_in_row_order():
    indices = (np.arange(10 * 3, dtype=np.uint8).reshape(10, 3) // 3) % 8
    (frame,) = frames_of(gif_bytes(3, 10, [Frame(indices, interlace=True)]))
    np.testing.assert_array_equal(frame, paint(indices))


def test_a_pillow_written_animation_reads_back_exactly(tmp_path):
    # Pillow's writer crops unchanged areas into sub-rectangles and picks disposals itself.
    written = save_pillow_gif(tmp_path / "anim.gif", [RED, GREEN, BLUE, YELLOW, RED])
    read = read_gif_frames(tmp_path / "anim.gif")
    assert len(read) == 5
    for expected, got in zip(written, read, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_hundreds_of_frames_and_the_max_frames_cap(tmp_path):
    colours = [(i, 255 - i, (7 * i) % 256) for i in range(230)]
    written = save_pillow_gif(tmp_path / "long.gif", colours)
    read = read_gif_frames(tmp_path / "long.gif")
    assert len(read) == 230
    np.testing.assert_array_equal(read[229], written[229])
    capped = open_gif(tmp_path / "long.gif", max_frames=100)
    assert len(capped) == 100 and capped.capped and len(list(capped.frames())) == 100
    assert not open_gif(tmp_path / "long.gif").capped


def test_a_missing_trailer_keeps_every_frame_and_says_so():
    gif = open_gif(gif_bytes(2, 1, [Frame(solid(2, 1, I_RED)), Frame(solid(1, 1, I_GREEN))], trailer=False))
    assert len(list(gif.frames())) == 2 and "no trailer" in gif.problem


def test_a_file_cut_inside_a_frame_keeps_the_frames_before_it():
    whole = gif_bytes(2, 1, [Frame(solid(2, 1, I_RED)), Frame(solid(1, 1, I_GREEN)), Frame(solid(2, 1, I_BLUE))])
    gif = open_gif(whole[:-6])
    frames = list(gif.frames())
    assert len(frames) == 2 and "cut" in gif.problem
    np.testing.assert_array_equal(frames[1], rgb([G, R]))


def test_a_file_cut_inside_its_first_frame_is_an_error():
    whole = gif_bytes(2, 1, [Frame(solid(2, 1, I_RED))])
    with pytest.raises(MediaDecodeError, match="no complete frame") as err:
        read_gif_frames(whole[:-4])
    assert err.value.kind == UNREADABLE


def test_broken_pixel_data_after_the_first_frame_ends_the_animation_there():
    first, second = Frame(solid(2, 1, I_RED)), Frame(solid(2, 1, I_GREEN))
    good = gif_bytes(2, 1, [first, second])
    # A stream that starts with a code the decoder has no entry for: Pillow calls it broken.
    broken = good[: good.rindex(b",")] + b",\x00\x00\x00\x00\x02\x00\x01\x00\x00\x08\x02\xff\xff\x00;"
    gif = open_gif(broken)
    assert len(list(gif.frames())) == 1 and "frame 1" in gif.problem


def test_stray_bytes_between_blocks_end_the_file_like_a_trailer():
    data = gif_bytes(2, 1, [Frame(solid(2, 1, I_RED))], trailer=False) + b"\x00\x00garbage"
    gif = open_gif(data)
    assert len(list(gif.frames())) == 1 and "unknown block" in gif.problem


def test_a_decompression_bomb_is_refused_from_its_header_before_any_decoding():
    bomb = gif_bytes(30000, 30000, [Frame(solid(1, 1, I_RED))])
    assert len(bomb) < 100
    with pytest.raises(MediaDecodeError, match="30000x30000") as err:
        open_gif(bomb, max_pixels=100_000_000)
    assert err.value.kind == TOO_LARGE


def test_a_frame_claiming_a_huge_size_is_refused_even_on_a_small_screen():
    frames = [Frame(solid(2, 2, I_RED)), Frame(solid(1, 1, I_GREEN), claimed_size=(30000, 30000))]
    with pytest.raises(MediaDecodeError, match="frame 1 is 30000x30000") as err:
        open_gif(gif_bytes(2, 2, frames))
    assert err.value.kind == TOO_LARGE


def test_max_pixels_is_the_limit_for_screen_and_frames():
    data = gif_bytes(4, 4, [Frame(solid(4, 4, I_RED))])
    assert len(read_gif_frames(data, max_pixels=16)) == 1
    with pytest.raises(MediaDecodeError, match="over max_pixels=15"):
        read_gif_frames(data, max_pixels=15)


def test_a_gif_with_no_frames_is_a_clear_error():
    with pytest.raises(MediaDecodeError, match="0 frames") as err:
        read_gif_frames(gif_bytes(4, 4, []))
    assert err.value.kind == EMPTY


def test_a_zero_size_screen_is_empty():
    with pytest.raises(MediaDecodeError, match="0x0") as err:
        read_gif_frames(gif_bytes(0, 0, [Frame(np.zeros((0, 0), dtype=np.uint8))]))
    assert err.value.kind == EMPTY


def test_a_picture_or_video_given_as_a_gif_is_named_by_its_format_not_by_its_bytes(tmp_path):
    """A PNG given as a clip was "not a GIF (starts with b'\\x89PNG\\r\\n')", a Python literal to a page's user."""
    Image.new("RGB", (4, 4)).save(tmp_path / "red.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "red.webp")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(16))
    for name, said in (("red.png", "it is a PNG picture, not a GIF"), ("red.webp", "it is a WebP picture, not a GIF"),
                       ("clip.mp4", "it is an MP4, MOV or HEIC file, not a GIF")):
        for source in (tmp_path / name, (tmp_path / name).read_bytes()):  # a file, or bytes in memory
            with pytest.raises(MediaDecodeError) as err:
                read_gif_frames(source)
            assert str(err.value) == said and err.value.kind == UNREADABLE, name


def test_a_file_that_is_not_a_gif_is_refused_with_what_it_starts_with(tmp_path):
    (tmp_path / "notes.gif").write_text("these are my notes, not a picture")
    with pytest.raises(MediaDecodeError, match="not a GIF .*these") as err:
        read_gif_frames(tmp_path / "notes.gif")
    assert err.value.kind == UNREADABLE


def test_a_continued_clip_plays_missing_and_0_delays_as_browsers_do_never_0_ms(tmp_path):
    """Pillow writes a GIF without durations as no delay on its first frame and 0 on the rest: the first became
    250 ms and the rest stayed 0, so the continuation stuttered where browsers play the GIF evenly (100 ms each:
    Chromium and Firefox show a delay of at most 10 ms, or none, for 100 ms)."""
    frames = [Image.new("RGB", (4, 4), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "no_times.gif", save_all=True, append_images=frames[1:], loop=0)
    delays = open_gif(tmp_path / "no_times.gif").durations_ms()
    assert delays[0] is None and set(delays[1:]) == {0}
    assert continued_timing(delays, 5) == [100] * 5
    assert continued_timing([10, 20, 40], 4) == [100, 20, 40, 40]  # 10 ms as 100: over 10 ms as written


def test_a_file_of_0_bytes_is_said_to_be_empty_as_every_reader_of_pictures_says_it(tmp_path):
    """It was "not a GIF (starts with b'')"."""
    (tmp_path / "zero.gif").write_bytes(b"")
    for source in (tmp_path / "zero.gif", b""):
        with pytest.raises(MediaDecodeError, match=r"^empty file \(0 bytes\)$") as err:
            open_gif(source)
        assert err.value.kind == EMPTY_FILE


def test_the_frames_after_the_given_ones_play_for_the_lower_median_of_their_times_as_the_docs_say():
    """Given frames of 100 and 200 ms, the generated ones play for 100 ms, the lower of the two middle times (a
    time one of the given frames has), where the docs said "the median" (150 ms)."""
    assert continued_timing([100, 200], 4) == [100, 200, 100, 100]
    assert continued_timing([100, 200, 400], 4) == [100, 200, 400, 200]  # an odd count: the middle one
    docs = (Path(__file__).resolve().parents[1] / "docs" / "a2a_nano.md").read_text()
    assert "each generated one for the lower median of those (of an even count, the lower of the two middle " \
           "ones)" in docs
    assert "the lower median" in continued_timing.__doc__
