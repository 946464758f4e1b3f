"""Our caption-metric wrapper gives pycocoevalcap's own numbers, and merges DDP ranks' captions exactly once."""

import logging
import os
import threading
import types
from concurrent.futures import ThreadPoolExecutor

import pycocoevalcap.meteor.meteor
import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from supra.metrics.caption_scores import (
    CAPTION_METRICS,
    MeteorEnded,
    TokenizerEnded,
    close_meteor,
    score_captions,
    start_meteor,
)
from supra.utils.errors import SupraUserError

REFERENCES = {
    1: ["A dog runs across the grass.", "a brown dog running on a lawn", "The dog is playing outside ."],
    2: ["two children play in the sand", "Kids building a sandcastle on the beach.", "two kids on a beach"],
    3: ["a man rides a bicycle down the street", "A cyclist on a city road.", "man riding bike"],
    4: ["a red circle on the left", "a small red circle", "there is a red circle on the left of the picture"],
}
PREDICTIONS = {1: "a dog runs on the grass", 2: "two kids play on a beach", 3: "a man riding a bike",
               4: "a red circle on the left"}


# METEOR's '|' cases: one pipe in a hypothesis; pipes and runs of them everywhere, '|||' alone included.
PIPE_REFERENCES = {1: ["a dog runs on the grass", "a brown dog running"], 2: ["a cat on a mat", "the cat sits"],
                   3: ["two kids play football", "children playing with a ball"]}
ONE_PIPE = ({1: "a dog | runs", 2: "a cat sits on the mat", 3: "kids play with a ball"}, PIPE_REFERENCES)
PIPES_EVERYWHERE = ({1: "|| a dog runs |", 2: " ||| ", 3: "kids|||play with a ball"},
                    {**PIPE_REFERENCES, 1: ["| a dog runs on the grass ||", "a brown ||| dog running"],
                     2: ["|||", "the cat sits"]})


def coco_eval_directly(predictions, references, meteor):
    """What pycocoevalcap/eval.py does, inlined: PTB tokenisation, then each scorer (METEOR: `meteor`)."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in refs] for i, refs in references.items()})
    res = tokenizer.tokenize({i: [{"caption": predictions[i]}] for i in references})
    scores = {}
    bleu, _ = Bleu(4).compute_score(gts, res)
    scores.update({f"Bleu_{n + 1}": b for n, b in enumerate(bleu)})
    scores["METEOR"], _ = meteor.compute_score(gts, res)
    scores["ROUGE_L"], _ = Rouge().compute_score(gts, res)
    scores["CIDEr"], _ = Cider().compute_score(gts, res)
    return scores


def pycocoevalcap_meteor(meteor, *requests):
    """pycocoevalcap's METEOR of each (predictions, references), tokenised and scored as COCOEvalCap does."""
    scores = []
    for predictions, references in requests:
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({i: [{"caption": c} for c in references[i]] for i in predictions})
        res = tokenizer.tokenize({i: [{"caption": c}] for i, c in predictions.items()})
        scores.append(meteor.compute_score(gts, res)[0])
    return scores


@pytest.fixture(scope="module")
def pycocoevalcap_numbers():
    """pycocoevalcap's own numbers for this module's comparisons, all from one Meteor (its Java start-up, ~5 s and
    ~1 GB on 2 cores, paid once): every score of PREDICTIONS as its first request, as a fresh process answers it,
    then METEOR of the pipe cases."""
    meteor = Meteor()
    try:
        yield {"PREDICTIONS": coco_eval_directly(PREDICTIONS, REFERENCES, meteor),
               "pipes": pycocoevalcap_meteor(meteor, ONE_PIPE, PIPES_EVERYWHERE)}
    finally:
        meteor.meteor_p.kill()


