"""A Hugging Face dataset on disk (data=hf_disk) in the layouts the Hub and `datasets` write, and the ways a real
copy goes wrong: each is read as README says, or refused in one line saying what to do."""

from __future__ import annotations

import os

import pytest

from supra.data.caption_sources.index import summary_line
from supra.data.caption_sources.sources import read_caption_source
from supra.utils.errors import SupraUserError
from tests.caption_source_fixtures import hf_split


def test_a_parquet_file_rewritten_with_its_time_kept_is_read_again_not_from_its_old_arrow_copy(tmp_path):
    """cp -p, rsync -a and tar x keep a file's mtime: the Arrow copy, keyed by path and mtime alone, gave the
    old rows while the image cache's key said the file had changed."""
    (tmp_path / "hf").mkdir()
    parquet = tmp_path / "hf" / "train.parquet"
    hf_split("train", 8).to_parquet(str(parquet))
    before = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert before.captions["train/0"] == ["a train picture 0"]
    kept = os.stat(parquet)
    hf_split("edited", 8).to_parquet(str(parquet))
    os.utime(parquet, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    after = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert after.captions["train/0"] == ["a edited picture 0"]


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_karpathys_restval_is_trained_on_and_a_split_of_no_split_word_is_counted_alike_in_both_layouts(tmp_path, layout):
    """A save_to_disk restval was dropped silently while the same parquet was trained on."""
    from tests.caption_source_fixtures import write_hf_layout

    parts = {"train": hf_split("train", 12), "restval": hf_split("restval", 8), "validation": hf_split("validation", 3),
             "test": hf_split("test", 3), "unlabeled": hf_split("unlabeled", 2)}
    if layout == "save_to_disk":
        write_hf_layout(tmp_path / "hf", layout, parts)
        left_out = "unlabeled"
    else:
        (tmp_path / "hf" / "data").mkdir(parents=True)
        for name, part in parts.items():
            part.to_parquet(str(tmp_path / "hf" / "data" / f"{name}-00000-of-00001.parquet"))
        left_out = "data/unlabeled-00000-of-00001.parquet"
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert {split: len(keys) for split, keys in index.splits.items()} == {"train": 20, "val": 3, "test": 3}
    assert summary_line("hf_disk", index, {}).endswith(
        f"skipped: 2 rows of a split that is not train, validation or test (e.g. {left_out})")


def test_parquet_files_none_of_which_names_a_split_are_train(tmp_path):
    (tmp_path / "hf" / "data").mkdir(parents=True)
    hf_split("pictures", 16).to_parquet(str(tmp_path / "hf" / "data" / "00000.parquet"))
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert {split: len(keys) for split, keys in index.splits.items()} == {"train": 12, "val": 2, "test": 2}


def test_a_parquet_folder_of_several_configs_is_one_line_naming_them(tmp_path):
    """The Hub's refs/convert/parquet of a dataset with two configs: a cast error's traceback, or, where their
    columns agree, both silently read as one train split."""
    for config in ("cfg_a", "cfg_b"):
        (tmp_path / "hf" / config / "train").mkdir(parents=True)
        hf_split(config, 8).to_parquet(str(tmp_path / "hf" / config / "train" / "0000.parquet"))
    with pytest.raises(SupraUserError) as error:
        read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert str(error.value) == (f"data.root={tmp_path / 'hf'} holds the parquet files of 2 configs (cfg_a, cfg_b): "
                                f"point data.root at one of them ({tmp_path / 'hf' / 'cfg_a'})")


def test_one_splits_parquet_files_typing_a_column_otherwise_are_one_line_naming_them_and_the_column(tmp_path):
    (tmp_path / "hf" / "data").mkdir(parents=True)
    hf_split("train", 16).to_parquet(str(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet"))
    hf_split("test", 2).to_parquet(str(tmp_path / "hf" / "data" / "test-00000-of-00002.parquet"))
    hf_split("test", 2, caption=[["a list"], ["of captions"]]).to_parquet(
        str(tmp_path / "hf" / "data" / "test-00001-of-00002.parquet"))
    with pytest.raises(SupraUserError) as error:
        read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert str(error.value) == (
        f"{tmp_path / 'hf'}'s test split is data/test-00000-of-00002.parquet and data/test-00001-of-00002.parquet, "
        "which differ in column 'caption' (string against list<element: string>): write them with one type, or move "
        "one out of data.root")


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_one_splits_parts_written_as_string_and_as_large_string_are_read_as_one_split(tmp_path, layout):
    """pandas and polars write text as large_string, datasets as string: the same captions, once refused as
    parts that "differ in column 'caption'"."""
    import datasets

    from tests.caption_source_fixtures import write_hf_layout

    large = hf_split("train2014", 8)
    large = large.cast(datasets.Features({**large.features, "caption": datasets.Value("large_string")}))
    parts = {"train": hf_split("train", 16), "train2014": large}
    if layout == "save_to_disk":
        write_hf_layout(tmp_path / "hf", layout, parts)
    else:
        (tmp_path / "hf" / "data").mkdir(parents=True)
        for name, part in parts.items():
            part.to_parquet(str(tmp_path / "hf" / "data" / f"{name}-00000-of-00001.parquet"))
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert sum(len(keys) for keys in index.splits.values()) == 24
    assert sorted(text for captions in index.captions.values() for text in captions if "train2014" in text) == sorted(
        f"a train2014 picture {i}" for i in range(8))


def test_a_parquet_file_given_as_data_root_is_one_line_naming_the_folder_to_give(tmp_path):
    (tmp_path / "hf" / "data").mkdir(parents=True)
    parquet = tmp_path / "hf" / "data" / "test-00000-of-00001.parquet"
    hf_split("test", 2).to_parquet(str(parquet))
    with pytest.raises(SupraUserError) as error:
        read_caption_source("hf_disk", parquet, cache_dir=tmp_path / "c")
    assert str(error.value) == (f"data.root={parquet} is a file, not a folder: point it at the folder holding it "
                                f"({parquet.parent}), or at a folder holding this file alone to read it alone")


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_a_test_split_shipped_without_captions_is_cut_from_train_and_said_once_per_image(tmp_path, layout):
    """Hub caption sets hold their test captions back: the fit was refused ("the test split has 0 usable
    images") with each null caption counted twice, as not text and as no caption."""
    from tests.caption_source_fixtures import write_hf_layout

    hidden = hf_split("test", 3).map(lambda row: {"caption": None})
    write_hf_layout(tmp_path / "hf", layout, {"train": hf_split("train", 16), "test": hidden})
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert {split: len(keys) for split, keys in index.splits.items()} == {"train": 12, "val": 2, "test": 2}
    assert all(key.startswith("train/") for keys in index.splits.values() for key in keys)
    assert summary_line("hf_disk", index, {}).endswith(
        "skipped: 3 images of a split without captions (cut from train instead) (e.g. test/0, test/1)")


def test_a_null_caption_beside_none_other_is_one_image_without_a_caption_not_a_caption_that_is_not_text(tmp_path):
    captions = [f"a train picture {i}" for i in range(15)] + [None]
    hf_split("train", 16, caption=captions).save_to_disk(str(tmp_path / "hf"))
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert summary_line("hf_disk", index, {}).endswith("skipped: 1 no caption (e.g. train/15)")


def test_a_train_split_too_small_to_cut_val_and_test_from_says_so_where_a_run_reads_them(tmp_path):
    """It read "the val split has 0 usable images", with no way forward. A copy without train rows (a test
    split alone, to score) cuts nothing and says nothing."""
    from supra.data.caption_sources.decoded import DecodedPhotos

    hf_split("train", 2).save_to_disk(str(tmp_path / "hf"))
    photos = DecodedPhotos("hf_disk", tmp_path / "hf", 32, cache_dir=tmp_path / "c")
    photos.load(show_progress=False)
    with pytest.raises(SupraUserError) as error:
        photos.check_splits()
    assert str(error.value) == (
        "the val split has 0 usable images: hf_disk (save_to_disk layout): train 2 images / 2 captions; val 0 images / "
        "0 captions; test 0 images / 0 captions; skipped: nothing; train's 2 captioned images are too few to cut val "
        "and test from (1/8 each, of 3 images or more): give the dataset validation and test splits, or more "
        "captioned rows")
    (tmp_path / "scored").mkdir()
    hf_split("test", 2).to_parquet(str(tmp_path / "scored" / "test.parquet"))
    index = read_caption_source("hf_disk", tmp_path / "scored", cache_dir=tmp_path / "c")
    assert summary_line("hf_disk", index, {}).endswith("test 2 images / 2 captions; skipped: nothing")


@pytest.mark.parametrize(("sentences", "holds"), [
    ({"raw": "a dog", "sentid": 1}, "struct<raw: string, sentid: int64>"),
    ([{"raw": "a dog", "sentid": 1}], "list<item: struct<raw: string, sentid: int64>>"),
])
def test_a_caption_column_of_records_is_one_line_naming_its_text_field(tmp_path, sentences, holds):
    """Every row was skipped as "a caption that is not text", then "the train split has 0 usable images"."""
    hf_split("train", 8, sentences=[sentences] * 8).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(SupraUserError) as error:
        read_caption_source("hf_disk", tmp_path / "hf", columns={"caption_column": "sentences"}, cache_dir=tmp_path / "c")
    assert str(error.value) == (
        f"data.caption_column='sentences' of {tmp_path / 'hf'}'s train split holds {holds}, not text: captions are a "
        "string or a list of strings per row; name its text field as data.caption_column=sentences.raw")


@pytest.mark.parametrize("sentences", [lambda i: {"raw": f"a dog {i}", "sentid": i},
                                       lambda i: [{"raw": f"a dog {i}", "sentid": i}, {"raw": f"a cat {i}", "sentid": 0}]])
def test_a_record_columns_text_field_named_as_column_dot_field_is_read_as_captions(tmp_path, sentences):
    """Karpathy's sentences as the Hub ships them ({raw, tokens, sentid, ...} per caption): read, not a column
    to copy out first."""
    hf_split("train", 16, sentences=[sentences(i) for i in range(16)]).save_to_disk(str(tmp_path / "hf"))
    index = read_caption_source("hf_disk", tmp_path / "hf", columns={"caption_column": "sentences.raw"},
                                cache_dir=tmp_path / "c")
    captions = {text for texts in index.captions.values() for text in texts}
    assert {f"a dog {i}" for i in range(16)} <= captions and all(text.startswith(("a dog", "a cat")) for text in captions)
    with pytest.raises(SupraUserError) as error:
        read_caption_source("hf_disk", tmp_path / "hf", columns={"caption_column": "sentences.sentid"},
                            cache_dir=tmp_path / "c")
    assert str(error.value).startswith(f"data.caption_column='sentences.sentid' of {tmp_path / 'hf'}'s train split "
                                       "names no text field: 'sentences' holds ")


def test_the_same_image_bytes_in_train_and_test_are_one_image_kept_in_test_never_trained_on(tmp_path):
    """Without data.id_column, rows of one picture were joined within a split only: a picture in train and in
    test was trained on and scored, and nothing said so."""
    import datasets

    train = hf_split("train", 16)
    again = train.select([5]).map(lambda row: {"caption": "a test picture of train's 5"})
    datasets.DatasetDict({"train": train, "validation": hf_split("validation", 2),
                          "test": datasets.concatenate_datasets([again, hf_split("test", 2)])}).save_to_disk(str(tmp_path / "hf"))
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert index.splits["test"] == ["test/0", "test/1", "test/2"] and "train/5" not in index.splits["train"]
    assert index.captions["test/0"] == ["a test picture of train's 5", "a train picture 5"]
    assert summary_line("hf_disk", index, {}).endswith(
        "skipped: nothing; 1 row holds the image of a row of another split: joined to it, kept in test before val "
        "before train, so no picture is trained on and scored")
