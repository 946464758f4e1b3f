"""Sampling from A2ANano with modality constraints and a KV cache (the card's modality-constrained sampling).

The constraints are a schedule of what each new position may hold, fixed by the mode:

- text: text ids or `</TEXT>` (never a code or another control token), until `</TEXT>` or the limit;
- image: exactly h*w codes, then `</IMAGE>` forced;
- video: per frame `<FRAME>` forced then h*w codes, for the requested frames, then `</VIDEO>` forced.

Forced tokens are not sampled: they are fed to the model together with the next sampled step's input,
so a video costs one forward per code; and the output head runs only over the range of ids a step
allows (the 256 code rows for an image step, not all 50,520). Temperature 0 is greedy. The same torch.Generator state gives
the same output; `use_cache=False` re-runs the whole sequence each step (the baseline the cache is
tested and benchmarked against) and draws the same random numbers, so both give the same tokens.
Images may be sampled with classifier-free guidance (Ho & Salimans 2022; as in Make-A-Scene and Parti):
a second stream continues the same tokens after an empty caption and each step samples from
uncond + g * (cond - uncond), which needs a model trained with some captions dropped. And best of N:
N candidates per prompt, kept the one from which the model itself reads the prompt back most
likely (log P(caption | image), its image2text direction), as DALL-E reranks its samples with CLIP.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from supra.models.a2a_nano import A2ANano
from supra.models.eval_mode import eval_mode
from supra.models.sampling import sample_next
from supra.tokens.a2a_layout import TokenLayout
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_number, is_whole
from supra.utils.seeds import seed_problem


# The rules of the sampling settings, each a phrase for a value that breaks it (None: fine): SamplingConfig,
# check_image_search and generate_texts apply them to their arguments, GENERATION_RULES to model.generation.
# Types are checked too (is_number, is_whole: not a bool, a str or top_k=2.5), as DecodeConfig does: from Python
# they reached torch, whose TypeErrors name neither the argument nor what to give.
def temperature_problem(temperature: float) -> str | None:
    return None if is_number(temperature) and temperature >= 0 else "must be a number >= 0 (0 = greedy)"  # nan too


def top_k_problem(top_k: int | None) -> str | None:
    return None if top_k is None else _whole_problem(top_k, "(or None for no limit)")


def guidance_problem(guidance: float) -> str | None:
    return None if is_number(guidance) and guidance >= 0 else "must be a number >= 0 (1 = off)"


def best_of_problem(best_of: int) -> str | None:
    return _whole_problem(best_of, "(1 = off)")


def new_tokens_problem(max_new_tokens: int) -> str | None:
    return _whole_problem(max_new_tokens)


def _whole_problem(value: object, note: str = "") -> str | None:
    """A count's problem: none for a whole number >= 1; an int below that is said as before."""
    if is_whole(value, 1):
        return None
    return " ".join(filter(None, ["must be" if is_whole(value) else "must be a whole number", ">= 1", note]))


def _check(name: str, value: object, problem: str | None) -> None:
    if problem:
        raise SupraUserError(f"{name}={value!r} {problem}")


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0  # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None

    # User errors: the values come straight from the command line (generate, explain, the demo).
    def __post_init__(self) -> None:
        _check("temperature", self.temperature, temperature_problem(self.temperature))
        _check("top_k", self.top_k, top_k_problem(self.top_k))
        if self.top_p is not None and not (is_number(self.top_p) and 0 < self.top_p <= 1):
            raise SupraUserError(f"top_p={self.top_p!r} must be in (0, 1] (or None for no limit)")


def check_image_search(guidance: float, best_of: int) -> None:
    """text2image's search settings (generate_images), checked before any work, as user errors."""
    _check("guidance", guidance, guidance_problem(guidance))
    _check("best_of", best_of, best_of_problem(best_of))


