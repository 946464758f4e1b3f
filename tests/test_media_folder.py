"""data=media_folder: a real-looking folder of stills, GIFs, captions and junk read in each mode, split by
file, squared by crop or pad; and the one-line errors for folders that cannot work."""

from __future__ import annotations

import gc
import json
import os
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from supra.data.folder_index import lent_files, scan_folder, split_by_file
from supra.data.media.folder import MediaFolderDataModule
from supra.utils.errors import SupraUserError
from tests.media_fixtures import (
    BLUE,
    GREEN,
    RED,
    Frame,
    gif_bytes,
    save_image,
    save_pillow_gif,
    solid,
    write_media_folder,
)

SPLIT = {"val_fraction": 0.25, "test_fraction": 0.25}  # 8 usable files -> 4 / 1 / 3 by their names' draws (seed 0)


def datamodule(root: Path, **kwargs) -> MediaFolderDataModule:
    options = {"image_size": 16, "show_progress": False, "batch_size": 2, **SPLIT, **kwargs}
    dm = MediaFolderDataModule(root=str(root), **options)
    dm.setup("fit")
    return dm


def every_item(dm: MediaFolderDataModule) -> dict[str, tuple[torch.Tensor, list[str]]]:
    """name -> (pixels, captions) over all three splits."""
    out = {}
    for split in ("train", "val", "test"):
        items = dm.items(split)
        out.update({n: (p, c) for n, p, c in zip(items.names, items.pixels, items.captions, strict=True)})
    return out


def colour_of(pixels: torch.Tensor) -> tuple[int, ...]:
    """The one colour of a solid uint8 [3, S, S] image."""
    flat = pixels.reshape(3, -1)
    assert (flat == flat[:, :1]).all(), "not a solid colour"
    return tuple(flat[:, 0].tolist())


@pytest.fixture
def folder(tmp_path) -> tuple[Path, dict]:
    return tmp_path / "media", write_media_folder(tmp_path / "media")


def test_images_mode_reads_every_still_and_the_first_frame_of_each_gif(folder):
    root, expected = folder
    dm = datamodule(root)
    items = every_item(dm)
    assert sorted(items) == sorted(expected["stills"] + list(expected["gifs"]))
    assert all(p.shape == (3, 16, 16) and p.dtype == torch.uint8 for p, _ in items.values())
    assert colour_of(items["anim/blink.gif"][0]) == RED  # the first frame, before the green square
    assert colour_of(items["single.gif"][0]) == BLUE


def test_captions_come_from_sidecar_txt_captions_jsonl_and_captions_csv(folder):
    root, _ = folder
    items = every_item(datamodule(root))
    assert items["stills/a.png"][1] == ["a red and blue picture", "blue on the left"]  # blank line dropped
    assert items["anim/wave.gif"][1] == ["a square moving over colours", "colours change"]  # "./" prefix read
    assert items["stills/b.jpg"][1] == ["green, with blue"]  # a quoted comma
    assert items["anim/blink.gif"][1] == ["a blink"]
    assert items["e.BMP"][1] == []


def test_one_summary_line_counts_files_items_and_names_what_was_skipped(folder):
    root, expected = folder
    dm = datamodule(root)
    summary = dm.summary
    assert "\n" not in summary and str(root) in summary
    assert "13 media files found (6 stills, 7 GIFs)" in summary
    assert "train 4 images from 4 files; val 1 image from 1 file; test 3 images from 3 files" in summary
    assert f"1 unreadable (e.g. {', '.join(expected['unreadable'])})" in summary
    assert "1 empty files (0 bytes) (e.g. stills/empty.png)" in summary
    assert "1 over max_pixels (e.g. bomb.gif)" in summary
    assert "2 empty (0 pixels or 0 frames) (e.g. no_frames.gif, zero_size.gif)" in summary
    assert "2 not media (e.g. README.md, notes.txt)" in summary  # hidden .DS_Store passed over silently
    assert '1 unreadable caption line (each a JSON object with "file" and "caption") (e.g. captions.jsonl:3)' in summary
    assert "1 caption for no media file (e.g. captions.jsonl:4)" in summary


def test_the_split_is_by_file_deterministic_and_seeded(folder):
    root, expected = folder
    dm = datamodule(root, mode="frames")
    files = dm.split_files
    assert {s: len(f) for s, f in files.items()} == {"train": 4, "val": 1, "test": 3}
    assert sorted(sum(files.values(), [])) == sorted(expected["stills"] + list(expected["gifs"]))
    for split in ("train", "val", "test"):  # a GIF's frames all land in its file's split
        assert {n.split("#")[0] for n in dm.items(split).names} == set(files[split])
    assert datamodule(root, mode="frames").split_files == files
    assert any(datamodule(root, seed=seed).split_files != files for seed in (1, 2, 3))


