"""a2a_nano's data: sequences per task and their length limit, the task mixture and its weights, the
VQ-VAE code cache (built once, reused, never needed per step) and the vocabulary trained at setup."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from supra.artifacts.checkpoints import load_vqvae
from supra.data.a2a.mixture import A2AMixtureDataModule
from supra.data.images import to_unit_range
from supra.data.media.shapes_images import ShapesImagesDataModule
from supra.models.vqvae import VQVAE
from supra.runner.components import stage1_vqvae
from supra.tokens.a2a_layout import TokenLayout
from supra.tokens.a2a_sequences import build_sequence, check_tasks, frames_that_fit, prompt_length
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.errors import SupraUserError
from tests.conftest import first_train_batches, write_vqvae_checkpoint

LAYOUT = TokenLayout(text_size=10, num_codes=256)
T, TE, IM, IE, V, VE, F = range(10, 17)  # the control ids after 10 text ids
C = 17  # the first code id


def source_configs(num_train: int = 24, clips: int = 8, frames: int = 3) -> dict:
    return {
        "shapes": {"_target_": "supra.data.media.shapes_images.ShapesImagesDataModule", "num_train": num_train,
                   "num_val": 6, "num_test": 6, "image_size": 64},
        "shapes_video": {"_target_": "supra.data.media.shapes_video.ShapesVideoDataModule", "num_train": clips,
                         "num_val": 4, "num_test": 4, "frames": frames, "image_size": 64},
    }


def mixture(tmp_path: Path, vqvae_ckpt: Path | None, **overrides) -> A2AMixtureDataModule:
    """The DataModule as the runner builds it: the VQ-VAE loaded from its checkpoint and handed over."""
    kwargs = {"sources": source_configs(), "tasks": {"text": 1, "text2image": 1, "image2text": 1, "video": 1, "text2video": 1},
              "vqvae": load_vqvae(vqvae_ckpt)[0] if vqvae_ckpt else None, "cache_dir": str(tmp_path / "cache"),
              "batch_size": 8, "eval_batch_size": 5, "text_vocab_size": 300, **overrides}
    return A2AMixtureDataModule(**kwargs)


# the media fixture's few captions all fall in train: codes tests score no split (else refused at setup)
NOTHING_SCORED = {"val_items": 0, "test_items": 0}


@pytest.fixture(scope="module")
def ready(tmp_path_factory, vqvae_ckpt) -> A2AMixtureDataModule:
    datamodule = mixture(tmp_path_factory.mktemp("mix"), vqvae_ckpt)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


# -- sequences --------------------------------------------------------------------------------------

def test_each_task_lays_out_its_sequence_as_the_card_says():
    codes = torch.arange(4).view(2, 2)
    clip = torch.arange(8).view(2, 2, 2)
    caption = [3, 4]
    assert build_sequence("text", LAYOUT, caption) == [T, 3, 4, TE]
    assert build_sequence("text2image", LAYOUT, caption, codes) == [T, 3, 4, TE, IM, C, C + 1, C + 2, C + 3, IE]
    assert build_sequence("image2text", LAYOUT, caption, codes) == [IM, C, C + 1, C + 2, C + 3, IE, T, 3, 4, TE]
    assert build_sequence("video", LAYOUT, None, clip) == [V, F, C, C + 1, C + 2, C + 3, F, C + 4, C + 5, C + 6, C + 7, VE]
    assert build_sequence("text2video", LAYOUT, caption, clip)[:5] == [T, 3, 4, TE, V]


def test_prompts_end_where_generation_starts():
    seq = build_sequence("text2image", LAYOUT, [3, 4], torch.zeros(2, 2, dtype=torch.long))
    assert seq[: prompt_length("text2image", seq, LAYOUT)] == [T, 3, 4, TE, IM]
    seq = build_sequence("image2text", LAYOUT, [3], torch.zeros(2, 2, dtype=torch.long))
    assert seq[: prompt_length("image2text", seq, LAYOUT)][-2:] == [IE, T]
    seq = build_sequence("video", LAYOUT, None, torch.zeros(3, 2, 2, dtype=torch.long))
    assert seq[: prompt_length("video", seq, LAYOUT, given_frames=1)] == [V, F, C, C, C, C, F]


def test_a_sequence_longer_than_the_context_is_refused_naming_the_sample():
    five = torch.zeros(5, 8, 8, dtype=torch.long)
    assert len(build_sequence("video", LAYOUT, None, five)) == 327  # 5 frames of 64 codes fit in 384
    with pytest.raises(SupraUserError, match=r"clip_7: its video sequence is 392 tokens, 8 over the context of 384"):
        build_sequence("video", LAYOUT, None, torch.zeros(6, 8, 8, dtype=torch.long), name="clip_7")
    with pytest.raises(SupraUserError, match="cat.png: its text2image sequence is 386 tokens, 2 over"):
        build_sequence("text2image", LAYOUT, [1] * 318, torch.zeros(8, 8, dtype=torch.long), name="cat.png")


def test_frames_that_fit_per_image_size():
    assert {size: frames_that_fit(size) for size in (32, 64, 128, 256)} == {32: 22, 64: 5, 128: 1, 256: 0}
    assert frames_that_fit(64, prefix=14) == 5 and frames_that_fit(64, prefix=60) == 4  # a caption before the clip
    assert 2 + 4 * 65 <= 384  # the card's --frames 4 at 64x64
    with pytest.raises(SupraUserError, match="multiple of 8"):
        frames_that_fit(60)


# -- the mixture --------------------------------------------------------------------------------------

def test_batches_are_padded_ids_and_next_token_targets_with_a_task_per_row(ready):
    batch = next(iter(ready.train_dataloader()))
    ids, targets = batch["ids"], batch["targets"]
    assert ids.shape == targets.shape and ids.dtype == torch.long and len(batch["tasks"]) == 8
    real = targets != -100
    assert torch.equal(ids[:, 1:][real[:, :-1]], targets[:, :-1][real[:, :-1]])  # targets are the next ids
    lengths = real.sum(1)
    for row, length in enumerate(lengths.tolist()):
        assert not real[row, length:].any()  # -100 only after the sequence's end
    assert set(batch["tasks"]) == {batch["task"]}  # by_task batching: one task per batch


def test_tasks_are_drawn_by_their_weights_and_a_zero_weight_is_never_drawn(tmp_path, vqvae_ckpt, ready):
    weighted = mixture(tmp_path, vqvae_ckpt, tasks={"text2image": 3, "image2text": 1, "video": 0},
                       batches_per_epoch=400, batch_size=2, cache_dir=ready.cache_dir)
    weighted.setup("fit")
    counts = Counter(b["task"] for b in weighted.train_dataset())
    assert set(counts) == {"text2image", "image2text"}
    assert abs(counts["text2image"] / 400 - 0.75) < 0.07
    rows = mixture(tmp_path, vqvae_ckpt, tasks={"text": 1, "video": 1}, batching="mixed", batches_per_epoch=50,
                   batch_size=8, cache_dir=ready.cache_dir)
    rows.setup("fit")
    row_counts = Counter(t for b in rows.train_dataset() for t in b["tasks"])
    assert abs(row_counts["text"] / 400 - 0.5) < 0.1 and set(row_counts) == {"text", "video"}


def test_caption_dropout_empties_that_share_of_text2image_captions_only(tmp_path, vqvae_ckpt, ready):
    def first_tokens(dropout: float) -> Counter:
        data = mixture(tmp_path, vqvae_ckpt, tasks={"text2image": 1, "image2text": 1}, caption_dropout=dropout,
                       batches_per_epoch=100, batch_size=8, cache_dir=ready.cache_dir)
        data.setup("fit")
        text_open, text_close = data.layout.text_open, data.layout.text_close
        return Counter((task, ids[0] == text_open and ids[1] == text_close)
                       for b in data.train_dataset() for task, ids in zip(b["tasks"], b["ids"].tolist(), strict=True))

    counts = first_tokens(0.25)
    empty_share = counts["text2image", True] / (counts["text2image", True] + counts["text2image", False])
    assert abs(empty_share - 0.25) < 0.08
    assert counts["image2text", True] == 0
    assert first_tokens(0.0)["text2image", True] == 0
    with pytest.raises(SupraUserError, match="data.caption_dropout=1"):
        mixture(tmp_path, vqvae_ckpt, caption_dropout=1)


def test_codes_are_the_vqvaes_and_the_cache_is_built_once_and_reused(tmp_path, vqvae_ckpt, ready):
    assert ready.codes.builds == 2  # one folder per source
    folders = sorted(p for p in ready.cache_dir.iterdir() if p.is_dir())
    assert [p.name.split("-")[0] for p in folders] == ["shapes", "shapes_video"]
    meta_times = [(p / "meta.json").stat().st_mtime_ns for p in folders]
    again = mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir)
    again.prepare_data()
    again.setup("fit")
    assert again.codes.builds == 0 and [(p / "meta.json").stat().st_mtime_ns for p in folders] == meta_times
    shapes = again.data["train"][0]
    net = VQVAE(num_codes=256, code_dim=64, hidden=(32, 64))
    net.load_state_dict({k.removeprefix("net."): v for k, v in torch.load(vqvae_ckpt)["state_dict"].items()})
    pixels = ShapesImagesDataModule(num_train=24, num_val=6, num_test=6).items("train").pixels
    assert torch.equal(shapes.codes, net.eval().encode(to_unit_range(pixels)))
    assert shapes.objects is not None and len(shapes.objects) == 24  # the scenes' truth, for the judge
    # another config of one source is another key for it alone: one new folder, the others reused
    other = mixture(tmp_path, vqvae_ckpt, sources=source_configs(num_train=30), cache_dir=ready.cache_dir)
    other.setup("fit")
    assert other.codes.builds == 1 and len([p for p in ready.cache_dir.iterdir() if p.is_dir()]) == 3
    # and another VQ-VAE is another key for every source
    retrained = mixture(tmp_path, write_vqvae_checkpoint(tmp_path / "other.ckpt", seed=1), cache_dir=ready.cache_dir)
    retrained.setup("fit")
    assert retrained.codes.builds == 2


def test_a_full_disk_as_the_codes_are_cached_is_one_line_naming_the_mixtures_cache_and_leaves_no_half_folder(
        tmp_path, vqvae_ckpt):
    from supra.data.a2a.sources import SourceCodes
    from tests.conftest import file_size_limit

    cache, vqvae = tmp_path / "cache", load_vqvae(vqvae_ckpt)[0]
    with file_size_limit(1024), pytest.raises(SupraUserError) as raised:  # ulimit -f: as a full disk
        SourceCodes({"shapes": source_configs()["shapes"]}, vqvae, 256, cache).all()
    assert str(raised.value) == (f"cannot write to the a2a codes cache {cache} (File too large): free space there, "
                                 "or set data.cache_dir to a folder with room")  # the mixture's, not data.sources.shapes'
    assert [p.name for p in cache.iterdir()] == []


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path, *makers: str) -> None:
    """`folder` as a read-only mount shows it to tempfile's `makers` (NamedTemporaryFile, mkdtemp): EROFS for anything
    made in it. Tests run as root, whom chmod does not stop."""
    import errno
    import os
    import tempfile

    def refusing(made):
        def refused(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, "tmpabc"))
            return made(*args, dir=dir, **kwargs)
        return refused

    for maker in makers:
        monkeypatch.setattr(tempfile, maker, refusing(getattr(tempfile, maker)))


def test_a_read_only_codes_cache_is_one_line_before_any_source_is_encoded_and_one_holding_the_codes_is_read(
        tmp_path, vqvae_ckpt, monkeypatch):
    """A read-only data.cache_dir (/kaggle/input) was a traceback of mkdtemp, and only after every source had been
    decoded and encoded: minutes for a large media folder."""
    from supra.data.a2a.sources import SourceCodes

    cache, vqvae, shapes = tmp_path / "cache", load_vqvae(vqvae_ckpt)[0], {"shapes": source_configs()["shapes"]}
    said = (f"cannot write to the a2a codes cache {cache} (Read-only file system): set data.cache_dir to a writable "
            "folder")
    cache.mkdir()
    with monkeypatch.context() as patched, pytest.raises(SupraUserError) as raised:
        read_only(patched, cache, "NamedTemporaryFile", "mkdtemp")
        codes = SourceCodes(shapes, vqvae, 256, cache)
        codes.all()
    assert str(raised.value) == said and codes.builds == 0  # nothing encoded
    # made read-only between that check and the write: the same line, once the work is done, and nothing left
    with monkeypatch.context() as patched, pytest.raises(SupraUserError) as raised:
        read_only(patched, cache, "mkdtemp")
        codes = SourceCodes(shapes, vqvae, 256, cache)
        codes.all()
    assert str(raised.value) == said and codes.builds == 1 and list(cache.iterdir()) == []
    SourceCodes(shapes, vqvae, 256, cache).all()
    with monkeypatch.context() as patched:  # a read-only folder that holds the codes: read, as before
        read_only(patched, cache, "NamedTemporaryFile", "mkdtemp")
        codes = SourceCodes(shapes, vqvae, 256, cache)
        codes.all()
    assert codes.builds == 0


def test_the_temp_folders_of_killed_code_cache_builds_are_removed_and_one_at_work_is_kept(vqvae_ckpt, ready, capsys):
    """A build killed (SIGKILL) as it filled its folder left it (a source's codes and pixels) in the cache for good."""
    from supra.data.a2a.sources import SourceCodes
    from supra.utils.files import atomic_dir
    from tests.conftest import killed_in_atomic_dir

    cache = ready.cache_dir
    killed = killed_in_atomic_dir(cache / "shapes-0123456789abcdef", "codes_train.npy")  # another key's, as any
    with atomic_dir(cache / "shapes_video-0123456789abcdef", replace=False) as at_work:  # another run's build now
        codes = SourceCodes(source_configs(), load_vqvae(vqvae_ckpt)[0], 256, cache)
        codes.all()
        assert codes.builds == 0 and not killed.exists() and at_work.is_dir()
    assert f"removed 1 temp folder that killed a2a code-cache builds left in {cache}: {killed.name}" in (
        capsys.readouterr().out)


def test_a_damaged_code_cache_is_said_in_one_warning_encoded_again_and_replaced(tmp_path, vqvae_ckpt, caplog):
    """A cache folder copied in part (a file cut short or missing) is a miss, as a damaged image cache is: not a
    numpy or JSON traceback at every run until someone finds the folder to delete."""
    import re

    from supra.data.a2a.sources import SourceCodes

    cache, vqvae, shapes = tmp_path / "cache", load_vqvae(vqvae_ckpt)[0], {"shapes": source_configs()["shapes"]}
    written = SourceCodes(shapes, vqvae, 256, cache).all()["shapes"]
    folder = next(cache.iterdir())
    damages = {"codes_train.npy": lambda path: path.write_bytes(path.read_bytes()[:100]),  # a copy cut short
               "items_val.json": lambda path: path.unlink(),
               "objects_test.json": lambda path: path.write_text('[["red", "circle"]')}
    for file_name, damage in damages.items():
        damage(folder / file_name)
        caplog.clear()
        codes = SourceCodes(shapes, vqvae, 256, cache)
        read = codes.all()["shapes"]
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and re.fullmatch(
            re.escape(f"the a2a codes cache {folder} is damaged ({file_name}: ") + ".+"
            + re.escape("): the codes of shapes are encoded again and replace it"), warnings[0]), warnings
        assert codes.builds == 1
        assert all(torch.equal(read[s].codes, written[s].codes) and read[s].names == written[s].names for s in read)
        again = SourceCodes(shapes, vqvae, 256, cache)  # replaced where it was: read from it once more
        again.all()
        assert again.builds == 0 and [p.name for p in cache.iterdir()] == [folder.name]


def test_a_media_folder_changed_on_disk_is_encoded_anew_and_one_unchanged_is_read_from_the_cache(tmp_path, vqvae_ckpt):
    import json

    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}

    def write_folder(names: list[str]) -> None:
        for name in names:
            Image.new("RGB", (64, 64), colours[name]).save(root / f"{name}.png")
        (root / "captions.jsonl").write_text("".join(json.dumps({"file": f"{n}.png", "caption": f"all {n}"}) + "\n"
                                                     for n in names))

    def captions_read() -> tuple[int, dict[str, list[str]]]:
        data = mixture(tmp_path, vqvae_ckpt, sources={"photos": {
            "_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(root), "image_size": 64,
            "val_fraction": 0.25, "test_fraction": 0.25, "show_progress": False}},
            tasks={"text2image": 1, "image2text": 1})
        data.setup("fit")
        parts = [data.data[split][0] for split in ("train", "val", "test")]
        return data.codes.builds, {f: c for part in parts for f, c in zip(part.files, part.captions, strict=True)}

    write_folder(["red", "green", "blue", "yellow"])
    assert captions_read() == (1, {f"{n}.png": [f"all {n}"] for n in colours})
    assert captions_read()[0] == 0  # unchanged: read from the cache
    (root / "captions.jsonl").write_text((root / "captions.jsonl").read_text().replace("all green", "all lime"))
    builds, read = captions_read()  # a caption changed, not a picture
    assert builds == 1 and read["green.png"] == ["all lime"]
    (root / "red.png").unlink()
    write_folder(["green", "blue", "yellow"])  # a picture gone, its caption with it
    builds, read = captions_read()
    assert builds == 1 and read == {"green.png": ["all green"], "blue.png": ["all blue"], "yellow.png": ["all yellow"]}
    root.rename(tmp_path / "moved")  # scored where only the codes are: the latest cached for this config
    assert captions_read() == (0, read)
    root.with_name("elsewhere").mkdir()  # a source's own error names its option as the mixture has it
    with pytest.raises(SupraUserError, match=r"^data.sources.photos.root=.*elsewhere holds no images or GIFs"):
        mixture(tmp_path, vqvae_ckpt, cache_dir=str(tmp_path / "no_cache"), tasks={"image2text": 1}, sources={
            "photos": {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(root.with_name("elsewhere"))}}
        ).setup("fit")


