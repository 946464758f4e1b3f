"""What a captioner is scored against: each source's captions as it publishes them (whitespace collapsed
alone), a caption an image has twice counted twice, as COCOEvalCap scores them; and what it trains on, as
before: the final full stop dropped, each caption once, every repeat counted in the set-up line."""

from __future__ import annotations

import json
import unicodedata
from functools import partial
from pathlib import Path

from supra.data import folder_index
from supra.data.caption_sources import index as caption_index
from supra.data.caption_sources.coco import ANNOTATION_ID_TWICE, read_coco
from supra.data.caption_sources.folder import read_caption_folder
from supra.data.caption_sources.index import REPEATED_CAPTION, summary_line
from supra.data.captioning.photos import PhotoCaptionsDataModule
from supra.data.captions import clean_caption
from supra.metrics.caption_scores import score_captions
from supra.utils.folder_walk import walk_visible
from tests.caption_source_fixtures import write_coco_official
from tests.flickr8k_fixtures import write_images

# image -> its captions.jsonl lines, in order: abbreviations whose final "." is a token's, and repeats
CAPTIONS = {
    "a.jpg": ["the flag of the U.S.", "the flag of the U.S.", "a flag  of the U.S."],
    "b.jpg": ["a bus at 5 p.m.", "a red bus."],
    "c.jpg": ["a cat", "a cat."],
    "d.jpg": ["a dog on the grass", "a brown dog."],
    "e.jpg": ["two kids play football", "children playing with a ball."],
    "f.jpg": ["a man on St. James street", "a man walking"],
}


def write_us_folder(root: Path) -> None:
    write_images(root, list(CAPTIONS))
    (root / "captions.jsonl").write_text("".join(json.dumps({"file": name, "caption": caption}) + "\n"
                                                 for name, captions in CAPTIONS.items() for caption in captions))