def test_split_by_file_never_moves_a_file_as_files_are_added_and_holds_out_at_least_one_each(tmp_path):
    files = [f"img{i:03d}.png" for i in range(200)]
    splits = split_by_file(files, 0.1, 0.05, seed=0)
    assert 10 <= len(splits["val"]) <= 30 and 3 <= len(splits["test"]) <= 18  # the fractions, on average
    grown = split_by_file(files + [f"new{i}.png" for i in range(300)], 0.1, 0.05, seed=0)
    assert all(set(splits[split]) <= set(grown[split]) for split in splits)  # every old file where it was
    few = split_by_file(files[:10], 0.1, 0.05, seed=0)
    assert [len(few[s]) for s in ("val", "test")] == [1, 1] and len(few["train"]) == 8
    assert lent_files(splits, 0.1, 0.05, seed=0) == lent_files(few, 0.1, 0.05, seed=0) == {}  # by their names
    # the exception: a split no name falls in is lent the train file of lowest draw, until one falls there
    tiny = split_by_file(files[2:6], 0.1, 0.05, seed=0)
    assert lent_files(tiny, 0.1, 0.05, seed=0) == {"val": tiny["val"][0], "test": tiny["test"][0]}
    assert all(tiny[split][0] in few["train"] for split in ("val", "test"))  # trained on in the larger folder
    for name in files[2:6]:
        Image.new("RGB", (16, 16)).save(tmp_path / name)
    summary = datamodule(tmp_path, val_fraction=0.1, test_fraction=0.05).summary  # the set-up line says so
    assert (f"; val holds {tiny['val'][0]}, lent from train as no file's seeded hash falls in val: it goes back to "
            "train once the folder has a val file of its own, so a model trained then has seen it; test holds") in summary
    with pytest.raises(SupraUserError, match="2 usable media files are too few"):
        split_by_file(files[:2], 0.1, 0.1, seed=0)


def test_a_file_name_that_is_not_utf8_is_read_captioned_and_split_like_any_other(tmp_path):
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")  # a Latin-1 name on a Linux disk
    Image.new("RGB", (16, 16), (200, 0, 0)).save(tmp_path / f"{latin1}.png", format="PNG")
    (tmp_path / f"{latin1}.txt").write_text("a red cafe\n")
    Image.new("RGB", (16, 16)).save(tmp_path / "plain.png")
    module = MediaFolderDataModule(root=str(tmp_path), image_size=16, show_progress=False, val_fraction=0.0,
                                   test_fraction=0.0)
    items = module.items("train")
    assert items.names == [f"{latin1}.png", "plain.png"] and items.captions == [["a red cafe"], []]


@pytest.mark.parametrize("mode", ["images", "clips"])
def test_each_files_decoded_pixels_are_let_go_once_in_their_split_not_held_twice(folder, monkeypatch, mode):
    """8,000 files at 256 px held 1.5 GiB of pixels twice: per file, and stacked per split beside them."""
    root, _ = folder
    decoded, built = [], {}
    decode, items_of = MediaFolderDataModule._decode, MediaFolderDataModule._items

    def kept_track_of(self, path, name, animated, notes):
        made = decode(self, path, name, animated, notes)
        decoded.extend((name, weakref.ref(pixels)) for _, pixels in made)
        return made

    def split_built(self, files, items, index):
        made = items_of(self, files, items, index)
        gc.collect()
        built[len(built)] = [name for name, ref in decoded if name in files and ref() is not None]
        return made

    monkeypatch.setattr(MediaFolderDataModule, "_decode", kept_track_of)
    monkeypatch.setattr(MediaFolderDataModule, "_items", split_built)
    datamodule(root, mode=mode, **({"frames": 2} if mode == "clips" else {}))
    assert built == {0: [], 1: [], 2: []}  # none alive once copied into its split, before the next is built


def test_frames_mode_makes_every_gif_frame_an_image(folder):
    root, expected = folder
    items = every_item(datamodule(root, mode="frames"))
    n_frames = sum(expected["gifs"].values())
    assert len(items) == len(expected["stills"]) + n_frames
    assert [n for n in items if n.startswith("anim/wave.gif")] == [f"anim/wave.gif#frame {i}" for i in range(6)]
    blink = items["anim/blink.gif#frame 1"][0]
    assert tuple(blink[:, 8, 8].tolist()) == GREEN and tuple(blink[:, 0, 0].tolist()) == RED  # square over red
    assert items["single.gif#frame 0"][1] == []


def test_clips_mode_cuts_strided_clips_pads_short_gifs_and_passes_over_stills(folder):
    root, expected = folder
    dm = datamodule(root, mode="clips", frames=2, frame_stride=2)
    items = every_item(dm)
    frames = every_item(datamodule(root, mode="frames"))
    # wave.gif: frames 0..5, every 2nd -> 0, 2, 4 -> one clip [0, 2]; frame 4 alone is not a clip
    assert sorted(items) == ["anim/blink.gif#clip 0", "anim/wave.gif#clip 0", "single.gif#clip 0"]
    wave = items["anim/wave.gif#clip 0"][0]
    assert wave.shape == (2, 3, 16, 16)
    assert torch.equal(wave[1], frames["anim/wave.gif#frame 2"][0])
    single = items["single.gif#clip 0"][0]  # 1 frame: padded by repeating it
    assert torch.equal(single[0], single[1])
    assert "2 clips padded with repeats of its last frame (GIF shorter than a clip) (e.g. anim/blink.gif, single.gif)" \
        in dm.summary
    assert "6 stills (mode=clips takes GIFs only)" in dm.summary
    assert dm.items("train").pixels.ndim == 5


def test_clips_tile_a_gif_without_a_stride_and_a_short_gif_repeats_its_last_frame(folder):
    root, _ = folder
    items = every_item(datamodule(root, mode="clips", frames=2, frame_stride=1))
    assert [n for n in items if n.startswith("anim/wave")] == [f"anim/wave.gif#clip {k}" for k in range(3)]
    blink = every_item(datamodule(root, mode="clips", frames=4))["anim/blink.gif#clip 0"][0]
    assert blink.shape == (4, 3, 16, 16)
    assert all(torch.equal(blink[k], blink[1]) for k in (2, 3)) and not torch.equal(blink[0], blink[1])


