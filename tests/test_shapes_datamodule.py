"""ShapesDataModule: deterministic splits, batches in the documented layout, tokenizer reuse, bad sizes and
seeds (those of ShapesImagesDataModule, the same scenes for the VQ-VAE, too)."""

import os
import re

import pytest
import torch

from supra.data.captioning.shapes import ShapesDataModule
from supra.data.images import normalize_images
from supra.data.media.datamodule import check_image_size
from supra.data.media.shapes_images import ShapesImagesDataModule
from supra.data.media.shapes_video import ShapesVideoDataModule
from supra.tokens.caption_bpe import BOS_ID, EOS_ID, PAD_ID
from supra.utils.errors import SupraUserError
from supra.utils.imagenet import IMAGENET_MEAN

SMALL = {"num_train": 40, "num_val": 12, "num_test": 10, "batch_size": 8, "eval_batch_size": 5}


@pytest.fixture
def datamodule(tmp_path) -> ShapesDataModule:
    dm = ShapesDataModule(**SMALL, tokenizer_path=str(tmp_path / "tokenizer.json"))
    dm.setup("fit")
    return dm


def test_images_are_resized_to_the_model_size_as_uint8(datamodule):
    images = datamodule.data["train"].images
    assert images.shape == (40, 3, 112, 112) and images.dtype == torch.uint8


def test_a_split_is_resized_from_the_drawn_pixels_as_they_lie_to_the_same_pixels_laid_out_channels_first():
    """Read channels-last, as torch's uint8 resize works, not copied channels-first first (a second a 4,000-scene
    split): the same bytes, in the same layout, as resizing that copy."""
    from supra.data.images import channels_first, resize_uint8
    from supra.procedural.shapes_scenes import SPLIT_SEED_OFFSET, generate_scenes

    images = ShapesDataModule(**SMALL).load_split("val").images
    pixels, _ = generate_scenes(SMALL["num_val"], SPLIT_SEED_OFFSET["val"], 128)
    assert torch.equal(images, resize_uint8(channels_first(pixels), 112)) and images.is_contiguous()


def test_drawing_a_split_is_said_before_it_begins(caplog):
    """The 4,000 train scenes take seconds to draw: a line says so first, not only once they are done."""
    with caplog.at_level("INFO", logger="supra.data.captioning.shapes"):
        ShapesDataModule(**SMALL).load_split("val")
    assert caplog.messages[0] == "shapes val: drawing 12 scenes ..."
    assert re.fullmatch(r"shapes val: 12 images, 60 captions \(\d+\.\ds\)", caplog.messages[1])


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    a, b, c = (ShapesDataModule(**SMALL, seed=s).load_split("val") for s in (0, 0, 1))
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, c.images)


def test_splits_are_different_scenes():
    dm = ShapesDataModule(**SMALL)
    assert not torch.equal(dm.load_split("val").images[:10], dm.load_split("test").images[:10])


def test_train_batches_pair_one_image_with_one_caption(datamodule):
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["images"].shape == (8, 3, 112, 112)
    tokens = batch["tokens"]
    assert tokens.shape[0] == 8 and (tokens[:, 0] == BOS_ID).all()
    assert ((tokens == EOS_ID).sum(1) == 1).all()
    assert (tokens[:, -1] != PAD_ID).any(), "padding is trimmed to the longest caption of the batch"
    assert len(datamodule.train_dataloader().dataset) == 40 * 5


def test_eval_batches_carry_every_reference_of_each_image(datamodule):
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["image_ids"].tolist() == [0, 1, 2, 3, 4]
    assert batch["caption_image"].tolist() == [i for i in range(5) for _ in range(5)]
    decoded = datamodule.tokenizer.decode_batch(batch["tokens"].tolist())
    assert decoded[:5] == datamodule.references("val")[0]


def test_normalisation_happens_after_transfer(datamodule):
    batch = next(iter(datamodule.val_dataloader()))
    moved = datamodule.on_after_batch_transfer(batch, 0)
    assert moved["images"].dtype == torch.float32
    assert torch.allclose(moved["images"], normalize_images(batch["images"]))
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)


def test_tokenizer_is_saved_then_reused_not_retrained(datamodule, tmp_path):
    saved = (tmp_path / "tokenizer.json").read_text()
    other = ShapesDataModule(**{**SMALL, "seed": 5}, tokenizer_path=str(tmp_path / "tokenizer.json"))
    other.setup("fit")
    assert other.tokenizer.to_json() == saved