def concurrently(*calls):
    """Run the calls in threads (each Meteor loads for ~5 s; they overlap) and return their results."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def test_scores_equal_pycocoevalcap_called_directly(pycocoevalcap_numbers):
    score_captions({1: "a cat", 2: "sand"}, REFERENCES)  # ours answers from a METEOR process that scored before
    ours, theirs = score_captions(PREDICTIONS, REFERENCES), pycocoevalcap_numbers["PREDICTIONS"]
    assert list(ours) == list(CAPTION_METRICS)
    assert all(type(v) is float for v in ours.values())
    for name in CAPTION_METRICS:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-9), name
    assert 0 < ours["Bleu_4"] < ours["Bleu_1"] < 1


def test_a_pipe_in_a_caption_is_scored_as_pycocoevalcap_scores_it():
    """'|' (replaced for METEOR's line protocol) was replaced before tokenising, so every scorer saw other tokens."""
    predictions, references = {**PREDICTIONS, 1: "a dog | runs on the grass", 2: "two|kids play"}, {**REFERENCES, 3: ["a man | bike"]}
    both = PTBTokenizer().tokenize({**{i: [{"caption": c} for c in refs] for i, refs in references.items()},
                                    **{-i: [{"caption": caption}] for i, caption in predictions.items()}})
    gts, res = {i: both[i] for i in references}, {i: both[-i] for i in references}
    assert "|" in res[1][0] and "|" in gts[3][0]  # a token of its own
    theirs = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], Bleu(4).compute_score(gts, res, verbose=0)[0], strict=True))
    theirs.update(ROUGE_L=Rouge().compute_score(gts, res)[0], CIDEr=Cider().compute_score(gts, res)[0])
    assert score_captions(predictions, references, ["Bleu", "ROUGE_L", "CIDEr"]) == pytest.approx(theirs, abs=1e-12)


def test_pipes_in_hypotheses_and_references_score_meteor_as_pycocoevalcap_does(pycocoevalcap_numbers):
    """METEOR's protocol splits at '|||' alone, and PTB makes each '|' a word: '|' was replaced by a space for
    METEOR, so "a dog | runs" scored 0.4155 where pycocoevalcap's METEOR is 0.3885."""
    ours = [score_captions(*request, ["METEOR"])["METEOR"] for request in (ONE_PIPE, PIPES_EVERYWHERE)]
    assert ours == pycocoevalcap_numbers["pipes"]
    assert ours[0] == pytest.approx(0.38849523, abs=1e-8)


def test_a_run_of_pipes_that_reaches_meteor_stays_one_reference_and_moves_no_other_image():
    """Java splits a SCORE line at '|||': untokenised, 'a dog ||| runs' would be two references, 'a dog' and
    'runs'. Spaced apart as PTB leaves pipes, it is one, and the other images score as without it."""
    from supra.metrics import caption_scores
    res = {1: ["a dog runs"], 2: ["a cat sits on the mat"], 3: ["kids play with a ball"]}
    gts = {1: ["a dog ||| runs"], 2: ["a cat on a mat"], 3: ["children playing with a ball"]}
    spaced = {**gts, 1: ["a dog | | | runs"]}
    split = {**gts, 1: ["a dog", "runs"]}
    assert caption_scores._meteor_score(gts, res) == caption_scores._meteor_score(spaced, res)
    assert caption_scores._meteor_score(gts, res) != caption_scores._meteor_score(split, res)
    moved = {**gts, 1: ["||||||"]}  # image 1 scores 0 either way: the corpus score is the others'
    assert caption_scores._meteor_score(moved, res) == caption_scores._meteor_score({**gts, 1: ["| | | | | |"]}, res)


def test_cider_over_a_single_image_is_zero_as_pycocoevalcap_has_it_and_said_once(monkeypatch, caplog):
    from supra.metrics import caption_scores

    monkeypatch.setattr(caption_scores, "_one_image_said", False, raising=False)
    with caplog.at_level("WARNING"):
        perfect = score_captions({4: REFERENCES[4][0]}, REFERENCES, ["Bleu", "CIDEr"])
        score_captions({4: "a dog"}, REFERENCES, ["CIDEr"])
    assert perfect["CIDEr"] == 0.0 and perfect["Bleu_1"] == pytest.approx(1.0)
    said = [r.getMessage() for r in caplog.records if "single image" in r.getMessage()]
    assert said == ["CIDEr over a single image is 0 whatever its caption (its n-gram weights come from the scored "
                    "images' references): score more images for a CIDEr that compares (said only this once)"]


def test_a_reference_in_nfd_scores_a_caption_of_the_same_words_in_nfc_as_perfect():
    """A reference written on a Mac is often in NFD ("e" and a combining accent), a generated caption in NFC: PTB took
    them for other words (Bleu_4 0.65 for the same caption). Both are read in NFC now."""
    import unicodedata

    caption = "un café crème sur la table"
    scores = score_captions({1: caption, 2: "a dog"}, {1: [unicodedata.normalize("NFD", caption)], 2: ["a dog"]}, ["Bleu"])
    assert scores["Bleu_4"] == pytest.approx(1.0)