def test_every_frame_and_clip_of_a_gif_takes_the_whole_gifs_captions(folder):
    """A caption names a file, never a frame or clip: wave.gif's captions go with each of its 6 frames and 3
    clips, though they show other colours (as README's data=media_folder says)."""
    root, _ = folder
    captions = ["a square moving over colours", "colours change"]
    for mode, count in (("frames", 6), ("clips", 3)):
        items = every_item(datamodule(root, mode=mode, **({"frames": 2} if mode == "clips" else {})))
        wave = [caps for name, (_, caps) in items.items() if name.startswith("anim/wave.gif#")]
        assert wave == [captions] * count


def test_image_size_must_be_a_multiple_of_8_and_the_error_names_the_nearest(folder):
    root, _ = folder
    with pytest.raises(SupraUserError, match="data.image_size=60 .* use 56 or 64"):
        MediaFolderDataModule(root=str(root), image_size=60)


def one_wide_picture(tmp_path: Path) -> Path:
    """A 32x16 PNG, left half blue, right half red, alone in a folder."""
    save_image(tmp_path / "pics" / "wide.png", size=(32, 16), colour=RED)
    return tmp_path / "pics"


def test_crop_takes_the_centre_square(tmp_path):
    dm = MediaFolderDataModule(root=str(one_wide_picture(tmp_path)), image_size=16, resize="crop",
                               val_fraction=0, test_fraction=0, show_progress=False)
    (pixels,) = dm.items("train").pixels
    assert colour_of(pixels[:, :, :8]) == BLUE and colour_of(pixels[:, :, 8:]) == RED


def test_pad_keeps_the_whole_picture_on_a_black_square(tmp_path):
    dm = MediaFolderDataModule(root=str(one_wide_picture(tmp_path)), image_size=16, resize="pad",
                               val_fraction=0, test_fraction=0, show_progress=False)
    (pixels,) = dm.items("train").pixels  # 32x16 -> 32x32 (black bands of 8) -> 16x16
    assert colour_of(pixels[:, :3]) == (0, 0, 0) and colour_of(pixels[:, 13:]) == (0, 0, 0)
    assert colour_of(pixels[:, 5:11, :7]) == BLUE and colour_of(pixels[:, 5:11, 9:]) == RED


def test_an_asked_for_split_that_is_turned_off_is_a_clear_error(tmp_path):
    dm = MediaFolderDataModule(root=str(one_wide_picture(tmp_path)), image_size=16, val_fraction=0,
                               test_fraction=0, show_progress=False)
    with pytest.raises(SupraUserError, match="the val split .* is empty .*data.val_fraction=0"):
        dm.items("val")


def test_splits_turned_off_are_advised_as_a_run_that_trains_and_that_run_trains(tmp_path):
    """Two files: "0 turns a split off"; then "do not ask for the val split", which no train.py option did
    (+trainer.limit_val_batches=0 still loaded it). Now validation off lets a fit go without val."""
    from supra.runner.training import train
    from supra.utils.errors import user_error_in
    from tests.conftest import compose_config

    root = tmp_path / "two"
    for i, colour in enumerate((RED, BLUE)):
        save_image(root / f"photo_{i}.png", colour=colour)
    run = ["experiment=vqvae_shapes", "data=media_folder", f"data.root={root}", "data.image_size=16",
           "data.show_progress=false", "data.batch_size=2", "trainer.max_steps=1", "callbacks.reconstruction_grid=null",
           "callbacks.progress_bar=null", "callbacks.model_summary=null"]
    with pytest.raises(SupraUserError, match="too few for a train split .* \\(0 turns a split off\\)"):
        MediaFolderDataModule(root=str(root), show_progress=False).setup("fit")
    off = [*run, "data.val_fraction=0", "data.test_fraction=0"]
    with pytest.raises(Exception) as err:
        train(compose_config("train", tmp_path / "refused", off))
    assert str(user_error_in(err.value)) == (
        f"the val split of data.root={root} is empty (data.val_fraction=0): set data.val_fraction above 0, or turn "
        "validation off (+trainer.limit_val_batches=0); the test split is empty too: add test=false")
    train(compose_config("train", tmp_path / "advised", [*off, "+trainer.limit_val_batches=0", "test=false"]))
    assert (tmp_path / "advised" / "checkpoints" / "last.ckpt").is_file()


def test_stills_over_max_pixels_are_skipped_unread(folder):
    root, _ = folder
    dm = datamodule(root, max_pixels=150)  # the 16x12 stills are 192 pixels; the GIFs are smaller
    assert "6 over max_pixels (e.g. bomb.gif, e.BMP)" in dm.summary
    assert sorted(every_item(dm)) == ["anim/blink.gif", "anim/wave.gif", "single.gif"]


def test_max_frames_caps_the_frames_read_per_gif(folder):
    root, _ = folder
    dm = datamodule(root, mode="frames", max_frames=2)
    assert [n for n in every_item(dm) if n.startswith("anim/wave")] == [f"anim/wave.gif#frame {i}" for i in (0, 1)]
    assert "1 GIF with more than max_frames=2 frames" in dm.summary


