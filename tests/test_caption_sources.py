"""Every image-caption source in its published layouts, traps included: COCO (official 2014 / 2017 files,
Karpathy's dataset_coco.json), Flickr30k (Karpathy's json, the original .token, the shared results.csv),
a captioned folder; then training from each through train.py, scoring a Flickr8k-trained captioner on
COCO with evaluate.py, and the a2a mixture from photos with captions."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from supra.artifacts.release_files import data_names
from supra.data.caption_sources.coco import KARPATHY_VAL_TEST
from supra.data.caption_sources.flickr8k import KAGGLE_SPLIT_SIZES
from supra.data.caption_sources.flickr30k import SPLIT_SIZES as FLICKR30K_SPLIT_SIZES
from supra.data.caption_sources.index import files_under, split_sizes, summary_line
from supra.data.caption_sources.sources import read_caption_source
from supra.data.captioning.photos import PhotoCaptionsDataModule
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted
from tests.caption_source_fixtures import (
    coco_caption,
    flickr30k_caption,
    flickr30k_names,
    hf_split,
    write_caption_folder,
    write_coco_karpathy,
    write_coco_official,
    write_flickr30k,
    write_hf_dataset,
    write_row_per_caption_parquet,
)
from tests.conftest import compose_config
from tests.flickr8k_fixtures import write_images, write_kaggle, write_karpathy

LAYOUTS = {
    "coco 2014": ("coco", lambda root: write_coco_official(root, "2014")),
    "coco 2017 under images/": ("coco", lambda root: write_coco_official(root, "2017", under_images=True)),
    "coco karpathy": ("coco", write_coco_karpathy),
    "flickr30k karpathy": ("flickr30k", lambda root: write_flickr30k(root, "karpathy")),
    "flickr30k token": ("flickr30k", lambda root: write_flickr30k(root, "token")),
    "flickr30k csv (Kaggle)": ("flickr30k", lambda root: write_flickr30k(root, "csv")),
    "folder": ("folder", write_caption_folder),
    "hf save_to_disk": ("hf_disk", lambda root: write_hf_dataset(root, "save_to_disk")),
    "hf parquet (as on the Hub)": ("hf_disk", lambda root: write_hf_dataset(root, "parquet")),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_gives_its_splits_and_counts_what_it_skips(tmp_path, layout):
    source, write = LAYOUTS[layout]
    expected = write(tmp_path / "data")
    index = read_caption_source(source, tmp_path / "data")
    assert {split: len(keys) for split, keys in index.splits.items()} == expected["images"]
    assert dict(index.skipped) == expected["skipped"]
    for keys in index.splits.values():
        for key in keys:  # a file of its own, or (a dataset's) bytes that decode
            assert index.captions[key]
            assert (index.image_dir / key).is_file() or index.stored[key].read()[:2] == b"\xff\xd8"


@pytest.mark.parametrize("layout", ["coco 2014", "coco karpathy"])
def test_coco_images_keep_their_integer_ids_and_every_caption(tmp_path, layout):
    source, write = LAYOUTS[layout]
    expected = write(tmp_path / "coco")
    index = read_caption_source(source, tmp_path / "coco")
    for keys in index.splits.values():
        for key in keys:
            image_id = index.ids[key]
            assert image_id == expected["ids"][key] and isinstance(image_id, int)
            # five captions each, the newline, trailing spaces and final full stop gone
            assert index.captions[key] == [coco_caption(image_id, n)[:-1] for n in range(5)]


def test_coco_official_trains_on_the_val_images_outside_val_and_test(tmp_path):
    write_coco_official(tmp_path / "coco")
    index = read_caption_source("coco", tmp_path / "coco", seed=0)
    val_file_images = {k for keys in index.splits.values() for k in keys if k.startswith("val2014/")}
    assert len(val_file_images) == 16
    assert all(k.startswith("val2014/") for k in index.splits["val"] + index.splits["test"])
    assert read_caption_source("coco", tmp_path / "coco", seed=1).splits["test"] != index.splits["test"]


def test_coco_officials_seeded_cut_takes_karpathys_sizes_not_his_images_as_the_docs_say(tmp_path):
    write_coco_official(tmp_path / "coco")
    official = read_caption_source("coco", tmp_path / "coco", layout="2014")
    assert len(official.splits["test"]) == len(official.splits["val"])  # Karpathy's 5,000 / 5,000, 1/8 each here
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert "cut to the sizes of Karpathy's split (a seeded 5,000 val and 5,000 test images, the rest trained on), " \
           "not to his images" in readme and "For his test set use `dataset_coco.json`" in readme
    coco_yaml = (Path(__file__).parents[1] / "conf" / "data" / "coco.yaml").read_text()
    assert "not to his\n# images" in coco_yaml and "data.layout=karpathy" in coco_yaml


def test_coco_official_needs_one_of_its_two_caption_files_and_names_them_when_neither_is_there(tmp_path):
    """A forced layout=2014 over a Karpathy-only copy read no file and said "the test split has 0 usable images"."""
    write_coco_karpathy(tmp_path / "karpathy")
    with pytest.raises(SupraUserError) as err:
        read_caption_source("coco", tmp_path / "karpathy", layout="2014")
    assert str(err.value) == (f"{tmp_path / 'karpathy'} has no annotations/captions_train2014.json or captions_val2014.json "
                              "(data.layout=2014) (it holds Karpathy's dataset_coco.json: data.layout=karpathy, or null, "
                              "reads that)")
    write_coco_official(tmp_path / "coco")
    (tmp_path / "coco" / "annotations" / "captions_train2014.json").unlink()  # the val file alone: val, test and train
    index = read_caption_source("coco", tmp_path / "coco", layout="2014")
    assert all(keys and all(k.startswith("val2014/") for k in keys) for keys in index.splits.values())


def test_a_copy_without_published_splits_keeps_most_images_for_training_at_every_size():
    # Flickr30k's token/csv files (and a COCO file split as Karpathy did) carve a seeded val and test: the
    # published 1,000 (5,000) each once the copy is large, 1/8 each below that, never the one image left to
    # train on that 2,001 images minus 1,000 and 1,000 would leave
    assert split_sizes(31_783, FLICKR30K_SPLIT_SIZES) == {"train": 29_783, "val": 1000, "test": 1000}
    assert split_sizes(2_001, FLICKR30K_SPLIT_SIZES) == {"train": 1_501, "val": 250, "test": 250}
    assert split_sizes(10_001, KARPATHY_VAL_TEST) == {"train": 7_501, "val": 1_250, "test": 1_250}
    for n in range(8, 20_000, 7):
        sizes = split_sizes(n, FLICKR30K_SPLIT_SIZES)
        assert sum(sizes.values()) == n and sizes["train"] >= 6 * sizes["val"] > 0, (n, sizes)
    # a fixed published train size (Flickr8k's Kaggle copy) is taken whole or not at all
    assert split_sizes(8_091, KAGGLE_SPLIT_SIZES) == {"train": 6000, "val": 1000, "test": 1000}
    assert split_sizes(7_999, KAGGLE_SPLIT_SIZES) == {"train": 6001, "val": 999, "test": 999}


def test_the_flickr30k_csv_row_missing_its_separator_keeps_its_caption(tmp_path):
    write_flickr30k(tmp_path / "f30k", "csv")
    index = read_caption_source("flickr30k", tmp_path / "f30k")
    assert index.layout == "csv" and index.image_dir.as_posix().endswith("flickr30k_images/flickr30k_images")
    assert index.captions[flickr30k_names()[3]] == [flickr30k_caption(3, n) for n in range(5)]


def test_flickr30k_as_the_official_tarball_unpacks_has_its_images_in_flickr30k_hyphen_images(tmp_path):
    expected = write_flickr30k(tmp_path / "f30k", "token")
    (tmp_path / "f30k" / "flickr30k_images").rename(tmp_path / "f30k" / "flickr30k-images")
    index = read_caption_source("flickr30k", tmp_path / "f30k")
    assert index.image_dir.name == "flickr30k-images" and not index.skipped
    assert {split: len(keys) for split, keys in index.splits.items()} == expected["images"]


def test_a_hugging_face_dataset_keeps_its_own_ids_and_reads_string_or_list_captions(tmp_path):
    write_hf_dataset(tmp_path / "hf", "parquet")
    index = read_caption_source("hf_disk", tmp_path / "hf", columns={"id_column": "image_id"}, cache_dir=tmp_path / "c")
    assert sorted(index.ids[k] for k in index.splits["test"]) == [200, 201, 202]
    assert index.captions["test/1"] == ["a test picture 201", "another view 201"]
    assert index.captions["test/0"] == ["a test picture 200"]
    assert "train/2" in index.stored  # given as a path beside the dataset, read from there


def test_a_hugging_face_image_given_as_a_path_is_filed_under_that_path_in_predictions(tmp_path):
    """predictions.json said "file": null for images the dataset names by their path, as for bytes."""
    import datasets

    from supra.data.caption_sources.decoded import DecodedPhotos
    from tests.caption_source_fixtures import jpeg_bytes

    (tmp_path / "hf" / "imgs").mkdir(parents=True)
    for i in range(8):
        (tmp_path / "hf" / "imgs" / f"test_{i}.jpg").write_bytes(jpeg_bytes(i))
    absolute = str((tmp_path / "hf" / "imgs" / "test_7.jpg").absolute())  # inside the dataset: relative to it
    table = datasets.Dataset.from_dict({"image": [f"imgs/test_{i}.jpg" for i in range(7)] + [absolute],
                                        "caption": [f"a picture {i}" for i in range(8)]})
    table.to_parquet(str(tmp_path / "hf" / "test.parquet"))
    photos = DecodedPhotos("hf_disk", tmp_path / "hf", 32, cache_dir=tmp_path / "cache")
    photos.load(show_progress=False)
    test = photos.split("test")  # what data=hf_disk writes in predictions.json
    assert test.ids == [f"test/{i}" for i in range(8)] and test.files == [f"imgs/test_{i}.jpg" for i in range(8)]
    # an image held as bytes inside the dataset's files has no file of its own
    write_hf_dataset(tmp_path / "bytes", "parquet")
    index = read_caption_source("hf_disk", tmp_path / "bytes", cache_dir=tmp_path / "c")
    assert index.files(tmp_path / "bytes", ["train/0", "train/2"]) == [None, "photos/two.jpg"]


def test_a_hugging_face_dataset_with_a_row_per_caption_is_one_image_per_id_with_all_its_captions(tmp_path):
    import datasets

    from tests.caption_source_fixtures import jpeg_bytes

    # as e.g. the Hub's Flickr30k and COCO copies ship: five rows of one picture, one caption each
    rows = [(image_id, n) for image_id in range(24) for n in range(5)]
    table = datasets.Dataset.from_dict({"image": [{"bytes": jpeg_bytes(i), "path": f"{i}.jpg"} for i, _ in rows],
                                        "caption": [f"picture {i} take {n}" for i, n in rows],
                                        "img_id": [i for i, _ in rows]},
                                       features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                                                   "img_id": datasets.Value("int64")}))
    (tmp_path / "hf" / "data").mkdir(parents=True)
    table.to_parquet(str(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet"))
    index = read_caption_source("hf_disk", tmp_path / "hf", columns={"id_column": "img_id"}, cache_dir=tmp_path / "c")
    ids = {split: [index.ids[k] for k in keys] for split, keys in index.splits.items()}
    assert sorted(i for split in ids.values() for i in split) == list(range(24))  # each picture once, in one split
    assert all(index.captions[k] == [f"picture {index.ids[k]} take {n}" for n in range(5)] for k in index.ids)


def test_a_hugging_face_id_in_train_and_in_test_is_one_image_kept_in_test_never_trained_on(tmp_path):
    """Ids were merged within a split only: the same picture was trained on and scored, and nothing said so."""
    import datasets

    from tests.caption_source_fixtures import jpeg_bytes

    train = datasets.Dataset.from_dict({"image": [jpeg_bytes(i % 10) for i in range(20)],
                                        "caption": [f"train caption {i}" for i in range(20)], "id": [i % 10 for i in range(20)]})
    test = datasets.Dataset.from_dict({"image": [jpeg_bytes(i) for i in range(4)],
                                       "caption": [f"test caption {i}" for i in range(4)], "id": [0, 1, 2, 3]})
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "hf"))
    index = read_caption_source("hf_disk", tmp_path / "hf", columns={"id_column": "id"}, cache_dir=tmp_path / "c")
    ids = {split: sorted(index.ids[k] for k in keys) for split, keys in index.splits.items()}
    assert ids["test"] == [0, 1, 2, 3] and not {0, 1, 2, 3} & {*ids["train"], *ids["val"]}
    first = index.splits["test"][0]
    assert index.captions[first] == ["test caption 0", "train caption 0", "train caption 10"]  # one image, all of them
    assert index.skipped["image listed twice (kept once, in test before val before train)"] == 4


def test_a_hugging_face_id_column_that_several_pictures_share_is_one_line_naming_it(tmp_path):
    """Rows joined by id must hold one picture: an album or category column would give each picture the
    captions of the others."""
    pictures = [i for i in range(16) for _ in range(2)]
    write_row_per_caption_parquet(tmp_path / "hf", pictures, {"album": [i // 4 for i in pictures]})
    with pytest.raises(SupraUserError, match=r"data.id_column='album' gives id 0 to rows 0 and 2 of .*train split, "
                                             r"which hold different images: name the column that identifies each"):
        read_caption_source("hf_disk", tmp_path / "hf", columns={"id_column": "album"}, cache_dir=tmp_path / "c")


def test_hugging_face_rows_of_identical_image_bytes_without_an_id_column_are_one_image_in_one_split(tmp_path):
    """A row per caption read without data.id_column: split by row, one picture was in train and in the val
    or test cut from it, scored against one reference. Rows of one image are joined, and the summary says so."""
    pictures = [i for _ in range(3) for i in range(16)]  # each picture's rows apart, as a shuffled dataset has them
    write_row_per_caption_parquet(tmp_path / "hf", pictures)
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    placed = [key for keys in index.splits.values() for key in keys]
    assert sorted(placed, key=lambda key: int(key.split("/")[1])) == [f"train/{i}" for i in range(16)]
    assert all(index.captions[f"train/{i}"] == [f"picture {i} row {i + 16 * n}" for n in range(3)] for i in range(16))
    assert not index.ids  # the dataset's own ids stay its id column's
    assert summary_line("hf_disk", index, {}).endswith(
        "skipped: nothing; 32 rows hold the image of an earlier row of their split (a row per caption): joined to it "
        "as one image with all their captions (data.id_column names them by the dataset's ids)")


@pytest.mark.parametrize(("again", "note"), [
    ([0], "1 row holds the image of an earlier row of its split"),
    ([0, 1], "2 rows hold the image of an earlier row of their split"),
])
def test_the_note_of_hugging_face_rows_joined_to_an_earlier_one_counts_one_as_one(tmp_path, again, note):
    write_row_per_caption_parquet(tmp_path / "hf", list(range(16)) + again)
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert summary_line("hf_disk", index, {}).endswith(
        f"skipped: nothing; {note} (a row per caption): joined to it as one image with all their captions "
        "(data.id_column names them by the dataset's ids)")


def test_a_hugging_face_row_with_a_null_id_is_an_image_of_its_own(tmp_path):
    import datasets

    from tests.caption_source_fixtures import jpeg_bytes

    ids = [0, 0, None, None, 1, *range(2, 20)]  # two rows of picture 0; two pictures without an id
    pictures = [0, *range(len(ids) - 1)]
    table = datasets.Dataset.from_dict({"image": [{"bytes": jpeg_bytes(i), "path": None} for i in pictures],
                                        "caption": [f"caption of row {i}" for i in range(len(ids))], "img_id": ids},
                                       features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                                                   "img_id": datasets.Value("int64")}))
    (tmp_path / "hf" / "data").mkdir(parents=True)
    table.to_parquet(str(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet"))
    index = read_caption_source("hf_disk", tmp_path / "hf", columns={"id_column": "img_id"}, cache_dir=tmp_path / "c")
    assert index.captions["train/0"] == ["caption of row 0", "caption of row 1"]
    assert index.captions["train/2"] == ["caption of row 2"] and index.captions["train/3"] == ["caption of row 3"]
    assert sum(len(keys) for keys in index.splits.values()) == len(ids) - 1 and not index.skipped


def test_hugging_face_parquet_files_are_split_by_the_split_word_anywhere_in_their_names(tmp_path):
    from supra.data.caption_sources.hf_disk import _parquet_split

    named = {"data/train-00000-of-00002.parquet": "train", "data/coco_test.parquet": "test",
             "data/test2017-00000-of-00001.parquet": "test", "data/validation2014.parquet": "val",
             "val2014-0.parquet": "val", "default/partial-test/0000.parquet": "test", "data/00000.parquet": None,
             "devices/train-0.parquet": "train"}
    assert {name: _parquet_split(tmp_path / name, tmp_path) for name in named} == named
    # the Hub's converted layout of a large dataset: a folder per split, named partial-<split>
    for split, n in (("train", 16), ("validation", 4), ("test", 4)):
        folder = tmp_path / "hf" / "default" / f"partial-{split}"
        folder.mkdir(parents=True)
        hf_split(split, n).to_parquet(str(folder / "0000.parquet"))
    index = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert {split: len(keys) for split, keys in index.splits.items()} == {"train": 16, "val": 4, "test": 4}
    assert all(caption.startswith("a test picture") for key in index.splits["test"] for caption in index.captions[key])


def test_a_hugging_face_column_that_is_not_there_is_one_line(tmp_path):
    write_hf_dataset(tmp_path / "hf", "save_to_disk")
    with pytest.raises(SupraUserError, match=r"data.caption_column='text' is not a column of .* \(it has image, caption, image_id\)"):
        read_caption_source("hf_disk", tmp_path / "hf", columns={"caption_column": "text"})


def test_a_save_to_disk_split_is_named_by_its_split_word_as_a_parquet_file_is(tmp_path):
    import datasets

    datasets.DatasetDict({"train2014": hf_split("train2014", 16), "val2014": hf_split("val2014", 3),
                          "unlabeled": hf_split("unlabeled", 2)}).save_to_disk(str(tmp_path / "coco"))
    index = read_caption_source("hf_disk", tmp_path / "coco", cache_dir=tmp_path / "c")
    assert [len(index.splits[split]) for split in ("train", "val")] == [14, 3]  # test: 16 // 8 cut from train
    assert all(index.captions[key][0].startswith("a val2014 picture") for key in index.splits["val"])
    datasets.DatasetDict({"pictures": hf_split("pictures", 4)}).save_to_disk(str(tmp_path / "unnamed"))
    with pytest.raises(SupraUserError, match=r"data.root=.*unnamed has no train/validation/test split \(it has pictures\)"):
        read_caption_source("hf_disk", tmp_path / "unnamed", cache_dir=tmp_path / "c")


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_a_hugging_face_column_missing_from_one_split_is_one_line_naming_the_split(tmp_path, layout):
    from tests.caption_source_fixtures import write_hf_layout

    test = hf_split("test", 3).rename_column("caption", "text")  # the test files name their columns otherwise
    write_hf_layout(tmp_path / "hf", layout, {"train": hf_split("train", 16), "test": test})
    with pytest.raises(SupraUserError, match=r"data.caption_column='caption' is not a column of .*'s test split "
                                             r"\(it has image, text\)"):
        read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")


@pytest.mark.parametrize("column, holds", [("captions", "list<item: string>"), ("number", "int64")])
def test_an_image_column_that_holds_no_images_is_one_line_naming_what_it_holds(tmp_path, column, holds):
    hf_split("train", 4, captions=[["a", "b"]] * 4, number=list(range(4))).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(SupraUserError, match=rf"data.image_column='{column}' of .*'s train split holds {re.escape(holds)}, "
                                             "not images: name the column holding the Image feature, image bytes or image file paths"):
        read_caption_source("hf_disk", tmp_path / "hf", columns={"image_column": column}, cache_dir=tmp_path / "c")


def test_a_folder_keys_photos_by_their_path_so_alike_names_stay_apart(tmp_path):
    write_caption_folder(tmp_path / "photos")
    index = read_caption_source("folder", tmp_path / "photos")
    keys = {k for keys in index.splits.values() for k in keys}
    assert {"park/0.jpg", "beach/0.jpg"} <= keys
    assert index.captions["park/0.jpg"] == ["a green park park/0", "children playing in park/0"]  # BOM, CRLF
    assert index.captions["dogs/a.png"] == ["a dog, running"]


def test_a_folder_whose_names_give_test_no_file_lends_it_one_and_says_it_goes_back_to_train(tmp_path):
    """A file's split follows from its name, but for this one: the file lent to a split no name falls in is
    trained on once the folder grows a file of that split's own, which nothing said."""
    from tests.caption_source_fixtures import jpeg_bytes

    def add(*numbers: int) -> None:
        for i in numbers:
            (tmp_path / f"p{i:02d}.jpg").write_bytes(jpeg_bytes(i))
            (tmp_path / f"p{i:02d}.txt").write_text(f"photo number {i}\n")

    add(*range(6))
    index = read_caption_source("folder", tmp_path)
    assert index.splits["test"] == ["p03.jpg"]  # p01.jpg's hash puts it in val; none falls in test
    assert summary_line("folder", index, {}).endswith(
        "skipped: nothing; test holds p03.jpg, lent from train as no file's seeded hash falls in test: it goes back "
        "to train once the folder has a test file of its own, so a model trained then has seen it")
    add(6, 7)
    grown = read_caption_source("folder", tmp_path)
    assert grown.splits["test"] == ["p06.jpg"] and "p03.jpg" in grown.splits["train"]
    assert grown.splits["val"] == ["p01.jpg"] and "lent" not in summary_line("folder", grown, {})


