"""Flickr8k in each published layout, traps included: counts, splits, captions, skips, cache, bad input."""

from __future__ import annotations

import errno
import json
import logging
import os

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from supra.data.caption_sources.flickr8k import read_flickr8k
from supra.data.caption_sources.index import REPEATED_CAPTION
from supra.data.captioning.flickr8k import Flickr8kDataModule
from supra.data.captions import clean_caption
from supra.data.image_cache import ImageCache, StoredImage, load_rgb
from supra.utils.errors import SupraUserError
from tests.conftest import file_size_limit
from tests.flickr8k_fixtures import captions_for, names, write_kaggle, write_karpathy, write_original


def datamodule(root, tmp_path, **kwargs) -> Flickr8kDataModule:
    dm = Flickr8kDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "run"),
                            show_progress=False, batch_size=4, eval_batch_size=4, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("with_text_subdir", [True, False])
def test_original_layout_with_every_trap(tmp_path, with_text_subdir):
    expected = write_original(tmp_path / "flickr", with_text_subdir)
    index = read_flickr8k(tmp_path / "flickr")
    assert index.layout == "original" and index.image_dir.name == "Flicker8k_Dataset"
    assert {s: len(n) for s, n in index.splits.items()} == expected["images"]
    assert {s: sum(len(index.captions[n]) for n in ns) for s, ns in index.splits.items()} == expected["captions"]
    assert dict(index.skipped) == expected["skipped"]
    first = names()["train"][0]
    assert index.captions[first] == [c for c in captions_for(0)]  # ' .', trailing spaces, BOM, CRLF gone
    assert index.captions[names()["train"][2]][0] == captions_for(2)[0]  # the line with a space, not a tab


def test_kaggle_layout_gets_a_seeded_split_and_reads_quoted_commas(tmp_path):
    info = write_kaggle(tmp_path / "flickr", n_images=24)
    index = read_flickr8k(tmp_path / "flickr", seed=0)
    assert index.layout == "kaggle"
    sizes = {s: len(n) for s, n in index.splits.items()}
    assert sizes == {"train": 18, "val": 3, "test": 3}  # 6000/1000/1000 scaled to a partial copy
    assert index.splits == read_flickr8k(tmp_path / "flickr", seed=0).splits
    assert index.splits != read_flickr8k(tmp_path / "flickr", seed=1).splits
    assert any(c.endswith("with a comma") for caps in index.captions.values() for c in caps)
    # a row twice is two references (captions.txt has no caption numbers), trained on once and counted
    assert dict(index.skipped) == {"blank caption": 1, REPEATED_CAPTION: 1, "no image file": 1}
    repeated = next(key for key, refs in index.references.items() if len(refs) > len(set(refs)))
    assert len(index.references[repeated]) == len(index.captions[repeated]) + 1
    assert info["corrupt"] in {n for ns in index.splits.values() for n in ns}  # found by decoding, later


def test_karpathy_layout_puts_restval_in_train(tmp_path):
    expected = write_karpathy(tmp_path / "flickr")
    index = read_flickr8k(tmp_path / "flickr")
    assert index.layout == "karpathy"
    assert {s: len(n) for s, n in index.splits.items()} == expected["images"]
    assert dict(index.skipped) == {"blank caption": 1}


def test_datamodule_skips_a_corrupt_image_and_names_it_in_the_summary(tmp_path):
    info = write_kaggle(tmp_path / "flickr", n_images=24)
    dm = datamodule(tmp_path / "flickr", tmp_path)
    assert info["corrupt"] in dm.summary and "1 unreadable image" in dm.summary
    all_names = [n for split in ("train", "val", "test") for n in dm.loaded(split).names]
    assert info["corrupt"] not in all_names and len(all_names) == 23
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (4, 3, 112, 112) and batch["images"].dtype == torch.uint8


def test_split_lists_used_are_written_to_the_run_directory(tmp_path):
    write_kaggle(tmp_path / "flickr", n_images=24)
    dm = datamodule(tmp_path / "flickr", tmp_path)
    written = (tmp_path / "run" / "splits" / "val.txt").read_text().split()
    assert written == dm.index.splits["val"]