def test_batches_are_scaled_to_minus_one_one_on_the_device(folder):
    root, _ = folder
    dm = datamodule(root)
    batch = next(iter(dm.train_dataloader()))
    assert batch["pixels"].shape == (2, 3, 16, 16) and batch["pixels"].dtype == torch.uint8
    scaled = dm.on_after_batch_transfer(batch, 0)["pixels"]
    assert scaled.min() >= -1 and scaled.max() <= 1 and scaled.dtype == torch.float32


def test_sidecar_named_after_the_whole_file_name_wins_over_the_stem(tmp_path):
    save_image(tmp_path / "cat.png")
    (tmp_path / "cat.gif").write_bytes(gif_bytes(2, 2, [Frame(solid(2, 2, 1))]))
    (tmp_path / "cat.txt").write_text("a cat\n")
    (tmp_path / "cat.png.txt").write_text("a still cat\n")
    index = scan_folder(tmp_path)
    assert index.captions == {"cat.gif": ["a cat"], "cat.png": ["a still cat"]}
    assert not index.ignored


def test_a_blank_sidecar_is_counted_as_a_blank_caption_as_one_of_captions_jsonl_is(tmp_path):
    """A name.txt holding only blank lines left its file without a caption and said nothing of why; blank lines
    between a sidecar's captions are no caption of their own, and are not counted."""
    for name in ("blank.png", "empty.png", "cat.png"):
        save_image(tmp_path / name)
    (tmp_path / "blank.txt").write_text("  \n\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "cat.txt").write_text("a cat\n\na black cat\n")
    index = scan_folder(tmp_path)
    assert index.captions == {"blank.png": [], "cat.png": ["a cat", "a black cat"], "empty.png": []}
    assert index.caption_problems.describe() == "2 blank captions (e.g. blank.txt, empty.txt)"


def test_tiff_stills_are_media_like_the_other_formats(tmp_path):
    """Scanners and microscopes write TIFF; COCO and Hugging Face sources already read it, folders do too."""
    save_image(tmp_path / "scan.tif")
    save_image(tmp_path / "SCAN2.TIFF")
    (tmp_path / "scan.txt").write_text("a scanned square\n")
    index = scan_folder(tmp_path)
    assert index.media == ["SCAN2.TIFF", "scan.tif"] and index.captions["scan.tif"] == ["a scanned square"]
    assert not index.ignored


def test_a_folder_linked_twice_is_indexed_once_and_the_link_is_named(tmp_path):
    """Its files under a second name would be split apart from themselves: trained on and tested on."""
    save_image(tmp_path / "2024" / "cat.png")
    (tmp_path / "2024" / "cat.txt").write_text("a cat\n")
    (tmp_path / "latest").symlink_to("2024", target_is_directory=True)
    index = scan_folder(tmp_path)
    assert index.media == ["2024/cat.png"] and index.captions == {"2024/cat.png": ["a cat"]}
    assert index.ignored.describe() == "1 folder listed already under another path (e.g. latest = 2024)"


def test_captions_naming_a_file_through_a_second_path_to_its_folder_find_it(tmp_path):
    """latest -> 2024 is listed as 2024/, but a captions.csv (or .jsonl) written for latest/ still names
    the same pictures; so does one through a link inside the linked folder, and one to the root."""
    for name in ("a.png", "b.png", "sub/c.png"):
        save_image(tmp_path / "2024" / name)
    (tmp_path / "latest").symlink_to("2024", target_is_directory=True)
    (tmp_path / "2024" / "deeper").symlink_to("sub", target_is_directory=True)
    (tmp_path / "here").symlink_to(".", target_is_directory=True)
    (tmp_path / "captions.csv").write_text("file,caption\nlatest/a.png,a red square\n./latest/b.png,a blue one\n"
                                           "latest/deeper/c.png,a green one\nhere/2024/a.png,red\n")
    index = scan_folder(tmp_path)
    assert index.captions == {"2024/a.png": ["a red square", "red"], "2024/b.png": ["a blue one"],
                              "2024/sub/c.png": ["a green one"]}
    assert not index.caption_problems


def test_captions_naming_a_hidden_file_say_it_is_skipped_as_hidden_not_missing(tmp_path):
    """.hidden.jpg is there but passed over like .DS_Store: its captions are counted under their own reason,
    while a caption for a file that does not exist (hidden name or not) is still one for no media file."""
    for name in ("a.png", ".hidden.jpg", ".thumbs/b.png"):
        save_image(tmp_path / name)
    lines = [("a.png", "a square"), (".hidden.jpg", "hidden"), ("./.hidden.jpg", "again"), (".thumbs/b.png", "thumb"),
             (".gone.jpg", "missing"), ("gone.jpg", "missing too")]
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps({"file": f, "caption": c}) + "\n" for f, c in lines))
    index = scan_folder(tmp_path)
    assert index.media == ["a.png"] and index.captions == {"a.png": ["a square"]}
    assert index.caption_problems.describe() == (
        "3 captions for hidden files (a leading dot), which are skipped (e.g. captions.jsonl:2, captions.jsonl:3), "
        "2 captions for no media file (e.g. captions.jsonl:5, captions.jsonl:6)")


