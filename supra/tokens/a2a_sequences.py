"""Training sequences of a2a_nano, one per task, from caption ids and VQ-VAE codes (docs/releases.md).

    text        <TEXT> caption </TEXT>
    text2image  <TEXT> caption </TEXT> <IMAGE> h*w codes </IMAGE>
    image2text  <IMAGE> h*w codes </IMAGE> <TEXT> caption </TEXT>
    video       <VIDEO> (<FRAME> h*w codes) * T </VIDEO>
    text2video  <TEXT> caption </TEXT> <VIDEO> (<FRAME> h*w codes) * T </VIDEO>

A sequence longer than the context is refused when it is built, naming the sample: nothing is cut.
How many frames fit (`frames_that_fit`): with the 384-token context, 5 frames of a 64x64 image (64
codes each; the card's 4 take 262 tokens), 22 at 32x32 and 1 at 128x128 (256 codes); a caption before
the video (text2video) takes its tokens + 2 from that room.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from supra.tokens.a2a_layout import A2A_CONTEXT, VQVAE_DOWNSAMPLE, TokenLayout, is_image_side
from supra.utils.errors import SupraUserError
from supra.utils.numbers import noun_for

TASKS: tuple[str, ...] = ("text", "text2image", "image2text", "video", "text2video")
VIDEO_TASKS = ("video", "text2video")
NEEDS = {  # what an item must have for each task
    "text": "caption", "text2image": "image+caption", "image2text": "image+caption",
    "video": "clip", "text2video": "clip+caption",
}


def check_tasks(tasks: Sequence[str]) -> None:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SupraUserError(f"unknown a2a {noun_for(len(unknown), 'task')} {', '.join(unknown)}: choose from {', '.join(TASKS)}")


def text_block(layout: TokenLayout, text_ids: Sequence[int]) -> list[int]:
    return [layout.text_open, *text_ids, layout.text_close]


def sequence_length(task: str, text_tokens: int = 0, grid_tokens: int = 0, frames: int = 0) -> int:
    """Tokens in a `task` sequence with a caption of `text_tokens` ids and `frames` grids of `grid_tokens`
    codes (frames counts only for the video tasks) - without building it."""
    text = text_tokens + 2
    image = grid_tokens + 2
    video = TokenLayout.video_block_len(frames, grid_tokens)
    return {"text": text, "text2image": text + image, "image2text": image + text, "video": video,
            "text2video": text + video}[task]


def build_sequence(
    task: str, layout: TokenLayout, text_ids: Sequence[int] | None = None, codes: torch.Tensor | None = None,
    context: int = A2A_CONTEXT, name: str = "a sample",
) -> list[int]:
    """The ids of one `task` sequence. codes: int [h, w] for the image tasks, [T, h, w] for the video
    tasks. `name` says which sample it is in the error when it does not fit in `context` tokens."""
    if task not in TASKS:
        check_tasks([task])
    needs_text = task in ("text", "text2image", "image2text", "text2video")
    if needs_text and text_ids is None:
        raise ValueError(f"{task} needs caption ids")
    if task != "text" and codes is None:
        raise ValueError(f"{task} needs codes")
    if task in ("text2image", "image2text") and codes.dim() != 2:
        raise ValueError(f"{task} needs image codes [h, w], got {list(codes.shape)}")
    if task in ("video", "text2video") and codes.dim() != 3:
        raise ValueError(f"{task} needs clip codes [T, h, w], got {list(codes.shape)}")
    ids = {
        "text": lambda: text_block(layout, text_ids),
        "text2image": lambda: text_block(layout, text_ids) + layout.image_block(codes),
        "image2text": lambda: layout.image_block(codes) + text_block(layout, text_ids),
        "video": lambda: layout.video_block(codes),
        "text2video": lambda: text_block(layout, text_ids) + layout.video_block(codes),
    }[task]()
    check_fits(len(ids), context, f"{name}: its {task} sequence", SHORTEN_SAMPLE)
    return ids


def check_fits(length: int, context: int, what: str, remedy: str) -> None:
    """Refuse `what` (a sample's sequence, a prompt with what it asks for) of `length` tokens when it does
    not fit the context: one line naming it, then `remedy` (may use {over}, the tokens too many)."""
    if length > context:
        over = length - context
        raise SupraUserError(f"{what} is {length} tokens, {over} over the context of {context}: {remedy.format(over=over)}")


def text_room(max_new_tokens: int, prompt_len: int, context: int) -> tuple[int, str | None]:
    """The most text tokens generate_texts adds after a `prompt_len`-token prompt (it stops where the context
    ends) and, when that is fewer than max_new_tokens, a note saying so for the command to print. Noted, not
    refused: max_new_tokens is a ceiling (a text ends at </TEXT>, usually well before) and generate's default
    (64) is more than a small model's context leaves after an image; refusing would refuse the default."""
    room = context - prompt_len
    if room >= max_new_tokens:
        return max_new_tokens, None
    return room, (f"note: max_new_tokens={max_new_tokens}, but the context of {context} leaves {room} after the "
                  f"prompt's {prompt_len} tokens: texts stop there at the latest")


SHORTEN_SAMPLE = "shorten the caption, use fewer frames (data.sources.<name>.frames) or a smaller image size"


def prompt_length(task: str, sequence: Sequence[int], layout: TokenLayout, given_frames: int = 1) -> int:
    """Where generation starts in a full `task` sequence (the prompt is sequence[:n]):
    text2image after <IMAGE>; image2text after <TEXT>; text2video after <VIDEO>; video after the
    `given_frames` first frames (and the <FRAME> of the next); text after <TEXT>."""
    ids = list(sequence)
    if task == "text2image":
        return ids.index(layout.image_open) + 1
    if task in ("image2text", "text"):
        return ids.index(layout.text_open) + 1
    if task == "text2video":
        return ids.index(layout.video_open) + 1
    frame_starts = [i for i, t in enumerate(ids) if t == layout.frame]
    if not 1 <= given_frames < len(frame_starts):
        raise ValueError(f"a clip of {len(frame_starts)} frames cannot be predicted from {given_frames} of them")
    return frame_starts[given_frames] + 1


def frames_that_fit(image_size: int, context: int = A2A_CONTEXT, prefix: int = 0) -> int:
    """How many frames of an image_size x image_size clip fit in one video block after `prefix` tokens
    (e.g. a text2video caption's tokens + 2), within `context`: the image side's front door to
    TokenLayout.frames_that_fit, which counts in codes."""
    if not is_image_side(image_size):
        raise SupraUserError(f"image size {image_size} must be a positive multiple of {VQVAE_DOWNSAMPLE}")
    return TokenLayout.frames_that_fit((image_size // VQVAE_DOWNSAMPLE) ** 2, context, prefix)


# The fewest tokens each mode's image or video needs with no prompt at all, for a side of `s` codes.
LEAST_TOKENS: dict[str, tuple[str, Callable[[int], int]]] = {
    "image2text": ("a {p}x{p} image ({s}x{s} codes, {block} tokens) with a caption", lambda s: s * s + 4),  # block, <TEXT>, a word
    # generate's prompt may be left out: <IMAGE> codes </IMAGE>
    "text2image": ("a {p}x{p} image ({s}x{s} codes) in its block", lambda s: s * s + 2),
    # explain's and the demo's caption is needed: <TEXT> a word </TEXT><IMAGE> codes </IMAGE>
    "text2image after a caption": ("a {p}x{p} image ({s}x{s} codes) after the shortest caption", lambda s: s * s + 5),
    "text2video": ("a video of one {p}x{p} frame ({s}x{s} codes)", lambda s: TokenLayout.video_block_len(1, s * s)),
    "video2video": ("a video of two {p}x{p} frames (one given; {s}x{s} codes each)",
                    lambda s: TokenLayout.video_block_len(2, s * s)),
}


def check_image_size_option(image_size: int) -> None:
    """generate's and explain's image_size= option: a side the VQ-VAE takes, or one line saying so."""
    if not is_image_side(image_size):
        raise SupraUserError(f"image_size={image_size} must be a positive multiple of {VQVAE_DOWNSAMPLE} "
                             "(the VQ-VAE's patch)")


def check_image_size_fits(context: int, mode: str, image_size: int) -> None:
    """The mode's image or video alone over the context: the image size is the cause, so say which fits
    (not "shorten the prompt", when there may be none). For generate and explain alike."""
    what, tokens = LEAST_TOKENS[mode]
    side = image_size // VQVAE_DOWNSAMPLE
    fits = next((s for s in range(side, 0, -1) if tokens(s) <= context), 0)
    remedy = f"give image_size={VQVAE_DOWNSAMPLE * fits} or smaller" if fits else "no image_size fits this model"
    check_fits(tokens(side), context, f"image_size={image_size}: " + what.format(p=image_size, s=side, block=side * side + 3), remedy)


def check_text2image_prompt(context: int, prompt_len: int, image_size: int, written: int | None = None) -> None:
    """A text2image prompt of `prompt_len` ids (<TEXT> caption </TEXT><IMAGE>) with the image to draw after it,
    over the context: by how many tokens to shorten it (generate, explain and the demo alike). `written`: the
    tokens of the prompt as the user wrote it (generate's, which may be <IMAGE> alone); where shortening it by all of
    them would not do, the image size that fits with it is said instead, or a prompt of <IMAGE> alone."""
    side = image_size // VQVAE_DOWNSAMPLE
    needed = side * side + 1  # the codes and </IMAGE>
    over = prompt_len + needed - context
    remedy = "shorten the prompt by {over} tokens"
    if written is not None and over >= written:
        fits = next((s for s in range(side - 1, 0, -1) if prompt_len + s * s + 1 <= context), 0)
        left_out = LEAST_TOKENS["text2image"][1](side) <= context  # <IMAGE> codes </IMAGE>
        remedies = [f"give image_size={VQVAE_DOWNSAMPLE * fits} or smaller" if fits else "",
                    "prompt='<IMAGE>' for an image without a caption" if left_out else ""]
        remedy = ", or ".join(r for r in remedies if r) or "no image_size fits this model"
    check_fits(prompt_len + needed, context, f"the prompt ({prompt_len} tokens) with a {image_size}x{image_size} image "
               f"of {side}x{side} codes ({needed} more)", remedy)