def test_a_media_folder_read_from_a_relative_root_and_from_its_absolute_one_shares_its_cached_codes(
        tmp_path, vqvae_ckpt, monkeypatch):
    """train.py reads data.root as typed (photos) and records it absolute, which evaluate.py reads: the codes were
    keyed on the root as spelled, and every item was encoded again once more by the evaluation."""
    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    for name, colour in {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "grey": (99, 99, 99)}.items():
        Image.new("RGB", (64, 64), colour).save(root / f"{name}.png")
        (root / f"{name}.txt").write_text(f"all {name}\n")
    monkeypatch.chdir(tmp_path)

    def builds_reading(spelled: str) -> int:
        data = mixture(tmp_path, vqvae_ckpt, tasks={"image2text": 1}, **NOTHING_SCORED, sources={"photos": {
            "_target_": "supra.data.media.folder.MediaFolderDataModule", "root": spelled, "image_size": 64,
            "show_progress": False}})
        data.setup("fit")
        return data.codes.builds

    assert builds_reading("photos") == 1  # as train.py reads it
    assert builds_reading(str(root)) == 0  # as the run recorded it, evaluate.py reads it
    assert builds_reading("./photos/") == 0


def test_a_procedural_sources_cache_key_is_its_config_alone_and_no_cache_reads_no_stamp(tmp_path, vqvae_ckpt,
                                                                                       monkeypatch):
    import hashlib
    import json

    from supra.data.a2a.sources import CACHE_FORMAT, weights_sha256

    data = mixture(tmp_path, vqvae_ckpt)
    data.setup("fit")
    vqvae_hash = weights_sha256(data.vqvae)
    for name, config in source_configs().items():  # the key codes cached before stamps existed were under
        key = {"format": CACHE_FORMAT, "vqvae_sha256": vqvae_hash, "data": config}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        assert (data.cache_dir / f"{name}-{digest}" / "meta.json").is_file()

    def no_walk(self) -> str:
        raise AssertionError("stamped without a cache")

    from supra.data.media.datamodule import MediaDataModule

    monkeypatch.setattr(MediaDataModule, "inputs_stamp", no_walk)
    uncached = mixture(tmp_path, vqvae_ckpt, cache_dir=None)
    uncached.setup("fit")
    assert uncached.codes.builds == 2


def test_options_that_only_serve_a_sources_items_leave_its_cached_codes_in_use(tmp_path, vqvae_ckpt):
    from tests.media_fixtures import write_media_folder

    write_media_folder(tmp_path / "media")
    folder = {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(tmp_path / "media"),
              "image_size": 64, "val_fraction": 0.3, "test_fraction": 0.3}
    serving = {"split": "test", "batch_size": 64, "eval_batch_size": 256, "num_workers": 0, "pin_memory": False,
               "show_progress": False}
    served_otherwise = {"split": "val", "batch_size": 8, "eval_batch_size": 3, "num_workers": 4, "pin_memory": True,
                        "show_progress": True}

    def codes(cache_dir: Path | None, **options) -> tuple[int, dict[str, torch.Tensor]]:
        data = mixture(tmp_path, vqvae_ckpt, sources={"media": {**folder, **options}}, tasks={"image2text": 1},
                       cache_dir=str(cache_dir) if cache_dir else None, **NOTHING_SCORED)
        data.setup("fit")
        return data.codes.builds, {split: data.data[split][0].codes for split in data.data}

    built, cached = codes(tmp_path / "cache", **serving)
    assert built == 1
    builds, read = codes(tmp_path / "cache", **served_otherwise)  # more loader workers: no new encoding
    assert builds == 0 and all(torch.equal(read[s], cached[s]) for s in cached)
    _, fresh = codes(None, **served_otherwise)  # and no other codes: encoded anew, they are the cached ones
    assert all(torch.equal(fresh[s], cached[s]) for s in cached)
    assert codes(tmp_path / "cache", **serving, resize="pad")[0] == 1  # an option of what the items are: new codes