def test_chinese_references_without_spaces_between_words_are_said_once_to_score_whole_runs(monkeypatch, caplog):
    """PTB keeps "一只猫坐在垫子上" as one word: a caption two characters off it matched nothing, and a whole Chinese
    data set scored Bleu_4 near 0 whatever the model, without a word. Word-segmented references are not named."""
    from supra.metrics import caption_scores

    monkeypatch.setattr(caption_scores, "_unspaced_said", False, raising=False)
    spaced = {1: ["一只 猫 坐在 垫子 上"], 2: ["a dog runs on the grass"]}
    unspaced = {1: ["一只猫坐在垫子上"], 2: ["a dog runs on the grass"]}
    predictions = {1: "一只猫坐在草地上", 2: "a dog runs on the grass"}
    with caplog.at_level("WARNING", logger="supra.metrics.caption_scores"):
        score_captions(predictions, spaced, ["Bleu"])
        assert not caplog.records
        scores = score_captions(predictions, unspaced, ["Bleu"])
        score_captions(predictions, unspaced, ["Bleu"])
    assert scores["Bleu_1"] == pytest.approx(6 / 7)  # the English image's 6 words; the Chinese caption is one, unmatched
    assert [r.getMessage() for r in caplog.records] == [
        "1 of 2 images has reference captions in Chinese, Japanese or Thai written without spaces between words "
        "(e.g. image 1: '一只猫坐在垫子上'): the scorer's PTB tokenizer reads each unspaced run as one word, so the "
        "scores credit only whole runs that match; put spaces between the words of the captions for scores that "
        "compare words (said only this once)"]