def test_a_captions_csv_with_more_columns_keeps_the_caption_column_alone(tmp_path):
    from tests.caption_source_fixtures import jpeg_bytes

    (tmp_path / "photos").mkdir()
    lines = ["file,caption,source,license"]
    for i in range(10):
        (tmp_path / "photos" / f"img{i}.jpg").write_bytes(jpeg_bytes(i))
        lines.append(f'img{i}.jpg,"a dog, number {i}, on grass",flickr,cc-by')
    (tmp_path / "photos" / "captions.csv").write_text("\n".join(lines) + "\n")
    index = read_caption_source("folder", tmp_path / "photos")
    assert index.captions["img3.jpg"] == ["a dog, number 3, on grass"]


def test_an_image_listed_twice_is_kept_once_and_never_in_train_and_test(tmp_path):
    expected = write_coco_official(tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "captions_val2014.json"
    data = json.loads(path.read_text())
    again = dict(data["images"][0], id=9999)  # one file under a second id, as a hand-merged file may have it
    data["images"].append(again)
    data["annotations"].append({"id": 99990, "image_id": 9999, "caption": "the same picture again"})
    path.write_text(json.dumps(data))
    index = read_caption_source("coco", tmp_path / "coco")
    placed = [key for keys in index.splits.values() for key in keys]
    assert len(placed) == len(set(placed)) == sum(expected["images"].values())
    assert index.skipped["image listed twice (kept once, in test before val before train)"] == 1
    # a Karpathy file listing one picture in train and in test: it stays in test only
    karpathy = tmp_path / "karpathy"
    write_flickr30k(karpathy, "karpathy")
    listing = json.loads((karpathy / "dataset_flickr30k.json").read_text())
    test_image = next(im for im in listing["images"] if im["split"] == "test")
    listing["images"].append(dict(test_image, split="train"))
    (karpathy / "dataset_flickr30k.json").write_text(json.dumps(listing))
    index = read_caption_source("flickr30k", karpathy)
    assert test_image["filename"] in index.splits["test"] and test_image["filename"] not in index.splits["train"]


def test_a_coco_id_given_to_two_files_keeps_neither_so_no_caption_moves_to_another_picture(tmp_path):
    expected = write_coco_official(tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "captions_train2014.json"
    data = json.loads(path.read_text())
    next(im for im in data["images"] if im["id"] == 104)["id"] = 103  # file 104 listed under 103's id
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 104]
    data["images"].append(dict(data["images"][0]))  # one file twice under its own id: one image, as before
    path.write_text(json.dumps(data))
    index = read_caption_source("coco", tmp_path / "coco")
    # which picture id 103's captions describe is unknown: neither picture is used, nor are the captions
    placed = [key for keys in index.splits.values() for key in keys]
    assert not {"train2014/COCO_train2014_000000000103.jpg", "train2014/COCO_train2014_000000000104.jpg"} & set(placed)
    assert len(placed) == len(set(placed)) == sum(expected["images"].values()) - 2
    assert index.skipped["image whose id another file has too (neither kept)"] == 2
    assert index.skipped["caption for an id of two files"] == 5
    assert "captions_train2014.json: id 103 train2014/COCO_train2014_000000000104.jpg" in summary_line("coco", index, {})


def test_a_coco_caption_that_is_not_text_is_counted_as_such_not_as_a_blank_one(tmp_path):
    """As Karpathy's files and HF datasets count it: a user told "blank" looks for empty strings."""
    expected = write_coco_official(tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "captions_val2014.json"
    data = json.loads(path.read_text())
    data["annotations"] += [{"image_id": 203, "id": 90001, "caption": None}, {"image_id": 203, "id": 90002, "caption": 12},
                            {"image_id": 203, "id": 90003}]
    path.write_text(json.dumps(data))
    index = read_caption_source("coco", tmp_path / "coco")
    assert index.skipped["caption that is not text"] == 3
    assert index.skipped["blank caption"] == expected["skipped"]["blank caption"]  # the fixture's one "   "
    assert "val2014/COCO_val2014_000000000203.jpg: 12" in summary_line("coco", index, {})


def test_a_repeated_coco_annotation_id_is_said_to_be_one_listed_twice_whatever_its_text(tmp_path):
    write_coco_official(tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "captions_val2014.json"
    data = json.loads(path.read_text())
    data["annotations"].append({"image_id": 203, "id": 2030, "caption": "another caption under id 2030"})
    path.write_text(json.dumps(data))
    index = read_caption_source("coco", tmp_path / "coco")
    key = "val2014/COCO_val2014_000000000203.jpg"
    assert index.skipped["annotation id listed twice (first kept)"] == 1 and "duplicate line" not in index.skipped
    assert index.references[key] == [coco_caption(203, n) for n in range(5)]  # the first annotation 2030's text kept


def test_a_coco_id_given_to_a_train_file_and_a_val_file_keeps_neither(tmp_path):
    """The rule holds across the official train and val files too: the two files are two pictures, not one
    image listed twice, so neither is trained on or scored against the other's captions."""
    expected = write_coco_official(tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "captions_val2014.json"
    data = json.loads(path.read_text())
    next(im for im in data["images"] if im["id"] == 205)["id"] = 103  # val file 205 listed under train's id 103
    for annotation in data["annotations"]:
        annotation["image_id"] = 103 if annotation["image_id"] == 205 else annotation["image_id"]
    path.write_text(json.dumps(data))
    index = read_caption_source("coco", tmp_path / "coco")
    placed = [key for keys in index.splits.values() for key in keys]
    assert not {"train2014/COCO_train2014_000000000103.jpg", "val2014/COCO_val2014_000000000205.jpg"} & set(placed)
    assert len(placed) == len(set(placed)) == sum(expected["images"].values()) - 2
    assert index.skipped["image whose id another file has too (neither kept)"] == 2
    assert index.skipped["caption for an id of two files"] == 10
    assert "image listed twice" not in summary_line("coco", index, {})


def test_a_karpathy_cocoid_of_two_files_keeps_neither_while_one_file_listed_twice_is_kept_once_in_test(tmp_path):
    write_coco_karpathy(tmp_path / "coco")
    path = tmp_path / "coco" / "dataset_coco.json"
    data = json.loads(path.read_text())
    train, test, listed_again = data["images"][0], data["images"][-1], data["images"][-2]
    train["cocoid"] = test["cocoid"]  # two files, one id
    data["images"].append({**listed_again, "split": "restval"})  # a test file listed again as restval
    path.write_text(json.dumps(data))
    index = read_caption_source("coco", tmp_path / "coco")
    two_files = {f"{im['filepath']}/{im['filename']}" for im in (train, test)}
    again = f"{listed_again['filepath']}/{listed_again['filename']}"
    assert not two_files & {key for keys in index.splits.values() for key in keys}
    assert again in index.splits["test"] and again not in index.splits["train"]
    assert index.skipped["image whose id another file has too (neither kept)"] == 2
    assert index.skipped["image listed twice (kept once, in test before val before train)"] == 1
    assert {split: len(keys) for split, keys in index.splits.items()} == {"train": 9, "val": 3, "test": 2}


@pytest.mark.parametrize(("source", "message"), [
    ("coco", "holds no COCO captions"), ("flickr30k", "holds no known Flickr30k layout"),
    ("folder", "holds no images or GIFs"), ("hf_disk", "holds no Hugging Face dataset"),
])
def test_a_root_without_the_source_is_one_line(tmp_path, source, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SupraUserError, match=message):
        read_caption_source(source, tmp_path / "empty")


GOOD_IMAGE = {"id": 7, "file_name": "COCO_train2014_000000000007.jpg"}


@pytest.mark.parametrize(("images", "annotations", "message"), [
    ([GOOD_IMAGE, {"file_name": "a.jpg"}], [], r"images\[1\] has no id"),
    ([{"id": 8}], [], r"images\[0\] has no file_name"),
    ([{"id": "eight", "file_name": "a.jpg"}], [], r"images\[0\] has id 'eight', not an integer"),
    ([GOOD_IMAGE, "a.jpg"], [], r"images\[1\] is 'a.jpg', not an object with id and file_name"),
    ([GOOD_IMAGE], [{"image_id": 7, "caption": "a cat"}, "a dog"], r"annotations\[1\] is 'a dog', not an object"),
    ({"7": GOOD_IMAGE}, [], r"its images and annotations must be lists"),
])
def test_a_coco_file_with_a_malformed_entry_is_one_line_naming_the_file_and_the_entry(tmp_path, images, annotations,
                                                                                        message):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2014").mkdir()
    path = tmp_path / "annotations" / "captions_train2014.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    with pytest.raises(SupraUserError, match=rf"^{re.escape(str(path))}(: | is not a COCO captions file: ){message}") as err:
        read_caption_source("coco", tmp_path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("image", "message"), [
    ({"split": "train", "sentences": []}, r"images\[1\] has no filename"),
    ({"filename": 12, "split": "train"}, r"images\[1\] has filename 12, not text"),
    ({"filename": "b.jpg", "cocoid": "b", "split": "train"}, r"images\[1\] has cocoid 'b', not an integer"),
    ({"filename": "b.jpg", "split": "train", "sentences": ["a dog"]}, r"images\[1\] has sentences \['a dog'\], not a list"),
    ("b.jpg", r"images\[1\] is 'b.jpg', not an object with filename and sentences"),
])
def test_a_karpathy_file_with_a_malformed_entry_is_one_line_naming_the_file_and_the_entry(tmp_path, image, message):
    good = {"filepath": "train2014", "filename": "a.jpg", "cocoid": 1, "split": "train", "sentences": [{"raw": "a cat"}]}
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": [good, image]}))
    with pytest.raises(SupraUserError, match=rf"^{re.escape(str(path))}: {message}") as err:
        read_caption_source("coco", tmp_path)
    assert "\n" not in str(err.value)


def test_a_karpathy_sentence_whose_raw_is_not_text_is_skipped_and_counted_as_other_sources_do(tmp_path):
    write_flickr30k(tmp_path / "f30k", "karpathy")
    path = tmp_path / "f30k" / "dataset_flickr30k.json"
    listing = json.loads(path.read_text())
    for n, bad in enumerate([None, 7, ["a", "dog"]]):
        listing["images"][n]["sentences"][0]["raw"] = bad
    path.write_text(json.dumps(listing))
    index = read_caption_source("flickr30k", tmp_path / "f30k")
    assert index.skipped["caption that is not text"] == 3
    assert len(index.captions[flickr30k_names()[0]]) == 4  # the image keeps its other captions
    assert "1000092795.jpg: None" in summary_line("flickr30k", index, {})


def test_a_repeated_karpathy_sentid_is_said_to_be_one_listed_twice_whatever_its_text(tmp_path):
    """A JSON file has no lines: a sentence given an earlier one's sentid is one caption listed twice, first kept."""
    write_flickr30k(tmp_path / "f30k", "karpathy")
    path = tmp_path / "f30k" / "dataset_flickr30k.json"
    listing = json.loads(path.read_text())
    sentences = listing["images"][0]["sentences"]
    for n, sentence in enumerate(sentences):
        sentence["sentid"] = n
    first = sentences[0]["raw"]
    sentences.append({"raw": "another caption under sentid 0", "sentid": 0})
    path.write_text(json.dumps(listing))
    index = read_caption_source("flickr30k", tmp_path / "f30k")
    assert index.skipped["sentid listed twice (first kept)"] == 1 and "duplicate line" not in index.skipped
    assert first in index.references[flickr30k_names()[0]]
    assert "another caption under sentid 0" not in index.references[flickr30k_names()[0]]


def test_a_karpathy_sentence_with_tokens_but_no_raw_is_read_from_its_tokens(tmp_path):
    """Karpathy's files give both; trimmed copies may keep only the tokens. A sentence with neither is named."""
    write_flickr30k(tmp_path / "f30k", "karpathy")
    path = tmp_path / "f30k" / "dataset_flickr30k.json"
    listing = json.loads(path.read_text())
    listing["images"][0]["sentences"] = [{"tokens": ["two", "young", "guys"]}, {"imgid": 0}]
    path.write_text(json.dumps(listing))
    index = read_caption_source("flickr30k", tmp_path / "f30k")
    assert index.captions[flickr30k_names()[0]] == ["two young guys"]
    assert dict(index.skipped) == {"sentence with neither raw nor tokens": 1}


def test_an_unknown_source_is_one_line(tmp_path):
    with pytest.raises(SupraUserError, match="data.source='laion' is unknown"):
        PhotoCaptionsDataModule(source="laion", root=str(tmp_path))


def test_a_corrupt_image_is_skipped_and_named_in_the_summary(tmp_path):
    expected = write_coco_official(tmp_path / "coco")
    corrupt = next(k for k in expected["ids"] if k.startswith("val2014/"))
    (tmp_path / "coco" / corrupt).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    dm = PhotoCaptionsDataModule(source="coco", root=str(tmp_path / "coco"), cache_dir=str(tmp_path / "cache"),
                                 show_progress=False, batch_size=4, eval_batch_size=4)
    dm.setup("fit")
    assert "1 unreadable image" in dm.summary and corrupt in dm.summary
    assert sum(len(dm.loaded(s)) for s in ("train", "val")) + len(dm.photos.index.splits["test"]) == 25


@pytest.mark.parametrize("layout", ["coco 2014", "flickr30k csv (Kaggle)", "folder", "hf parquet (as on the Hub)"])
def test_the_release_recipe_trains_from_each_source(tmp_path, layout):
    """`python train.py experiment=vlm_<source> trainer=cpu data.root=... trainer.fast_dev_run=true`, in process."""
    from supra.runner.training import train

    source, write = LAYOUTS[layout]
    write(tmp_path / "data")
    experiment = {"coco": "vlm_coco", "flickr30k": "vlm_flickr30k", "folder": "vlm_caption_folder",
                  "hf_disk": "vlm_hf_disk"}[source]
    cfg = compose_config("train", tmp_path / "run", [
        f"experiment={experiment}", "trainer=cpu", f"data.root={tmp_path / 'data'}", "+trainer.fast_dev_run=true",
        "data.batch_size=4", "data.eval_batch_size=4", "data.num_workers=0", "data.show_progress=false",
        "callbacks.progress_bar=null", "model.test_metrics=[Bleu]",
    ])
    _, metrics = train(cfg)
    assert "test/Bleu_1" in metrics and (tmp_path / "run" / "splits" / "train.txt").is_file()
    assert data_names(OmegaConf.to_container(cfg)) == [source]  # what a model card's `datasets` will say


def test_evaluate_scores_a_flickr8k_trained_captioner_on_coco(tmp_path):
    """evaluate.py ckpt=<trained on Flickr8k's Karpathy layout> data=coco data.root=<COCO 2014 files>."""
    from supra.runner.evaluation import evaluate
    from supra.runner.training import train

    write_karpathy(tmp_path / "flickr")
    train(compose_config("train", tmp_path / "run", [
        "experiment=vlm_flickr8k", "trainer=cpu", f"data.root={tmp_path / 'flickr'}", "trainer.max_steps=1",
        "trainer.max_epochs=1", "test=false", "data.eval_batch_size=4", "data.num_workers=0",
        "data.show_progress=false", "callbacks.progress_bar=null",
    ]))
    expected = write_coco_official(tmp_path / "coco")
    # in process: evaluate.py is this call after composing conf/eval.yaml (test_flickr8k runs the command line)
    evaluate(compose_config("eval", tmp_path / "eval", [
        f"ckpt={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "data=coco", f"data.root={tmp_path / 'coco'}",
        "data.num_workers=0", "data.show_progress=false"]))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"Bleu_4", "CIDEr"} <= set(metrics)
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert len(predictions) == 2  # COCO's results format: integer image ids, the file beside them
    for p in predictions:
        assert expected["ids"][p["file"].removeprefix("./")] == p["image_id"] and isinstance(p["image_id"], int)

    # a copy holding the test split alone (a benchmark's parquet file): scoring needs no train images
    import datasets

    from tests.caption_source_fixtures import jpeg_bytes
    (tmp_path / "bench" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": [{"bytes": jpeg_bytes(i), "path": None} for i in range(3)],
                                "caption": [f"a test picture {i}" for i in range(3)]},
                               features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")})
                               ).to_parquet(str(tmp_path / "bench" / "data" / "test-00000-of-00001.parquet"))
    evaluate(compose_config("eval", tmp_path / "bench_eval", [
        f"ckpt={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "data=hf_disk", f"data.root={tmp_path / 'bench'}",
        "data.num_workers=0", "data.show_progress=false"]))
    assert len(json.loads((tmp_path / "bench_eval" / "predictions.json").read_text())) == 3


@pytest.mark.parametrize("layout", ["coco 2014", "folder", "shards"])
def test_the_a2a_mixture_trains_from_photos_with_captions(tmp_path, layout):
    """text2image, image2text and text from a caption source at 64 px, codes cached by the frozen VQ-VAE."""
    from supra.runner.training import train
    from tests.caption_source_fixtures import write_img2dataset_shards
    from tests.conftest import write_vqvae_checkpoint
    from tests.test_a2a_training import a2a_run

    if layout == "shards":
        spec = {split: write_img2dataset_shards(tmp_path / split, shards=2, per_shard=6)["spec"]
                for split in ("train", "val", "test")}
        photos = ("{_target_:supra.data.media.shard_images.ShardImagesMediaDataModule,image_size:64,"
                  + ",".join(f"{split}_shards:'{s}'" for split, s in spec.items()) + "}")
    else:
        source, write = LAYOUTS[layout]
        write(tmp_path / "data")
        photos = (f"{{_target_:supra.data.media.photo_captions.PhotoCaptionsMediaDataModule,source:{source},"
                  f"root:'{tmp_path / 'data'}',image_size:64,show_progress:false}}")
    overrides = [o for o in a2a_run(write_vqvae_checkpoint(tmp_path / "vq.ckpt"), tmp_path / "cache")
                 if not o.startswith("data.sources.")]
    cfg = compose_config("train", tmp_path / "run", [
        *overrides, "~data.sources.shapes", "~data.sources.shapes_video", f"+data.sources.photos={photos}",
        "data.tasks.video=0", "data.tasks.text2video=0",
    ])
    _, metrics = train(cfg)
    assert {"test/loss_text2image", "test/loss_image2text", "test/loss_text", "test/CIDEr"} <= set(metrics)
    assert "test/text2image_fidelity" not in metrics  # the shapes judge needs the objects only shapes know


def test_the_a2a_shard_source_names_a_local_shard_that_is_not_there(tmp_path):
    from supra.data.media.shard_images import ShardImagesMediaDataModule
    from tests.caption_source_fixtures import write_img2dataset_shards

    write_img2dataset_shards(tmp_path / "s", shards=2, per_shard=4)
    typo = str(tmp_path / "s" / "{00000..00002}.tar")  # one shard too many
    source = ShardImagesMediaDataModule(train_shards=typo, val_shards=typo, test_shards=typo, image_size=64)
    with pytest.raises(SupraUserError, match=r"train_shards=.*: 1 of 3 shards are not there \(e.g. .*00002.tar\)"):
        source.load_split("train")


def test_a_caption_file_that_is_not_utf8_keeps_its_accents_and_is_named(tmp_path, caplog):
    from supra.data.captions import read_lines

    (tmp_path / "notepad.txt").write_bytes("a café by the sea\r\ncrème brûlée\r\n".encode("cp1252"))
    (tmp_path / "utf8.txt").write_bytes("\ufeffa café by the sea\n".encode())
    assert read_lines(tmp_path / "notepad.txt") == ["a café by the sea", "crème brûlée"]
    assert read_lines(tmp_path / "utf8.txt") == ["a café by the sea"]
    assert [r.message.split(" is not UTF-8")[0] for r in caplog.records] == [str(tmp_path / "notepad.txt")]


def test_a_folder_of_caption_files_not_in_utf8_is_said_in_one_warning_with_a_few_named(tmp_path, caplog):
    from PIL import Image

    from supra.data.folder_index import scan_folder

    for i in range(5):  # Notepad's sidecars: one line for the folder, not one per file
        Image.new("RGB", (8, 8)).save(tmp_path / f"p{i}.png")
        (tmp_path / f"p{i}.txt").write_bytes(f"a café {i}".encode("cp1252"))
    (tmp_path / "captions.jsonl").write_bytes(json.dumps({"file": "p0.png", "caption": "crème"},
                                                         ensure_ascii=False).encode("cp1252"))
    index = scan_folder(tmp_path)
    assert index.captions["p0.png"] == ["a café 0", "crème"] and index.captions["p4.png"] == ["a café 4"]
    assert [r.getMessage() for r in caplog.records] == [
        f"6 caption files under {tmp_path} are not UTF-8 (e.g. p0.txt, p1.txt, p2.txt): read as Windows-1252; "
        "save them as UTF-8 if their captions look wrong"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_caption_file_saved_as_unicode_with_a_byte_order_mark_is_read_as_such(tmp_path, encoding, caplog):
    from supra.data.captions import read_lines

    # Notepad's and Excel's "Unicode" saves are UTF-16 with a byte-order mark (Python's utf-16 writes one)
    data = "a café by the sea\r\nsecond caption\r\n".encode(encoding)
    (tmp_path / "unicode.txt").write_bytes(data if encoding != "utf-16-be" else b"\xfe\xff" + data)
    assert read_lines(tmp_path / "unicode.txt") == ["a café by the sea", "second caption"] and not caplog.records


def test_a_unicode_caption_file_with_a_damaged_character_keeps_the_rest_of_its_text(tmp_path, caplog):
    from supra.data.captions import read_lines

    (tmp_path / "cut.txt").write_bytes("a café by the sea\nsecond".encode("utf-16") + b"\x00")  # one byte over
    lines = read_lines(tmp_path / "cut.txt")
    assert lines[0] == "a café by the sea" and lines[1].startswith("second") and "byte-order mark says UTF-16" in caplog.text


def test_a_captions_tsv_saved_by_excel_as_unicode_text_is_read(tmp_path):
    from PIL import Image

    from supra.data.folder_index import scan_folder

    Image.new("RGB", (16, 16)).save(tmp_path / "photo.png")
    (tmp_path / "captions.tsv").write_bytes("file\tcaption\r\nphoto.png\ta black square\r\n".encode("utf-16"))
    assert scan_folder(tmp_path).captions == {"photo.png": ["a black square"]}


def test_image_folders_linked_into_place_are_read_as_copies_are(tmp_path):
    """Clusters link data sets into place (`train2014 -> /datasets/coco/train2014`): the same images."""
    expected = write_coco_official(tmp_path / "real")
    linked = tmp_path / "linked"
    linked.mkdir()
    for part in ("annotations", "train2014", "val2014"):
        (linked / part).symlink_to(tmp_path / "real" / part, target_is_directory=True)
    (linked / "val2014" / "loop").symlink_to(linked, target_is_directory=True)  # a link back up is not walked
    # a second link to the train images, listed first (made as long ago as train2014's, and sorted before
    # it): the annotations' train2014/ names still find them
    (linked / "all_train").symlink_to(tmp_path / "real" / "train2014", target_is_directory=True)
    made = os.lstat(linked / "train2014").st_mtime_ns
    os.utime(linked / "all_train", ns=(made, made), follow_symlinks=False)
    copy, link = read_caption_source("coco", tmp_path / "real"), read_caption_source("coco", linked)
    assert link.splits == copy.splits and link.captions == copy.captions
    assert sum(len(keys) for keys in link.splits.values()) == sum(expected["images"].values())


def test_a_folder_linked_twice_is_read_once_so_no_photo_is_in_train_and_test(tmp_path):
    """`latest -> 2024` beside 2024/ would list each photo under two names, which the split draws apart."""
    from tests.caption_source_fixtures import jpeg_bytes

    (tmp_path / "photos" / "2024").mkdir(parents=True)
    for i in range(12):
        (tmp_path / "photos" / "2024" / f"img{i:02d}.jpg").write_bytes(jpeg_bytes(i))
        (tmp_path / "photos" / "2024" / f"img{i:02d}.txt").write_text(f"caption {i}\n")
    (tmp_path / "photos" / "latest").symlink_to("2024", target_is_directory=True)
    index = read_caption_source("folder", tmp_path / "photos")
    assert sorted(sum(index.splits.values(), [])) == [f"2024/img{i:02d}.jpg" for i in range(12)]
    assert "1 folder listed already under another path (e.g. latest = 2024)" in summary_line("folder", index, {})


def captioned_photos(root, captions_file: str, data: bytes, n: int = 8):
    from tests.caption_source_fixtures import jpeg_bytes

    root.mkdir()
    for i in range(n):
        (root / f"p{i}.jpg").write_bytes(jpeg_bytes(i))
    (root / captions_file).write_bytes(data)
    return read_caption_source("folder", root)


def test_a_captions_csv_a_mac_spreadsheet_saved_with_cr_line_ends_is_read(tmp_path):
    rows = "file,caption\r" + "".join(f'p{i}.jpg,"caption {i}, quoted"\r' for i in range(8))
    index = captioned_photos(tmp_path / "photos", "captions.csv", rows.encode())
    assert index.captions["p3.jpg"] == ["caption 3, quoted"]


def test_a_captions_csv_written_with_spaces_after_its_commas_has_no_quotes_in_its_captions(tmp_path):
    rows = "file, caption\n" + "".join(f'p{i}.jpg, "a dog, number {i}"\n' for i in range(8))
    index = captioned_photos(tmp_path / "photos", "captions.csv", rows.encode())
    assert index.captions["p3.jpg"] == ["a dog, number 3"]


def test_a_spaced_captions_csv_keeps_an_unquoted_caption_holding_commas_as_written(tmp_path):
    rows = "file, caption\n" + "".join(f"p{i}.jpg, {i},000 people on a beach\n" for i in range(8))
    index = captioned_photos(tmp_path / "photos", "captions.csv", rows.encode())
    assert index.captions["p3.jpg"] == ["3,000 people on a beach"]  # not "3, 000"


@pytest.mark.parametrize("header", ["file,caption", "file, caption"])
def test_an_unquoted_caption_holding_a_quote_keeps_its_quotes_and_commas_as_written(tmp_path, header):
    captions = ['a 12" pizza, 1,000 slices', '"Stop" sign, red', '"Stop" sign', '"quoted, whole"']
    space = " " if header.endswith(" caption") else ""
    rows = f"{header}\n" + "".join(f"p{i}.jpg,{space}{captions[i % 4]}\n" for i in range(8))
    index = captioned_photos(tmp_path / "photos", "captions.csv", rows.encode())
    assert [index.captions[f"p{i}.jpg"] for i in range(4)] == [
        ['a 12" pizza, 1,000 slices'], ['"Stop" sign, red'], ['"Stop" sign'], ["quoted, whole"]]


@pytest.mark.parametrize("header", ["file,caption", "file, caption"])
def test_a_quoted_name_keeps_its_unquoted_caption_as_written_too(tmp_path, header):
    space = " " if header.endswith(" caption") else ""
    rows = f"{header}\n" + "".join(f'"p{i}.jpg",{space}{i},000 people, a "Stop" sign\n' for i in range(8))
    index = captioned_photos(tmp_path / "photos", "captions.csv", rows.encode())
    assert index.captions["p3.jpg"] == ['3,000 people, a "Stop" sign']


def test_a_quoted_caption_holding_a_line_break_excel_alt_enter_is_read_whole(tmp_path):
    rows = "file,caption\r\n" + "".join(f'p{i}.jpg,"caption {i}\nits ""second"" line"\r\n' for i in range(8))
    index = captioned_photos(tmp_path / "photos", "captions.csv", rows.encode())
    assert index.captions["p3.jpg"] == ['caption 3 its "second" line'] and len(index.captions) == 8


def test_a_captions_csv_with_an_unclosed_quote_is_one_line_naming_where_not_one_caption_of_many_rows(tmp_path):
    rows = ["file,caption", *(f"p{i}.jpg,caption {i}" for i in range(8))]
    rows[4] = 'p3.jpg,"Hello world said the sign'  # its closing quote forgotten: the rows after it would join it
    with pytest.raises(SupraUserError, match=r"captions.csv:5: a quoted field runs over 5 lines \(a missing "
                                             r"closing quote\?\)"):
        captioned_photos(tmp_path / "photos", "captions.csv", "\n".join(rows).encode())


def test_a_quote_left_open_until_a_later_caption_quotes_is_refused_for_the_rows_it_swallowed(tmp_path):
    rows = ["file,caption", *(f"p{i}.jpg,caption {i}" for i in range(8))]
    rows[4] = 'p3.jpg,"Hello world said the sign'
    rows[6] = 'p5.jpg,a sign saying "hello"'  # its first quote closes p3's: p4's row would be inside a caption
    with pytest.raises(SupraUserError, match=r"captions.csv:5: a quoted field runs over 3 lines"):
        captioned_photos(tmp_path / "photos", "captions.csv", "\n".join(rows).encode())


def test_a_quoted_caption_whose_second_line_holds_a_dot_and_a_comma_is_read_not_refused(tmp_path):
    """Only a line that starts with a media file's name and the delimiter is taken for a swallowed row."""
    second_lines = ["Price 3.99, today only", "see www.example.com, for more", "version 2.10, the new UI",
                    "notes.txt, a file", "shot on a Canon EOS 5D, f/2.8"]
    rows = "file,caption\n" + "".join(f'p{i}.jpg,"A sale sign\n{second_lines[i % 5]}"\n' for i in range(8))
    index = captioned_photos(tmp_path / "photos", "captions.csv", rows.encode())
    assert index.captions["p0.jpg"] == ["A sale sign Price 3.99, today only"] and len(index.captions) == 8


@pytest.mark.parametrize("next_row", ['"p4.JPG",a 12" pizza', 'Screen Shot 1.png,a 12" pizza'],
                         ids=["quoted name", "name with spaces"])
def test_a_quote_left_open_before_a_row_is_refused_not_merged(tmp_path, next_row):
    """The next row would end up inside p3's caption: the quote in 12" evens the count, so only how that
    row starts (a media file's name, then the delimiter) tells."""
    rows = ["file,caption", *(f"p{i}.jpg,caption {i}" for i in range(8))]
    rows[4], rows[5] = 'p3.jpg,"a dog', next_row
    with pytest.raises(SupraUserError, match=r"captions.csv:5: a quoted field runs over 2 lines"):
        captioned_photos(tmp_path / "photos", "captions.csv", "\n".join(rows).encode())


def test_a_caption_holding_a_unicode_line_separator_keeps_its_jsonl_line_whole(tmp_path):
    lines = [json.dumps({"file": f"p{i}.jpg", "caption": f"caption {i}\u2028second line"}, ensure_ascii=False)
             for i in range(8)]
    index = captioned_photos(tmp_path / "photos", "captions.jsonl", "\n".join(lines).encode())
    assert index.captions["p1.jpg"] == ["caption 1 second line"] and not index.skipped


def test_one_sidecar_beside_two_images_of_its_name_captions_neither_and_says_so(tmp_path):
    """x.txt beside x.jpg and x.png captioned both, and the two, split by name, could sit in train and test."""
    expected = write_caption_folder(tmp_path / "photos")
    write_images(tmp_path / "photos" / "pair", ["x.jpg", "x.png", "y.png"])
    (tmp_path / "photos" / "pair" / "x.txt").write_text("the jpg one\n")
    (tmp_path / "photos" / "pair" / "y.txt").write_text("a picture of its own\n")
    index = read_caption_source("folder", tmp_path / "photos")
    placed = {key for keys in index.splits.values() for key in keys}
    assert "pair/y.png" in placed and not {"pair/x.jpg", "pair/x.png"} & placed
    line = summary_line("folder", index, {})
    assert ("1 sidecar that two images share, captioning neither (name each <name>.<ext>.txt: photo.jpg.txt) "
            "(e.g. pair/x.txt (pair/x.jpg, pair/x.png))") in line
    assert sum(len(keys) for keys in index.splits.values()) == sum(expected["images"].values()) + 1


def test_sidecar_captions_with_an_upper_case_suffix_are_read(tmp_path):
    from tests.caption_source_fixtures import jpeg_bytes

    (tmp_path / "photos").mkdir()
    for i in range(8):
        (tmp_path / "photos" / f"P{i}.JPG").write_bytes(jpeg_bytes(i))
        (tmp_path / "photos" / f"P{i}.TXT").write_text(f"caption {i}\n")
    assert read_caption_source("folder", tmp_path / "photos").captions["P2.JPG"] == ["caption 2"]


def test_captions_match_file_names_whatever_their_unicode_form_and_a_mismatch_says_why(tmp_path):
    import unicodedata

    from tests.caption_source_fixtures import jpeg_bytes

    nfd = unicodedata.normalize("NFD", "café")  # as a folder unzipped on a Mac names it
    (tmp_path / "photos").mkdir()
    for i in range(8):
        (tmp_path / "photos" / f"{nfd}{i}.jpg").write_bytes(jpeg_bytes(i))
    lines = [json.dumps({"file": f"café{i}.jpg", "caption": f"coffee {i}"}) for i in range(8)]  # NFC
    (tmp_path / "photos" / "captions.jsonl").write_text("\n".join(lines))
    assert read_caption_source("folder", tmp_path / "photos").captions[f"{nfd}2.jpg"] == ["coffee 2"]
    lines = [json.dumps({"file": f"photos/café{i}.jpg", "caption": f"coffee {i}"}) for i in range(8)]
    (tmp_path / "photos" / "captions.jsonl").write_text("\n".join(lines))  # named from the folder above
    with pytest.raises(SupraUserError, match=r"has 0 images with captions: .*; the caption files had 8 captions "
                                             r"for no media file \(e.g. captions.jsonl:1"):
        read_caption_source("folder", tmp_path / "photos")


def test_a_sidecar_finds_its_photo_whatever_the_unicode_form_of_either_name(tmp_path):
    import unicodedata

    from tests.caption_source_fixtures import jpeg_bytes

    nfd, nfc = unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")
    (tmp_path / "photos").mkdir()
    for i in range(8):  # photos unzipped on a Mac (NFD), captions written beside them on Linux (NFC); and back
        photo, sidecar = (nfd, nfc) if i % 2 else (nfc, nfd)
        suffix = ".TXT" if i == 3 else ".txt"  # the suffix still in any case
        (tmp_path / "photos" / f"{photo}{i}.jpg").write_bytes(jpeg_bytes(i))
        (tmp_path / "photos" / f"{sidecar}{i}{suffix}").write_text(f"coffee {i}\n")
    index = read_caption_source("folder", tmp_path / "photos")
    assert len(index.captions) == 8 and not index.skipped
    assert index.captions[f"{nfd}1.jpg"] == ["coffee 1"] and index.captions[f"{nfd}3.jpg"] == ["coffee 3"]


def test_an_annotation_may_name_an_image_through_links_within_links(tmp_path):
    """latest -> 2024 and 2024/raw -> ../raw: `latest/raw/b.jpg` is raw/b.jpg, though each folder is walked once."""
    for name in ("2024/a.jpg", "raw/b.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"jpeg")
    (tmp_path / "2024" / "raw").symlink_to("../raw", target_is_directory=True)
    (tmp_path / "latest").symlink_to("2024", target_is_directory=True)
    has = files_under(tmp_path)
    assert all(has(name) for name in ("2024/a.jpg", "raw/b.jpg", "latest/a.jpg", "2024/raw/b.jpg", "latest/raw/b.jpg"))
    assert not has("latest/raw/c.jpg") and not has("latest/b.jpg")


def test_the_split_lists_written_hold_one_name_a_line_a_line_break_in_a_name_escaped(tmp_path):
    """splits/<split>.txt: one record per image, `new\\nline.png` written with the escape generate's text.txt uses."""
    root = tmp_path / "photos"
    names = ["new\nline.png", "back\\slash.png", *(f"p{i}.png" for i in range(6))]
    write_images(root, names)
    for name in names:
        (root / f"{name[:-4]}.txt").write_text("a photo\n")
    dm = PhotoCaptionsDataModule(source="folder", root=str(root), output_dir=str(tmp_path / "run"),
                                 cache_dir=str(tmp_path / "cache"), show_progress=False, batch_size=2, eval_batch_size=2)
    dm.setup("fit")
    written = [line for split in ("train", "val", "test")
               for line in (tmp_path / "run" / "splits" / f"{split}.txt").read_text().splitlines()]
    assert sorted(written) == sorted(["new\\nline.png", "back\\\\slash.png", *(f"p{i}.png" for i in range(6))])


def photo_folder(root, count: int):
    """`count` photos IMG_0000.jpg ... each with a one-line IMG_0000.txt beside it."""
    names = [f"IMG_{i:04d}.jpg" for i in range(count)]
    write_images(root, names)
    for name in names:
        (root / f"{name[:-4]}.txt").write_text(f"a photo called {name}\n")
    return root


def test_a_folder_of_twenty_photos_warns_that_its_one_image_val_split_keeps_best_ckpt_and_names_the_option(
        tmp_path, caplog):
    """20 photos split 10% / 10% by their names' hashes leave val one image, over which CIDEr is 0 at every
    validation: best.ckpt was the first validation's whatever followed, the warning said only that CIDEr was
    0, and no option sized the split. The default split stays as it was; data.val_fraction widens it."""
    root = photo_folder(tmp_path / "photos", 20)
    options = {"source": "folder", "root": str(root), "cache_dir": str(tmp_path / "cache"), "show_progress": False,
               "batch_size": 4, "eval_batch_size": 4}
    dm = PhotoCaptionsDataModule(**options)
    with caplog.at_level("WARNING", logger="supra.data.captioning.photos"):
        dm.setup("fit")
    assert {split: len(keys) for split, keys in dm.index.splits.items()} == {"train": 18, "val": 1, "test": 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"the val split of data.root={root} holds 1 of its 20 images (data.val_fraction=0.1): CIDEr over one image is "
        "0 at every validation, so best.ckpt (chosen by val/CIDEr) stays the first validation's and a sweep's trials "
        "all tie; set data.val_fraction=0.25 (about 5 images)",
        f"the test split of data.root={root} holds 1 of its 20 images (data.test_fraction=0.1): CIDEr over one image "
        "is 0 whatever the model; set data.test_fraction=0.25 (about 5 images)"]
    caplog.clear()
    wider = PhotoCaptionsDataModule(**options, val_fraction=0.25, test_fraction=0.25)
    with caplog.at_level("WARNING", logger="supra.data.captioning.photos"):
        wider.setup("fit")
    assert len(wider.index.splits["val"]) > 1 and len(wider.index.splits["test"]) > 1 and not caplog.records
    assert set(dm.index.splits["val"]) <= set(wider.index.splits["val"])  # the hash rule: a wider val keeps its files


@pytest.mark.parametrize(("source", "options", "message"), [
    ("folder", {"val_fraction": 0}, "data.val_fraction=0 and data.test_fraction=0.1 must each be above 0 and below 1"),
    ("folder", {"val_fraction": 0.6, "test_fraction": 0.5}, r"leave some files for train \(their sum below 1\)"),
    ("coco", {"test_fraction": 0.2}, r"data.test_fraction=0.2 sizes a folder's split \(data=caption_folder\), not "
                                     "data.source=coco's: leave it out"),
])
def test_split_fractions_that_cannot_size_a_folder_split_are_one_line(tmp_path, source, options, message):
    with pytest.raises(SupraUserError, match=message):
        PhotoCaptionsDataModule(source=source, root=str(tmp_path), **options)


@pytest.mark.parametrize(("files", "named"), [
    (("sidecars",), "name.txt beside each image"), (("captions.jsonl",), "captions.jsonl"),
    (("captions.csv",), "captions.csv"), (("captions.tsv",), "captions.tsv"),
    (("sidecars", "captions.jsonl", "captions.csv"), "name.txt beside each image + captions.jsonl + captions.csv"),
])
def test_the_set_up_line_of_a_folder_names_every_caption_file_it_read(tmp_path, files, named):
    """It said "folder (folder layout)" whichever files the captions came from: a folder holding a captions.jsonl
    and a captions.csv reads both, their captions joined, and the line now names both."""
    from tests.caption_source_fixtures import jpeg_bytes

    names = [f"p{i}.jpg" for i in range(6)]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(jpeg_bytes(i))
    writers = {
        "sidecars": lambda: [(tmp_path / f"{n[:-4]}.txt").write_text(f"beside {n}\n") for n in names],
        "captions.jsonl": lambda: (tmp_path / "captions.jsonl").write_text(
            "".join(json.dumps({"file": n, "caption": f"json {n}"}) + "\n" for n in names)),
        "captions.csv": lambda: (tmp_path / "captions.csv").write_text("file,caption\n" + "".join(f"{n},csv {n}\n" for n in names)),
        "captions.tsv": lambda: (tmp_path / "captions.tsv").write_text("file\tcaption\n" + "".join(f"{n}\ttsv {n}\n" for n in names)),
    }
    for file in files:
        writers[file]()
    index = read_caption_source("folder", tmp_path)
    assert summary_line("folder", index, {}).startswith(f"folder ({named} layout): ")
    assert len(index.captions["p0.jpg"]) == len(files)  # each file's caption kept


def test_the_a2a_photo_source_splits_a_folder_by_the_shares_the_captioner_takes_and_warns_of_a_one_image_split(
        tmp_path, caplog):
    """The a2a mixture's photo source split a folder 10% / 10% whatever the captioner was told: the same
    val_fraction and test_fraction now size it, checked alike, and a split of one image is warned of with the
    option as the mixture names it."""
    from supra.data.media.photo_captions import PhotoCaptionsMediaDataModule

    root = photo_folder(tmp_path / "photos", 20)
    wider = {"val_fraction": 0.25, "test_fraction": 0.25}
    captioner = PhotoCaptionsDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "cache"),
                                        show_progress=False, batch_size=4, eval_batch_size=4, **wider)
    captioner.setup("fit")
    photos = PhotoCaptionsMediaDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "a2a"),
                                          show_progress=False, **wider)
    assert {split: photos.split_items(split).names for split in ("train", "val", "test")} == captioner.index.splits
    default_split = PhotoCaptionsMediaDataModule(source="folder", root=str(root), show_progress=False)
    default_split.check_inputs("data.sources.photos")  # as the mixture names its options
    with caplog.at_level("WARNING", logger="supra.data.media.photo_captions"):
        default_split.split_items("train")  # counted as the photos are decoded
    assert [r.getMessage() for r in caplog.records] == [
        f"the val split of data.sources.photos.root={root} holds 1 of its 20 images "
        "(data.sources.photos.val_fraction=0.1): every validation scores one of its images; set "
        "data.sources.photos.val_fraction=0.25 (about 5 images)",
        f"the test split of data.sources.photos.root={root} holds 1 of its 20 images "
        "(data.sources.photos.test_fraction=0.1): the test scores one of its images; set "
        "data.sources.photos.test_fraction=0.25 (about 5 images)"]
    with pytest.raises(SupraUserError, match=r"^data.val_fraction=0.6 and data.test_fraction=0.5 must each be above 0"):
        PhotoCaptionsMediaDataModule(source="folder", root=str(root), val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(SupraUserError, match=r"^data.val_fraction=0.2 sizes a folder's split \(source: folder\), "
                                             "not data.source=coco's: leave it out"):
        PhotoCaptionsMediaDataModule(source="coco", root=str(root), val_fraction=0.2)


def test_the_a2a_photo_source_counts_a_one_image_split_after_decoding_as_the_captioner_does(tmp_path, caplog):
    """broken1.jpg falls in val beside IMG_0004.jpg and fails to decode: the captioner warned of a val split of one
    image (it counts after decoding) and the a2a source, counting the folder's split before, said nothing."""
    from supra.data.media.photo_captions import PhotoCaptionsMediaDataModule

    root = photo_folder(tmp_path / "photos", 20)
    (root / "broken1.jpg").write_bytes(b"not a jpeg")
    (root / "broken1.txt").write_text("a photo that does not decode\n")
    captioner = PhotoCaptionsDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "cache"),
                                        show_progress=False, batch_size=4, eval_batch_size=4)
    with caplog.at_level("WARNING"):
        captioner.setup("fit")
        said_by_captioner = [r.getMessage() for r in caplog.records if r.getMessage().startswith("the val split")]
        caplog.clear()
        PhotoCaptionsMediaDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "a2a"),
                                     show_progress=False).split_items("val")
    assert captioner.index.splits["val"] == ["IMG_0004.jpg"]
    assert said_by_captioner == [f"the val split of data.root={root} holds 1 of its 20 images (data.val_fraction=0.1): "
                                 "CIDEr over one image is 0 at every validation, so best.ckpt (chosen by val/CIDEr) "
                                 "stays the first validation's and a sweep's trials all tie; set data.val_fraction=0.25 "
                                 "(about 5 images)"]
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("the val split")] == [
        f"the val split of data.root={root} holds 1 of its 20 images (data.val_fraction=0.1): every validation "
        "scores one of its images; set data.val_fraction=0.25 (about 5 images)"]