def test_codes_cached_under_an_older_key_are_read_where_still_right_and_encoded_again_where_decoded_before(
        tmp_path, vqvae_ckpt):
    """Codes were once cached under the whole config's key (serving options too): a procedural source's are
    read, not encoded again; a folder's were decoded before DECODE_VERSION 2 (a GIF still's first frame, a
    PNG's colour key over white), so reading them would train on other pixels than a fresh run."""
    import hashlib
    import json

    from supra.data.a2a.sources import CACHE_FORMAT, weights_sha256
    from supra.data.media.folder import MediaFolderDataModule
    from tests.media_fixtures import write_media_folder

    def cached_under_the_whole_config(config: dict, inputs: str | None) -> int:
        data = mixture(tmp_path, vqvae_ckpt, sources={"src": config}, tasks={"image2text": 1}, **NOTHING_SCORED)
        data.setup("fit")
        key = {"format": CACHE_FORMAT, "vqvae_sha256": weights_sha256(data.vqvae), "data": config,
               **({"inputs": inputs} if inputs else {})}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        (folder,) = (p for p in data.cache_dir.iterdir() if p.name.startswith("src-"))
        folder.rename(folder.with_name(f"src-{digest}"))
        again = mixture(tmp_path, vqvae_ckpt, sources={"src": config}, tasks={"image2text": 1}, **NOTHING_SCORED)
        again.setup("fit")
        assert torch.equal(again.data["train"][0].codes, data.data["train"][0].codes)
        shutil.rmtree(data.cache_dir)
        return again.codes.builds

    shapes = {**source_configs()["shapes"], "num_workers": 2}
    assert cached_under_the_whole_config(shapes, None) == 0
    write_media_folder(tmp_path / "media")
    folder = {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(tmp_path / "media"),
              "image_size": 64, "val_fraction": 0.3, "test_fraction": 0.3, "num_workers": 2, "show_progress": False}
    stamp = MediaFolderDataModule(**{k: v for k, v in folder.items() if k != "_target_"}).inputs_stamp()
    assert cached_under_the_whole_config(folder, stamp) == 1


