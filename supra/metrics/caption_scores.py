"""COCO caption metrics through pycocoevalcap (tasks gather every rank's captions first: utils/distributed.py).

The numbers are pycocoevalcap's own: captions go through its PTBTokenizer (Java) and then its Bleu,
Meteor (Java), Rouge and Cider scorers, exactly as `pycocoevalcap.eval.COCOEvalCap` runs them.
SPICE is not offered: it needs a Stanford CoreNLP download at first use, which cannot happen offline.

pycocoevalcap quirks handled here:
- PTBTokenizer joins all captions with '\\n' and reads them back line by line, and Java also breaks lines
  at '\\r', '\\v', '\\f', U+2028 and U+2029: one such character silently shifts every later caption onto
  the wrong image. Whitespace is therefore collapsed to single spaces first.
- Captions are put in NFC first, as the data's are read: the same words in NFD (a Mac's "e" and a combining
  accent) are other tokens to PTB.
- METEOR talks to a Java process over a line protocol whose SCORE line is split at every '|||' (Java's
  `split("\\|\\|\\|")`): a '|||' inside a reference would make two references of it (pycocoevalcap drops
  '|||' from the hypothesis itself). PTB makes each '|' a token of its own ('a|||b' -> 'a | | | b'), so no
  tokenised caption holds one and METEOR scores '|' as pycocoevalcap does: a word that matches nothing. Should
  a run of pipes reach METEOR anyway, it is spaced apart as PTB would have left it, so it stays one reference.
- Starting METEOR's Java process (JVM + paraphrase table) takes ~6 s and ~1 GB on 2 cores, scoring thousands
  of captions well under a second, and pycocoevalcap closes it only in `__del__`. One process per Python
  process is therefore started at the first METEOR score (before tokenising, overlapping the other scorers),
  kept for the next ones (a sweep's trials, a run's tests, evaluations in one process) and closed at exit.
  Its -stdio protocol answers any number of EVAL requests with a fresh process's numbers. A request cut short
  leaves the protocol's state unknown: the process is closed and the next score starts another. One whose Java
  process ended (killed, out of memory, Ctrl-C or SIGTERM of the process group) was pycocoevalcap's `could not
  convert string to float: b''` (its read of the answer: nothing): MeteorEnded says so in one line.
- PTBTokenizer reads back whatever lines its Java process wrote: killed, it wrote none, and the scores went on over
  the images it did give back (a traceback, or the scores of one image): TokenizerEnded.
- PTBTokenizer writes the captions to a temporary file in its own package folder (the Java process, run
  there, is given its bare name, so it cannot be written elsewhere) and removes it only when it returns: cut
  short (Ctrl-C, an error), the file it made is removed here; another scoring's, made meanwhile, is kept.
- Empty hypotheses are fine everywhere (they score 0); they tokenise to ''.
- PTB splits words at spaces and punctuation only: Chinese, Japanese or Thai written without spaces between words
  is scored a whole run at a time, pycocoevalcap's numbers, kept, and said once.
- CIDEr over a single image is 0 whatever its caption (document frequencies come from the scored set's
  references): pycocoevalcap's number, kept, and said once.
- So are some empty references (an image whose references are all empty scores 0, as in COCOEvalCap; said
  once), but references that all tokenise to '' (PTB drops emoji and punctuation) leave CIDEr no document
  frequencies (`max() arg is an empty sequence`) and every score nothing to compare: EmptyReferences.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import types
import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted, noun_for

T = TypeVar("T")
log = logging.getLogger(__name__)

CAPTION_METRICS: tuple[str, ...] = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
SCORER_FAMILIES: tuple[str, ...] = ("Bleu", "METEOR", "ROUGE_L", "CIDEr")
JAVA_MISSING = "pycocoevalcap needs Java (java not found on PATH): install a JRE, e.g. apt-get install default-jre-headless"


def caption_metric_names(families: Sequence[str]) -> list[str]:
    """The names score_captions returns for scorer `families`, in CAPTION_METRICS order ("Bleu": Bleu_1..Bleu_4)."""
    return [name for name in CAPTION_METRICS if name in families or name.split("_")[0] in families]


class MeteorEnded(SupraUserError):
    """METEOR's Java process ended while it scored (killed, out of memory): nothing was scored."""