def test_the_folder_config_switched_to_another_source_says_which_data_config_reads_that_source(tmp_path):
    """data=caption_folder data.source=coco carries the folder config's val_fraction: the refusal told the user to
    leave out an option they never gave; it now says where it came from and which data= reads COCO."""
    data = compose_config("train", tmp_path / "run", ["data=caption_folder", "data.source=coco"]).data
    with pytest.raises(SupraUserError, match=r"^data.val_fraction=0.1 sizes a folder's split \(data=caption_folder\), "
                                             r"not data.source=coco's: leave it out \(data=caption_folder sets it: "
                                             r"read coco with data=coco\)$"):
        PhotoCaptionsDataModule(source=data.source, root=str(tmp_path), val_fraction=data.val_fraction,
                                test_fraction=data.test_fraction)
    assert compose_config("train", tmp_path / "run", ["data=coco"]).data.source == "coco"  # the config it names


def test_a_vocab_size_no_trained_tokenizer_fits_is_refused_before_a_folder_is_decoded(tmp_path):
    """The check ran in setup, after prepare_data had decoded every image into the cache (COCO: 123k)."""
    root = photo_folder(tmp_path / "photos", 4)
    dm = PhotoCaptionsDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "cache"),
                                 show_progress=False, vocab_size=259)
    with pytest.raises(SupraUserError, match=r"^model.net.VOCAB_SIZE=259 is too small for a trained tokenizer"):
        dm.prepare_data()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_a_folder_reads_every_picture_caption_reads_and_counts_each_file_it_leaves_out_by_kind(tmp_path):
    """A folder's .jfif .jpe .ppm .pgm .ico .avif pictures, which `caption` reads, were dropped with their captions
    while the set-up line said "skipped: nothing": one list of suffixes for every reader now, and what is left
    out (a file of no picture format, its caption file) is counted."""
    import numpy as np
    from PIL import Image

    from supra.data.folder_index import MEDIA_SUFFIXES
    from supra.data.images import IMAGE_SUFFIXES

    assert set(MEDIA_SUFFIXES) == IMAGE_SUFFIXES  # what caption reads (Pillow's suffixes of picture formats)
    root = tmp_path / "photos"
    root.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pictures = [f"p{i}{suffix}" for i, suffix in enumerate([".jfif", ".jpe", ".ppm", ".pgm", ".ico", ".png", ".jpg"])]
    for name in pictures:
        Image.fromarray(pixels).save(root / name)
    for name in [*pictures, "clip.mp4"]:
        (root / f"{Path(name).stem}.txt").write_text(f"a picture named {name}\n")
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (root / "notes.pdf").write_bytes(b"%PDF-1.4")
    index = read_caption_source("folder", root)
    assert sorted(key for keys in index.splits.values() for key in keys) == sorted(pictures)
    assert (
        "skipped: 2 not media (e.g. clip.mp4, notes.pdf), 1 caption of files not read (name.txt beside a file "
        "that is no picture) (e.g. clip.txt)") in summary_line("folder", index, {})
    assert "train 5 images / 5 captions; val 1 image / 1 caption; test 1 image / 1 caption;" in summary_line(
        "folder", index, {})  # counts of one read as one