def test_shard_codes_cached_when_two_folders_samples_shared_names_are_encoded_again(tmp_path, vqvae_ckpt):
    import hashlib
    import json

    from supra.data.a2a.sources import CACHE_FORMAT, weights_sha256
    from supra.data.media.shard_images import ShardImagesMediaDataModule
    from tests.caption_source_fixtures import write_img2dataset_shards

    for folder in ("train", "a", "b"):
        write_img2dataset_shards(tmp_path / folder, shards=1, per_shard=3)  # a and b: the same keys, 3 images each
    shards = {"train_shards": f"{tmp_path}/train/00000.tar", "val_shards": f"{tmp_path}/a/00000.tar",
              "test_shards": f"{tmp_path}/a/00000.tar::{tmp_path}/b/00000.tar", "image_size": 64}
    config = {"_target_": "supra.data.media.shard_images.ShardImagesMediaDataModule", **shards}

    def test_keys() -> tuple[int, list[str]]:
        data = mixture(tmp_path, vqvae_ckpt, sources={"web": config}, tasks={"image2text": 1})
        data.setup("test")
        return data.codes.builds, [key for batch in data.eval_batches("test") for key in batch["keys"]]

    builds, keys = test_keys()
    assert builds == 1 and len(set(keys)) == 6 and keys[3] == "web/b/00000.tar/000000000"
    # the cache as it was written before shard samples were named by their folder: under the key of the
    # config and the shards' stamp alone, both folders' samples named 00000.tar/<key>
    vqvae = load_vqvae(vqvae_ckpt)[0]
    old_key = {"format": CACHE_FORMAT, "vqvae_sha256": weights_sha256(vqvae), "data": config,
               "inputs": ShardImagesMediaDataModule(**shards).inputs_stamp()}
    digest = hashlib.sha256(json.dumps(old_key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    (cached,) = (p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    cached = cached.rename(cached.with_name(f"web-{digest}"))
    items = json.loads((cached / "items_test.json").read_text())
    old_names = [name.split("/", 1)[1] for name in items["names"]]  # a/00000.tar/... -> 00000.tar/...
    (cached / "items_test.json").write_text(json.dumps({**items, "names": old_names, "files": old_names}))
    # read, they would score 3 of the 6 test images (one of each pair of keys): encoded anew instead
    builds, keys = test_keys()
    assert builds == 1 and len(set(keys)) == 6


def test_a_shard_source_missing_a_shard_is_named_by_its_mixture_option_before_any_source_is_decoded(
        tmp_path, vqvae_ckpt):
    """With several shard sources, `test_shards=...` did not say which; and the train and val shards were
    decoded (minutes, for big ones) before a test shard's typo was found."""
    from tests.caption_source_fixtures import write_img2dataset_shards

    write_img2dataset_shards(tmp_path / "web", shards=2, per_shard=3)
    typo = f"{tmp_path}/web/0000{{1..2}}.tar"  # one shard too many
    web = {"_target_": "supra.data.media.shard_images.ShardImagesMediaDataModule", "image_size": 64,
           "train_shards": f"{tmp_path}/web/00000.tar", "val_shards": f"{tmp_path}/web/00001.tar", "test_shards": typo}
    data = mixture(tmp_path, vqvae_ckpt, sources={"shapes": source_configs()["shapes"], "web": web},
                   tasks={"image2text": 1})
    with pytest.raises(SupraUserError) as raised:
        data.prepare_data()
    assert str(raised.value) == (f"data.sources.web.test_shards={typo!r}: 1 of 2 shards are not there (e.g. "
                                 f"{tmp_path}/web/00002.tar): check the path and the brace range")
    assert not (tmp_path / "cache").exists() or not any(p.is_dir() for p in (tmp_path / "cache").iterdir())


@pytest.mark.parametrize(("test_shards", "says"), [
    ([], "=[] names no shard: give e.g. shards/{00000..00009}.tar"),
    ("", "='' names no shard"),  # not "1 of 1 shards are not there (e.g. )"
    ("web/{00000..00001.tar", "='web/{00000..00001.tar': Unbalanced braces: 'web/{00000..00001.tar': close each brace"),
])
def test_a_shard_source_whose_shards_name_none_is_named_by_its_mixture_option(tmp_path, vqvae_ckpt, test_shards, says):
    """The shards' expansion said `data shards '' name no shard` (or gave braceexpand's traceback) without
    saying which source of the mixture, nor which split, was meant."""
    from tests.caption_source_fixtures import write_img2dataset_shards

    write_img2dataset_shards(tmp_path / "web", shards=2, per_shard=3)
    web = {"_target_": "supra.data.media.shard_images.ShardImagesMediaDataModule", "image_size": 64,
           "train_shards": f"{tmp_path}/web/00000.tar", "val_shards": f"{tmp_path}/web/00001.tar",
           "test_shards": test_shards}
    data = mixture(tmp_path, vqvae_ckpt, sources={"shapes": source_configs()["shapes"], "web": web},
                   tasks={"image2text": 1})
    with pytest.raises(SupraUserError) as raised:
        data.prepare_data()
    assert str(raised.value).startswith(f"data.sources.web.test_shards{says}")


def test_a_shard_sources_val_or_test_shards_that_are_train_shards_are_said_once_as_data_shards_says_it(
        tmp_path, vqvae_ckpt, caplog):
    """Their scores are of images the fit trains on: the captioner's data=shards says so; the a2a shard source
    scored them without a word."""
    from tests.caption_source_fixtures import write_img2dataset_shards

    write_img2dataset_shards(tmp_path / "web", shards=3, per_shard=3)
    trained = f"{tmp_path}/web/00001.tar"
    web = {"_target_": "supra.data.media.shard_images.ShardImagesMediaDataModule", "image_size": 64,
           "train_shards": f"{tmp_path}/web/{{00000..00001}}.tar", "val_shards": f"{tmp_path}/web/00002.tar",
           "test_shards": trained}
    data = mixture(tmp_path, vqvae_ckpt, sources={"web": web}, tasks={"image2text": 1})
    data.prepare_data()
    data.setup("fit")
    assert [r.getMessage() for r in caplog.records if "shares" in r.getMessage()] == [
        f"data.sources.web.test_shards shares 1 of its 1 shard with data.sources.web.train_shards (e.g. {trained}): "
        "its scores are of images the fit trains on; name shards the train list leaves out to score unseen images"]


def test_shard_samples_sharing_an_id_img2dataset_copied_are_each_scored_and_codes_cached_merged_encoded_again(
        tmp_path, vqvae_ckpt, monkeypatch):
    """img2dataset's `id` column (a row per caption: 0, 0, 1, 1, 2, 2) named the items: image2text kept one item
    per id, and half the test images were never scored."""
    from supra.data.media.shard_images import ShardImagesMediaDataModule
    from tests.caption_source_fixtures import write_img2dataset_shards

    write_img2dataset_shards(tmp_path / "web", shards=1, per_shard=6, repeated_ids=True)
    tar = str(tmp_path / "web" / "00000.tar")
    config = {"_target_": "supra.data.media.shard_images.ShardImagesMediaDataModule", "train_shards": tar,
              "val_shards": tar, "test_shards": tar, "image_size": 64}

    def test_keys() -> tuple[int, list[str]]:
        data = mixture(tmp_path, vqvae_ckpt, sources={"web": config}, tasks={"image2text": 1})
        data.setup("test")
        return data.codes.builds, [key for batch in data.eval_batches("test") for key in batch["keys"]]

    with monkeypatch.context() as patch:  # cached as before: under items_version 2, named by the repeated ids
        patch.setattr(ShardImagesMediaDataModule, "items_version", 2)
        test_keys()
    for items in (tmp_path / "cache").glob("web-*/items_*.json"):
        held = json.loads(items.read_text())
        items.write_text(json.dumps({**held, "names": [str(i // 2) for i in range(len(held["names"]))]}))
    builds, keys = test_keys()
    assert builds == 1 and sorted(keys) == [f"web/00000.tar/00000{i:04d}" for i in range(6)]


def test_shards_read_through_a_pipe_command_are_encoded_again_when_a_file_it_reads_is_rewritten(tmp_path, vqvae_ckpt):
    """A `pipe:` shard was stamped by its command alone: codes and captions cached before its tar was
    rewritten were served after (a shard named by its path was encoded again)."""
    import io
    import tarfile

    from tests.caption_source_fixtures import write_img2dataset_shards

    write_img2dataset_shards(tmp_path / "web", shards=1, per_shard=4)
    tar = tmp_path / "web" / "00000.tar"
    piped = f"pipe:cat {tar}"
    config = {"_target_": "supra.data.media.shard_images.ShardImagesMediaDataModule", "train_shards": piped,
              "val_shards": piped, "test_shards": piped, "image_size": 64}

    def train_captions() -> tuple[int, list[list[str]]]:
        data = mixture(tmp_path, vqvae_ckpt, sources={"web": config}, tasks={"image2text": 1})
        data.setup("fit")
        return data.codes.builds, data.data["train"][0].captions

    builds, captions = train_captions()
    assert builds == 1 and captions[0] == ["photo 0 0 of a red bus"]
    assert train_captions()[0] == 0  # the same tar: the cached codes
    with tarfile.open(tar) as old:  # the tar written again, one caption edited
        members = [(m, old.extractfile(m).read()) for m in old.getmembers()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as new:
        for member, data in members:
            data = b"photo 0 0 of a blue bus" if member.name == "000000000.txt" else data
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))
    tar.write_bytes(buffer.getvalue())
    builds, captions = train_captions()
    assert builds == 1 and captions[0] == ["photo 0 0 of a blue bus"]


def test_codes_of_a_vqvae_with_more_codes_than_int16_holds_are_cached_and_read_back_whole(tmp_path):
    import numpy as np

    big = write_vqvae_checkpoint(tmp_path / "big.ckpt", num_codes=40_000)
    settings = {"sources": {"shapes": source_configs()["shapes"]}, "tasks": {"text2image": 1, "image2text": 1},
                "num_codes": 40_000}
    data = mixture(tmp_path, big, **settings)
    data.setup("fit")
    again = mixture(tmp_path, big, **settings)
    again.setup("fit")
    folder = next(p for p in data.cache_dir.iterdir() if p.is_dir())
    assert again.codes.builds == 0 and np.load(folder / "codes_train.npy").dtype == np.int32
    assert torch.equal(again.data["train"][0].codes, data.data["train"][0].codes)


def test_sources_of_different_picture_sizes_are_refused_before_any_is_encoded(tmp_path, vqvae_ckpt):
    sources = source_configs()
    sources["shapes_video"]["image_size"] = 32  # 4x4 codes beside the shapes' 8x8
    data = mixture(tmp_path, vqvae_ckpt, sources=sources)
    with pytest.raises(SupraUserError, match=r"different sizes: shapes 64 px, shapes_video 32 px; give every source "
                                             r"the same image_size"):
        data.setup("fit")
    assert data.codes.builds == 0  # before any source was encoded


def test_one_source_listed_twice_is_said_to_be_trained_and_scored_twice(tmp_path, vqvae_ckpt, ready, caplog):
    sources = source_configs()
    sources["again"] = dict(sources["shapes"])
    twice = mixture(tmp_path, vqvae_ckpt, sources=sources, cache_dir=ready.cache_dir)
    twice.prepare_data()
    twice.setup("fit")  # as Lightning calls them: said once, not by each
    assert caplog.text.count("data.sources.shapes and data.sources.again are one source (the same config): its "
                             "items are trained on twice as often and its val and test items scored twice") == 1
    caplog.clear()
    mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir).setup("fit")  # sources that differ: nothing said
    assert "are one source" not in caplog.text


def test_the_sources_warnings_are_left_to_rank_zero_under_ddp(tmp_path, vqvae_ckpt, ready, caplog, monkeypatch):
    """Every DDP rank builds the sources alike: their one-time warnings were printed once per rank."""
    sources = source_configs()
    sources["again"] = dict(sources["shapes"])
    monkeypatch.setattr("supra.data.a2a.sources.rank_and_world", lambda: (1, 2))  # this process as rank 1 of 2
    mixture(tmp_path, vqvae_ckpt, sources=sources, cache_dir=ready.cache_dir).setup("fit")
    assert "are one source" not in caplog.text


def test_training_batches_never_touch_the_vqvae(ready):
    vqvae = ready.vqvae
    ready.vqvae = ready.codes.vqvae = None  # any use of it would now fail
    try:
        batches = list(ready.train_dataset())
        assert len(batches) == math.ceil((24 + 8) / 8) and all(b["ids"].shape[0] == 8 for b in batches)
        assert ready.eval_batches("val")
    finally:
        ready.vqvae = ready.codes.vqvae = vqvae


def test_the_vocabulary_is_trained_on_train_captions_once_and_cached(tmp_path, vqvae_ckpt, ready):
    layout = ready.vocab.layout
    assert layout.num_codes == 256 and layout.vocab_size == layout.text_size + 7 + 256
    assert list(ready.cache_dir.glob("a2a_vocab_*.json"))
    again = mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir, vocab_path=str(tmp_path / "run" / "a2a_vocab.json"))
    again.setup("fit")
    assert again.vocab.to_json() == ready.vocab.to_json() and (tmp_path / "run" / "a2a_vocab.json").is_file()
    caption = ready.data["train"][0].captions[0][0]
    assert ready.vocab.decode_text(ready.vocab.encode_text(caption)) == caption


def test_gpt2_files_edited_in_place_give_a_new_vocabulary_not_the_cached_one(tmp_path, vqvae_ckpt, ready):
    from tests.test_a2a_vocab import write_tiny_gpt2_files

    (tmp_path / "gpt2").mkdir()
    write_tiny_gpt2_files(tmp_path / "gpt2")
    first = mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir, text_tokenizer=str(tmp_path / "gpt2"))
    first.setup("fit")
    merges = tmp_path / "gpt2" / "merges.txt"
    merges.write_text(merges.read_text().replace("Ġr ed\n", ""))  # " red" is no longer one token
    again = mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir, text_tokenizer=str(tmp_path / "gpt2"))
    again.setup("fit")
    assert len(first.vocab.encode_text(" red")) == 1 and len(again.vocab.encode_text(" red")) == 2


def test_evaluation_batches_carry_prompts_references_objects_and_truth(ready):
    batches = {b["task"]: b for b in ready.eval_batches("val")}
    assert set(batches) == {"text", "text2image", "image2text", "video", "text2video"}
    t2i = batches["text2image"]
    first = t2i["ids"][0, : t2i["prompt_lengths"][0]].tolist()
    assert first[-1] == ready.layout.image_open and first[0] == ready.layout.text_open
    assert len(t2i["references"][0]) == 5 and t2i["objects"][0] and t2i["codes"].shape[1:] == (8, 8)
    video = batches["video"]
    assert video["pixels"].shape == (4, 3, 3, 64, 64) and video["pixels"].dtype == torch.uint8


def lightning_gloo_mean(ranks: list[list[tuple[torch.Tensor, float | int]]]) -> float:
    """What Lightning makes of a loss logged with self.log(..., batch_size=w, sync_dist=True) over an epoch, each
    rank's (value, w) given: every rank sums value x w and, from torch.tensor(0), w (in w's own type); then each sum
    is averaged over the ranks in its own dtype, as fabric's _sync_ddp does on gloo (an int's mean truncated)."""
    totals, weights = [], []
    for logged in ranks:
        total, weight = torch.tensor(0.0), torch.tensor(0)
        for value, w in logged:
            total, weight = total + value * w, weight + w
        totals.append(total)
        weights.append(weight)

    def mean(tensors: list[torch.Tensor]) -> torch.Tensor:
        summed = sum(tensors)
        return summed / len(tensors) if torch.is_floating_point(summed) else summed.copy_(summed / len(tensors))

    return float(mean(totals) / mean(weights))


def test_a_ddp_validation_logs_the_loss_of_one_process(ready, monkeypatch):
    """Batches of 5 and 1 rows: 2 ranks take 3 and 2 rows, and 1 row and a repeat of it; the losses the ranks
    log (weighted by their share of the batch's target tokens, as floats) reduce to the one-process loss, not to
    1.5x it (ints: the mean of 3 and 1 rows is truncated to 1 on gloo) nor to another mean of the same tokens."""
    from supra.data.a2a import batches as a2a_batches
    from supra.data.a2a.batches import EvalBatches
    from supra.models.a2a_nano import A2AConfig, A2ANano
    from supra.tasks.a2a import A2ATask

    torch.manual_seed(0)
    val = ready.eval_batches("val")
    context = max(b["ids"].shape[1] for b in val)
    net = A2ANano(A2AConfig(vocab_size=ready.layout.vocab_size, context=context, n_layers=1, d_model=16, n_heads=2,
                            d_mlp=32))
    task = A2ATask(net=net, optimizer=None, vqvae=VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)))
    task.vocab = ready.vocab
    assert {1, 5} <= {len(b["tasks"]) for b in val}

    def logged(rank: int, world: int) -> dict[str, list[tuple[torch.Tensor, float | int]]]:
        monkeypatch.setattr(a2a_batches, "rank_and_world", lambda: (rank, world))
        logs: dict[str, list] = {}
        task.log = lambda name, value, batch_size, sync_dist: logs.setdefault(name, []).append((value, batch_size))
        with torch.no_grad():
            for batch in EvalBatches(val):
                task._log_eval_losses(batch, "val")
        return logs

    alone, ranks = logged(0, 1), [logged(r, 2) for r in (0, 1)]
    assert set(alone) == {"val/loss", *(f"val/loss_{t}" for t in ready.active_tasks)}
    for name, values in alone.items():
        ddp = lightning_gloo_mean([rank[name] for rank in ranks])
        assert ddp == pytest.approx(lightning_gloo_mean([values]), rel=1e-6), name


def test_a_ddp_test_counts_each_clip_once_in_video_psnr(ready, monkeypatch):
    """A video batch smaller than the world repeats a clip on a rank, to keep the ranks in step: the PSNR states
    (not keyed by item, unlike captions) counted it twice, so the ranks' reduced PSNR was not one process's."""
    from supra.data.a2a import batches as a2a_batches
    from supra.data.a2a.batches import EvalBatches
    from supra.models.a2a_nano import A2AConfig, A2ANano
    from supra.tasks.a2a import A2ATask

    torch.manual_seed(0)
    video = [b for b in ready.eval_batches("val") if b["task"] == "video"]
    one = {**video[0], **{k: v[:1] for k, v in video[0].items() if k not in ("task",) and hasattr(v, "__len__")}}
    context = max(b["ids"].shape[1] for b in video)
    net = A2ANano(A2AConfig(vocab_size=ready.layout.vocab_size, context=context, n_layers=1, d_model=16, n_heads=2,
                            d_mlp=32))
    task = A2ATask(net=net, optimizer=None, vqvae=ready.vqvae)
    task.vocab = ready.vocab

    def psnr_states(rank: int, world: int) -> tuple[float, float]:
        monkeypatch.setattr(a2a_batches, "rank_and_world", lambda: (rank, world))
        task.psnr_copy["val"].reset()
        for batch in EvalBatches([one]):  # one clip: rank 1 repeats it
            prompts = [row[:n].tolist() for row, n in zip(batch["ids"], batch["prompt_lengths"].tolist(), strict=True)]
            task._score_video(batch, prompts, "val")
        metric = task.psnr_copy["val"]  # the copy-last-frame baseline: the model's samples aside, the same rows
        return float(metric.sum_squared_error), float(metric.total)

    alone, ranks = psnr_states(0, 1), [psnr_states(r, 2) for r in (0, 1)]
    assert alone[1] > 0 and tuple(map(sum, zip(*ranks, strict=True))) == pytest.approx(alone)


def test_a_context_too_short_for_a_sources_pictures_is_refused_as_built_naming_model_net_context(tmp_path,
                                                                                                 vqvae_ckpt):
    """No caption is short enough when the image or clip alone overflows: refused from the configs, before any
    source is encoded or a vocabulary trained, naming the key the user set and the least value that fits."""
    with pytest.raises(SupraUserError, match=r"^model.net.context=32 is too short for the 64x64 images of "
                                             r"data.sources.shapes: a text2image sequence of one takes 68 tokens with "
                                             r"an empty caption; give model.net.context=68 or more \(and room for the "
                                             r"captions\), or a smaller data.sources.shapes.image_size$"):
        mixture(tmp_path, vqvae_ckpt, context=32, tasks={"text2image": 1})
    with pytest.raises(SupraUserError, match=r"^model.net.context=384 is too short for the clips of 6 64x64 frames of "
                                             r"data.sources.shapes_video: a video sequence of one takes 392 tokens .*, "
                                             r"or fewer frames \(data.sources.shapes_video.frames=5 fits\)$"):
        mixture(tmp_path, vqvae_ckpt, sources=source_configs(frames=6), tasks={"video": 1})
    assert not (tmp_path / "cache").exists()  # nothing encoded


def test_a_caption_too_long_for_the_context_is_refused_at_setup_naming_it_and_what_shortens_it(tmp_path, vqvae_ckpt,
                                                                                               ready):
    """A context that holds the clip but not its caption: the caption, the source's frames and image size, or a
    longer model.net.context."""
    datamodule = mixture(tmp_path, vqvae_ckpt, sources=source_configs(frames=6), cache_dir=ready.cache_dir,
                         tasks={"text2video": 1}, context=400)
    with pytest.raises(SupraUserError, match=r"\(caption '.*', \d+ tokens\): its text2video sequence is (\d+) tokens, "
                                             r"\d+ over the context of 400: shorten the caption, use fewer frames "
                                             r"\(data.sources.shapes_video.frames=5 fits\), use a smaller image size "
                                             r"\(data.sources.shapes_video.image_size, every source alike\) or give "
                                             r"model.net.context=\1 or more$"):
        datamodule.setup("fit")


def test_a_vqvae_whose_codebook_disagrees_with_the_vocabulary_is_refused_in_one_line(tmp_path):
    small = write_vqvae_checkpoint(tmp_path / "vq64.ckpt", num_codes=64)
    with pytest.raises(SupraUserError, match="has a codebook of 64 codes but the GPT's vocabulary has 256") as err:
        mixture(tmp_path, small).setup("fit")
    assert "\n" not in str(err.value)


def test_a_missing_vqvae_checkpoint_is_named(tmp_path):
    with pytest.raises(SupraUserError, match="set model.vqvae_ckpt=PATH"):
        mixture(tmp_path, None)
    with pytest.raises(SupraUserError, match="model.vqvae_ckpt=/no/such.ckpt does not exist"):
        stage1_vqvae(OmegaConf.create({"vqvae_ckpt": "/no/such.ckpt"}))
    with pytest.raises(SupraUserError, match=f"model.vqvae_ckpt={tmp_path} is a folder but no a2a release: give a VQ-VAE"):
        stage1_vqvae(OmegaConf.create({"vqvae_ckpt": str(tmp_path)}))  # e.g. an a2a release's


def test_a_vqvae_trained_on_pictures_of_another_size_is_said_once_at_encoding(tmp_path, vqvae_ckpt, ready, caplog):
    checkpoint = torch.load(vqvae_ckpt, weights_only=False)
    checkpoint["supra"]["run_config"]["data"] = {"image_size": 32}  # as experiment=vqvae_shapes data.image_size=32
    torch.save(checkpoint, tmp_path / "vq32.ckpt")
    vqvae = stage1_vqvae(OmegaConf.create({"vqvae_ckpt": str(tmp_path / "vq32.ckpt")}))  # as train.py loads it
    mixture(tmp_path, None, vqvae=vqvae, cache_dir=ready.cache_dir).setup("fit")  # 64 px sources
    assert "the VQ-VAE (model.vqvae_ckpt) was trained on 32 px pictures but data.sources give 64 px" in caplog.text
    caplog.clear()
    mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir).setup("fit")  # no size known: nothing said
    assert "was trained on" not in caplog.text