def test_perfect_captions_beat_nonsense_on_every_metric():
    perfect, nonsense = concurrently(
        lambda: score_captions({i: refs[0] for i, refs in REFERENCES.items()}, REFERENCES),
        lambda: score_captions({i: "purple elephant algebra" for i in REFERENCES}, REFERENCES),
    )
    assert perfect["Bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["CIDEr"] > 2.0
    for name in CAPTION_METRICS:
        assert perfect[name] > nonsense[name], name


def test_only_the_asked_families_are_computed_and_said_in_one_line_before_a_long_scoring(caplog, monkeypatch):
    assert set(score_captions(PREDICTIONS, REFERENCES, ["CIDEr"])) == {"CIDEr"}
    with caplog.at_level("INFO", logger="supra.metrics.caption_scores"):
        score_captions(PREDICTIONS, REFERENCES, ["Bleu"])  # a few images: quick, said nothing
        monkeypatch.setattr("supra.metrics.caption_scores.SAID_FROM", len(PREDICTIONS))
        assert list(score_captions(PREDICTIONS, REFERENCES, ["ROUGE_L", "Bleu"])) == \
            ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L"]
    assert [r.getMessage() for r in caplog.records] == [f"scoring the captions of {len(PREDICTIONS)} images: Bleu, ROUGE_L"]


@pytest.fixture(scope="module", autouse=True)
def meteor_closed_after_the_module():
    """The module's tests share the METEOR process this process keeps; it is closed as the module ends, as at exit,
    so that no other test module's process holds its ~1 GB."""
    yield
    close_meteor()


@pytest.fixture
def meteor_processes(monkeypatch):
    """Every METEOR Java process that serves the test's scores: the one this process keeps, if it kept a live one
    from an earlier test (its Java start-up, ~5 s and ~1 GB, not paid again), then each one a scorer starts."""
    from supra.metrics import caption_scores

    kept = caption_scores._meteors.get(os.getpid())
    processes = [kept.meteor_p] if kept is not None and kept.meteor_p.poll() is None else []

    class SpyMeteor(Meteor):
        def __init__(self):
            super().__init__()
            processes.append(self.meteor_p)

    monkeypatch.setattr(pycocoevalcap.meteor.meteor, "Meteor", SpyMeteor)
    return processes


def test_one_meteor_process_serves_every_score_of_a_process_until_it_is_closed(meteor_processes):
    awkward = {1: "", 2: "kids ||| on a\nbeach", 3: "   ", 4: "a red circle"}
    scores = score_captions(awkward, REFERENCES)
    assert list(scores) == list(CAPTION_METRICS) and scores["CIDEr"] >= 0
    again = concurrently(*[lambda: score_captions(PREDICTIONS, REFERENCES, ["METEOR"])] * 2)
    assert again[0] == again[1] and len(meteor_processes) == 1 and meteor_processes[0].poll() is None
    close_meteor()  # as at exit
    assert meteor_processes[0].poll() is not None


def test_a_meteor_request_that_fails_half_way_closes_its_process_and_the_next_score_starts_another(
        meteor_processes, monkeypatch):
    first = score_captions(PREDICTIONS, REFERENCES, ["METEOR"])
    stat = Meteor._stat

    def interrupted(self, hypothesis, references):  # a request sent, its answer never read
        self.meteor_p.stdin.write(b"SCORE ||| a dog ||| a cat\n")
        self.meteor_p.stdin.flush()
        raise RuntimeError("interrupted")

    monkeypatch.setattr(Meteor, "_stat", interrupted)
    with pytest.raises(RuntimeError, match="interrupted"):
        score_captions(PREDICTIONS, REFERENCES, ["METEOR"])
    monkeypatch.setattr(Meteor, "_stat", stat)
    after = []
    scoring = threading.Thread(target=lambda: after.append(score_captions(PREDICTIONS, REFERENCES, ["METEOR"])),
                               daemon=True)
    scoring.start()
    scoring.join(timeout=120)
    # neither blocked on the interrupted request's lock nor answered with its unread line
    assert after == [first]
    assert len(meteor_processes) == 2 and meteor_processes[0].poll() is not None


def test_a_meteor_java_process_that_dies_mid_score_is_one_line_and_the_next_score_starts_another(
        meteor_processes, monkeypatch):
    """Killed (out of memory; Ctrl-C or SIGTERM of the process group) while it scores: pycocoevalcap reads no
    answer and fails on float(b''); said instead as what happened and what to do."""
    first = score_captions(PREDICTIONS, REFERENCES, ["METEOR"])
    stat = Meteor._stat

    def killed_first(self, hypothesis, references):  # the real Java process dies as the request starts
        self.meteor_p.kill()
        self.meteor_p.wait()
        return stat(self, hypothesis, references)

    monkeypatch.setattr(Meteor, "_stat", killed_first)
    with pytest.raises(MeteorEnded) as ended:
        score_captions(PREDICTIONS, REFERENCES, ["METEOR"])
    assert str(ended.value) == ("cannot score METEOR: its Java process was killed (SIGKILL) before it answered "
                                "(killed, or out of memory: it needs about 1 GB); nothing was scored: free memory and "
                                "score again (the next score starts a new one), or leave METEOR out (train.py: "
                                "model.test_metrics=[Bleu,ROUGE_L,CIDEr], and model.val_metrics if it names it; "
                                "evaluate.py with metrics=[Bleu,ROUGE_L,CIDEr])")
    monkeypatch.setattr(Meteor, "_stat", stat)
    assert score_captions(PREDICTIONS, REFERENCES, ["METEOR"]) == first
    assert len(meteor_processes) == 2


def test_line_breaks_inside_a_caption_do_not_shift_the_others():
    # Java's tokenizer also breaks lines at \r, \f, U+2028...: unhandled, later captions would move images.
    clean = score_captions(PREDICTIONS, REFERENCES, ["Bleu", "CIDEr"])
    broken = {**PREDICTIONS, 1: "a dog\rruns on\u2028the grass\x0c"}
    assert score_captions(broken, REFERENCES, ["Bleu", "CIDEr"]) == pytest.approx(clean, abs=1e-12)


@pytest.mark.parametrize(
    ("predictions", "references", "metrics", "message"),
    [
        ({}, REFERENCES, ["CIDEr"], "no predictions"),
        ({9: "a dog"}, REFERENCES, ["CIDEr"], "image id 9"),
        ({1: "a dog"}, {1: []}, ["CIDEr"], "image id 1"),
        ({1: "a dog"}, {1: "a dog runs"}, ["CIDEr"], "image id 1 must be a list"),
        (PREDICTIONS, REFERENCES, ["SPICE"], "SPICE"),
        (PREDICTIONS, REFERENCES, ["BLEU"], "BLEU"),
    ],
)
def test_bad_requests_name_the_problem(predictions, references, metrics, message):
    with pytest.raises(ValueError, match=message):
        score_captions(predictions, references, metrics)


def test_references_that_tokenize_to_nothing_are_one_line_and_a_few_such_images_score_as_pycocoevalcap_scores_them(
        monkeypatch, caplog):
    """PTB tokenization drops emoji: references of nothing but emoji crashed CIDEr (max() of an empty sequence)."""
    from supra.metrics import caption_scores
    from supra.metrics.caption_scores import EmptyReferences

    with pytest.raises(EmptyReferences, match=r"^every reference caption is empty after the scorer's PTB tokenization, "
                                              r"which drops emoji and punctuation \(e.g. '\U0001f600'\), so "
                                              r"there is nothing to score against: give the images captions in words"):
        score_captions({1: "a dog", 2: "a cat"}, {1: ["\U0001f600"], 2: ["\U0001f600 !", "..."]}, ["Bleu", "CIDEr"])
    # some images so: scored as pycocoevalcap scores them (0 for those), and said once
    monkeypatch.setattr(caption_scores, "_empty_images_said", False)
    references = {**REFERENCES, 4: ["\U0001f600", "..."], 2: [*REFERENCES[2], "\U0001f600"]}
    with caplog.at_level("WARNING"):
        ours = score_captions(PREDICTIONS, references, ["Bleu", "ROUGE_L", "CIDEr"])
    # one Java start-up for both: references under their ids, predictions under the negated ones
    both = PTBTokenizer().tokenize({**{i: [{"caption": c} for c in refs] for i, refs in references.items()},
                                    **{-i: [{"caption": caption}] for i, caption in PREDICTIONS.items()}})
    gts, res = {i: both[i] for i in references}, {i: both[-i] for i in references}
    with caplog.at_level("WARNING"):
        caption_scores._check_tokenized_references(gts, references)  # a later validation's scoring: said already
    theirs = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], Bleu(4).compute_score(gts, res, verbose=0)[0], strict=True))
    theirs.update(ROUGE_L=Rouge().compute_score(gts, res)[0], CIDEr=Cider().compute_score(gts, res)[0])
    assert ours == pytest.approx(theirs, abs=1e-12)
    said = [r.getMessage() for r in caplog.records if "empty after the scorer's PTB tokenization" in r.getMessage()]
    assert said == ["1 of 4 images has reference captions that are all empty after the scorer's PTB tokenization "
                    "(e.g. image 4: '\U0001f600'): they score 0 (said only this once)"]