def test_a_captions_csv_without_its_header_is_a_one_line_error(tmp_path):
    save_image(tmp_path / "cat.png")
    (tmp_path / "captions.csv").write_text("cat.png,a cat\n")
    with pytest.raises(SupraUserError, match="captions.csv must start with the header 'file,caption'"):
        scan_folder(tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "data.root=.* does not exist"),
    (lambda root: root.mkdir(), r"holds no images or GIFs \(it is empty\)"),
    (lambda root: (root.mkdir(), (root / "README.md").write_text("hi")),
     r"holds no images or GIFs \(only 1 other files, e.g. README.md\)"),
    (lambda root: (root.mkdir(), (root / "a.png").write_bytes(b""), (root / "b.gif").write_text("text")),
     r"none of the 2 media files in data.root=.*media could be used \(1 empty files \(0 bytes\) \(e.g. a.png\), "
     r"1 unreadable \(e.g. b.gif\)\)"),
])
def test_folders_that_cannot_work_fail_with_one_line_naming_the_folder(tmp_path, make, message):
    make(tmp_path / "media")
    with pytest.raises(SupraUserError, match=message) as err:
        datamodule(tmp_path / "media")
    assert "\n" not in str(err.value)


def test_clips_mode_on_a_folder_of_stills_says_to_add_gifs(tmp_path):
    save_image(tmp_path / "a.png")
    with pytest.raises(SupraUserError, match="data.mode=clips needs animated GIFs .* holds none"):
        datamodule(tmp_path, mode="clips")


@pytest.mark.parametrize("option", [
    {"resize": "stretch"}, {"mode": "video"}, {"frames": 0}, {"val_fraction": 0.6, "test_fraction": 0.5},
])
def test_bad_options_are_refused_when_the_datamodule_is_made(tmp_path, option):
    with pytest.raises(SupraUserError, match=f"data.{next(iter(option))}"):
        MediaFolderDataModule(root=str(tmp_path), **option)


@pytest.mark.parametrize(("val_fraction", "test_fraction"), [(-0.1, 0.1), ("0.1", 0.1), (0.6, 0.4)])
def test_split_fractions_are_refused_in_the_caption_folders_words_but_0_turns_a_split_off(tmp_path, val_fraction,
                                                                                          test_fraction):
    """The caption folder's rule, in its words, but for 0: a VQ-VAE or a2a run may go without val or test. A share
    given as a string ("0.1") ended in a TypeError."""
    with pytest.raises(SupraUserError) as err:
        MediaFolderDataModule(root=str(tmp_path), val_fraction=val_fraction, test_fraction=test_fraction)
    assert str(err.value) == (f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must each be "
                              "0 (that split off) or above and below 1, and leave some files for train (their sum below 1)")
    MediaFolderDataModule(root=str(tmp_path), val_fraction=0, test_fraction=0)


def test_a_folder_of_ten_stills_warns_of_its_one_image_splits_counted_after_decoding(tmp_path, caplog):
    """As the caption folder warns (a split of one image scores that image alone), naming the option that widens
    it; the split is drawn from the files that decode, so a file that does not is not counted."""
    for i in range(10):
        save_image(tmp_path / f"img{i:03d}.png")  # 8 / 1 / 1 (test_split_by_file_never_moves_a_file...)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with caplog.at_level("WARNING", logger="supra.data.media.folder"):
        datamodule(tmp_path, val_fraction=0.1, test_fraction=0.05)
    assert [r.getMessage() for r in caplog.records] == [
        f"the val split of data.root={tmp_path} holds 1 of its 10 images (data.val_fraction=0.1): every validation "
        "scores one of its images; set data.val_fraction=0.45 (about 4 images)",
        f"the test split of data.root={tmp_path} holds 1 of its 10 images (data.test_fraction=0.05): the test scores "
        "one of its images; set data.test_fraction=0.45 (about 4 images)"]


def test_options_a_mode_does_not_read_are_refused_not_ignored(tmp_path):
    cases = [
        ({"mode": "frames", "frame_stride": 100, "frames": 7},
         "data.frames=7 data.frame_stride=100: data.mode=frames does not read them (data.mode=clips reads them); "
         "leave them out"),
        ({"mode": "images", "max_frames": 3},
         "data.max_frames=3: data.mode=images does not read it (data.mode=frames or clips reads it); leave it out"),
    ]
    for options, message in cases:
        with pytest.raises(SupraUserError) as err:
            MediaFolderDataModule(root=str(tmp_path), **options)
        assert str(err.value) == message
    # at their defaults, given or not, they are no change; the modes that read them take them
    MediaFolderDataModule(root=str(tmp_path), mode="frames", frames=4, frame_stride=1, max_frames=3)
    MediaFolderDataModule(root=str(tmp_path), mode="clips", frames=7, frame_stride=100)


def test_the_hydra_config_builds_the_datamodule_with_every_option(tmp_path):
    save_pillow_gif(tmp_path / "data" / "media" / "a.gif", [RED, GREEN])
    for i in range(3):
        save_image(tmp_path / "data" / "media" / f"s{i}.png")
    config = Path(__file__).resolve().parents[1] / "conf" / "data" / "media_folder.yaml"
    cfg = OmegaConf.create({"paths": {"data_dir": str(tmp_path / "data")}, "data": OmegaConf.load(config)})
    dm = instantiate(cfg.data, show_progress=False)
    assert isinstance(dm, MediaFolderDataModule) and dm.image_size == 64 and dm.mode == "images"
    dm.setup("fit")
    assert dm.items("train").pixels.shape[1:] == (3, 64, 64)
    assert np.isclose(dm.val_fraction, 0.1)