def test_cache_is_built_once_and_reused(tmp_path):
    write_karpathy(tmp_path / "flickr")
    datamodule(tmp_path / "flickr", tmp_path)
    cached = list((tmp_path / "cache").glob("images_*.npy"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    datamodule(tmp_path / "flickr", tmp_path)
    assert cached[0].stat().st_mtime_ns == mtime


def test_two_files_of_one_size_and_mtime_swapped_by_name_are_decoded_again(tmp_path):
    """Files unpacked from an archive often share one mtime; a cache keyed by size and mtime alone served
    each swapped file the other's pixels, so each was trained and scored against the other's captions."""
    paths = [tmp_path / "a.bmp", tmp_path / "b.bmp"]  # BMP: one size whatever the pixels
    for path, colour in zip(paths, ((255, 0, 0), (0, 0, 255)), strict=True):
        Image.new("RGB", (8, 8), colour).save(path)
    assert paths[0].stat().st_size == paths[1].stat().st_size
    for path in paths:
        os.utime(path, ns=(10**18, 10**18))
    cache = ImageCache(tmp_path / "cache", paths, 8)
    cache.build(show_progress=False)
    paths[0].rename(tmp_path / "swap.bmp")
    paths[1].rename(paths[0])
    (tmp_path / "swap.bmp").rename(paths[1])
    again = ImageCache(tmp_path / "cache", paths, 8)
    again.ensure(show_progress=False)
    images, _ = again.load()
    assert again.array_path != cache.array_path
    assert images[0, :, 0, 0].tolist() == [0, 0, 255] and images[1, :, 0, 0].tolist() == [255, 0, 0]


def test_an_older_supras_image_cache_of_these_names_and_size_is_named_in_one_line_and_left_in_place(tmp_path,
                                                                                                     caplog):
    """An older Supra recorded no origin in its image caches: whose images one holds is not known (another data
    set's files may share the folder, and their names), so none is removed, but one of the new cache's names and
    size is named as removable."""
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path in paths:
        Image.new("RGB", (8, 8)).save(path)
    older = ImageCache(tmp_path / "cache", paths, 8)  # as an older Supra wrote it: no origin
    older.build(show_progress=False)
    other = ImageCache(tmp_path / "cache", paths[:1], 8)  # of other names: not said
    other.build(show_progress=False)
    os.utime(paths[1], ns=(10**18, 10**18))  # b.png touched: a cache of another key
    newer = ImageCache(tmp_path / "cache", paths, 8, origin="the photos at data.root")
    with caplog.at_level(logging.INFO, logger="supra.data.image_cache"):
        newer.ensure(show_progress=False)
    assert newer.is_valid() and older.is_valid() and other.is_valid()
    assert caplog.messages == [
        f"{older.array_path} (+ .json), a cache of 2 images of these names at 8px written by an older Supra, which did "
        "not record whose they are, is left in place: if they are these files, it is no longer read and can be removed"]


def test_unreadable_cache_is_rebuilt_not_trusted(tmp_path):
    write_karpathy(tmp_path / "flickr")
    dm = datamodule(tmp_path / "flickr", tmp_path)
    reference = dm.data["train"].images[:2].clone()
    npy = next((tmp_path / "cache").glob("images_*.npy"))
    npy.write_bytes(b"garbage")
    again = datamodule(tmp_path / "flickr", tmp_path)
    assert torch.equal(again.data["train"].images[:2], reference)


def test_images_are_decoded_upright_in_rgb_from_any_mode(tmp_path):
    image = Image.new("CMYK", (30, 20), (0, 255, 255, 0))  # red in CMYK
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    image.save(tmp_path / "x.jpg", exif=exif.tobytes())
    rgb = load_rgb(tmp_path / "x.jpg")
    assert rgb.mode == "RGB" and rgb.size == (20, 30)
    assert rgb.getpixel((10, 15))[0] > 200
    Image.new("P", (8, 8)).save(tmp_path / "p.png")
    assert load_rgb(tmp_path / "p.png").mode == "RGB"


def test_a_pngs_transparent_colour_is_white_in_every_mode(tmp_path):
    # tRNS names one colour (RGB) or grey value (L, 16-bit, 1-bit) as transparent, as a palette's does
    import numpy as np

    pixels = {"RGB": np.array([[[0, 0, 0], [10, 20, 30]]], dtype=np.uint8), "L": np.array([[0, 77]], dtype=np.uint8),
              "I;16": np.array([[0, 40000]], dtype=np.uint16)}
    for mode, values in pixels.items():
        key = (0, 0, 0) if mode == "RGB" else 0
        Image.fromarray(values).save(tmp_path / "key.png", transparency=key)
        Image.fromarray(values).save(tmp_path / "plain.png")
        keyed, plain = np.asarray(load_rgb(tmp_path / "key.png")), np.asarray(load_rgb(tmp_path / "plain.png"))
        assert keyed[0, 0].tolist() == [255, 255, 255] and plain[0, 0].tolist() == [0, 0, 0], mode
        assert keyed[0, 1].tolist() == plain[0, 1].tolist(), mode  # the other colours as they are
    Image.new("1", (2, 1), 0).save(tmp_path / "bits.png", transparency=0)
    assert np.asarray(load_rgb(tmp_path / "bits.png"))[0, 0].tolist() == [255, 255, 255]


def test_cache_records_failures_instead_of_crashing(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    Image.new("RGB", (10, 10)).save(tmp_path / "good.jpg")
    cache = ImageCache(tmp_path / "c", [tmp_path / "bad.jpg", tmp_path / "good.jpg"], 16)
    cache.ensure(show_progress=False)
    images, failed = cache.load()
    assert images.shape == (2, 3, 16, 16) and list(failed) == ["bad.jpg"]
    assert json.loads(cache.meta_path.read_text())["names"] == ["bad.jpg", "good.jpg"]


def test_a_cache_records_why_each_image_failed_in_words_the_same_each_build(tmp_path):
    """Pillow's text named a dataset row's in-memory copy by its address (`<_io.BytesIO object at 0x...>`), so two
    builds of one cache wrote other metadata; it is now the words caption and explain use, by file."""
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    (tmp_path / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (10, 10)).save(tmp_path / "good.jpg")
    rows = {"row_bad": StoredImage(lambda: b"nope", "1"), "row_cut": StoredImage(lambda: b"\xff\xd8\xff\xe0", "1")}
    images = [tmp_path / "bad.jpg", tmp_path / "empty.jpg", tmp_path / "good.jpg", *rows.values()]
    names = ["bad.jpg", "empty.jpg", "good.jpg", *rows]
    written = []
    for build in ("first", "second"):
        cache = ImageCache(tmp_path / build, images, 16, names)
        cache.build(show_progress=False)
        written.append(json.loads(cache.meta_path.read_text()))
    assert written[0]["failed"] == {"bad.jpg": "not a picture file", "empty.jpg": "empty file (0 bytes)",
                                    "row_bad": "not a picture file", "row_cut": "damaged or cut short"}
    assert written[0] == written[1]


def test_a_cache_build_or_a_run_reading_the_cache_removes_the_temp_arrays_that_killed_builds_left(tmp_path, caplog):
    """Each is the size of a whole cache (a 64 px COCO: ~1.5 GB); a killed build holds no lock on its own."""
    Image.new("RGB", (10, 10)).save(tmp_path / "good.jpg")
    (tmp_path / "c").mkdir()
    left = tmp_path / "c" / ".images_0123456789abcdef.k1ll3d_x.npy"  # as a build killed by SIGKILL leaves it
    left.write_bytes(b"half an array")
    kept = tmp_path / "c" / ".images.notes.npy"  # not a temp array's name
    kept.write_bytes(b"")
    cache = ImageCache(tmp_path / "c", [tmp_path / "good.jpg"], 16)
    with caplog.at_level(logging.INFO, logger="supra.data.image_cache"):
        cache.ensure(show_progress=False)
    assert not left.exists() and kept.exists() and cache.is_valid()
    assert f"removed 1 temp file that killed cache builds left in {tmp_path / 'c'}: {left.name}" in caplog.messages
    # a run that finds the cache valid clears them too (builds of other file lists, killed)
    other = tmp_path / "c" / ".images_0123456789abcdef.k1ll3d_y.npy"
    left.write_bytes(b"half an array")
    other.write_bytes(b"half an array")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="supra.data.image_cache"):
        cache.ensure(show_progress=False)
    assert not left.exists() and not other.exists() and kept.exists() and cache.is_valid()
    assert (f"removed 2 temp files that killed cache builds left in {tmp_path / 'c'}: {left.name}, {other.name}"
            in caplog.messages)


def test_a_cache_that_finds_no_room_is_one_line_naming_its_folder_not_a_bus_error(tmp_path, monkeypatch):
    """The array is written through a memory map, whose pages find room only as they are written: on a full disk
    that was a SIGBUS (no message). Its room is taken before (posix_fallocate), so a full disk is an error there."""
    Image.new("RGB", (10, 10)).save(tmp_path / "good.jpg")
    folder = tmp_path / "c"
    message = (rf"^cannot write to the decoded-image cache {folder} \((No space left on device|File too large)\): "
               r"free space there, or set data\.cache_dir to a folder with room$")

    def full_disk(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as full:
        full.setattr(os, "posix_fallocate", full_disk)
        with pytest.raises(SupraUserError, match=message):
            ImageCache(folder, [tmp_path / "good.jpg"], 64).ensure(show_progress=False)
    with file_size_limit(4096), pytest.raises(SupraUserError, match=message):  # ulimit -f: EFBIG
        ImageCache(folder, [tmp_path / "good.jpg"], 64).ensure(show_progress=False)
    assert list(folder.iterdir()) == []  # no temp array left


def test_clean_caption_drops_trailing_period_and_spaces():
    assert clean_caption("  A dog runs .  ", drop_final_stop=True) == "A dog runs"
    assert clean_caption("A dog  runs.", drop_final_stop=True) == "A dog runs"
    assert clean_caption(" a dog\n runs. ") == "a dog runs."  # folders keep their stops


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "holds no known Flickr8k layout"),
    ],
)
def test_missing_or_unknown_root_is_one_clear_error(tmp_path, setup, message):
    root = tmp_path / "flickr"
    setup(root)
    with pytest.raises(SupraUserError, match=message):
        read_flickr8k(root)