def test_the_warning_on_images_of_empty_references_agrees_with_one_and_two(monkeypatch, caplog):
    """"1 of 2 images has", "2 of 3 images have"."""
    from supra.metrics import caption_scores

    said = []
    for gts, references in (({1: ["a dog"], 2: [""]}, {1: ["a dog"], 2: ["!"]}),
                            ({1: ["a dog"], 2: [""], 3: [""]}, {1: ["a dog"], 2: ["!"], 3: ["?"]})):
        monkeypatch.setattr(caption_scores, "_empty_images_said", False)
        caplog.clear()
        with caplog.at_level("WARNING"):
            caption_scores._check_tokenized_references(gts, references)
        said += caplog.messages
    assert said == ["1 of 2 images has reference captions that are all empty after the scorer's PTB tokenization "
                    "(e.g. image 2: '!'): they score 0 (said only this once)",
                    "2 of 3 images have reference captions that are all empty after the scorer's PTB tokenization "
                    "(e.g. image 2: '!'): they score 0 (said only this once)"]


def test_missing_java_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SupraUserError, match=r"^pycocoevalcap needs Java \(java not found on PATH\)"):
        score_captions(PREDICTIONS, REFERENCES, ["CIDEr"])


@pytest.mark.parametrize(("option", "metrics", "message"), [
    ("val_metrics", ["Bleu", "CIDer"], r"^model.val_metrics: unknown caption metric \['CIDer'\]: choose from "),
    ("val_metrics", ["CIDer", "Rouge"], r"^model.val_metrics: unknown caption metrics \['CIDer', 'Rouge'\]: choose from "),
    ("test_metrics", "CIDEr", r"^model.test_metrics='CIDEr' must be a list of caption metrics, e.g. \[CIDEr\]$"),
    ("test_metrics", ["SPICE"], r"^model.test_metrics: caption metric 'SPICE' is not supported"),
])
@pytest.mark.parametrize("task", ["captioner", "a2a"])
def test_a_task_refuses_caption_metrics_it_cannot_score_when_it_is_made(task, option, metrics, message):
    """A typo or a bare name was a traceback at the first scored validation, or after the whole fit at the test."""
    from supra.models.vlm_nano import VLMNano
    from supra.tasks.a2a import A2ATask
    from supra.tasks.captioning import CaptioningTask
    from supra.utils.errors import SupraUserError

    with pytest.raises(SupraUserError, match=message):
        if task == "captioner":
            CaptioningTask(VLMNano(), optimizer=None, **{option: metrics})
        else:  # refused before it asks for its VQ-VAE
            A2ATask(net=torch.nn.Identity(), optimizer=None, **{option: metrics})