def test_an_a2a_release_folder_gives_its_vqvae_to_a_new_stage_two(tmp_path):
    from supra.artifacts.a2a_release import save_a2a_release
    from supra.models.a2a_nano import A2AConfig, A2ANano
    from supra.tokens.a2a_vocab import A2AVocab

    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=64, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    published = VQVAE(num_codes=16, code_dim=4, hidden=(4, 4))
    folder = save_a2a_release(tmp_path / "release", net, published, vocab)
    vqvae = stage1_vqvae(OmegaConf.create({"vqvae_ckpt": str(folder)}))  # model.vqvae_ckpt=<release folder>
    assert not vqvae.training
    for (name, theirs), ours in zip(published.state_dict().items(), vqvae.state_dict().values(), strict=True):
        assert torch.equal(theirs, ours), name


@pytest.mark.parametrize(("tasks", "named"), [(["text", "image2image"], "task image2image"),
                                              (["image2image", "captions"], "tasks image2image, captions")])
def test_unknown_a2a_tasks_are_named_in_one_line_with_the_noun_agreeing(tasks, named):
    with pytest.raises(SupraUserError) as err:
        check_tasks(tasks)
    assert str(err.value) == f"unknown a2a {named}: choose from text, text2image, image2text, video, text2video"


def test_bad_mixture_settings_are_refused_in_one_line(vqvae_ckpt):
    vqvae = load_vqvae(vqvae_ckpt)[0]
    with pytest.raises(SupraUserError, match="unknown a2a task"):
        A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"image2image": 1})
    with pytest.raises(SupraUserError, match="every weight is 0"):
        A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 0})
    with pytest.raises(SupraUserError, match="data.tasks.video=-1"):
        A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"video": -1})
    # NaN dropped the task without a word; inf, and an int past the largest float, were tracebacks
    for weight in (float("nan"), float("inf"), True, 10**400):
        with pytest.raises(SupraUserError, match=rf"data.tasks.video={weight!r}: a task weight must be a finite number"):
            A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1, "video": weight})
    with pytest.raises(SupraUserError, match="data.test_items=-1 must be a whole number >= 0, or null"):
        A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1}, test_items=-1)
    with pytest.raises(SupraUserError, match="data.video_given_frames=0 must be a whole number >= 1"):
        A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"video": 1}, video_given_frames=0)


def test_task_weights_each_finite_whose_sum_overflows_are_refused_before_any_source_is_read(vqvae_ckpt):
    """1e308 twice passed the check of each weight, then ended the first training batch in numpy's
    "Probabilities do not sum to 1" (every share was 0 or NaN). One such weight alone is drawn as before."""
    vqvae = load_vqvae(vqvae_ckpt)[0]
    with pytest.raises(SupraUserError, match=r"^data.tasks: the weights \{'text2image': 1e\+308, 'image2text': 1e\+308\} "
                                             r"sum past the largest float: they are relative, so give the same ratios"):
        A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text2image": 1e308, "image2text": 1e308})
    A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text2image": 1e308, "image2text": 1})


def test_a_text_vocab_size_under_the_256_byte_symbols_is_refused_where_a_vocabulary_is_trained(vqvae_ckpt):
    """-7 crashed inside tokenizers ("can't convert negative int to unsigned"), 0 or 10 trained 256 text ids
    without a word. 256 is the byte symbols alone; a given vocabulary does not read the option."""
    vqvae = load_vqvae(vqvae_ckpt)[0]
    for value in (-7, 0, 10, 255, 300.5, True):
        with pytest.raises(SupraUserError, match=rf"^data.text_vocab_size={value!r} must be a whole number >= 256: the "
                                                 r"trained BPE's text ids, its 256 byte symbols and merges up to that"):
            A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1}, text_vocab_size=value)
    A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1}, text_vocab_size=256)
    bytes_alone = A2AVocab.train(["a red square moves left"], 256)
    assert bytes_alone.layout.text_size == 256 and len(bytes_alone.encode_text("a red")) == 5
    A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1}, tokenizer=bytes_alone,
                         text_vocab_size=0)


def test_batches_per_epoch_is_a_whole_number_of_at_least_1_or_null_refused_when_the_data_is_built(vqvae_ckpt):
    """0 gave the default epoch without a word; -3 was torch's `__len__() should return >= 0` and 2.5 a
    TypeError, both after every source was encoded."""
    vqvae = load_vqvae(vqvae_ckpt)[0]
    for value in (0, -3, 2.5, True):
        with pytest.raises(SupraUserError, match=rf"^data.batches_per_epoch={value!r} must be a whole number >= 1, "
                                                 r"or null for \(items of all sources\) / data.batch_size$"):
            A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1}, batches_per_epoch=value)
    for value in (None, 1):
        A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1}, batches_per_epoch=value)


def test_a_num_codes_below_2_is_refused_as_a_value_not_answered_with_a_vqvae_of_that_many(vqvae_ckpt):
    """data.num_codes=0 was answered "use a VQ-VAE with 0 codes or set data.num_codes=256"."""
    vqvae = load_vqvae(vqvae_ckpt)[0]
    for value in (0, 1, -5, 2.5):
        with pytest.raises(SupraUserError, match=rf"^data.num_codes={value!r} must be a whole number >= 2: the visual "
                                                 r"codes of the GPT's vocabulary, the codebook size of the VQ-VAE"):
            A2AMixtureDataModule(vqvae=vqvae, sources=source_configs(), tasks={"text": 1}, num_codes=value)