def test_transparency_shows_white_in_stills_and_gifs_alike(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:, 4:] = (*RED, 255)  # left half fully transparent
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    holes = np.array([[9] * 4 + [1] * 4] * 8, dtype=np.uint8)  # index 9 transparent, 1 red
    (tmp_path / "clear.gif").write_bytes(gif_bytes(8, 8, [Frame(holes, transparency=9)]))
    dm = MediaFolderDataModule(root=str(tmp_path), image_size=8, val_fraction=0, test_fraction=0, show_progress=False)
    stills_and_gifs = dm.items("train").pixels
    assert len(stills_and_gifs) == 2 and "skipped: nothing" in dm.summary, dm.summary  # neither file left out unchecked
    for pixels in stills_and_gifs:
        assert colour_of(pixels[:, :, :4]) == (255, 255, 255) and colour_of(pixels[:, :, 4:]) == RED


def train_only(root: Path, **kwargs) -> MediaFolderDataModule:
    """Every file of `root` in train (no held-out splits)."""
    return MediaFolderDataModule(root=str(root), image_size=16, val_fraction=0, test_fraction=0, show_progress=False,
                                 **kwargs)


def test_a_named_pipe_with_a_pictures_name_is_passed_over_and_counted_never_opened(tmp_path, pipes_never_opened):
    """Reading a pipe waits for a writer forever: set-up would hang. It is named in the summary line instead."""
    root = one_wide_picture(tmp_path)
    os.mkfifo(root / "pipe.jpg")
    (root / "pipe.txt").write_text("a pipe\n")
    dm = train_only(root)
    assert dm.items("train").names == ["wide.png"]
    assert "ignored: 1 not regular file (named pipes, sockets, devices) (e.g. pipe.jpg)" in dm.summary


def test_gif_or_still_is_known_by_content_as_every_other_reader_knows_it_not_by_the_name(tmp_path):
    """A PNG saved as photo.gif is a still; a 4-frame GIF saved as anim.png is an animation."""
    root = tmp_path / "media"
    save_image(root / "photo.gif", colour=RED, fmt="PNG")
    frames = save_pillow_gif(root / "anim.gif", [RED, GREEN, BLUE, RED])
    (root / "anim.gif").rename(root / "anim.png")
    dm = train_only(root, mode="frames")
    assert sorted(dm.items("train").names) == [*(f"anim.png#frame {i}" for i in range(len(frames))), "photo.gif"]
    assert "2 media files found (1 still, 1 GIF)" in dm.summary and "skipped: nothing" in dm.summary
    clips = train_only(root, mode="clips")
    assert clips.items("train").names == ["anim.png#clip 0"]
    assert "1 still (mode=clips takes GIFs only) (e.g. photo.gif)" in clips.summary


def test_a_picture_whose_padded_square_is_over_max_pixels_is_skipped_as_too_large(tmp_path):
    """1x400 is 400 pixels but pads to 160,000: skipped as a picture over max_pixels is, not allocated."""
    root = one_wide_picture(tmp_path)
    save_image(root / "thin.png", size=(1, 400))
    dm = train_only(root, resize="pad", max_pixels=10_000)
    assert dm.items("train").names == ["wide.png"]
    assert "skipped: 1 over max_pixels (e.g. thin.png)" in dm.summary


def test_a_caption_a_file_has_twice_is_counted_in_the_set_up_line_and_kept_as_two_references(tmp_path):
    """As the captioner's folder counts it: trained on once, each line a reference image2text scores. The media
    folder dropped the second line without a word ("captions:" said nothing)."""
    from supra.data.caption_sources.index import REPEATED_CAPTION

    for name, colour in (("a.png", RED), ("b.png", GREEN), ("c.png", BLUE), ("d.png", RED)):
        save_image(tmp_path / name, colour=colour)
    (tmp_path / "a.txt").write_text("a red square\na red square\nred on blue\n")
    (tmp_path / "captions.csv").write_text("file,caption\nb.png,green\nb.png,green\nb.png,green\nc.png,blue\n")
    dm = datamodule(tmp_path)
    assert f"; captions: 3 {REPEATED_CAPTION} (e.g. a.png: 'a red square', b.png: 'green')" in dm.summary
    items = {name: (caps, refs) for split in ("train", "val", "test")
             for name, caps, refs in zip(dm.items(split).names, dm.items(split).captions, dm.items(split).references,
                                         strict=True)}
    assert items["a.png"] == (["a red square", "red on blue"], ["a red square", "a red square", "red on blue"])
    assert items["b.png"] == (["green"], ["green"] * 3)


def test_the_summary_counts_files_with_their_noun_and_a_caption_file_with_the_file_it_captions(tmp_path):
    """"1 GIFs" read as a typo, and the caption file of a video the folder does not read was one more "not media"
    file: it is counted as the caption of a file not read."""
    root = tmp_path / "media"
    save_image(root / "photo.png", colour=RED)
    save_pillow_gif(root / "anim.gif", [RED, GREEN])
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (root / "clip.txt").write_text("a clip of a red square\n")
    media = train_only(root)
    media.items("train")  # set up: the summary is said
    summary = media.summary
    assert "2 media files found (1 still, 1 GIF)" in summary
    assert ("ignored: 1 not media (e.g. clip.mp4), 1 caption of files not read (name.txt beside a file that is no "
            "picture) (e.g. clip.txt)") in summary