class TokenizerEnded(SupraUserError):
    """The tokenizer's Java process ended before it tokenised every caption (killed, out of memory)."""


class EmptyReferences(SupraUserError):
    """Every reference caption is empty after the scorer's tokenization: nothing to score against (the
    caller names the split or source it scored)."""


_PIPE_RUN = re.compile(r"\|(?=\|)")  # a '|' followed by another
_empty_images_said = False  # once per process: a run's every validation scores the same references
_one_image_said = False  # the same
_unspaced_said = False  # the same
# Runs of Han, Hiragana, Katakana or Thai characters: scripts written without spaces between words
_UNSPACED_SCRIPT = re.compile("[\u0e00-\u0e7f\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff"
                              "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003ffff]+")
# characters per run, on average over a reference's runs, from which it reads as written without spaces between
# words: a word-segmented one averages fewer ("一只 猫 坐在 垫子 上": 1.6; a long katakana word among short ones too)
UNSPACED_RUN = 4


def _clean(caption: str) -> str:
    # str.split() splits at every character Java treats as a line break; NFC, as data/captions.py reads captions:
    # a reference in NFD ("e" and a combining accent, from a Mac) otherwise matches no prediction's "é"
    return " ".join(unicodedata.normalize("NFC", caption).split())


def _pipes_apart(captions: dict[Hashable, list[str]]) -> dict[Hashable, list[str]]:
    """Tokenised captions for METEOR with each run of '|' spaced apart ('||' -> '| |'), as PTB leaves them: its
    line protocol splits at '|||' alone, so a lone '|' is kept (a word, as pycocoevalcap scores it), and this
    changes nothing that PTB tokenised."""
    return {i: [_PIPE_RUN.sub("| ", c) for c in cs] for i, cs in captions.items()}


def check_metric_families(metrics: Sequence[str], option: str = "metrics") -> None:
    """One line for `option` (model.val_metrics, model.test_metrics) naming no scorer family: the tasks check
    theirs when they are made, else a typo ([Bleu, CIDer]) or a bare name (`model.test_metrics=CIDEr`, scored
    as its letters) was a traceback at the first scored validation, or after the whole fit at the test."""
    if isinstance(metrics, str):
        raise SupraUserError(f"{option}={metrics!r} must be a list of caption metrics, e.g. [{metrics}]")
    unknown = [m for m in metrics if m not in SCORER_FAMILIES]
    if "SPICE" in unknown:
        raise SupraUserError(f"{option}: caption metric 'SPICE' is not supported: it needs a Stanford CoreNLP "
                             f"download that cannot run offline; choose from {list(SCORER_FAMILIES)}")
    if unknown:
        raise SupraUserError(f"{option}: unknown caption {noun_for(len(unknown), 'metric')} {unknown}: choose from {list(SCORER_FAMILIES)}")


def _check_request(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]], metrics: Sequence[str]
) -> None:
    check_metric_families(metrics)
    if not predictions:
        raise ValueError("no predictions to score")
    for image_id in predictions:
        refs = references.get(image_id)
        if isinstance(refs, str):  # a bare string would be scored as one reference per character
            raise ValueError(f"references of image id {image_id!r} must be a list of strings, not one string")
        if not refs:
            raise ValueError(f"image id {image_id!r} has a prediction but no reference captions")
    require_java()


def require_java() -> None:
    """Java on PATH, or one line saying what to install: pycocoevalcap's PTB tokenizer (every caption metric) and
    METEOR run on it."""
    if shutil.which("java") is None:
        raise SupraUserError(JAVA_MISSING)


def _new_scorer(family: str) -> Any:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    return {"Bleu": lambda: Bleu(4), "METEOR": Meteor, "ROUGE_L": Rouge, "CIDEr": Cider}[family]()