def test_a_run_on_a_relative_data_root_is_scored_on_that_folder_from_any_other_working_folder(tmp_path, monkeypatch,
                                                                                             capsys):
    """train.py data.root=<relative> records it absolute; evaluate.py run from a folder where the same relative
    path names other photos scores the run's own, and says (and metrics.json holds) which folder it scored. A
    checkpoint of an earlier run, which stored the path as typed, is read against the folder its run trained in."""
    import torch

    from supra.runner.evaluation import evaluate
    from supra.runner.training import train

    trained_on, elsewhere = tmp_path / "data" / "my photos", tmp_path / "other" / "data" / "my photos"
    write_caption_folder(trained_on)
    write_images(elsewhere, [f"{i}.png" for i in range(12)])
    for i in range(12):
        (elsewhere / f"{i}.txt").write_text(f"another picture {i}\n")
    (tmp_path / "cwd2").mkdir()
    (tmp_path / "other" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "cwd2")
    train(compose_config("train", tmp_path / "run", [
        "experiment=vlm_caption_folder", "trainer=cpu", "data.root=../data/my photos", "trainer.max_steps=1",
        "trainer.max_epochs=1", "test=false", "data.eval_batch_size=4", "data.num_workers=0",
        "data.show_progress=false", "callbacks.progress_bar=null"]))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, weights_only=False)
    assert checkpoint["supra"]["run_config"]["data"]["root"] == str(trained_on)

    monkeypatch.chdir(tmp_path / "other" / "sub")
    evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "metrics=[Bleu]"]))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["root"] == str(trained_on) and metrics["n_images"] == 2  # the run's test split, not 12 others
    assert f"scoring data.root={trained_on}" in capsys.readouterr().out

    # as a run before the fix stored it: relative, its training folder recorded as paths.root_dir
    checkpoint["supra"]["run_config"]["data"]["root"] = "../data/my photos"
    checkpoint["supra"]["run_config"]["paths"]["root_dir"] = str(tmp_path / "cwd2")
    torch.save(checkpoint, tmp_path / "earlier.ckpt")
    evaluate(compose_config("eval", tmp_path / "eval_earlier", [f"ckpt={tmp_path / 'earlier.ckpt'}", "metrics=[Bleu]"]))
    metrics = json.loads((tmp_path / "eval_earlier" / "metrics.json").read_text())
    assert metrics["root"] == str(trained_on) and metrics["n_images"] == 2
    said = capsys.readouterr().err
    assert f"read against the folder its run trained in, {tmp_path / 'cwd2'}" in said
    assert f"data.root=../data/my photos -> {trained_on}" in said