# model.generation (A2ATask's sampling of validation and test, an a2a release's scoring.json): each number
# setting by the rule of the argument it is given as; the seed by every command's range (utils/seeds.py: the
# draws add the rank and an item count to it, within the 64 bits a torch.Generator takes).
GENERATION_RULES = {"text_temperature": temperature_problem, "image_temperature": temperature_problem,
                    "video_temperature": temperature_problem, "image_top_k": top_k_problem,
                    "image_guidance": guidance_problem, "image_best_of": best_of_problem,
                    "max_caption_tokens": new_tokens_problem, "seed": seed_problem}
GENERATION_KEYS = ("text_temperature", "image_temperature", "image_top_k", "image_guidance", "image_best_of",
                   "video_temperature", "max_caption_tokens", "seed")
WHOLE_GENERATION_KEYS = ("image_top_k", "image_best_of", "max_caption_tokens", "seed")


def generation_setting_problem(key: str, value: object) -> str | None:
    """What is wrong with model.generation's setting `key` (a phrase: "must be ..."), or None."""
    whole = key in WHOLE_GENERATION_KEYS
    if not (isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
            or (value is None and key == "image_top_k")):
        return f"must be {'a whole number' if whole else 'a number'}"
    return GENERATION_RULES[key](value) if key in GENERATION_RULES else None


# -- what each position may hold ---------------------------------------------------------------------


def text_mask(layout: TokenLayout, device: torch.device | None = None) -> torch.Tensor:
    """bool [V]: text ids and `</TEXT>`."""
    mask = torch.zeros(layout.vocab_size, dtype=torch.bool, device=device)
    mask[: layout.text_size] = True
    mask[layout.text_close] = True
    return mask


def code_mask(layout: TokenLayout, device: torch.device | None = None) -> torch.Tensor:
    """bool [V]: visual codes only."""
    mask = torch.zeros(layout.vocab_size, dtype=torch.bool, device=device)
    mask[layout.code_offset :] = True
    return mask


@dataclass(frozen=True)
class PromptState:
    """Where a prompt leaves off: block "free" | "text" | "image" | "video"; codes in the open image or
    video frame (the last frame counts as open until the next `<FRAME>`: only the grid size says if it
    is whole); frames before it; whether a video frame was opened by `<FRAME>`."""

    block: str
    codes: int = 0
    frames: int = 0
    frame_open: bool = False


class TextInCodeBlock(ValueError):
    """A prompt with text ids inside an image or video block, which holds only codes (and a video's
    `<FRAME>` markers): a sequence the model never trains on. `block` names the block."""

    def __init__(self, block: str) -> None:
        super().__init__(f"text inside {'an' if block == 'image' else 'a'} {block} block, which holds only codes")
        self.block = block


def prompt_state(layout: TokenLayout, ids: Sequence[int]) -> PromptState:
    """Where the prompt's ids leave off; text ids inside an image or video block raise TextInCodeBlock,
    so no sampling function continues such a prompt."""
    block, codes, frames, frame_open = "free", 0, 0, False
    for i in ids:
        if block in ("image", "video") and 0 <= i < layout.text_size:
            raise TextInCodeBlock(block)
        if i in (layout.text_close, layout.image_close, layout.video_close):
            block, codes, frames, frame_open = "free", 0, 0, False
        elif i == layout.text_open:
            block, codes = "text", 0
        elif i == layout.image_open:
            block, codes = "image", 0
        elif i == layout.video_open:
            block, codes, frames, frame_open = "video", 0, 0, False
        elif i == layout.frame:
            if frame_open and codes:
                frames += 1
            codes, frame_open = 0, True
        elif layout.code_offset <= i < layout.vocab_size:
            codes += 1
    return PromptState(block, codes, frames, frame_open)


# -- the decoding loop -----------------------------------------------------------------------------------

# One step of a schedule: a forced token id, or a bool [V] mask of what may be sampled.
Step = int | torch.Tensor