def _close(scorer: Any) -> None:
    """Stop Meteor's Java process (pycocoevalcap 1.2 only does it in __del__, whenever that runs)."""
    process = getattr(scorer, "meteor_p", None)
    if process is None:
        return
    # compute_score keeps its lock if it raised; close() or __del__ would then block on it forever.
    scorer.lock = threading.Lock()
    close = getattr(scorer, "close", None)
    if callable(close):  # versions that have one
        close()
    else:
        with contextlib.suppress(OSError):  # a dead process's pipe may still hold a request it never read
            process.stdin.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


_meteor_lock = threading.Lock()  # one request at a time on the shared process (its own lock is lost if it raises)
_meteors: dict[int, Any] = {}  # by pid: a forked child (a DataLoader worker) never writes to its parent's pipes


def _meteor() -> Any:
    """This process's METEOR scorer, started if it has none or its Java process has ended (under _meteor_lock)."""
    scorer = _meteors.get(os.getpid())
    if scorer is None or scorer.meteor_p.poll() is not None:
        # its Java start-up takes seconds (20 and more on a busy CPU) in which nothing else is said
        log.info("scoring: starting METEOR (Java), which takes a while to load the first time")
        scorer = _meteors[os.getpid()] = _new_scorer("METEOR")
    return scorer


def start_meteor() -> None:
    """Start this process's METEOR scorer if needed, without waiting for its Java start-up: called as a test or
    validation that scores METEOR begins, Java loads while the captions are decoded."""
    with _meteor_lock:
        _meteor()


def _meteor_score(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]]) -> float:
    with _meteor_lock:
        scorer = _meteor()
        try:
            return float(scorer.compute_score(_pipes_apart(gts), _pipes_apart(res))[0])
        except BaseException as err:  # the protocol's state is unknown now: the next score starts a fresh process
            del _meteors[os.getpid()]
            ended = _exit_code(scorer.meteor_p) if isinstance(err, Exception) else None
            _close(scorer)
            if ended is not None:
                raise MeteorEnded(meteor_ended(ended)) from None
            raise