def test_a_corrupt_tokenizer_to_reuse_is_one_line_saying_what_to_do(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "truncated')
    dm = ShapesDataModule(**SMALL, tokenizer_path=str(tmp_path / "tokenizer.json"))
    with pytest.raises(SupraUserError, match=r"tokenizer.json is not a readable tokenizer.json .*: delete it to train "
                                             "a new tokenizer, or point data.tokenizer_path at another"):
        dm.setup("fit")


def no_data(self, split):
    raise AssertionError("the settings are refused before any data is read")


def test_a_vocab_size_below_a_trained_bpes_bytes_and_special_tokens_is_refused_before_any_data(tmp_path, monkeypatch):
    monkeypatch.setattr(ShapesDataModule, "load_split", no_data)
    dm = ShapesDataModule(**SMALL, vocab_size=200, cache_dir=str(tmp_path / "cache"),
                          tokenizer_path=str(tmp_path / "tokenizer.json"))
    with pytest.raises(SupraUserError) as err:
        dm.setup("fit")
    assert str(err.value) == ("model.net.VOCAB_SIZE=200 is too small for a trained tokenizer: a byte-level BPE always "
                              "holds the 256 bytes and <pad> <bos> <eos> <unk>, 260 tokens: set model.net.VOCAB_SIZE "
                              "to at least 260")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "tokenizer.json").exists()  # nothing oversized cached


def test_a_given_tokenizer_larger_than_the_model_says_to_use_the_models_own(tmp_path):
    from supra.tokens.caption_bpe import CaptionTokenizer

    bigger = CaptionTokenizer.train(["a red circle", "a blue square"], 300)
    with pytest.raises(SupraUserError, match=r"tokenizer has \d+ tokens but the model's VOCAB_SIZE is 200: use the "
                                             "tokenizer.json the model was trained with"):
        ShapesDataModule(**SMALL, vocab_size=200, tokenizer=bigger).setup("fit")


def test_a_tokenizer_path_that_cannot_be_written_is_one_line_before_any_data(tmp_path, monkeypatch):
    monkeypatch.setattr(ShapesDataModule, "load_split", no_data)
    (tmp_path / "afile").touch()
    under_a_file = tmp_path / "afile" / "tok.json"
    with pytest.raises(SupraUserError) as err:
        ShapesDataModule(**SMALL, tokenizer_path=str(under_a_file)).setup("fit")
    assert str(err.value) == (f"cannot write to data.tokenizer_path={under_a_file} ({tmp_path / 'afile'} is a file, "
                              "not a folder): point data.tokenizer_path at a file in a writable folder")
    (tmp_path / "ro").mkdir(mode=0o500)
    if not os.access(tmp_path / "ro", os.W_OK):  # root writes anywhere
        with pytest.raises(SupraUserError, match=r"cannot write to data.tokenizer_path=.*ro/tok.json \(Permission "
                                                 r"denied\): point data.tokenizer_path at a file in a writable folder"):
            ShapesDataModule(**SMALL, tokenizer_path=str(tmp_path / "ro" / "tok.json")).setup("fit")