def test_given_frames_that_leave_a_clip_nothing_to_predict_are_refused_before_training(tmp_path, vqvae_ckpt, ready):
    """Clips of 3 frames, 3 given: refused at setup (it ended the run at its first validation, unsaved)."""
    datamodule = mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir, video_given_frames=3)
    with pytest.raises(SupraUserError, match="data.video_given_frames=3 leaves nothing to predict in the val clips "
                                             r"of 3 frames: give fewer \(at most 2\)"):
        datamodule.setup("fit")


def test_validation_scores_val_items_and_a_test_of_any_split_scores_all_of_it(tmp_path, vqvae_ckpt, ready):
    """evaluate.py data.split=val scored only the first val_items of val, where the docs say the whole split."""
    datamodule = mixture(tmp_path, vqvae_ckpt, cache_dir=ready.cache_dir, val_items=2, split="val")
    datamodule.setup("test")

    def images_per_task(loader) -> dict[str, int]:
        counts: dict[str, int] = {}
        for batch in loader:
            counts[batch["task"]] = counts.get(batch["task"], 0) + len(batch["keys"])
        return counts

    assert set(images_per_task(datamodule.val_dataloader()).values()) == {2}
    assert images_per_task(datamodule.test_dataloader()) == {"text": 10, "text2image": 6, "image2text": 6,
                                                             "video": 4, "text2video": 4}  # 6 images, 4 clips


def test_lightning_does_not_warn_that_the_length_of_the_evaluation_batches_could_be_inaccurate(ready, recwarn):
    """Lightning warns of an IterableDataset with `__len__` that each DataLoader worker may serve whole; the
    evaluation batches are served in one process, their length exact: the warning was noise at every val/test."""
    import lightning as L
    from lightning.pytorch.utilities.data import has_len_all_ranks

    ready.setup("fit")
    loader = ready.val_dataloader()
    strategy = L.Trainer(accelerator="cpu", devices=1, logger=False).strategy
    assert has_len_all_ranks(loader, strategy) and len(loader) == len(list(loader))
    assert not [w for w in recwarn if "`__len__` could be inaccurate" in str(w.message)]


def test_a_media_folder_source_names_each_evaluation_item_by_its_file(tmp_path, vqvae_ckpt):
    from tests.media_fixtures import write_media_folder

    root = tmp_path / "media"
    write_media_folder(root)
    folder = {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(root), "mode": "frames",
              "image_size": 64, "val_fraction": 0.3, "test_fraction": 0.3, "show_progress": False}
    datamodule = mixture(tmp_path, vqvae_ckpt, sources={"media": folder}, tasks={"image2text": 1},
                         cache_dir=str(tmp_path / "cache"))
    datamodule.setup("test")
    batches = datamodule.eval_batches("test")
    assert batches and all(len(b["files"]) == len(b["keys"]) for b in batches)
    for batch in batches:
        for key, file in zip(batch["keys"], batch["files"], strict=True):
            assert (root / file).is_file() and key.startswith(f"media/{file}")  # "media/anim/wave.gif#frame 2"


def train_only_captions(root: Path, n: int = 15) -> dict:
    """A media folder of n pictures whose captions are all on files of its train split: its val and test
    splits hold pictures no captioned task can use."""
    from PIL import Image

    from supra.data.folder_index import split_by_file

    root.mkdir()
    names = [f"photo_{i:03d}.png" for i in range(n)]
    for i, name in enumerate(names):
        Image.new("RGB", (16, 16), (i * 16, 0, 0)).save(root / name)
    for name in split_by_file(names, 0.1, 0.1, 0)["train"][:4]:
        (root / name).with_suffix(".txt").write_text("a red square\n")
    return {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(root), "image_size": 64,
            "show_progress": False}


def test_a_split_with_nothing_to_score_for_a_task_is_refused_at_setup_naming_the_source_and_the_way_out(
        tmp_path, vqvae_ckpt, caplog):
    """Its captioned files all in train, a media folder validated and tested on nothing and exited 0 without
    metrics; now the fit refuses (val, then the test that follows it), and so does a test of such a split."""
    caplog.set_level("INFO")
    source = {"media": train_only_captions(tmp_path / "media")}

    def datamodule(**overrides) -> A2AMixtureDataModule:
        return mixture(tmp_path, vqvae_ckpt, sources=source, tasks={"text2image": 1, "image2text": 1}, **overrides)

    with pytest.raises(SupraUserError, match=r"^the val split has nothing to score for data.tasks text2image, "
                                             r"image2text \(text2image: image\+caption, image2text: image\+caption; "
                                             r"data.sources.media has 1 val image, none captioned\): caption more of "
                                             r"data.sources.media's files or raise data.sources.media.val_fraction or "
                                             r"turn validation off \(\+trainer.limit_val_batches=0\)$"):
        datamodule().setup("fit")
    assert "a2a sources (train/val/test): media 13/1/1 images, 9/1/1 of them without a caption (no task uses them)" \
        in caplog.text
    no_validation = datamodule()
    no_validation.trainer = SimpleNamespace(limit_val_batches=0)  # as +trainer.limit_val_batches=0 gives it
    with pytest.raises(SupraUserError, match=r"^the test split has nothing to score .* or do not test "
                                             r"\(test=false data.test_items=0\)$"):
        no_validation.setup("fit")
    nothing_to_test = datamodule(test_items=0)
    nothing_to_test.trainer = SimpleNamespace(limit_val_batches=0)
    nothing_to_test.setup("fit")  # what the advice says runs (train.py: tests/test_a2a_training.py)
    with pytest.raises(SupraUserError, match=r"^the test split has nothing to score .* or score another split than "
                                             r"data.split=test$"):
        datamodule().setup("test")  # evaluate.py's
    with pytest.raises(SupraUserError, match=r"data.tasks text2image \(.*\): .*, set data.tasks.text2image=0 or") as err:
        mixture(tmp_path, vqvae_ckpt, sources={**source, "shapes_video": source_configs()["shapes_video"]},
                tasks={"text2image": 1, "video": 1}).setup("fit")
    assert "shapes_video" not in str(err.value)  # its clips are no images: neither the cause nor the cure


def test_a_task_no_source_holds_items_for_is_refused_without_an_empty_item_in_the_list(tmp_path, vqvae_ckpt, ready):
    """evaluate.py of a checkpoint with its clips' source left out (~data.sources.shapes_video): "(video: clip; )"."""
    no_clips = mixture(tmp_path, vqvae_ckpt, sources={"shapes": source_configs()["shapes"]},
                       tasks={"text": 1, "video": 1}, cache_dir=ready.cache_dir)
    with pytest.raises(SupraUserError, match=r"^the test split has nothing to score for data.tasks video \(video: "
                                             r"clip\): set data.tasks.video=0 or score another split than "
                                             r"data.split=test$"):
        no_clips.setup("test")


def test_a_weighted_task_no_sources_config_gives_items_for_is_refused_before_any_source_is_encoded(tmp_path, vqvae_ckpt):
    """a2a_shapes' video weight kept with its clip sources swapped for a photo folder (mode=images) was refused only
    once the whole folder had been decoded and encoded: 40 s for 10,000 photos."""
    media = {**train_only_captions(tmp_path / "media"), "mode": "images"}
    for start in ("prepare_data", "setup"):  # rank 0 encodes in prepare_data; setup("fit") where nothing is cached
        data = mixture(tmp_path, vqvae_ckpt, sources={"media": media}, tasks={"text2image": 1, "video": 0.02},
                       cache_dir=None if start == "setup" else str(tmp_path / "cache"))
        with pytest.raises(SupraUserError) as raised:
            data.prepare_data() if start == "prepare_data" else data.setup("fit")
        assert str(raised.value) == ("data.tasks.video has weight 0.02 but no source has items for it (it needs clip "
                                     "items): add such a source or set its weight to 0")
        assert data.codes.builds == 0 and not (tmp_path / "cache").exists()
    # a test scores what there is: its own line, once encoded (test_a_task_no_source_holds_items_for_...)
    data = mixture(tmp_path, vqvae_ckpt, sources={"media": media}, tasks={"text2image": 1, "video": 0.02})
    data.trainer = SimpleNamespace(state=SimpleNamespace(fn="test"))
    data.prepare_data()
    assert data.codes.builds == 1
    # images its config gives but its data leaves uncaptioned: said once encoded, as before
    (tmp_path / "bare").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(tmp_path / "media" / "photo_000.png", tmp_path / "bare" / name)
    bare = {**media, "root": str(tmp_path / "bare")}
    data = mixture(tmp_path, vqvae_ckpt, sources={"bare": bare, "shapes_video": source_configs()["shapes_video"]},
                   tasks={"text2image": 1, "video": 1}, **NOTHING_SCORED)
    with pytest.raises(SupraUserError, match=r"^data.tasks.text2image has weight 1 but no source has items for it "
                                             r"\(it needs image\+caption items\): add such a source or set its "
                                             r"weight to 0$"):
        data.setup("fit")
    assert data.codes.builds == 2


def test_a_photo_sources_decoded_images_go_to_the_mixtures_cache_and_a_newer_copy_replaces_the_older(tmp_path,
                                                                                                      vqvae_ckpt):
    """README's a2a COCO source wrote its decoded images beside the data set (<root>/.supra_cache: refused on a
    read-only one) and left a full stale copy behind at every touched image."""
    import os

    from supra.data.a2a.sources import SourceCodes
    from supra.data.caption_sources.decoded import DecodedPhotos
    from tests.caption_source_fixtures import write_coco_official

    root, cache = tmp_path / "coco", tmp_path / "cache"
    write_coco_official(root, "2014")
    config = {"_target_": "supra.data.media.photo_captions.PhotoCaptionsMediaDataModule", "source": "coco",
              "root": str(root), "image_size": 64, "show_progress": False}
    vqvae = load_vqvae(vqvae_ckpt)[0]
    SourceCodes({"coco": config}, vqvae, 256, cache).all()
    assert not (root / ".supra_cache").exists()
    (older,) = (cache / "coco").glob("images_*.npy")
    DecodedPhotos("coco", root, 32, cache_dir=cache / "coco").prepare(show_progress=False)  # another size: kept
    image = next((root / "val2014").glob("*.jpg"))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # touched
    codes = SourceCodes({"coco": config}, vqvae, 256, cache)
    codes.all()
    assert codes.builds == 1  # its files changed: encoded anew
    at_64 = [p for p in (cache / "coco").glob("images_*.json") if json.loads(p.read_text())["size"] == 64]
    assert len(at_64) == 1 and not older.exists() and at_64[0].with_suffix(".npy").is_file()
    assert len(list((cache / "coco").glob("images_*.npy"))) == 2  # the 32 px cache beside it

    unwritable = tmp_path / "a_file"
    unwritable.write_text("")
    with pytest.raises(SupraUserError, match=rf"^cannot write to the decoded-image cache {unwritable}/photos \(.*\): "
                                             r"set data.sources.coco.cache_dir to a writable folder$"):
        SourceCodes({"coco": {**config, "cache_dir": str(unwritable / "photos")}}, vqvae, 256, None).all()