def _exit_code(process: subprocess.Popen) -> int | None:
    """The exit code of `process` if it has ended; it may be a moment from being reaped when its pipe closes."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        return process.wait(timeout=1)
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name of its own
        return f"signal {number}"


def meteor_ended(exit_code: int) -> str:
    """The one line for a METEOR Java process that ended with `exit_code` (Popen's: -N for signal N) mid-score: what
    to do, as each command that scores captions allows it."""
    how = f"was killed ({_signal_name(-exit_code)})" if exit_code < 0 else f"ended with exit code {exit_code}"
    return (f"cannot score METEOR: its Java process {how} before it answered (killed, or out of memory: it needs about "
            "1 GB); nothing was scored: free memory and score again (the next score starts a new one), or "
            "leave METEOR out (train.py: model.test_metrics=[Bleu,ROUGE_L,CIDEr], and model.val_metrics if it names it; "
            "evaluate.py with metrics=[Bleu,ROUGE_L,CIDEr])")


@atexit.register
def close_meteor() -> None:
    """Stop this process's METEOR Java process, if it started one (at exit; the next score starts another)."""
    scorer = _meteors.pop(os.getpid(), None)
    if scorer is not None:
        _close(scorer)


class _NotedTempFiles:
    """The tempfile module as PTBTokenizer.tokenize sees it (_ptb_tokenize), noting the names of the files its
    NamedTemporaryFile makes: those of one call alone, not another scoring's in the same folder meanwhile."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def NamedTemporaryFile(self, *args: Any, **kwargs: Any) -> Any:  # tempfile's own name
        file = tempfile.NamedTemporaryFile(*args, **kwargs)  # noqa: SIM115 (the caller closes it)
        self.names.append(file.name)
        return file

    def __getattr__(self, name: str) -> Any:
        return getattr(tempfile, name)


class _JavaStderrKept:
    """The subprocess module as PTBTokenizer.tokenize sees it (_ptb_tokenize): its Java's stderr ("PTBTokenizer
    tokenized 2499 tokens at ...", at every score) goes to a file kept here, not onto the console across the
    progress bar's line; the last line is said where Java fails."""

    def __init__(self, module: Any) -> None:
        self.module = module  # the tokenizer module's own subprocess (tests replace it there)
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _ptb_tokenize)

    def Popen(self, *args: Any, **kwargs: Any) -> Any:  # subprocess's own name
        return self.module.Popen(*args, **{**kwargs, "stderr": self.file})

    def said(self) -> str:
        self.file.seek(0)
        return self.file.read().decode(errors="replace").strip()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def _ptb_tokenize(tokenizer: Any, captions: dict[Hashable, list[dict[str, str]]]) -> dict[Hashable, list[str]]:
    """tokenizer.tokenize(captions), its own code run as it is, but seeing _NotedTempFiles for tempfile: cut short
    (Ctrl-C in its Java call, an error), the temp file holding the captions that it removes only on return is
    removed here, not left in the installed package for good; and _JavaStderrKept for subprocess."""
    tokenize = type(tokenizer).tokenize
    noted = _NotedTempFiles()
    java = _JavaStderrKept(tokenize.__globals__["subprocess"])
    run = types.FunctionType(tokenize.__code__, {**tokenize.__globals__, "tempfile": noted, "subprocess": java},
                             tokenize.__name__, tokenize.__defaults__, tokenize.__closure__)
    with java.file:
        try:
            tokenized = run(tokenizer, captions)
        except BaseException:
            for name in noted.names:
                with contextlib.suppress(OSError):
                    os.remove(name)
            raise
        said = java.said()
    log.debug("the scorer's tokenizer (Java) said: %s", said)
    if tokenized.keys() != captions.keys():  # it reads whatever lines Java wrote: none where Java was killed
        last = f" (Java said: {said.splitlines()[-1]})" if said else ""
        raise TokenizerEnded(f"cannot score captions: the scorer's tokenizer (Java) gave back the captions of "
                             f"{len(tokenized)} of {len(captions)} images: its Java process ended before it finished "
                             f"(killed, or out of memory){last}; free memory and score again")
    return tokenized