def test_a_tokenizer_path_in_a_folder_that_is_not_there_has_it_made_and_said_naming_it(tmp_path, monkeypatch, caplog):
    """A mistyped folder became a new folder without a word, and the run trained a new tokenizer into it where
    the user meant to reuse one."""
    import logging

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with caplog.at_level(logging.WARNING, logger="supra.data.captioning.datamodule"):
        ShapesDataModule(**SMALL, tokenizer_path="rusn/tokenizer.json").setup("fit")
    assert (tmp_path / "rusn" / "tokenizer.json").is_file()
    assert caplog.messages == [f"data.tokenizer_path=rusn/tokenizer.json: its folder {tmp_path / 'rusn'} was not there "
                               "and is made: the run's tokenizer is written there (to reuse a tokenizer.json, check "
                               "the path)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="supra.data.captioning.datamodule"):
        ShapesDataModule(**SMALL, tokenizer_path="runs/tokenizer.json").setup("fit")  # a folder that is there
    assert (tmp_path / "runs" / "tokenizer.json").is_file() and not caplog.messages


def test_a_tokenizer_cache_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    (tmp_path / "afile").touch()
    dm = ShapesDataModule(**SMALL, cache_dir=str(tmp_path / "afile" / "c"))
    with pytest.raises(SupraUserError) as err:
        dm.setup("fit")
    assert str(err.value) == (f"cannot write to the tokenizer cache {tmp_path / 'afile' / 'c'} ({tmp_path / 'afile'} is a "
                              "file, not a folder): set data.cache_dir to a writable folder")


def test_a_users_tokenizer_without_our_special_ids_is_named_for_them_not_called_unreadable(tmp_path):
    from supra.tokens.caption_bpe import CaptionTokenizer

    text = CaptionTokenizer.train(["a red circle", "a blue square"], 300).to_json()
    for ours, theirs in (("<pad>", "[PAD]"), ("<bos>", "[BOS]"), ("<eos>", "[EOS]"), ("<unk>", "[UNK]")):
        text = text.replace(f'"{ours}"', f'"{theirs}"')
    (tmp_path / "u.json").write_text(text)
    with pytest.raises(SupraUserError) as err:
        ShapesDataModule(**SMALL, tokenizer_path=str(tmp_path / "u.json")).setup("fit")
    assert str(err.value) == (f"data.tokenizer_path={tmp_path / 'u.json'} reads, but its ids 0-3 are [PAD] [BOS] [EOS] "
                              "[UNK], not Supra's special tokens <pad> <bos> <eos> <unk>: give a tokenizer.json with "
                              "those at ids 0-3 (a Supra run's), or leave data.tokenizer_path at its default to train one")
    assert (tmp_path / "u.json").read_text() == text  # the user's file, kept


def test_attribute_and_relation_accuracy_use_the_generator_truth(datamodule):
    refs = datamodule.references("val")
    perfect = datamodule.extra_caption_scores("val", {i: r[0] for i, r in refs.items()})
    assert perfect == {"attr_acc": 1.0, "relation_acc": 1.0}
    assert datamodule.extra_caption_scores("val", {i: "a" for i in refs}) == {"attr_acc": 0.0, "relation_acc": 0.0}


@pytest.mark.parametrize("field", ["num_train", "num_val", "num_test"])
def test_empty_split_is_refused_with_the_setting_named(field):
    with pytest.raises(SupraUserError, match=f"data.{field}=0"):
        ShapesDataModule(**{**SMALL, field: 0})


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ShapesDataModule(**SMALL, seed=-1), r"^data.seed=-1 must be from 0 to 4294967295$"),
    (lambda: ShapesDataModule(**SMALL, canvas_size=20), r"^data.canvas_size=20 is too small to draw shapes: use 32 or more$"),
    (lambda: ShapesImagesDataModule(seed=-1), r"^data.seed=-1 must be from 0 to 4294967295$"),
])
def test_a_negative_seed_or_too_small_canvas_is_refused_with_the_setting_named(make, message):
    """Refused when the data module is made, not as the drawing code's error once a split is generated."""
    with pytest.raises(SupraUserError, match=message):
        make()


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ShapesDataModule(**{**SMALL, "num_train": 2.5}), r"^data.num_train=2.5 must be a whole number$"),
    (lambda: ShapesDataModule(**{**SMALL, "num_test": "10"}), r"^data.num_test='10' must be a whole number$"),
    (lambda: ShapesDataModule(**SMALL, seed=0.5), r"^data.seed=0.5 must be a whole number$"),
    (lambda: ShapesDataModule(**SMALL, canvas_size=64.5), r"^data.canvas_size=64.5 must be a whole number$"),
    (lambda: ShapesImagesDataModule(num_val=1.5), r"^data.num_val=1.5 must be a whole number$"),
    (lambda: ShapesDataModule(**{**SMALL, "batch_size": 2.5}), r"^data.batch_size=2.5 must be a whole number$"),
    (lambda: ShapesImagesDataModule(eval_batch_size=8.0), r"^data.eval_batch_size=8.0 \(write 8, not 8.0\) must be a whole number$"),
    (lambda: ShapesVideoDataModule(frames=2.5), r"^data.frames=2.5 must be a whole number$"),
    # numpy splits a seed past 32 bits into words and drops trailing zero words: it would alias other seeds' clips
    (lambda: ShapesVideoDataModule(seed=2**32), r"^data.seed=4294967296 must be from 0 to 4294967295$"),
])
def test_a_size_seed_or_frame_count_that_is_no_whole_number_in_range_is_one_line_before_any_drawing(make, message):
    """Such values passed the constructors and failed as a numpy traceback once a split was drawn."""
    with pytest.raises(SupraUserError, match=message):
        make()