def test_a_split_without_usable_images_stops_with_the_summary(tmp_path):
    write_karpathy(tmp_path / "flickr")
    for name in names()["test"]:
        (tmp_path / "flickr" / "Images" / name).unlink()
    with pytest.raises(SupraUserError, match="test split has 0 usable images: flickr8k"):
        datamodule(tmp_path / "flickr", tmp_path)


def test_release_recipe_runs_end_to_end_on_a_flickr8k_copy(tmp_path):
    """`python train.py experiment=vlm_flickr8k trainer=cpu data.root=... trainer.max_epochs=1`, in process."""
    from supra.runner.training import train
    from tests.conftest import compose_config

    write_original(tmp_path / "flickr")
    cfg = compose_config("train", tmp_path / "run", [
        "experiment=vlm_flickr8k", "trainer=cpu", f"data.root={tmp_path / 'flickr'}", "trainer.max_epochs=1",
        "data.eval_batch_size=4", "data.num_workers=0", "data.show_progress=false", "callbacks.progress_bar=null",
    ])
    assert cfg.trainer.precision == "32-true" and cfg.model.optimizer.lr == 3e-4 and cfg.trainer.gradient_clip_val == 1.0
    _, metrics = train(cfg)
    assert {"val/CIDEr", "test/CIDEr", "test/METEOR"} <= set(metrics)
    results = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert results["n_images"] == 4 and "attr_acc" not in results
    assert (tmp_path / "run" / "splits" / "train.txt").is_file()