def test_a_missing_caption_folder_says_what_a_caption_folder_holds_and_where_the_relative_path_was_read(tmp_path,
                                                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SupraUserError) as err:
        read_caption_source("folder", "../my photos")
    assert str(err.value) == (f"data.root=../my photos ({tmp_path.parent / 'my photos'}) does not exist: point it at a "
                              "folder of photos with captions (photo.txt beside each, or a captions.jsonl / .csv / .tsv "
                              "at its root)")
    (tmp_path / "photo.jpg").write_bytes(b"")
    with pytest.raises(SupraUserError, match=rf"^data.root={tmp_path / 'photo.jpg'} is a file, not a folder: point it "
                                             r"at a folder of photos with captions \(photo.txt"):
        read_caption_source("folder", tmp_path / "photo.jpg")  # absolute: said once


# every reason a caption source skips for (index.py's finish and add_caption; each reader's own), as its summary
# says one and two of it
SKIPPED_FOR = [
    ("blank caption", "blank caption", "blank captions"),
    ("no caption", "no caption", "no captions"),
    ("no image file", "no image file", "no image files"),
    ("in no split", "in no split", "in no split"),
    ("unreadable line", "unreadable line", "unreadable lines"),
    ("duplicate line", "duplicate line", "duplicate lines"),
    ("repeated caption (scored as each reference, trained on once)",
     "repeated caption (scored as each reference, trained on once)",
     "repeated captions (scored as each reference, trained on once)"),
    ("image listed twice (kept once, in test before val before train)",
     "image listed twice (kept once, in test before val before train)",
     "images listed twice (kept once, in test before val before train)"),
    ("image whose id another file has too (neither kept)", "image whose id another file has too (neither kept)",
     "images whose id another file has too (neither kept)"),
    ("caption for an id of two files", "caption for an id of two files", "captions for an id of two files"),
    ("caption that is not text", "caption that is not text", "captions that are not text"),
    ("annotation id listed twice (first kept)", "annotation id listed twice (first kept)",
     "annotation ids listed twice (first kept)"),
    ("sentid listed twice (first kept)", "sentid listed twice (first kept)", "sentids listed twice (first kept)"),
    ("caption for an unknown image id", "caption for an unknown image id", "captions for an unknown image id"),
    ("sentence with neither raw nor tokens", "sentence with neither raw nor tokens",
     "sentences with neither raw nor tokens"),
    ("no usable image (empty, or a path that is not there)", "no usable image (empty, or a path that is not there)",
     "no usable images (empty, or a path that is not there)"),
]


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize(("reason", "one", "two"), SKIPPED_FOR)
def test_a_sources_summary_counts_one_skipped_thing_in_the_singular_and_two_in_the_plural(tmp_path, reason, one,
                                                                                         two, n):
    from supra.data.caption_sources.index import CaptionIndex

    index = CaptionIndex("2014", tmp_path, {"train": ["a.jpg"]}, {"a.jpg": ["a cat"]})
    for i in range(n):
        index.skip(reason, f"x{i}.jpg")
    examples = ", ".join(f"x{i}.jpg" for i in range(n))
    assert summary_line("coco", index, {}) == (
        f"coco (2014 layout): train 1 image / 1 caption; skipped: {n} {one if n == 1 else two} (e.g. {examples})")


