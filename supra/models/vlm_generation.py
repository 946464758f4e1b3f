"""Caption decoding for VLMNano: greedy, sampling and beam search, batched over images with a KV cache.

`beam_search_recompute` is the plain per-image search that re-runs the whole sequence every step, as
the release's inference code does; it is the baseline the batched search is tested and benchmarked
against, and defines the semantics both share:

- every beam carries the sum of its token log-probabilities; a beam that emitted EOS is finished,
  keeps its score and stays in the beam set (it competes with live beams, which can only lose score);
- the search ends when every kept beam is finished or MAX_SEQ text positions are used;
- the answer is the kept beam with the best `score / length ** length_penalty` (length counts EOS).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from supra.models.eval_mode import eval_mode
from supra.models.sampling import sample_next
from supra.models.vlm_nano import VLMNano
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_number, is_whole
from supra.utils.seeds import check_seed


@dataclass(frozen=True)
class DecodeConfig:
    """How to turn images into captions. strategy: 'beam' | 'greedy' | 'sample'."""

    strategy: str = "beam"
    beam_width: int = 3
    length_penalty: float = 0.0
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = None
    max_new_tokens: int | None = None  # default: all MAX_SEQ - 1 text positions after BOS
    seed: int = 0  # sampling only: same seed, same caption for an image, whatever else shares its batch

    def __post_init__(self) -> None:
        # Raised as user errors: these values come straight from the command line (decode=, beam_width=, seed=).
        if self.strategy not in ("beam", "greedy", "sample"):
            raise SupraUserError(f"decode={self.strategy!r} is unknown: choose beam, greedy or sample")
        for name in ("beam_width", "seed") + (("max_new_tokens",) if self.max_new_tokens is not None else ()):
            if not is_whole(getattr(self, name)):
                raise SupraUserError(f"{name}={getattr(self, name)!r} must be a whole number")
        if self.beam_width < 1:
            raise SupraUserError(f"beam_width={self.beam_width} must be >= 1")
        check_seed("seed", self.seed)  # the range every command takes: a trained model's demo refused a larger one
        # 0 would write empty captions (max_new_tokens) or draw from nothing (top_k, top_p): refused, not scored
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise SupraUserError(f"max_new_tokens={self.max_new_tokens} must be >= 1 (or null: as long as the model "
                                 "allows)")
        if self.top_k is not None and not is_whole(self.top_k, 1):
            raise SupraUserError(f"top_k={self.top_k!r} must be a whole number >= 1 (or null: every token)")
        if self.top_p is not None and not (is_number(self.top_p) and 0 < self.top_p <= 1):
            raise SupraUserError(f"top_p={self.top_p!r} must be a number > 0 and <= 1 (or null: no nucleus filter)")
        if not is_number(self.length_penalty):
            raise SupraUserError(f"length_penalty={self.length_penalty!r} must be a number (0: rank beams by score)")
        if not is_number(self.temperature) or self.temperature <= 0:
            raise SupraUserError(f"temperature={self.temperature!r} must be a number > 0 (use decode=greedy for argmax)")

    def check_vocabulary(self, vocab_size: int) -> None:
        """One line for a beam wider than the model's vocabulary: its first step starts a beam from each token,
        and the beams past vocab_size would start from nothing (captions came out empty, or memory ran out)."""
        if self.strategy == "beam" and self.beam_width > vocab_size:
            raise SupraUserError(f"beam_width={self.beam_width} is more than the model's {vocab_size} tokens: give "
                                 f"beam_width <= {vocab_size}")

    def settings_used(self, model: VLMNano | None = None) -> dict[str, Any]:
        """The settings this strategy reads (strategy first): what a report says the captions were made with. With
        the `model` decoded, max_new_tokens is the limit used (null means MAX_SEQ - 1, which a reader of the report
        cannot know without the model's config)."""
        read = {"beam": ("beam_width", "length_penalty"), "greedy": (),
                "sample": ("temperature", "top_k", "top_p", "seed")}[self.strategy]
        limit = self.max_new_tokens if model is None else _max_new(model, self.max_new_tokens)
        return {"strategy": self.strategy, **{name: getattr(self, name) for name in read}, "max_new_tokens": limit}


@torch.no_grad()
def generate(model: VLMNano, images: torch.Tensor, bos_id: int, eos_id: int, decode: DecodeConfig) -> list[list[int]]:
    """images float [B, 3, H, W] (normalised) -> B token lists, BOS/EOS dropped. The model decodes in eval mode
    and is left in the mode it was in, its weights and buffers as they were."""
    decode.check_vocabulary(model.config.VOCAB_SIZE)
    # Eval mode, not a refusal of a training model: a caption is always inference, and in train mode BatchNorm
    # moved its running statistics and dropout changed the captions. Callers already in eval (validation, the
    # sample grids, attention maps) decode exactly as before.
    with eval_mode(model):
        if decode.strategy == "beam":
            return beam_search(model, images, bos_id, eos_id, decode.beam_width, decode.length_penalty,
                               decode.max_new_tokens)
        if decode.strategy == "greedy":
            return sample(model, images, bos_id, eos_id, greedy=True, max_new_tokens=decode.max_new_tokens)
        draws = image_draws(images, decode.seed, _max_new(model, decode.max_new_tokens))
        return sample(model, images, bos_id, eos_id, temperature=decode.temperature, top_k=decode.top_k,
                      top_p=decode.top_p, draws=draws, max_new_tokens=decode.max_new_tokens)


def image_draws(images: torch.Tensor, seed: int, steps: int) -> torch.Tensor:
    """images [B, 3, H, W] -> float [B, steps] uniforms in [0, 1), on the images' device: each image's own
    random stream, seeded from `seed` and a digest of its pixels. So a sampled caption depends on the seed
    and the image alone, not on the batch size or the other images beside it, with no ids to pass along;
    two copies of one image draw alike, as one image sampled twice with one seed does."""
    # float32 on the CPU: one digest for an image whether it comes as float64, on a GPU or in bfloat16
    pixels = images.detach().to("cpu", torch.float32).contiguous()
    draws = torch.empty(len(pixels), steps)
    for row, image in enumerate(pixels):
        digest = hashlib.blake2b(f"{seed}:".encode(), digest_size=8)
        digest.update(image.numpy().tobytes())
        generator = torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)  # < 2**63
        draws[row] = torch.rand(steps, generator=generator)
    return draws.to(images.device)