def test_each_clip_says_how_many_of_its_frames_are_real_a_padded_one_fewer_than_it_holds(folder):
    """A GIF shorter than a clip is padded with its last frame: those repeats are no frames of the file, and the
    a2a video scores must not take them for truth, so each clip carries its real frames."""
    root, _ = folder
    dm = datamodule(root, mode="clips", frames=3, frame_stride=1)
    real = {name: n for split in ("train", "val", "test") for name, n in
            zip(dm.items(split).names, dm.items(split).real_frames or [], strict=True)}
    assert real == {"anim/blink.gif#clip 0": 2, "anim/wave.gif#clip 0": 3, "anim/wave.gif#clip 1": 3,
                    "single.gif#clip 0": 1}
    assert dm.items("train").subset([0]).real_frames == dm.items("train").real_frames[:1]
    assert datamodule(root, mode="frames").items("train").real_frames is None  # images: nothing padded


def test_files_of_0_bytes_are_skipped_as_empty_files_gif_or_still(tmp_path):
    """A 0-byte GIF was counted "unreadable" (with a bad header), a 0-byte still so too: said now as every reader
    of pictures says it."""
    save_pillow_gif(tmp_path / "real.gif", [RED, GREEN])
    (tmp_path / "zero.gif").write_bytes(b"")
    (tmp_path / "zero.png").write_bytes(b"")
    dm = MediaFolderDataModule(root=str(tmp_path), mode="frames", image_size=16, show_progress=False,
                               val_fraction=0, test_fraction=0)
    assert len(dm.split_items("train")) == 2
    assert "skipped: 2 empty files (0 bytes) (e.g. zero.gif, zero.png)" in dm.summary


def test_animated_webp_and_png_are_counted_apart_with_a_hint_to_convert_them_to_gif(tmp_path):
    """They were silently "stills": their first frame in mode=frames, "stills" passed over in mode=clips."""
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    for name in ("moving.webp", "moving.png"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(tmp_path / "still.png")
    save_pillow_gif(tmp_path / "real.gif", [RED, GREEN])
    options = {"image_size": 16, "show_progress": False, "val_fraction": 0, "test_fraction": 0}
    frames_mode = MediaFolderDataModule(root=str(tmp_path), mode="frames", **options)
    assert len(frames_mode.split_items("train")) == 5  # 3 stills (first frames), 2 GIF frames
    assert ("2 animated WebP/PNG read as stills, their first frame only (convert them to GIF for their frames) "
            "(e.g. moving.png, moving.webp)") in frames_mode.summary
    clips_mode = MediaFolderDataModule(root=str(tmp_path), mode="clips", frames=2, **options)
    assert len(clips_mode.split_items("train")) == 1
    assert ("ignored: 2 animated WebP/PNG (mode=clips takes GIFs only: convert them to GIF) (e.g. moving.png, "
            "moving.webp), 1 still (mode=clips takes GIFs only) (e.g. still.png)") in clips_mode.summary


def test_the_notes_count_gifs_cut_short_or_past_max_frames_with_their_noun_for_one_and_for_many(tmp_path):
    """The notes read "1 GIFs cut short" and "1 GIFs with more than max_frames=...": each count now takes its noun
    as the summary's others do ("1 GIF", "2 GIFs")."""
    root = tmp_path / "media"
    for name in ("a", "b"):
        save_pillow_gif(root / f"{name}.gif", [RED, GREEN, BLUE, RED])
    capped = train_only(root, mode="frames", max_frames=2)
    capped.items("train")  # set up: the summary is said
    assert "notes: 2 GIFs with more than max_frames=2 frames (the rest unused) (e.g. a.gif, b.gif)" in capped.summary
    cut = {}
    for name in ("a", "b"):
        gif = root / f"{name}.gif"
        gif.write_bytes(gif.read_bytes()[:-6])  # inside its last frame: the frames before the cut are kept
        cut[name] = train_only(root, mode="frames")
        cut[name].items("train")
    assert "notes: 1 GIF cut short (the frames before the cut kept) (e.g. a.gif)" in cut["a"].summary
    assert "notes: 2 GIFs cut short (the frames before the cut kept) (e.g. a.gif, b.gif)" in cut["b"].summary


def test_a_missing_media_folder_says_it_wants_images_and_gifs_and_where_the_relative_path_was_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SupraUserError) as err:
        scan_folder("media")
    assert str(err.value) == f"data.root=media ({tmp_path / 'media'}) does not exist: point it at a folder of images and GIFs"


def _blank_sidecars(root: Path, n: int) -> None:
    for i in range(n):
        save_image(root / f"blank{i}.png")
        (root / f"blank{i}.txt").write_text("\n")


def _captions_jsonl(root: Path, lines: list[str]) -> None:
    (root / "captions.jsonl").write_text("".join(line + "\n" for line in lines))


def _captions_for_missing_files(root: Path, n: int) -> None:
    _captions_jsonl(root, [json.dumps({"file": f"gone{i}.png", "caption": "gone"}) for i in range(n)])


def _captions_for_hidden_files(root: Path, n: int) -> None:
    for i in range(n):
        save_image(root / f".hidden{i}.png")
    _captions_jsonl(root, [json.dumps({"file": f".hidden{i}.png", "caption": "hidden"}) for i in range(n)])


def _unreadable_caption_lines(root: Path, n: int) -> None:
    _captions_jsonl(root, ["not json"] * n)


def _long_captions(root: Path, n: int) -> None:
    for i in range(n):
        save_image(root / f"long{i}.png")
        (root / f"long{i}.txt").write_text("red circle " * 1_000 + "and more")