@pytest.mark.parametrize(("n", "skipped"), [
    (1, "1 unreadable image (e.g. bad0.jpg), 1 too large (resize them) (e.g. huge0.jpg)"),
    (2, "2 unreadable images (e.g. bad0.jpg, bad1.jpg), 2 too large (resize them) (e.g. huge0.jpg, huge1.jpg)"),
])
def test_a_sources_summary_counts_one_unreadable_image_in_the_singular(tmp_path, n, skipped):
    from supra.data.caption_sources.index import CaptionIndex
    from supra.data.images import TOO_LARGE_PREFIX

    index = CaptionIndex("2014", tmp_path, {"train": ["a.jpg"]}, {"a.jpg": ["a cat"]})
    unreadable = {**{f"bad{i}.jpg": "not a picture file" for i in range(n)},
                  **{f"huge{i}.jpg": f"{TOO_LARGE_PREFIX} 400,000,000 pixels" for i in range(n)}}
    assert summary_line("coco", index, unreadable) == f"coco (2014 layout): train 1 image / 1 caption; skipped: {skipped}"


def _named_in_both_unicode_forms(root: Path) -> None:
    """Each image file of a copy renamed café_<name> as a Mac unzips it (NFD: e + a combining accent), its
    annotations naming it as they are written elsewhere (NFC: é as one character)."""
    import unicodedata

    images = [path for path in root.rglob("*.jpg") if path.is_file()]
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".txt", ".csv", ".token"):
            text = path.read_bytes().decode("utf-8")
            for image in images:
                text = re.sub(rf"(?<![\w.]){re.escape(image.name)}", f"café_{image.name}", text)
            path.write_bytes(text.encode("utf-8"))
    for image in images:
        image.rename(image.with_name(unicodedata.normalize("NFD", f"café_{image.name}")))