def test_a_hugging_face_sources_images_given_as_paths_are_filed_under_them_and_older_codes_encoded_again(
        tmp_path, vqvae_ckpt, monkeypatch):
    """Codes cached when such an image's file was None would keep "file": null in predictions.json."""
    import datasets

    from supra.data.a2a.sources import SourceCodes
    from supra.data.media.photo_captions import PhotoCaptionsMediaDataModule
    from tests.caption_source_fixtures import jpeg_bytes

    root, cache = tmp_path / "hf", tmp_path / "cache"
    (root / "imgs").mkdir(parents=True)
    for i in range(8):
        (root / "imgs" / f"{i}.jpg").write_bytes(jpeg_bytes(i))
    datasets.Dataset.from_dict({"image": [f"imgs/{i}.jpg" for i in range(8)],
                                "caption": [f"a picture {i}" for i in range(8)]}).to_parquet(str(root / "train.parquet"))
    config = {"_target_": "supra.data.media.photo_captions.PhotoCaptionsMediaDataModule", "source": "hf_disk",
              "root": str(root), "image_size": 64, "show_progress": False}
    vqvae = load_vqvae(vqvae_ckpt)[0]
    with monkeypatch.context() as patch:  # cached as before: under the first items_version, no file
        patch.setattr(PhotoCaptionsMediaDataModule, "items_version", 1)
        SourceCodes({"hf": config}, vqvae, 256, cache).all()
    for items in cache.glob("hf-*/items_*.json"):
        held = json.loads(items.read_text())
        items.write_text(json.dumps({**held, "files": [None] * len(held["names"])}))
    codes = SourceCodes({"hf": config}, vqvae, 256, cache)
    test = codes.all()["hf"]["test"]
    assert codes.builds == 1 and test.files == [f"imgs/{name.split('/')[1]}.jpg" for name in test.names]


def test_a_media_folder_source_with_a_split_turned_off_is_encoded_and_refused_only_where_that_split_is_scored(
        tmp_path, vqvae_ckpt):
    """val_fraction=0 ("0 turns a split off") was refused by the source itself, whatever the run scored."""
    from tests.media_fixtures import write_media_folder

    write_media_folder(tmp_path / "media")
    folder = {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(tmp_path / "media"),
              "mode": "frames", "image_size": 64, "val_fraction": 0, "test_fraction": 0.3, "seed": 2,
              "show_progress": False}
    with pytest.raises(SupraUserError, match=r"^the val split has nothing to score .*data.sources.media has 0 val "
                                             r"images, none captioned\): set data.sources.media.val_fraction above 0 "
                                             r"or turn validation off \(\+trainer.limit_val_batches=0\)$"):
        mixture(tmp_path, vqvae_ckpt, sources={"media": folder}, tasks={"image2text": 1}).setup("fit")
    unvalidated = mixture(tmp_path, vqvae_ckpt, sources={"media": folder}, tasks={"image2text": 1}, val_items=0)
    unvalidated.setup("fit")
    assert len(unvalidated.data["val"][0]) == 0 and unvalidated.data["val"][0].codes.shape[1:] == (8, 8)
    assert unvalidated.eval_batches("test")  # the split it tests is there


def test_a_photo_source_of_test_images_alone_is_scored_and_refused_only_for_training(tmp_path, vqvae_ckpt):
    """evaluate.py of an a2a model on a copy of COCO's Karpathy test images alone was refused ("the train split
    has 0 usable images"), though it scores only the test split and the captioner scores that copy."""
    from supra.tokens.a2a_vocab import A2AVocab
    from tests.caption_source_fixtures import write_coco_karpathy

    root = tmp_path / "coco"
    write_coco_karpathy(root)
    listing = json.loads((root / "dataset_coco.json").read_text())
    listing["images"] = [image for image in listing["images"] if image["split"] == "test"]
    (root / "dataset_coco.json").write_text(json.dumps(listing))
    source = {"coco": {"_target_": "supra.data.media.photo_captions.PhotoCaptionsMediaDataModule", "source": "coco",
                       "root": str(root), "image_size": 64, "show_progress": False}}
    vocab = A2AVocab.train(["a photo of a dog"], vocab_size=270, num_codes=256)  # the checkpoint's, in evaluate.py
    scored = mixture(tmp_path, vqvae_ckpt, sources=source, tasks={"image2text": 1, "text2image": 1}, tokenizer=vocab)
    scored.setup("test")
    assert [len(scored.data[split][0]) for split in ("train", "val", "test")] == [0, 0, 3]
    assert sum(len(batch["keys"]) for batch in scored.eval_batches("test")) == 2 * 3  # each task's 3 images
    with pytest.raises(SupraUserError, match=r"^data.sources.coco has no train images \(train/val/test 0/0/3\): "
                                             r"training needs train items of every source; give it a copy with train "
                                             r"items \(data.sources.coco.root\) or leave the source out of the run"):
        mixture(tmp_path, vqvae_ckpt, sources=source, tasks={"image2text": 1}, tokenizer=vocab).setup("fit")


def test_debug_overfit_trains_every_epoch_on_the_same_batch_and_a_run_on_new_ones(ready, monkeypatch):
    """Lightning turns off a sampler's shuffle under trainer.overfit_batches, but the mixture draws its own batches
    per epoch: debug=overfit (an epoch of one batch) trained on a new batch at every step."""
    for overfit, same in ((1, True), (0, False)):
        first, second = (batch["ids"] for batch in first_train_batches(ready, overfit, monkeypatch))
        assert (first.shape == second.shape and torch.equal(first, second)) is same


# -- what image2text is scored against ----------------------------------------------------------------


SCORES_REPEAT = 3  # the split seed that puts a.jpg, whose caption is written twice, in test; c.jpg in train


def photo_sources(tmp_path: Path) -> dict[str, dict]:
    """The captioner's references fixture (captions with a final "." of an abbreviation's, and repeats) as each
    photo source of the mixture reads it: a caption folder, a media folder, and the shards write_shards makes of it."""
    from rich.progress import Progress

    from supra.data.caption_sources.folder import read_caption_folder
    from supra.write_shards import write_split
    from tests.test_caption_references import write_us_folder

    root = tmp_path / "photos"
    write_us_folder(root)
    fractions = {"val_fraction": 0.25, "test_fraction": 0.25}
    index = read_caption_folder(root, seed=SCORES_REPEAT, **fractions)
    with Progress(disable=True) as progress:
        for split in ("train", "val", "test"):
            write_split(index, root, split, tmp_path / "shards" / split, 10, progress, {})
    return {
        "caption_folder": {"_target_": "supra.data.media.photo_captions.PhotoCaptionsMediaDataModule",
                           "source": "folder", "root": str(root), "split_seed": SCORES_REPEAT, "show_progress": False,
                           **fractions},
        "media_folder": {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(root),
                         "seed": SCORES_REPEAT, "show_progress": False, **fractions},
        "shards": {"_target_": "supra.data.media.shard_images.ShardImagesMediaDataModule",
                   **{f"{split}_shards": str(tmp_path / "shards" / split / "00000.tar")
                      for split in ("train", "val", "test")}},
    }


def scored_references(data: A2AMixtureDataModule) -> dict[str, list[str]]:
    """What image2text scores each val and test item against, by its file."""
    return {file: refs for split in ("val", "test") for batch in data.eval_batches(split) if batch["task"] == "image2text"
            for file, refs in zip(batch["files"], batch["references"], strict=True)}


@pytest.mark.parametrize("source", ["caption_folder", "media_folder", "shards"])
def test_image2text_scores_photos_against_their_references_as_published_and_trains_on_their_captions_as_before(
        tmp_path, vqvae_ckpt, source):
    """As the captioner scores them (test_caption_references.py): a final "." kept ("the U.S."), a caption an
    image has twice counted twice. The mixture scored against the training captions instead."""
    from tests.test_caption_references import CAPTIONS

    config = {**photo_sources(tmp_path)[source], "image_size": 64}
    data = mixture(tmp_path, vqvae_ckpt, sources={source: config}, tasks={"image2text": 1, "text2image": 1})
    data.setup("fit")
    scored = scored_references(data)
    assert scored["a.jpg"] == ["the flag of the U.S.", "the flag of the U.S.", "a flag of the U.S."]
    assert all(refs == [" ".join(c.split()) for c in CAPTIONS[file]] for file, refs in scored.items())
    # trained on as before: a caption folder's and shards' without the final stop, a media folder's as written; once
    trimmed = (lambda c: c) if source == "media_folder" else (lambda c: c.removesuffix("."))
    trained = data.data["train"][0]
    assert "c.jpg" in trained.files  # "a cat" and "a cat.": one caption, or two as written
    assert trained.captions == [list(dict.fromkeys(trimmed(" ".join(c.split())) for c in CAPTIONS[file]))
                                for file in trained.files]


def test_shapes_scenes_are_scored_against_their_captions_and_their_codes_cached_before_are_read(
        tmp_path, vqvae_ckpt, ready):
    """A shapes scene's references are its five captions, as before: an a2a shapes recipe's scores stay; and its
    codes cached before the cache held references are read, not encoded again."""
    captions = {f"{part.source}/{name}": caps for split in ("val", "test") for part in ready.data[split]
                for name, caps in zip(part.names, part.captions, strict=True)}
    scored = {key: refs for split in ("val", "test") for batch in ready.eval_batches(split)
              if batch["task"] == "image2text" for key, refs in zip(batch["keys"], batch["references"], strict=True)}
    assert scored and all(key.startswith("shapes/") and refs == captions[key] and len(refs) == 5
                          for key, refs in scored.items())
    cache = tmp_path / "cache"
    shutil.copytree(ready.cache_dir, cache)
    for items in cache.glob("*/items_*.json"):  # as written before references were
        held = json.loads(items.read_text())
        items.write_text(json.dumps({k: v for k, v in held.items() if k != "references"}))
    again = mixture(tmp_path, vqvae_ckpt, cache_dir=str(cache))
    again.setup("fit")
    assert again.codes.builds == 0
    assert all(part.references == part.captions and part.captions for part in again.data["test"])