def pycocoevalcap_scores(predictions: dict, references: dict) -> dict[str, float]:
    """pycocoevalcap run directly, as COCOEvalCap runs it: PTBTokenizer on both, then each scorer (METEOR left
    out for time: its Java process is the slowest to start, and BLEU, ROUGE_L and CIDEr show both effects)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in references[i]] for i in predictions})
    res = tokenizer.tokenize({i: [{"caption": predictions[i]}] for i in predictions})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"Bleu_{n + 1}": float(value) for n, value in enumerate(bleu)}
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores


def test_a_folder_is_scored_on_its_captions_as_written_and_trained_on_them_without_the_final_stop_once(tmp_path):
    write_us_folder(tmp_path / "photos")
    index = read_caption_folder(tmp_path / "photos", val_fraction=0.25, test_fraction=0.25)
    kept = [key for keys in index.splits.values() for key in keys]
    assert sorted(kept) == sorted(CAPTIONS)
    for name in kept:  # each line a reference, a repeat too; whitespace collapsed alone
        assert index.references[name] == [" ".join(c.split()) for c in CAPTIONS[name]]
    # trained on as before: "U.S" (PTB drops a final "." itself, so scoring keeps it), each caption once
    assert index.captions["a.jpg"] == ["the flag of the U.S", "a flag of the U.S"]
    assert index.captions["c.jpg"] == ["a cat"]
    # nothing dropped silently: the two repeats are counted in the set-up line
    assert index.skipped == {REPEATED_CAPTION: 2}
    assert "2 repeated captions (scored as each reference, trained on once) (e.g. a.jpg: 'the flag of the U.S.'" in \
        summary_line("folder", index, {})


def test_the_scores_of_a_folder_are_pycocoevalcaps_on_its_captions_as_written(tmp_path):
    """What the captioner's validation and test score (CaptioningTask._score_epoch): the DataModule's references."""
    write_us_folder(tmp_path / "photos")
    dm = PhotoCaptionsDataModule(source="folder", root=str(tmp_path / "photos"), cache_dir=str(tmp_path / "cache"),
                                 show_progress=False, batch_size=2, eval_batch_size=2, val_fraction=0.25,
                                 test_fraction=0.25)
    dm.setup("fit")
    rows = [(split, row, name) for split in ("train", "val", "test")
            for row, name in enumerate(dm.loaded(split).names)]
    assert sorted(name for *_, name in rows) == sorted(CAPTIONS)
    for split, row, name in rows:
        assert dm.references(split)[row] == [" ".join(c.split()) for c in CAPTIONS[name]]
        assert dm.loaded(split).captions[row] == list(dict.fromkeys(" ".join(c.split()).removesuffix(".")
                                                                    for c in CAPTIONS[name]))
    # the sample grids' "ref:" line is what the caption is scored against too
    images, grid_references = dm.sample_images("test", 8)
    assert grid_references == [dm.references("test")[row] for row in range(len(images))]
    predictions = {f"{split}/{row}": CAPTIONS[name][-1] for split, row, name in rows}
    references = {f"{split}/{row}": dm.references(split)[row] for split, row, _ in rows}
    sources = {f"{split}/{row}": CAPTIONS[name] for split, row, name in rows}
    ours = score_captions(predictions, references, ["Bleu", "ROUGE_L", "CIDEr"])
    assert ours == pycocoevalcap_scores(predictions, sources)


def test_coco_scores_an_image_with_one_caption_in_two_annotations_twice_and_one_annotation_listed_twice_once(tmp_path):
    write_coco_official(tmp_path / "coco")
    path = tmp_path / "coco" / "annotations" / "captions_val2014.json"
    data = json.loads(path.read_text())
    first = next(a for a in data["annotations"] if a["image_id"] == 210)
    data["annotations"] += [dict(first), {**first, "id": 99999}]  # the same annotation again; a second one alike
    path.write_text(json.dumps(data))
    index = read_coco(tmp_path / "coco", "2014")
    key = "val2014/COCO_val2014_000000000210.jpg"
    assert index.references[key].count(first["caption"].strip()) == 2
    assert len(index.references[key]) == 6 and len(index.captions[key]) == 5
    assert index.skipped[ANNOTATION_ID_TWICE] == 1 and index.skipped[REPEATED_CAPTION] == 1


def write_messy_folder(root: Path) -> None:
    """Captions as people write them: sidecars and a captions.jsonl both, reaching files through a linked folder
    and in the other Unicode form, with stray spaces, tabs, a line separator, final stops (" .", ".."), repeats,
    blank ones and one for no file."""
    nfd = partial(unicodedata.normalize, "NFD")
    write_images(root / "2024", ["a.jpg", "b.jpg", nfd("café.jpg"), "d.jpg", "e.jpg", "f.jpg"])
    (root / "latest").symlink_to("2024", target_is_directory=True)
    (root / "2024" / "a.txt").write_text("  a  red\tbus .\n\nA red bus.\n")
    (root / "2024" / "b.txt").write_text(nfd("un café crème..") + "\n")
    lines = [("latest/a.jpg", "a red bus"), ("2024/café.jpg", nfd("une tasse de café. ")),
             ("2024/café.jpg", "une tasse de café"), ("2024/d.jpg", "   "), ("2024/d.jpg", " a dog\u2028on grass . "),
             ("2024/e.jpg", "."), ("2024/e.jpg", "an egg"), ("2024/f.jpg", "a fish"), ("2024/f.jpg", "a fish."),
             ("2024/f.jpg", "a  fish"), ("nowhere.jpg", "lost")]
    (root / "captions.jsonl").write_text("".join(json.dumps({"file": name, "caption": caption}) + "\n"
                                                 for name, caption in lines))


def test_messy_captions_index_as_they_always_have(tmp_path):
    """Reading each caption once (and the folder once) changed no caption, order, split or count."""
    write_messy_folder(tmp_path / "photos")
    index = read_caption_folder(tmp_path / "photos", val_fraction=0.2, test_fraction=0.2)
    cafe = next(key for key in index.captions if key.startswith("2024/caf"))  # the file's own (NFD) name
    assert index.splits == {"train": ["2024/b.jpg", cafe, "2024/d.jpg", "2024/e.jpg"], "val": ["2024/a.jpg"],
                            "test": ["2024/f.jpg"]}
    assert index.captions == {"2024/a.jpg": ["a red bus", "A red bus"], "2024/b.jpg": ["un café crème."],
                              cafe: ["une tasse de café"], "2024/d.jpg": ["a dog on grass"],
                              "2024/e.jpg": ["an egg"], "2024/f.jpg": ["a fish"]}
    assert index.references == {"2024/a.jpg": ["a red bus .", "A red bus.", "a red bus"],
                                "2024/b.jpg": ["un café crème.."], cafe: ["une tasse de café.", "une tasse de café"],
                                "2024/d.jpg": ["a dog on grass ."], "2024/e.jpg": ["an egg"],
                                "2024/f.jpg": ["a fish", "a fish.", "a fish"]}
    assert index.skipped == {"blank caption": 2, "for no media file": 1, "listed already under another path": 1,
                             REPEATED_CAPTION: 4}
    assert index.examples == {"blank caption": ["captions.jsonl:4", "2024/e.jpg: '.'"],
                              "for no media file": ["captions.jsonl:11"],
                              "listed already under another path": ["latest = 2024"],
                              REPEATED_CAPTION: ["2024/a.jpg: 'a red bus'", f"{cafe}: 'une tasse de café'",
                                                 "2024/f.jpg: 'a fish.'"]}


def test_a_caption_folder_is_listed_once_and_each_caption_cleaned_once_by_the_index(tmp_path, monkeypatch):
    """Set-up time on a folder of 20,000 photos and 200,000 captions: no second walk of the tree, no caption
    normalised again for each form the index keeps of it."""
    write_us_folder(tmp_path / "photos")
    walks, cleans = [], []

    def counted_walk(root):
        walks.append(root)
        return walk_visible(root)

    def counted_clean(caption, drop_final_stop=False):
        cleans.append(caption)
        return clean_caption(caption, drop_final_stop)

    monkeypatch.setattr(folder_index, "walk_visible", counted_walk)
    monkeypatch.setattr(caption_index, "walk_visible", counted_walk)
    monkeypatch.setattr(caption_index, "clean_caption", counted_clean)
    read_caption_folder(tmp_path / "photos", val_fraction=0.25, test_fraction=0.25)
    assert walks == [tmp_path / "photos"]
    assert len(cleans) == sum(len(captions) for captions in CAPTIONS.values())
