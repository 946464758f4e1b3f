"""COCO caption metrics through pycocoevalcap (tasks gather every rank's captions first: utils/distributed.py).

The numbers are pycocoevalcap's own: captions go through its PTBTokenizer (Java) and then its Bleu,
Meteor (Java), Rouge and Cider scorers, exactly as `pycocoevalcap.eval.COCOEvalCap` runs them.
SPICE is not offered: it needs a Stanford CoreNLP download at first use, which cannot happen offline.

pycocoevalcap quirks handled here:
- PTBTokenizer joins all captions with '\\n' and reads them back line by line, and Java also breaks lines
  at '\\r', '\\v', '\\f', U+2028 and U+2029: one such character silently shifts every later caption onto
  the wrong image. Whitespace is therefore collapsed to single spaces first.
- METEOR talks to a Java process over a line protocol with '|||' separators; '|' is replaced by a space.
- METEOR's Java process is only closed in `__del__`, and starting it (JVM + paraphrase table) takes ~5 s,
  so it is started before tokenising (overlapping the other scorers) and killed in a `finally`.
- Empty hypotheses are fine everywhere (they score 0); they tokenise to ''.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

CAPTION_METRICS: tuple[str, ...] = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
SCORER_FAMILIES: tuple[str, ...] = ("Bleu", "METEOR", "ROUGE_L", "CIDEr")
JAVA_MISSING = "pycocoevalcap needs Java (java not found on PATH): install a JRE, e.g. apt-get install default-jre"


def _clean(caption: str) -> str:
    # str.split() splits at every character Java treats as a line break, and '|' would break METEOR's protocol.
    return " ".join(caption.replace("|", " ").split())


def _check_request(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]], metrics: Sequence[str]
) -> None:
    unknown = [m for m in metrics if m not in SCORER_FAMILIES]
    if "SPICE" in unknown:
        raise ValueError("caption metric 'SPICE' is not supported: it needs a Stanford CoreNLP download "
                         f"that cannot run offline; choose from {list(SCORER_FAMILIES)}")
    if unknown:
        raise ValueError(f"unknown caption metric(s) {unknown}: choose from {list(SCORER_FAMILIES)}")
    if not predictions:
        raise ValueError("no predictions to score")
    for image_id in predictions:
        refs = references.get(image_id)
        if isinstance(refs, str):  # a bare string would be scored as one reference per character
            raise ValueError(f"references of image id {image_id!r} must be a list of strings, not one string")
        if not refs:
            raise ValueError(f"image id {image_id!r} has a prediction but no reference captions")
    if shutil.which("java") is None:
        raise RuntimeError(JAVA_MISSING)


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
    elif process.poll() is None:
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.kill()
        process.wait(timeout=30)


def _tokenize(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """PTB-tokenised {id: [reference, ...]} and {id: [prediction]}, as COCOEvalCap.evaluate builds them."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": _clean(c)} for c in references[i]] for i in predictions})
    res = tokenizer.tokenize({i: [{"caption": _clean(predictions[i])}] for i in predictions})
    return gts, res


def score_captions(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    metrics: Sequence[str] = SCORER_FAMILIES,
) -> dict[str, float]:
    """Corpus-level caption scores of `predictions` ({image id: caption}) against `references`
    ({image id: [caption, ...]}, extra ids ignored).

    `metrics` names scorer families: "Bleu" (Bleu_1..Bleu_4), "METEOR", "ROUGE_L", "CIDEr".
    Returns {pycocoevalcap metric name: float} in CAPTION_METRICS order.
    """
    _check_request(predictions, references, metrics)
    families = [f for f in SCORER_FAMILIES if f in metrics]
    scorers: dict[str, Any] = {}
    try:
        for family in families:  # created before tokenising, so that Meteor's slow Java start-up overlaps it
            scorers[family] = _new_scorer(family)
        gts, res = _tokenize(predictions, references)
        scores: dict[str, float] = {}
        for family in sorted(families, key=lambda f: f == "METEOR"):  # Meteor last: it is still starting
            if family == "Bleu":  # verbose=0, or Bleu prints its internals (no stdout swap: thread-safe)
                bleu, _ = scorers[family].compute_score(gts, res, verbose=0)
                scores.update({f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)})
            else:
                scores[family] = float(scorers[family].compute_score(gts, res)[0])
    finally:
        for scorer in scorers.values():
            _close(scorer)
    return {name: scores[name] for name in CAPTION_METRICS if name in scores}