@pytest.mark.parametrize("source", ["caption_folder", "media_folder", "shards"])
def test_photo_codes_cached_before_the_cache_held_references_are_encoded_again_not_scored_against_stale_ones(
        tmp_path, vqvae_ckpt, monkeypatch, source):
    from hydra.utils import get_object

    from supra.data.a2a.sources import SourceCodes
    from tests.test_caption_references import CAPTIONS

    config = {**photo_sources(tmp_path)[source], "image_size": 64}
    module = get_object(config["_target_"])
    vqvae, cache = load_vqvae(vqvae_ckpt)[0], tmp_path / "cache"
    with monkeypatch.context() as patch:  # cached as before: under the items_version before references
        patch.setattr(module, "items_version", {"caption_folder": 1, "media_folder": 1, "shards": 3}[source])
        SourceCodes({source: config}, vqvae, 256, cache).all()
    for items in cache.glob(f"{source}-*/items_*.json"):
        held = json.loads(items.read_text())
        items.write_text(json.dumps({k: v for k, v in held.items() if k != "references"}))
    codes = SourceCodes({source: config}, vqvae, 256, cache)
    test = codes.all()[source]["test"]
    assert codes.builds == 1
    assert test.references == [[" ".join(c.split()) for c in CAPTIONS[file]] for file in test.files]


@pytest.mark.parametrize("source", ["caption_folder", "media_folder"])
def test_codes_tokenize_media_writes_score_image2text_as_the_mixture_scores_the_same_photos(tmp_path, vqvae_ckpt,
                                                                                           source):
    """`python -m supra.tokenize_media`'s items_<split>.json holds each item's references (a photo's captions as
    published, a caption it has twice twice) beside the captions trained on, as the mixture's code cache does: an
    image2text scored from those codes scores as the mixture's of the same photos. It wrote the training captions
    alone, "the U.S." as "the U.S", a repeat once; such a file still reads, its references its captions."""
    from supra.data.media.codes import read_media_codes
    from supra.metrics.caption_scores import score_captions
    from tests.conftest import run_command

    config = {**photo_sources(tmp_path)[source], "image_size": 64}
    out = tmp_path / "codes"
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", "accelerator=cpu", "show_progress=false",
                f"paths.cache_dir={tmp_path / 'cache'}", *(f"+data.{key}={value}" for key, value in config.items()),
                run_dir=tmp_path)
    tokenized = {}  # each val and test photo's references, by its file
    for split in ("val", "test"):
        codes = read_media_codes(out, split)
        tokenized.update(zip(codes.files, codes.references, strict=True))
    data = mixture(tmp_path, vqvae_ckpt, sources={source: config}, tasks={"image2text": 1, "text2image": 1})
    data.setup("fit")
    mixed = scored_references(data)
    predictions = {file: "the flag of the U.S." for file in mixed}  # one caption for every photo
    assert tokenized == mixed
    assert score_captions(predictions, tokenized, ["CIDEr"]) == score_captions(predictions, mixed, ["CIDEr"])
    for items in out.glob("items_*.json"):  # as written before references were
        held = json.loads(items.read_text())
        items.write_text(json.dumps({k: v for k, v in held.items() if k != "references"}))
    before = read_media_codes(out, "test")
    assert before.references == before.captions


def test_tokenize_media_writes_how_many_frames_of_each_clip_are_real(tmp_path, vqvae_ckpt):
    """The codes `python -m supra.tokenize_media` writes of clips padded from short GIFs say how many of their
    frames are real, as the a2a mixture's cache does; every frame of an unpadded clip is real."""
    from supra.data.media.codes import read_media_codes
    from tests.conftest import run_command
    from tests.media_fixtures import save_pillow_gif

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i in range(3):
        save_pillow_gif(tmp_path / "gifs" / f"g{i}.gif", colours[:1 + i], size=(16, 16))
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={tmp_path / 'codes'}", "accelerator=cpu",
                "show_progress=false", "splits=[train]", "data=media_folder", f"data.root={tmp_path / 'gifs'}",
                "data.mode=clips", "data.frames=3", "data.val_fraction=0", "data.test_fraction=0", run_dir=tmp_path)
    codes = read_media_codes(tmp_path / "codes", "train")
    assert dict(zip(codes.names, codes.real_frames, strict=True)) == {f"g{i}.gif#clip 0": 1 + i for i in range(3)}


@pytest.mark.parametrize(("n", "said"), [(1, "1 train item"), (2, "2 train items")])
def test_tokenize_media_counts_one_item_written_as_one(tmp_path, vqvae_ckpt, capsys, caplog, n, said):
    """Its summary said "wrote codes of 1 train items"; the count of each split it logs, "train: 1 items"."""
    import logging

    from tests.conftest import run_command
    from tests.media_fixtures import save_image

    for i in range(n):
        save_image(tmp_path / "photos" / f"p{i}.png")
    out = tmp_path / "codes"
    with caplog.at_level(logging.INFO, logger="supra.tokenize_media"):
        run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", "accelerator=cpu", "show_progress=false",
                    "splits=[train]", "data=media_folder", f"data.root={tmp_path / 'photos'}", "data.val_fraction=0",
                    "data.test_fraction=0", run_dir=tmp_path)
    assert f"wrote codes of {said} to {out}\n" in capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records if "-> codes" in r.getMessage()] == [
        f"train: {'1 item' if n == 1 else '2 items'} -> codes [{n}, 8, 8] (uint8)"]


def test_a_clip_padded_from_a_short_gif_keeps_its_count_of_real_frames_through_the_cache_into_video_batches(
        tmp_path, vqvae_ckpt):
    """A GIF of 1 or 2 frames becomes a 3-frame clip by repeating its last frame; how many are real travels with
    its codes (cached too) to the video batches, whose scores leave the repeats out."""
    from tests.media_fixtures import save_pillow_gif

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i in range(6):
        save_pillow_gif(tmp_path / "gifs" / f"g{i}.gif", colours[:1 + i % 3], size=(16, 16))
    source = {"_target_": "supra.data.media.folder.MediaFolderDataModule", "root": str(tmp_path / "gifs"),
              "mode": "clips", "frames": 3, "image_size": 64, "val_fraction": 0.34, "test_fraction": 0.34,
              "show_progress": False}

    def real_frames() -> tuple[int, dict[str, int], list[dict]]:
        data = mixture(tmp_path, vqvae_ckpt, sources={"clips": source}, tasks={"video": 1})
        data.setup("fit")
        parts = [data.data[split][0] for split in ("train", "val", "test")]
        return (data.codes.builds, {n: r for p in parts for n, r in zip(p.names, p.real_frames, strict=True)},
                data.eval_batches("val"))

    built, real, batches = real_frames()
    assert built == 1 and real == {f"g{i}.gif#clip 0": 1 + i % 3 for i in range(6)}
    assert real_frames()[:2] == (0, real)  # read back from the cache as written
    batch = batches[0]
    assert batch["real_frames"].tolist() == [real[key.split("/", 1)[1]] for key in batch["keys"]]


def test_video_psnr_scores_only_real_frames_and_leaves_out_a_clip_with_none_after_the_given(ready):
    """Frames repeated to pad a short GIF are no truth: copying the last given frame matched them exactly, so the
    copy baseline was inflated (inf where every clip was padded). Only real frames are scored; a clip with none
    after the given ones is left out, and named."""
    from supra.models.a2a_nano import A2AConfig, A2ANano
    from supra.tasks.a2a import A2ATask, say_unscored_clips

    batch = next(b for b in ready.eval_batches("val") if b["task"] == "video" and len(b["keys"]) >= 3)
    batch = {**batch, **{k: v[:3] for k, v in batch.items() if k != "task" and hasattr(v, "__len__")}}
    net = A2ANano(A2AConfig(vocab_size=ready.layout.vocab_size, context=batch["ids"].shape[1], n_layers=1, d_model=16,
                            n_heads=2, d_mlp=32))
    task = A2ATask(net=net, optimizer=None, vqvae=ready.vqvae)
    task.vocab = ready.vocab
    task._reset_epoch()
    prompts = [row[:n].tolist() for row, n in zip(batch["ids"], batch["prompt_lengths"].tolist(), strict=True)]
    given = ready.video_given_frames
    frames = batch["pixels"].shape[1]
    real = [frames, given, given + 1]  # all real; none after the given; one after them
    task._score_video({**batch, "real_frames": torch.tensor(real)}, prompts, "val")

    pixels = batch["pixels"].float() / 255
    scored = [pixels[0, given:], pixels[2, given:given + 1]]
    copied = [pixels[0, given - 1:given].expand_as(scored[0]), pixels[2, given - 1:given]]
    truth, copy = torch.cat(scored), torch.cat(copied)
    metric = task.psnr_copy["val"]
    assert float(metric.total) == truth.numel()
    assert float(metric.sum_squared_error) == pytest.approx(float(((copy - truth) ** 2).sum()), rel=1e-5)
    assert task._unscored_clips == {batch["keys"][1]: given}
    assert list(task._scored_clips) == [batch["keys"][0], batch["keys"][2]]  # metrics.json's n_video_clips
    with pytest.warns(UserWarning, match=rf"video_psnr and video_psnr_copy_baseline leave out 1 clip \(e.g. {batch['keys'][1]}\)"):
        say_unscored_clips(task._unscored_clips, scored=True)

    task.psnr["val"].reset()
    task._score_video({**batch, "real_frames": torch.tensor([given] * 3)}, prompts, "val")
    assert task.psnr["val"].update_count == 0  # nothing real to score: no video_psnr, rather than inf
    with pytest.warns(UserWarning, match="video_psnr and video_psnr_copy_baseline are not scored: no frame of "
                                         "the 3 clips .* is real after the given"):
        say_unscored_clips(task._unscored_clips, scored=False)


def test_captions_cached_before_they_were_read_in_nfc_read_back_in_nfc(tmp_path):
    """An a2a codes cache holds each item's captions as they were read when it was written: NFD ones (a Mac's "e"
    and a combining accent) come back composed, as a fresh read gives them, not as another text."""
    import unicodedata

    import numpy as np

    from supra.data.a2a.sources import read_cached_split
    from supra.data.media.codes import write_split

    decomposed = unicodedata.normalize("NFD", "un café")
    write_split(tmp_path, "train", np.zeros((1, 2, 2), dtype=np.int16), ["a.png"], [[decomposed]], references=[[decomposed]])
    (tmp_path / "objects_train.json").write_text("null")
    split = read_cached_split(tmp_path, "photos", "train")
    assert split.captions == split.references == [["un café"]]