def _shared_sidecars(root: Path, n: int) -> None:
    for i in range(n):
        save_image(root / f"twin{i}.png")
        save_image(root / f"twin{i}.jpg")
        (root / f"twin{i}.txt").write_text("a twin\n")


def _folders_linked_again(root: Path, n: int) -> None:
    for i in range(n):
        (root / f"link{i}").symlink_to("photos", target_is_directory=True)


def _named_pipes(root: Path, n: int) -> None:
    for i in range(n):
        os.mkfifo(root / f"pipe{i}.jpg")


# what a folder holds `n` of (beside a captioned photo), the tally that counts it, and its whole line for 1 and 2
COUNTED_REASONS = {
    "blank caption": (_blank_sidecars, "caption_problems",
                      "1 blank caption (e.g. blank0.txt)", "2 blank captions (e.g. blank0.txt, blank1.txt)"),
    "caption for no media file": (
        _captions_for_missing_files, "caption_problems", "1 caption for no media file (e.g. captions.jsonl:1)",
        "2 captions for no media file (e.g. captions.jsonl:1, captions.jsonl:2)"),
    "caption for a hidden file": (
        _captions_for_hidden_files, "caption_problems",
        "1 caption for hidden files (a leading dot), which are skipped (e.g. captions.jsonl:1)",
        "2 captions for hidden files (a leading dot), which are skipped (e.g. captions.jsonl:1, captions.jsonl:2)"),
    "unreadable caption line": (
        _unreadable_caption_lines, "caption_problems",
        '1 unreadable caption line (each a JSON object with "file" and "caption") (e.g. captions.jsonl:1)',
        '2 unreadable caption lines (each a JSON object with "file" and "caption") '
        "(e.g. captions.jsonl:1, captions.jsonl:2)"),
    "caption over the length read": (
        _long_captions, "caption_problems",
        "1 caption over 10,000 characters, cut to them (e.g. long0.txt)",
        "2 captions over 10,000 characters, cut to them (e.g. long0.txt, long1.txt)"),
    "shared sidecar": (
        _shared_sidecars, "caption_problems",
        "1 sidecar that two images share, captioning neither (name each <name>.<ext>.txt: photo.jpg.txt) "
        "(e.g. twin0.txt (twin0.jpg, twin0.png))",
        "2 sidecars that two images share, captioning neither (name each <name>.<ext>.txt: photo.jpg.txt) "
        "(e.g. twin0.txt (twin0.jpg, twin0.png), twin1.txt (twin1.jpg, twin1.png))"),
    "folder linked again": (
        _folders_linked_again, "ignored", "1 folder listed already under another path (e.g. link0 = photos)",
        "2 folders listed already under another path (e.g. link0 = photos, link1 = photos)"),
    "named pipe": (
        _named_pipes, "ignored", "1 not regular file (named pipes, sockets, devices) (e.g. pipe0.jpg)",
        "2 not regular files (named pipes, sockets, devices) (e.g. pipe0.jpg, pipe1.jpg)"),
}


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("reason", list(COUNTED_REASONS))
def test_a_folders_summary_counts_one_of_a_kind_in_the_singular_and_two_in_the_plural(tmp_path, reason, n):
    make, tally, *lines = COUNTED_REASONS[reason]
    save_image(tmp_path / "photos" / "cat.png")
    (tmp_path / "photos" / "cat.txt").write_text("a cat\n")
    make(tmp_path, n)
    assert getattr(scan_folder(tmp_path), tally).describe() == lines[n - 1]


@pytest.mark.parametrize(("n", "line"), [
    (1, "1 caption file under {root} is not UTF-8 (e.g. p0.txt): read as Windows-1252; save it as UTF-8 if its "
        "captions look wrong"),
    (2, "2 caption files under {root} are not UTF-8 (e.g. p0.txt, p1.txt): read as Windows-1252; save them as UTF-8 "
        "if their captions look wrong"),
])
def test_the_warning_of_caption_files_not_in_utf8_counts_one_as_one(tmp_path, caplog, n, line):
    for i in range(n):
        save_image(tmp_path / f"p{i}.png")
        (tmp_path / f"p{i}.txt").write_bytes("a café".encode("cp1252"))
    scan_folder(tmp_path)
    assert [record.getMessage() for record in caplog.records] == [line.format(root=tmp_path)]


def test_a_caption_line_nested_too_deeply_to_parse_is_an_unreadable_caption_line(tmp_path):
    save_image(tmp_path / "photos" / "cat.png")
    deep = '{"file": "photos/cat.png", "caption": ' + "[" * 100_000 + "]" * 100_000 + "}"
    _captions_jsonl(tmp_path, [deep])
    assert scan_folder(tmp_path).caption_problems.describe() == (
        '1 unreadable caption line (each a JSON object with "file" and "caption") (e.g. captions.jsonl:1)')


def test_a_caption_far_longer_than_any_model_reads_is_cut_where_it_is_read(tmp_path):
    save_image(tmp_path / "cat.png")
    _captions_jsonl(tmp_path, [json.dumps({"file": "cat.png", "caption": "a cat " + "x" * 1_000_000})])
    index = scan_folder(tmp_path)
    assert [len(caption) for caption in index.captions["cat.png"]] == [10_000]
    assert index.caption_problems.describe() == "1 caption over 10,000 characters, cut to them (e.g. captions.jsonl:1)"