NAMED_LAYOUTS = {name: LAYOUTS[name] for name in ("coco 2014", "coco karpathy", "flickr30k karpathy",
                                                  "flickr30k token", "flickr30k csv (Kaggle)")}
NAMED_LAYOUTS |= {"flickr8k kaggle": ("flickr8k", write_kaggle), "flickr8k karpathy": ("flickr8k", write_karpathy)}


@pytest.mark.parametrize("layout", list(NAMED_LAYOUTS))
def test_annotations_find_image_files_named_in_the_other_unicode_form_and_key_them_by_their_own_name(tmp_path,
                                                                                                      layout):
    """A data set's annotations name `café_1.jpg` in one form, its folder unzipped on a Mac in the other: the
    images are all found, as a caption folder's are, and opened by the name they have on disk."""
    import unicodedata

    source, write = NAMED_LAYOUTS[layout]
    write(tmp_path / "ascii")
    write(tmp_path / "accented")
    _named_in_both_unicode_forms(tmp_path / "accented")
    ascii_index = read_caption_source(source, tmp_path / "ascii")
    index = read_caption_source(source, tmp_path / "accented")
    assert {split: len(keys) for split, keys in index.splits.items()} == {
        split: len(keys) for split, keys in ascii_index.splits.items()}
    assert dict(index.skipped) == dict(ascii_index.skipped)
    for keys in index.splits.values():
        for key in keys:
            assert "café_" in unicodedata.normalize("NFC", key) and (index.image_dir / key).is_file()
            assert index.captions[key]