def test_a_tokenizer_folder_that_cannot_be_written_is_one_line_naming_it(monkeypatch):
    """pycocoevalcap's PTBTokenizer writes the captions to a temporary file in its own package folder: on a
    read-only install that was a PermissionError traceback at the first scored validation."""
    import os
    import re
    import sys

    from supra.utils.errors import SupraUserError

    module = sys.modules[PTBTokenizer.__module__]
    folder = os.path.dirname(os.path.abspath(module.__file__))

    def read_only(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir, "tmpabc"))

    monkeypatch.setattr(module.tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(SupraUserError, match=rf"^cannot score captions: pycocoevalcap's tokenizer writes its input into "
                                             rf"its own folder {re.escape(folder)} \(Permission denied\): install Supra where you "
                                             r"can write \(a virtual environment of your own: python -m venv \.venv\)$"):
        score_captions({1: "a dog"}, {1: ["a dog runs"]}, ["Bleu"])


def test_scoring_cut_short_in_the_tokenizer_removes_its_temp_file_and_keeps_another_scorings(monkeypatch, request):
    """pycocoevalcap's PTBTokenizer writes the captions to a temp file in its own package folder and removes it
    only when it returns: Ctrl-C during its Java call left the file in the installed package for good."""
    import os
    import subprocess
    import sys
    import tempfile
    import types

    module = sys.modules[PTBTokenizer.__module__]
    folder = os.path.dirname(os.path.abspath(module.__file__))
    ours, other = [], []

    def ctrl_c(command, *args, **kwargs):  # another scoring's file made meanwhile, then Ctrl-C in the Java call
        ours.append(command[-1])  # the tokenizer gives Java its temp file's name last
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as file:
            other.append(file.name)
        request.addfinalizer(lambda: os.remove(file.name))  # the installed package's folder: never left a file
        raise KeyboardInterrupt

    # the tokenizer module's own reference alone: subprocess.Popen stays as it is for the rest of this process
    monkeypatch.setattr(module, "subprocess", types.SimpleNamespace(Popen=ctrl_c, PIPE=subprocess.PIPE))
    with pytest.raises(KeyboardInterrupt):
        score_captions({1: "a dog"}, {1: ["a dog runs"]}, ["Bleu"])
    # by name: other tests' scorings may write their own files in this folder meanwhile
    assert not os.path.exists(os.path.join(folder, ours[0])) and os.path.exists(other[0])


def test_a_tokenizer_java_process_that_dies_is_one_line_not_scores_of_the_images_it_gave_back(monkeypatch):
    """PTBTokenizer reads whatever its Java process wrote: killed before it wrote, it gave one image back, empty."""
    import subprocess
    import sys
    import types

    def killed(command, *args, **kwargs):  # the real tokenizer, killed as it starts
        process = subprocess.Popen(command, *args, **kwargs)
        process.kill()
        return process

    module = sys.modules[PTBTokenizer.__module__]
    monkeypatch.setattr(module, "subprocess", types.SimpleNamespace(Popen=killed, PIPE=subprocess.PIPE))
    with pytest.raises(TokenizerEnded, match=r"^cannot score captions: the scorer's tokenizer \(Java\) gave back the "
                                             r"captions of 1 of 4 images: its Java process ended before it finished "
                                             r"\(killed, or out of memory\); free memory and score again$"):
        score_captions(PREDICTIONS, REFERENCES, ["Bleu"])


class NoJavaMeteor:
    """A METEOR scorer whose Java process is always alive and costs nothing to start."""

    def __init__(self):
        self.meteor_p = types.SimpleNamespace(poll=lambda: None)

    def close(self):
        pass


def test_each_start_of_meteors_java_process_is_said_before_it_begins(monkeypatch, caplog):
    """Its first start takes 20 s and more on a busy CPU, after the last progress bar: a line says what it waits for.
    A process kept from an earlier score is not started again, and not said."""
    from supra.metrics import caption_scores

    close_meteor()
    monkeypatch.setattr(pycocoevalcap.meteor.meteor, "Meteor", NoJavaMeteor)
    with caplog.at_level(logging.INFO, logger=caption_scores.__name__):
        start_meteor()
        start_meteor()  # the one started above serves
        close_meteor()
        start_meteor()
    close_meteor()
    assert caplog.messages == ["scoring: starting METEOR (Java), which takes a while to load the first time"] * 2


@pytest.mark.parametrize(("trainer", "started"), [
    ({"is_global_zero": True}, 1),
    ({"is_global_zero": False}, 0),  # rank 0 alone scores
])
def test_a_test_that_scores_meteor_starts_its_java_process_before_it_decodes(monkeypatch, trainer, started):
    """Its Java loads while the test's captions are decoded (beam search: seconds), not after the last bar."""
    import lightning as L

    from supra.models.vlm_nano import VLMNano
    from supra.tasks import captioning

    calls = []
    monkeypatch.setattr(captioning, "start_meteor", lambda: calls.append("METEOR"))
    monkeypatch.setattr(L.LightningModule, "trainer", types.SimpleNamespace(**trainer))
    captioning.CaptioningTask(VLMNano(), optimizer=None).on_test_epoch_start()
    captioning.CaptioningTask(VLMNano(), optimizer=None, test_metrics=["Bleu", "CIDEr"]).on_test_epoch_start()
    assert len(calls) == started


def test_the_tokenizers_java_output_stays_off_the_console(capfd):
    """PTBTokenizer's Java says "PTBTokenizer tokenized N tokens at ..." on stderr at every score: it landed on the
    progress bar's line."""
    score_captions(PREDICTIONS, REFERENCES, ["Bleu"])
    assert capfd.readouterr() == ("", "")


def test_a_tokenizer_java_process_that_fails_says_its_last_line(monkeypatch):
    """Its stderr kept off the console, a Java that fails still says what happened, in the one line."""
    import subprocess
    import sys
    import types

    def out_of_memory(command, *args, **kwargs):  # a Java that fails as it starts, as a JVM short of memory does
        return subprocess.Popen(["sh", "-c", "echo 'Error occurred during initialization of VM' >&2; "
                                             "echo 'Could not reserve enough space for object heap' >&2; exit 1"],
                                *args, **kwargs)

    module = sys.modules[PTBTokenizer.__module__]
    monkeypatch.setattr(module, "subprocess", types.SimpleNamespace(Popen=out_of_memory, PIPE=subprocess.PIPE))
    with pytest.raises(TokenizerEnded) as ended:
        score_captions(PREDICTIONS, REFERENCES, ["Bleu"])
    assert str(ended.value) == ("cannot score captions: the scorer's tokenizer (Java) gave back the captions of 1 of 4 "
                                "images: its Java process ended before it finished (killed, or out of memory) (Java "
                                "said: Could not reserve enough space for object heap); free memory and score again")


def test_captions_holding_cut_characters_are_counted_once_and_kept_as_decoded(caplog):
    """A byte-level BPE model can emit half of "è": decoding writes U+FFFD, which predictions.json held without a
    word while the scorer warned 'Untokenizable'. One warning now names how many; the text stays as it is."""
    from supra.tasks.base import warn_of_replaced_bytes

    captions = ["a red square", "caf\ufffd", "\ufffd\ufffd\ufffd", "crème brûlée"]
    with caplog.at_level("WARNING", logger="supra.tasks.base"):
        warn_of_replaced_bytes("test", captions)
        warn_of_replaced_bytes("test", ["a red square"])
    assert [r.getMessage() for r in caplog.records] == [
        "test: 2 of 4 generated captions hold U+FFFD where the model emitted bytes that make no whole UTF-8 "
        "character; predictions.json keeps them so"]
    assert captions[1] == "caf\ufffd"