def test_fine_tuning_starts_from_a_release_folder_with_its_tokenizer(tmp_path, trained_run, caplog):
    from supra.artifacts.captioner_release import export_release, load_release
    from supra.runner.training import train
    from supra.tokens.caption_bpe import CaptionTokenizer
    from tests.conftest import compose_config

    caplog.set_level(logging.INFO, logger="supra.runner.components")
    release = export_release(trained_run / "checkpoints" / "best.ckpt", tmp_path / "release")
    write_karpathy(tmp_path / "flickr")
    cfg = compose_config("train", tmp_path / "run", [
        "experiment=vlm_flickr8k", "trainer=cpu", f"data.root={tmp_path / 'flickr'}", "trainer.max_steps=1",
        "trainer.max_epochs=1", f"model.init_from={release}", "train=false", "test=true",
        "data.eval_batch_size=4", "data.num_workers=0", "data.show_progress=false", "callbacks.progress_bar=null",
    ])
    train(cfg)
    assert (tmp_path / "run" / "tokenizer.json").read_text() == (release / "tokenizer.json").read_text()
    assert (tmp_path / "run" / "metrics.json").is_file()
    ids = CaptionTokenizer.from_file(release / "tokenizer.json").vocab_size
    assert (f"model.init_from={release}: the run starts from that captioner release's weights and tokenizer "
            f"({ids} ids)") in caplog.text  # said where the run starts: it trains no tokenizer to say instead
    released, _, _ = load_release(release)
    task = instantiate(cfg.model)
    for name, tensor in released.state_dict().items():
        assert torch.equal(task.net.state_dict()[name], tensor), name