def test_a_caption_in_either_unicode_form_is_read_as_one_text_and_trained_on_once():
    """A Mac's "café" is often "e" and a combining accent (NFD): trained on, it was two tokens where the other form
    is one, and a caption file repeating it in the other form trained on it twice. Read in NFC, it is one text;
    NFKC's folding ("２３" -> "23") is not applied, as the scorer keeps those."""
    import unicodedata

    from supra.data.captions import clean_caption, training_captions

    composed, decomposed = "un café crème", unicodedata.normalize("NFD", "un café crème")
    assert decomposed != composed and clean_caption(decomposed) == composed
    assert training_captions([composed + ".", decomposed, "a number ２３"]) == [composed, "a number ２３"]


def test_a_caption_folders_set_up_shows_a_bar_while_it_reads_indexes_and_tokenizes_the_captions(tmp_path,
                                                                                               progress_bars):
    """At 200,000 captions reading the captions file, indexing them and tokenizing each split take seconds each:
    each moves a bar, as decoding the images does (data.show_progress)."""
    from supra.data import folder_index
    from supra.data.caption_sources import folder as caption_folder
    from supra.data.captioning import datamodule
    from tests.caption_source_fixtures import jpeg_bytes

    bars = progress_bars(folder_index, caption_folder, datamodule)
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(10):
        (root / f"p{i}.jpg").write_bytes(jpeg_bytes(i))
    (root / "p0.txt").write_text("a photo beside its sidecar\n")
    (root / "captions.jsonl").write_text("".join(json.dumps({"file": f"p{i % 10}.jpg", "caption": f"photo {i}"}) + "\n"
                                                 for i in range(1200)))
    dm = PhotoCaptionsDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "cache"),
                                 batch_size=2, eval_batch_size=2)
    dm.setup("fit")
    sizes = {split: sum(map(len, dm.loaded(split).captions)) for split in ("train", "val")}  # fit's splits
    assert bars == [["reading the sidecars of 10 files", 10, 10, True], ["reading captions.jsonl", 1200, 1200, True],
                    ["indexing the captions of 10 files", 10, 10, True],
                    *[[f"tokenizing {counted(n, f'{split} caption', grouped=True)}", n, n, True]
                      for split, n in sizes.items()]]
    bars.clear()  # data.show_progress=false: none drawn
    PhotoCaptionsDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "cache"), batch_size=2,
                            eval_batch_size=2, show_progress=False).setup("fit")
    assert len(bars) == 5 and not any(shown for *_, shown in bars)