@pytest.mark.parametrize(("size", "advice"), [(20, "32"), (28, "32"), (36, "32 or 40")])
@pytest.mark.parametrize("source", [ShapesImagesDataModule, ShapesVideoDataModule])
def test_an_image_size_off_the_patch_is_answered_with_sizes_the_shapes_can_be_drawn_at(source, size, advice):
    """data.image_size=20 answered "use 16 or 24", and 16 was then refused as too small to draw shapes."""
    with pytest.raises(SupraUserError, match=rf"^data.image_size={size} must be a positive multiple of 8 \(the "
                                             rf"VQ-VAE's patch\): use {advice}$"):
        source(image_size=size)
    with pytest.raises(SupraUserError, match=r"^data.image_size=16 is too small to draw shapes: use 32 or more$"):
        source(image_size=16)
    assert "use 16 or 24" in str(pytest.raises(SupraUserError, check_image_size, 20).value)  # a media folder: 16 px pictures are fine


def test_unknown_split_is_refused():
    with pytest.raises(SupraUserError, match="data.split='dev'"):
        ShapesDataModule(split="dev")


MORE_THAN_MEMORY = r" GiB of memory \(.+\), more than (this machine's memory|this process's address-space limit \(ulimit -v\)) \(\d+\.\d GiB\): lower it$"


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ShapesDataModule(**{**SMALL, "num_train": 10**12}),
     r"^data.num_train=1000000000000 at data.canvas_size=128 needs 126600265.5"),
    (lambda: ShapesImagesDataModule(num_val=10**12), r"^data.num_val=1000000000000 at data.image_size=64 needs 22888183.6"),
    (lambda: ShapesVideoDataModule(num_test=10**12), r"^data.num_test=1000000000000 of data.frames=4 at data.image_size=64 "
                                                     r"needs 91552734.4"),
])
def test_a_split_larger_than_the_machines_memory_is_one_line_before_any_drawing(make, message):
    """data.num_train=10**12 drew for minutes without a word (400000 ended in numpy's MemoryError traceback)."""
    with pytest.raises(SupraUserError, match=message + MORE_THAN_MEMORY):
        make()