def _max_new(model: VLMNano, max_new_tokens: int | None) -> int:
    limit = model.config.MAX_SEQ - 1  # BOS takes text position 0
    return limit if max_new_tokens is None else min(max_new_tokens, limit)


def _strip(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id)] if eos_id in tokens else tokens


@torch.no_grad()
def sample(
    model: VLMNano, images: torch.Tensor, bos_id: int, eos_id: int, *, greedy: bool = False,
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None, max_new_tokens: int | None = None, draws: torch.Tensor | None = None,
) -> list[list[int]]:
    """Greedy or temperature/top-k/top-p sampling, all images at once, one cached step per token. draws
    float [B, >= steps] (image_draws): each image's own uniforms, step by step, instead of `generator`."""
    logits, cache = model.prefill(images, bos_id)
    B = images.shape[0]
    out = torch.empty(B, 0, dtype=torch.long, device=images.device)
    done = torch.zeros(B, dtype=torch.bool, device=images.device)
    for step in range(_max_new(model, max_new_tokens)):
        uniforms = None if draws is None else draws[:, step]
        tok = logits.argmax(-1) if greedy else sample_next(logits, temperature, top_k, top_p, generator,
                                                           uniforms=uniforms)
        tok = tok.masked_fill(done, eos_id)
        out = torch.cat([out, tok[:, None]], dim=1)
        done |= tok == eos_id
        if done.all() or step == _max_new(model, max_new_tokens) - 1:
            break
        logits = model.decode_step(tok, cache)
    return [_strip(row, eos_id) for row in out.tolist()]