class _Stream:
    """One batch of prompts being continued: its KV cache (or none: recompute) and how much it has seen."""

    def __init__(self, model: A2ANano, prompts: torch.Tensor, new_tokens: int, use_cache: bool) -> None:
        self.model, self.prompts, self.fed = model, prompts, 0
        self.cache = model.new_cache(prompts.shape[0], prompts.shape[1] + new_tokens) if use_cache else None

    def logits(self, out: torch.Tensor, rows: slice) -> torch.Tensor:
        seq = torch.cat([self.prompts, out], dim=1)
        # The cache sees only what it has not seen; the baseline re-runs everything.
        if self.cache is not None:
            logits = self.model.forward_cached(seq[:, self.fed:], self.cache, rows)
        else:
            logits = self.model.next_logits(seq, rows)
        self.fed = seq.shape[1]
        return logits


@torch.no_grad()
def run_schedule(
    model: A2ANano, prompts: torch.Tensor, schedule: Sequence[Step], sampling: SamplingConfig,
    generator: torch.Generator | None = None, stop_id: int | None = None, use_cache: bool = True,
    unconditional: torch.Tensor | None = None, guidance: float = 1.0,
) -> torch.Tensor:
    """prompts int64 [B, P] (equal lengths) -> the new tokens int64 [B, <= len(schedule)].

    stop_id: a row that drew it keeps emitting it; the loop ends when every row has.
    unconditional int64 [B, P'] and guidance g != 1: classifier-free guidance; each step samples from
    uncond + g * (cond - uncond) logits, the unconditional stream continuing the same new tokens.
    The model runs in eval mode and is left in the mode it was in (as vlm_generation.generate: dropout off).
    """
    with eval_mode(model):
        return _run_schedule(model, prompts, schedule, sampling, generator, stop_id, use_cache, unconditional,
                             guidance)


def _run_schedule(
    model: A2ANano, prompts: torch.Tensor, schedule: Sequence[Step], sampling: SamplingConfig,
    generator: torch.Generator | None, stop_id: int | None, use_cache: bool, unconditional: torch.Tensor | None,
    guidance: float,
) -> torch.Tensor:
    B, P = prompts.shape
    context = model.config.context
    if P + len(schedule) > context:
        raise ValueError(f"prompt of {P} + {len(schedule)} new tokens exceeds the context of {context} "
                         f"by {P + len(schedule) - context}")
    guided = unconditional is not None and guidance != 1.0
    out = torch.empty(B, len(schedule), dtype=torch.long, device=prompts.device)
    done = torch.zeros(B, dtype=torch.bool, device=prompts.device)
    stream = _Stream(model, prompts, len(schedule), use_cache)
    free = _Stream(model, unconditional, len(schedule), use_cache) if guided else None
    spans: dict[int, tuple[slice, torch.Tensor | None]] = {}  # per mask: head rows to compute, mask within them
    n = 0
    for step in schedule:
        if isinstance(step, int):
            tok = torch.full((B,), step, dtype=torch.long, device=prompts.device)
        else:
            rows, allowed = spans.get(id(step)) or spans.setdefault(id(step), _span(step))
            logits = stream.logits(out[:, :n], rows)
            if free is not None:
                uncond = free.logits(out[:, :n], rows)
                logits = uncond + guidance * (logits - uncond)
            tok = rows.start + sample_next(logits, sampling.temperature, sampling.top_k, sampling.top_p, generator,
                                           allowed)
        if stop_id is not None:
            tok = tok.masked_fill(done, stop_id)
            done |= tok == stop_id
        out[:, n] = tok
        n += 1
        if stop_id is not None and done.all():
            break
    return out[:, :n]


def _span(mask: torch.Tensor) -> tuple[slice, torch.Tensor | None]:
    """The smallest range of ids holding every allowed one, and the mask within it (None: all allowed).
    Only those head rows are computed: same distribution, a fraction of the cost for codes."""
    allowed = mask.nonzero().squeeze(1)
    if allowed.numel() == 0:
        raise ValueError("a decoding step allows no token at all")
    rows = slice(int(allowed[0]), int(allowed[-1]) + 1)
    inner = mask[rows]
    return rows, None if bool(inner.all()) else inner


