"""COCO caption metrics through pycocoevalcap, and the DDP plumbing to score every image exactly once.

The numbers are pycocoevalcap's own: captions go through its PTBTokenizer (Java) and then its Bleu,
Meteor (Java), Rouge and Cider scorers, exactly as `pycocoevalcap.eval.COCOEvalCap` runs them.
SPICE is not offered: it needs a Stanford CoreNLP download and cannot run on machines without network.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")

CAPTION_METRICS: tuple[str, ...] = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
SCORER_FAMILIES = ("Bleu", "METEOR", "ROUGE_L", "CIDEr")


def _clean(caption: str) -> str:
    # METEOR's stdin protocol breaks on newlines and its '|||' separator.
    return " ".join(caption.replace("|", " ").split())


def _scorer(name: str):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    return {"Bleu": lambda: Bleu(4), "METEOR": Meteor, "ROUGE_L": Rouge, "CIDEr": Cider}[name]()


def _close(scorer: object) -> None:
    # Meteor keeps a Java process open; its cleanup lives in __del__ only in some versions.
    process = getattr(scorer, "meteor_p", None)
    if process is not None and process.poll() is None:
        with contextlib.suppress(Exception):
            process.stdin.close()
            process.kill()
            process.wait(timeout=10)


def score_captions(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    metrics: Sequence[str] = SCORER_FAMILIES,
) -> dict[str, float]:
    """Score predicted captions against references, keyed by image id.

    `metrics` names scorer families: "Bleu" (Bleu_1..Bleu_4), "METEOR", "ROUGE_L", "CIDEr".
    Returns {pycocoevalcap metric name: float}, scored over the ids of `predictions`.
    """
    unknown = [m for m in metrics if m not in SCORER_FAMILIES]
    if unknown:
        hint = " (SPICE needs a Stanford CoreNLP download and is not available offline)" if "SPICE" in unknown else ""
        raise ValueError(f"unknown caption metric(s) {unknown}: choose from {list(SCORER_FAMILIES)}{hint}")
    if not predictions:
        raise ValueError("no predictions to score")
    missing = [i for i in predictions if not references.get(i)]
    if missing:
        raise ValueError(f"image id {missing[0]!r} has a prediction but no reference captions")
    if shutil.which("java") is None:
        raise RuntimeError("pycocoevalcap needs Java (java not found on PATH): install a JRE, e.g. apt-get install default-jre")

    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ids = list(predictions)
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": _clean(c)} for c in references[i]] for i in ids})
    res = tokenizer.tokenize({i: [{"caption": _clean(predictions[i])}] for i in ids})
    scores: dict[str, float] = {}
    for family in metrics:
        scorer = _scorer(family)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its internals
                score, _ = scorer.compute_score(gts, res)
        finally:
            _close(scorer)
        if family == "Bleu":
            scores.update({f"Bleu_{n + 1}": float(s) for n, s in enumerate(score)})
        else:
            scores[family] = float(score)
    return scores


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_predictions(local: Mapping[int, str]) -> dict[int, str]:
    """All ranks' {image_id: caption} merged, each id once (DistributedSampler pads with repeats)."""
    if not _distributed():
        return dict(local)
    parts: list[dict[int, str]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, dict(local))
    merged: dict[int, str] = {}
    for part in parts:
        for image_id, caption in part.items():
            merged.setdefault(image_id, caption)
    return dict(sorted(merged.items()))


def broadcast_from_rank_zero(obj: T) -> T:
    """Rank 0's object on every rank (scores computed once, logged identically everywhere)."""
    if not _distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