def test_a_fine_tuned_run_resumes_from_its_checkpoint_without_the_release(tmp_path, trained_run, caplog):
    import shutil

    from supra.artifacts.captioner_release import export_release
    from supra.runner.training import train
    from tests.conftest import compose_config

    release = export_release(trained_run / "checkpoints" / "best.ckpt", tmp_path / "release")
    write_karpathy(tmp_path / "flickr")

    def run(name: str, steps: int, *more: str) -> None:
        train(compose_config("train", tmp_path / name, [
            "experiment=vlm_flickr8k", "trainer=cpu", f"data.root={tmp_path / 'flickr'}", f"trainer.max_steps={steps}",
            f"model.init_from={release}", "test=false", "+trainer.limit_val_batches=0", "data.batch_size=4",
            "data.num_workers=0", "data.show_progress=false", "callbacks.progress_bar=null", *more]))

    run("first", 1)
    shutil.rmtree(release)  # the checkpoint holds the weights and the tokenizer: the release is not read again
    run("resumed", 2, f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}")
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    assert (tmp_path / "resumed" / "tokenizer.json").read_text() == (tmp_path / "first" / "tokenizer.json").read_text()
    # another init_from when resuming changes nothing, and is said
    run("again", 3, f"ckpt_path={tmp_path / 'resumed' / 'checkpoints' / 'last.ckpt'}", "model.init_from=elsewhere")
    assert f"with model.init_from=elsewhere (was {release}): not used: the checkpoint's weights go on" in caplog.text


@pytest.mark.parametrize("layout", ["original", "kaggle", "karpathy"])
def test_each_image_is_named_by_its_own_file_in_every_layout(tmp_path, layout):
    root = tmp_path / "flickr"
    {"original": write_original, "kaggle": write_kaggle, "karpathy": write_karpathy}[layout](root)
    dm = datamodule(root, tmp_path)
    for split in ("train", "val", "test"):
        records = dm.image_records(split)
        assert records and len(records) == len(dm.loaded(split)), split  # an empty split would check nothing below
        for record in records:  # the file alone, without the split lists, finds the image
            assert (root / record["file"]).is_file() and record["file"].endswith("/" + record["image_id"])


def test_predictions_of_a_run_name_their_image_files(tmp_path):
    from supra.runner.training import train
    from tests.conftest import compose_config

    write_karpathy(tmp_path / "flickr")
    train(compose_config("train", tmp_path / "run", [
        "experiment=vlm_flickr8k", "trainer=cpu", f"data.root={tmp_path / 'flickr'}", "trainer.max_steps=1",
        "trainer.max_epochs=1", "data.eval_batch_size=4", "data.num_workers=0",
        "data.show_progress=false", "callbacks.progress_bar=null", "model.test_metrics=[Bleu]",
    ]))
    predictions = json.loads((tmp_path / "run" / "predictions.json").read_text())
    assert sorted(p["image_id"] for p in predictions) == sorted(names()["test"])
    assert all((tmp_path / "flickr" / p["file"]).is_file() and isinstance(p["caption"], str) for p in predictions)


def test_evaluating_a_release_folder_with_data_root_scores_flickr8k_there(tmp_path, trained_run, capsys):
    from supra.artifacts.captioner_release import export_release
    from supra.runner.evaluation import data_for_release, evaluate
    from tests.conftest import compose_config

    release = export_release(trained_run / "checkpoints" / "best.ckpt", tmp_path / "release")
    write_karpathy(tmp_path / "flickr")
    # the command line as evaluate.py hands it to Hydra, scored in process (a subprocess would start METEOR's Java
    # again)
    argv = data_for_release([f"ckpt={release}", f"data.root={tmp_path / 'flickr'}"])
    assert "scoring data=flickr8k at data.root" in capsys.readouterr().err
    evaluate(compose_config("eval", tmp_path / "eval", argv))
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert sorted(p["image_id"] for p in predictions) == sorted(names()["test"])