def test_a_split_larger_than_an_address_space_limit_names_the_limit(monkeypatch):
    """Under `ulimit -v 8000000` data.num_train=400000 failed after 84 s of drawing: the limit is the bound then."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (8_000_000 * 1024, resource.RLIM_INFINITY))
    with pytest.raises(SupraUserError, match=r"^data.num_train=400000 at data.canvas_size=128 needs 50.6 GiB of memory "
                                             r"\(135936 bytes a 128 px scene and its 112 px copy\), more than this "
                                             r"process's address-space limit \(ulimit -v\) \(7.6 GiB\): lower it$"):
        ShapesDataModule(**{**SMALL, "num_train": 400_000})
    ShapesDataModule(**SMALL)  # the shipped sizes are far below it


def test_a_tokenizer_cached_by_an_older_training_is_not_reused(tmp_path):
    """A cache filled before NFKC was dropped holds tokenizers under the key the captions had then: a new run
    trains its own rather than take one that folds what the scorer keeps."""
    import hashlib

    from tokenizers import normalizers

    from supra.tokens.caption_bpe import CaptionTokenizer

    dm = ShapesDataModule(**SMALL, cache_dir=str(tmp_path))
    captions = dm.tokenizer_captions()
    old_key = hashlib.sha256(f"{dm.vocab_size}\n".encode() + "\n".join(captions).encode()).hexdigest()[:16]
    old = CaptionTokenizer.train(captions, dm.vocab_size)
    old.hf.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip()])
    old.save(tmp_path / f"tokenizer_{old_key}.json")
    dm.setup("fit")
    assert "NFKC" not in dm.tokenizer.to_json()


def test_a_tokenizer_cached_before_captions_were_lower_cased_as_the_scorer_does_is_not_reused(tmp_path):
    """A cache filled when every Σ was lower-cased to σ holds a tokenizer trained on "σίσυφοσ" under the key the
    captions had then: a new run trains its own, on "σίσυφος" as the scorer reads it."""
    import hashlib
    import json

    from supra.tokens.caption_bpe import CaptionTokenizer

    dm = ShapesDataModule(**SMALL, vocab_size=300, cache_dir=str(tmp_path))
    captions = ["Ο ΣΊΣΥΦΟΣ ΚΑΙ Ο ΒΡΆΧΟΣ", "ΕΝΑΣ ΛΟΦΟΣ"] * 5
    old_key = hashlib.sha256(json.dumps([2, dm.vocab_size, captions]).encode()).hexdigest()[:16]
    CaptionTokenizer.train([c.lower().replace("ς", "σ") for c in captions], dm.vocab_size).save(
        tmp_path / f"tokenizer_{old_key}.json")
    fresh = CaptionTokenizer.train(captions, dm.vocab_size)
    assert dm._train_or_cached_tokenizer(captions).to_json() == fresh.to_json()


def test_captions_that_differ_only_in_where_a_line_breaks_get_tokenizers_of_their_own(tmp_path):
    """The cache key joined captions with "\\n": ["a red\\nball", ...] and ["a red", "ball", ...] shared one file,
    and the second was handed the first's tokenizer."""
    dm = ShapesDataModule(**SMALL, cache_dir=str(tmp_path))
    one = dm._train_or_cached_tokenizer(["a red\nball on grass", "a blue ball"] * 5)
    other = dm._train_or_cached_tokenizer(["a red", "ball on grass", "a blue ball"] * 5)
    fresh = ShapesDataModule(**SMALL)._train_or_cached_tokenizer(["a red", "ball on grass", "a blue ball"] * 5)
    assert other.to_json() == fresh.to_json() != one.to_json()
    assert len(list(tmp_path.glob("tokenizer_*.json"))) == 2


@pytest.mark.parametrize("setting, shown", [({"image_size": None}, "image_size=None: give the model's"),
                                            ({"vocab_size": None}, "vocab_size=None: give the model's"),
                                            ({"max_caption_tokens": None}, "max_caption_tokens=None: give the model's"),
                                            ({"image_size": 0}, "image_size=0 must be a whole number >= 1"),
                                            ({"image_size": -8}, "image_size=-8 must be a whole number >= 1"),
                                            ({"max_caption_tokens": 2.5}, "max_caption_tokens=2.5 must be a whole")])
def test_a_size_of_the_models_left_none_or_below_one_is_refused_as_the_datamodule_is_built(setting, shown):
    # the config's null means "the model's" because the runner passes it; from Python None must be given so
    with pytest.raises(SupraUserError, match=rf"^{re.escape(shown)}.*task\.data_settings\(\)"):
        ShapesDataModule(**SMALL, **setting)


def test_a_loader_asked_for_before_setup_says_to_call_setup_first():
    dm = ShapesDataModule(**SMALL)
    with pytest.raises(SupraUserError, match=r"^the train split is not set up: call setup\('fit'\) before"):
        dm.train_dataloader()
    with pytest.raises(SupraUserError, match=r"^the test split is not set up: call setup\('test'\) before"):
        dm.test_dataloader()


def test_an_unknown_stage_is_refused_not_read_as_every_split():
    dm = ShapesDataModule(**SMALL)
    with pytest.raises(SupraUserError, match=r"^stage='tset' is unknown: fit, validate, test or predict$"):
        dm.setup("tset")
    assert dm.data == {}, "refused before any split was drawn"


def test_the_validation_and_test_loaders_keep_persistent_workers_of_their_own_as_the_readme_says():
    """data.num_workers=2 is 4 worker processes all through a fit, the validation loader's beside the train
    loader's: the README said only "its workers are persistent", read as the train loader's 2."""
    from pathlib import Path

    dm = ShapesDataModule(**SMALL, num_workers=2)
    dm.setup("fit")
    dm.setup("test")
    loaders = [dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()]
    assert [(loader.num_workers, loader.persistent_workers) for loader in loaders] == [(2, True)] * 3
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert ("its workers are persistent, and not the train loader's alone: the validation loader keeps "
            "`data.num_workers` of its own alive all through training (the test loader too, as it tests), so "
            "`data.num_workers=2` is 4 worker processes in a fit.") in readme