def _tokenize(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """PTB-tokenised {id: [reference, ...]} and {id: [prediction]}, as COCOEvalCap.evaluate builds them."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    try:
        gts = _ptb_tokenize(tokenizer, {i: [{"caption": _clean(c)} for c in references[i]] for i in predictions})
        res = _ptb_tokenize(tokenizer, {i: [{"caption": _clean(predictions[i])}] for i in predictions})
    except OSError as err:  # it writes the captions to a temporary file beside its jar, in its own package folder
        folder = os.path.dirname(os.path.abspath(sys.modules[PTBTokenizer.__module__].__file__))
        if not err.filename or os.path.dirname(os.path.abspath(err.filename)) != folder:
            raise
        raise SupraUserError(f"cannot score captions: pycocoevalcap's tokenizer writes its input into its own folder "
                             f"{folder} ({err.strerror or err}): install Supra where you can write (a virtual "
                             "environment of your own: python -m venv .venv)") from None
    return gts, res


def _check_tokenized_references(gts: dict[Hashable, list[str]], references: Mapping[Hashable, Sequence[str]]) -> None:
    """EmptyReferences when no reference has a token left; a warning, once, for images that have none."""
    global _empty_images_said
    empty = [i for i, refs in gts.items() if not any(ref.strip() for ref in refs)]
    if not empty:
        return
    example = references[empty[0]][0]
    if len(empty) == len(gts):
        raise EmptyReferences(f"every reference caption is empty after the scorer's PTB tokenization, which drops "
                              f"emoji and punctuation (e.g. {example!r}), so there is nothing to score against: give "
                              "the images captions in words (the scores compare words), or score other data")
    if not _empty_images_said:
        _empty_images_said = True
        log.warning("%d of %s %s reference captions that are all empty after the scorer's PTB tokenization "
                    "(e.g. image %r: %r): they score 0 (said only this once)", len(empty), counted(len(gts), "image"),
                    "has" if len(empty) == 1 else "have", empty[0], example)


def _unspaced(caption: str) -> bool:
    """Whether `caption` holds Chinese, Japanese or Thai text written without spaces between its words."""
    runs = [len(run) for run in _UNSPACED_SCRIPT.findall(caption)]
    return bool(runs) and sum(runs) >= UNSPACED_RUN * len(runs)


def _check_unspaced(predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]) -> None:
    """A warning, once: PTB splits words at spaces and punctuation alone, so an unspaced Chinese, Japanese or Thai
    caption is one word to every scorer, and a caption two characters off its reference scores as an unrelated one."""
    global _unspaced_said
    if _unspaced_said:
        return
    unspaced = [i for i in predictions if any(_unspaced(ref) for ref in references[i])]
    if unspaced:
        _unspaced_said = True
        example = next(ref for ref in references[unspaced[0]] if _unspaced(ref))
        log.warning("%d of %s %s reference captions in Chinese, Japanese or Thai written without spaces between words "
                    "(e.g. image %r: %r): the scorer's PTB tokenizer reads each unspaced run as one word, so the scores "
                    "credit only whole runs that match; put spaces between the words of the captions for scores that "
                    "compare words (said only this once)", len(unspaced), counted(len(predictions), "image"),
                    "has" if len(unspaced) == 1 else "have", unspaced[0], example)


def _check_one_image(predictions: Mapping[Hashable, str], families: Sequence[str]) -> None:
    """A warning, once: CIDEr weighs n-grams by how few of the scored images' references hold them, so over one
    image every weight is 0 and so is CIDEr, whatever the caption (data.num_val=1 checkpoints on a constant)."""
    global _one_image_said
    if "CIDEr" in families and len(predictions) == 1 and not _one_image_said:
        _one_image_said = True
        log.warning("CIDEr over a single image is 0 whatever its caption (its n-gram weights come from the scored "
                    "images' references): score more images for a CIDEr that compares (said only this once)")


SAID_FROM = 1000  # images: scoring fewer takes about a second, and a run validates its few often


def score_captions(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    metrics: Sequence[str] = SCORER_FAMILIES,
) -> dict[str, float]:
    """Corpus-level caption scores of `predictions` ({image id: caption}) against `references`
    ({image id: [caption, ...]}, extra ids ignored).

    `metrics` names scorer families: "Bleu" (Bleu_1..Bleu_4), "METEOR", "ROUGE_L", "CIDEr".
    Returns {pycocoevalcap metric name: float} in CAPTION_METRICS order. EmptyReferences when no reference
    has a token left after tokenization.
    """
    _check_request(predictions, references, metrics)
    families = [f for f in SCORER_FAMILIES if f in metrics]
    _check_one_image(predictions, families)
    _check_unspaced(predictions, references)
    # said before the work where it takes seconds (METEOR most) after the last bar; not at every small validation
    if len(predictions) >= SAID_FROM:
        log.info("scoring the captions of %d images: %s", len(predictions), ", ".join(families))
    if "METEOR" in families:
        start_meteor()  # its Java start-up overlaps tokenising and the other scorers, if not begun before
    gts, res = _tokenize(predictions, references)
    _check_tokenized_references(gts, references)
    scores: dict[str, float] = {}
    for family in sorted(families, key=lambda f: f == "METEOR"):  # Meteor last: it may still be starting
        if family == "Bleu":  # verbose=0, or Bleu prints its internals (no stdout swap: thread-safe)
            bleu, _ = _new_scorer(family).compute_score(gts, res, verbose=0)
            scores.update({f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)})
        elif family == "METEOR":
            scores[family] = _meteor_score(gts, res)
        else:
            scores[family] = float(_new_scorer(family).compute_score(gts, res)[0])
    return {name: scores[name] for name in caption_metric_names(families)}