def _prompt_tensor(model: A2ANano, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    """The prompts (all of one length) as int64 [B, T] on the model's device; an id the model has no row for in
    one line (a hand-built prompt), not torch's IndexError from the embedding."""
    ids = torch.tensor([list(p) for p in prompts], dtype=torch.long)  # checked on the CPU: no device sync
    outside = ids[(ids < 0) | (ids >= model.config.vocab_size)]
    if outside.numel():
        raise SupraUserError(f"prompt id {int(outside[0])} is outside the model's vocabulary "
                             f"0..{model.config.vocab_size - 1}")
    return ids.to(model.tok_emb.weight.device)


# how a caller makes a prompt's ids, said where a prompt is no list of ids
MAKE_IDS = "text_block(layout, vocab.encode_text(text)) (supra.tokens.a2a_sequences), layout.image_block(codes)"


def token_prompts(prompts: Sequence[Sequence[int]]) -> list[list[int]]:
    """Each prompt as a list of int ids. A prompt given as text (a str, the obvious first try in a notebook), or
    one that is or holds no whole number, is refused in one line saying how to make ids, not a TypeError midway."""
    if isinstance(prompts, str):
        raise SupraUserError(f"prompts is a str: give a list of prompts of token ids, "
                             f"[text_block(layout, vocab.encode_text({prompts!r}))]")
    return [token_ids(prompt, f"prompts[{i}]") for i, prompt in enumerate(prompts)]


def token_ids(prompt: Sequence[int], name: str) -> list[int]:
    """One prompt as a list of int ids (numpy and torch integers taken as the ints they hold); `name`: what the
    caller called it, for the one-line refusal (see token_prompts)."""
    if isinstance(prompt, str):
        raise SupraUserError(f"{name} is a str: give token ids, text_block(layout, vocab.encode_text({prompt!r}))")
    if not isinstance(prompt, Iterable):
        raise SupraUserError(f"{name} is {prompt!r}, not a list of token ids: give whole-number ids, as {MAKE_IDS} "
                             "make them")
    ids = []
    for token in prompt:
        try:
            if isinstance(token, bool):
                raise TypeError
            ids.append(operator.index(token))
        except TypeError:
            raise SupraUserError(f"{name} holds {token!r}, not a token id: give whole-number ids, as {MAKE_IDS} "
                                 "make them") from None
    return ids


def check_grid(grid: tuple[int, int]) -> None:
    """An image's grid of codes (high, wide), each a whole number >= 1: (0, 0) gave an empty tensor."""
    if not (isinstance(grid, Sequence) and len(grid) == 2 and all(is_whole(side, 1) for side in grid)):
        raise SupraUserError(f"grid={grid} must be two whole numbers >= 1 (codes high, codes wide)")


def with_opener(layout: TokenLayout, ids: Sequence[int], block: str, opener: int) -> list[int]:
    """The prompt, with the block's opener appended when it ends outside any block."""
    state = prompt_state(layout, ids)
    if state.block == block:
        return list(ids)
    if state.block != "free":
        raise ValueError(f"prompt ends inside an open {state.block} block; close it before asking for {block}")
    return [*ids, opener]


# -- text ---------------------------------------------------------------------------------------------------


def generate_texts(
    model: A2ANano, layout: TokenLayout, prompts: Sequence[Sequence[int]], max_new_tokens: int = 64,
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None, use_cache: bool = True,
) -> list[list[int]]:
    """Text ids continuing each prompt inside a text block (`<TEXT>` appended if the prompt ends outside
    any block), without the closing `</TEXT>`; never a code or other control token. Prompts of
    unequal length run in groups of equal length, in the order of first appearance."""
    sampling = SamplingConfig(temperature, top_k, top_p)
    _check("max_new_tokens", max_new_tokens, new_tokens_problem(max_new_tokens))  # 0: not "no room in the context"
    prompts = [with_opener(layout, p, "text", layout.text_open) for p in token_prompts(prompts)]
    mask = text_mask(layout, model.tok_emb.weight.device)
    results: list[list[int]] = [[] for _ in prompts]
    for length, rows in prompts_by_length(prompts).items():
        steps = min(max_new_tokens, model.config.context - length)
        if steps < 1:
            raise ValueError(f"prompt of {length} tokens leaves no room in the context of {model.config.context}")
        new = run_schedule(model, _prompt_tensor(model, [prompts[r] for r in rows]), [mask] * steps, sampling,
                           generator, stop_id=layout.text_close, use_cache=use_cache)
        for r, row in zip(rows, new.tolist(), strict=True):
            results[r] = row[: row.index(layout.text_close)] if layout.text_close in row else row
    return results


# -- images and video ---------------------------------------------------------------------------------------


def image_schedule(layout: TokenLayout, grid: tuple[int, int], device: torch.device | None = None) -> list[Step]:
    """h*w code steps, then `</IMAGE>` forced."""
    return [code_mask(layout, device)] * (grid[0] * grid[1]) + [layout.image_close]


def video_schedule(layout: TokenLayout, frames: int, grid: tuple[int, int], first_frame_open: bool = False,
                   device: torch.device | None = None) -> list[Step]:
    """Per frame `<FRAME>` forced then h*w code steps; `</VIDEO>` forced after the last frame.
    first_frame_open: the prompt already ends with the first frame's `<FRAME>`."""
    codes = [code_mask(layout, device)] * (grid[0] * grid[1])
    steps: list[Step] = []
    for f in range(frames):
        steps += ([] if f == 0 and first_frame_open else [layout.frame]) + codes
    return [*steps, layout.video_close]


def unconditional_image_prompt(layout: TokenLayout) -> list[int]:
    """`<TEXT></TEXT><IMAGE>`: an image of nothing in particular, the other side of guidance."""
    return [layout.text_open, layout.text_close, layout.image_open]


def generate_images(
    model: A2ANano, layout: TokenLayout, prompts: Sequence[Sequence[int]], grid: tuple[int, int] = (8, 8),
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None, use_cache: bool = True, guidance: float = 1.0, best_of: int = 1,
) -> torch.Tensor:
    """One image per prompt (`<IMAGE>` appended if the prompt ends outside any block) -> codes int64
    [B, h, w]: exactly h*w codes each, `</IMAGE>` forced after them (not returned).

    guidance != 1: classifier-free guidance against the empty caption `<TEXT></TEXT><IMAGE>` (what
    caption dropout, data.caption_dropout, trains); 1 = plain sampling, as the release's script.
    best_of N > 1: N samples per prompt, keeping the one whose prompt caption the model reads back
    most likely (`caption_log_likelihood`); the prompt must hold a caption."""
    check_image_search(guidance, best_of)
    check_grid(grid)
    prompts = token_prompts(prompts)
    if best_of > 1:
        captions = [prompt_caption(layout, p) for p in prompts]
        many = generate_images(model, layout, [p for p in prompts for _ in range(best_of)], grid, temperature, top_k,
                               top_p, generator, use_cache, guidance)
        scores = caption_log_likelihood(model, layout, many, [c for c in captions for _ in range(best_of)])
        best = scores.view(len(prompts), best_of).argmax(1).cpu()  # scored on the model's device; codes on the CPU
        return many.view(len(prompts), best_of, *grid)[torch.arange(len(prompts)), best]
    sampling = SamplingConfig(temperature, top_k, top_p)
    prompts = [with_opener(layout, p, "image", layout.image_open) for p in prompts]
    for p in prompts:
        if prompt_state(layout, p).codes:
            raise ValueError("prompt ends inside an image block with codes already; end it right after <IMAGE>")
    # </IMAGE> is forced and ends the block: no model step needs it, so it is left out of the loop.
    schedule = image_schedule(layout, grid, model.tok_emb.weight.device)[:-1]
    out = torch.empty(len(prompts), grid[0], grid[1], dtype=torch.long)
    for _, rows in prompts_by_length(prompts).items():
        unconditional = None if guidance == 1.0 else _prompt_tensor(model, [unconditional_image_prompt(layout)] * len(rows))
        new = run_schedule(model, _prompt_tensor(model, [prompts[r] for r in rows]), schedule, sampling,
                           generator, use_cache=use_cache, unconditional=unconditional, guidance=guidance)
        out[rows] = layout.to_codes(new).view(len(rows), *grid).cpu()
    return out


def prompt_caption(layout: TokenLayout, prompt: Sequence[int]) -> list[int]:
    """The text ids of the prompt's last whole text block (`<TEXT> ... </TEXT>`)."""
    ids = list(prompt)
    closes = [i for i, t in enumerate(ids) if t == layout.text_close]
    opens = [i for i, t in enumerate(ids[: closes[-1]]) if t == layout.text_open] if closes else []
    if not opens:
        raise ValueError("best_of needs a prompt with a caption (<TEXT> ... </TEXT>) to read back")
    return ids[opens[-1] + 1 : closes[-1]]


@torch.no_grad()
def caption_log_likelihood(model: A2ANano, layout: TokenLayout, codes: torch.Tensor,
                           captions: Sequence[Sequence[int]]) -> torch.Tensor:
    """codes int64 [N, h, w] and N captions' text ids -> float [N]: log P(<TEXT> caption </TEXT> | image)
    under the model, summed over the caption's ids and `</TEXT>` (the image2text direction)."""
    rows = [layout.image_block(c) + [layout.text_open, *cap, layout.text_close] for c, cap in zip(codes, captions, strict=True)]
    length = max(map(len, rows))
    device = model.tok_emb.weight.device
    ids = torch.zeros(len(rows), length, dtype=torch.long, device=device)
    scored = torch.zeros(len(rows), length, dtype=torch.bool, device=device)
    for i, (row, cap) in enumerate(zip(rows, captions, strict=True)):
        ids[i, : len(row)] = torch.tensor(row, device=device)
        scored[i, len(row) - len(cap) - 1 : len(row)] = True  # the caption's ids and </TEXT>
    with eval_mode(model):  # dropout off, as run_schedule
        logits, _ = model(ids[:, :-1])
    logp = logits.float().log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (logp * scored[:, 1:]).sum(1)


def generate_image(model: A2ANano, layout: TokenLayout, prompt_ids: Sequence[int], grid: tuple[int, int] = (8, 8),
                   **kwargs: object) -> torch.Tensor:
    """codes int64 [h, w] for one prompt (see generate_images)."""
    return generate_images(model, layout, [prompt_ids], grid, **kwargs)[0]  # type: ignore[arg-type]


def generate_video(
    model: A2ANano, layout: TokenLayout, prompt_ids: Sequence[int], frames: int, grid: tuple[int, int] = (8, 8),
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None, use_cache: bool = True,
) -> torch.Tensor:
    """`frames` new frames -> codes int64 [frames, h, w]. The prompt either ends outside any block
    (text2video: `<VIDEO>` is appended) or inside a video after whole frames (video2video: the new
    frames continue it, optionally after its last `<FRAME>`)."""
    sampling = SamplingConfig(temperature, top_k, top_p)
    _check("frames", frames, _whole_problem(frames))  # -1 gave an empty tensor
    check_grid(grid)
    prompt = with_opener(layout, token_ids(prompt_ids, "prompt_ids"), "video", layout.video_open)
    state = prompt_state(layout, prompt)
    if state.codes not in (0, grid[0] * grid[1]):
        raise ValueError(f"prompt ends inside a video frame after {state.codes} of {grid[0] * grid[1]} codes; "
                         "give whole frames only")
    first_frame_open = state.frame_open and state.codes == 0  # the prompt ends with <FRAME>
    schedule = video_schedule(layout, frames, grid, first_frame_open, model.tok_emb.weight.device)[:-1]
    new = run_schedule(model, _prompt_tensor(model, [prompt]), schedule, sampling, generator, use_cache=use_cache)[0]
    codes = new[new != layout.frame]
    return layout.to_codes(codes).view(frames, *grid).cpu()


def prompts_by_length(prompts: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    """Prompt length -> indices of the prompts of that length (a batch needs equal lengths: no padding)."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    return groups