@torch.no_grad()
def beam_search(
    model: VLMNano, images: torch.Tensor, bos_id: int, eos_id: int, beam_width: int = 3,
    length_penalty: float = 0.0, max_new_tokens: int | None = None,
) -> list[list[int]]:
    """Beam search over all images at once: B x W rows share one KV cache, reordered each step.

    Images whose beams have all finished leave the batch (in groups, so the cache is not copied at
    every step), so long captions do not keep short ones computing.
    """
    B, W = images.shape[0], beam_width
    device = images.device
    logits, cache = model.prefill(images, bos_id)
    V = logits.shape[-1]
    logp = F.log_softmax(logits.float(), -1).repeat_interleave(W, 0)  # [B*W, V]
    cache.reorder(torch.arange(B, device=device).repeat_interleave(W))
    prefix_len = cache.length  # visual tokens + BOS, the same for every beam of an image
    scores = torch.full((B, W), float("-inf"), device=device)
    scores[:, 0] = 0.0  # W identical copies of the start: only the first may expand
    tokens = torch.empty(B * W, 0, dtype=torch.long, device=device)
    finished = torch.zeros(B * W, dtype=torch.bool, device=device)
    lengths = torch.zeros(B * W, dtype=torch.long, device=device)
    active = torch.arange(B, device=device)  # which images the rows belong to, W rows each
    results: list[list[int]] = [[] for _ in range(B)]

    def finish(groups: torch.Tensor) -> None:
        """Write the best beam of the given active groups (indices into `active`) to `results`."""
        group_scores = scores[groups] / lengths.view(-1, W)[groups].clamp(min=1).float() ** length_penalty
        best = groups * W + group_scores.argmax(1)
        for image, row in zip(active[groups].tolist(), tokens[best].tolist(), strict=True):
            results[image] = _strip(row, eos_id)

    max_new = _max_new(model, max_new_tokens)
    for step in range(max_new):
        b = len(active)
        # A finished beam has one continuation, EOS again, at no cost: its score stays put.
        logp[finished] = float("-inf")
        logp[finished, eos_id] = 0.0
        total = (scores.reshape(-1, 1) + logp).view(b, W * V)
        scores, flat = total.topk(W, dim=1)  # [b, W]
        rows = (torch.arange(b, device=device)[:, None] * W + flat // V).view(-1)
        tok = (flat % V).view(-1)
        tokens = torch.cat([tokens[rows], tok[:, None]], dim=1)
        was_finished = finished[rows]
        lengths = lengths[rows] + (~was_finished).long()
        finished = was_finished | (tok == eos_id)
        done = finished.view(b, W).all(1)
        if done.all() or step == max_new - 1:
            finish(torch.arange(b, device=device))
            break
        if done.sum() * 4 >= b:  # a quarter of the images are done: drop them from the batch
            finish(done.nonzero().squeeze(1))
            keep = (~done).nonzero().squeeze(1)
            keep_rows = (keep[:, None] * W + torch.arange(W, device=device)).view(-1)
            rows, tok, tokens = rows[keep_rows], tok[keep_rows], tokens[keep_rows]
            finished, lengths, scores, active = finished[keep_rows], lengths[keep_rows], scores[keep], active[keep]
        cache.reorder(rows, keep_prefix=prefix_len)  # beams never leave their image: its prefix stays put
        logp = F.log_softmax(model.decode_step(tok, cache).float(), -1)
    return results


@torch.no_grad()
def beam_search_recompute(
    model: VLMNano, image: torch.Tensor, bos_id: int, eos_id: int, beam_width: int = 3,
    length_penalty: float = 0.0, max_new_tokens: int | None = None,
) -> list[int]:
    """One image [3, H, W], no cache: every step re-runs the full sequence of every beam (the baseline)."""
    beams: list[tuple[list[int], float, int, bool]] = [([], 0.0, 0, False)]  # tokens, score, length, done
    max_new = _max_new(model, max_new_tokens)
    for _ in range(max_new):
        candidates = []
        for toks, score, length, done in beams:
            if done:
                candidates.append((toks + [eos_id], score, length, True))
                continue
            idx = torch.tensor([[bos_id, *toks]], device=image.device)
            logits, _ = model(image[None], idx)
            logp = F.log_softmax(logits[0, -1].float(), -1)
            top = logp.topk(beam_width)  # only a beam's W best tokens can enter the global top W
            for lp, t in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                candidates.append((toks + [t], score + lp, length + 1, t == eos_id))
        beams = sorted(candidates, key=lambda c: -c[1])[:beam_width]
        if all(b[3] for b in beams):
            break
    best = max(beams, key=lambda b: b[1] / max(b[2], 1) ** length_penalty)
    return _strip(best[0], eos_id)
