"""`python -m supra.generate`: sample from an a2a_nano GPT (a train.py checkpoint or a release folder):
text, text2image, image2text, video2video (GIF in, GIF out) and text2video, as the release's script.
conf/generate.yaml holds every option (`--help`); same seed, same output.

    python -m supra.generate ckpt=CKPT_OR_RELEASE mode=text2image prompt="a red square" seed=0 out=DIR
    python -m supra.generate ckpt=... mode=image2text image=photo.png out=DIR
    python -m supra.generate ckpt=... mode=video2video image=clip.gif frames=4 out=DIR

A prompt that starts with a control token name ("<TEXT>a red square</TEXT><IMAGE>", as generation.json records
it) is raw, used as written, the mode's
opener added when it ends outside any block ("<TEXT>a red</TEXT>" in text mode: a new text after it); it
cannot write codes, so its image or video blocks hold no text ("<IMAGE>hello" is refused). A plain one is
wrapped for the mode; a name inside it is refused, unless written as text after a backslash ("\\<FRAME>"):

    text         <TEXT>prompt                      -> text up to </TEXT>
    text2image   <TEXT>prompt</TEXT><IMAGE>        -> one grid of codes
    text2video   <TEXT>prompt</TEXT><VIDEO>        -> `frames` frames
    image2text   [image block]<TEXT>prompt         -> text (a prompt starts the caption)
    video2video  <TEXT>prompt</TEXT><VIDEO>[the GIF's first given_frames frames]   -> the remaining frames

Every bad input is a one-line SupraUserError, found before anything is generated.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from supra.artifacts.a2a_release import UNRECORDED_IMAGE_SIZE, load_a2a, model_image_size, replace_vqvae
from supra.artifacts.checkpoints import artifact_kind
from supra.artifacts.kinds import A2A_CHECKPOINT, A2A_MODEL, refuse_other_kind
from supra.data.gif_frames import (
    EMPTY_FILE,
    UNREADABLE,
    MediaDecodeError,
    continued_timing,
    cut_short,
    first_frame_cut_note,
    read_gif_start,
)
from supra.data.images import GENERATE_MAX_PIXELS, fit, load_still, require_image_file, unreadable_picture
from supra.data.media.codes import decode_codes, encode_items
from supra.models import a2a_generation as gen
from supra.models.a2a_nano import A2ANano
from supra.models.vqvae import VQVAE
from supra.pictures.files import save_gif_atomic, save_image_atomic
from supra.pictures.grids import (
    first_frames,
    render_generated_grid,
    render_image_rows,
    render_pictures_captions,
    to_pil,
)
from supra.tokens.a2a_layout import CONTROL_TOKENS, VQVAE_DOWNSAMPLE, TokenLayout, is_image_side
from supra.tokens.a2a_sequences import (
    check_fits,
    check_image_size_fits,
    check_image_size_option,
    check_text2image_prompt,
    frames_that_fit,
    text_room,
)
from supra.tokens.a2a_vocab import A2AVocab, control_names_in
from supra.utils import files
from supra.utils.cli import check_option_types, hydra_command, refuse_unread_options
from supra.utils.errors import SupraUserError
from supra.utils.files import (
    remove_earlier_outputs,
    require_writable_dir,
    unwritable_reason,
    write_json_atomic,
    write_text_atomic,
)
from supra.utils.hydra_quoting import quote_prompt
from supra.utils.numbers import counted
from supra.utils.run_folders import refuse_model_folder
from supra.utils.seeds import check_seed

MODES = ("text", "text2image", "image2text", "video2video", "text2video")
# The raw prompt of a drawing without a caption, as a2a training has the model start one: a text2image caption
# left empty (data.caption_dropout, the side guidance contrasts with), the video task's clip of no text
UNCAPTIONED = {"text2image": "<TEXT></TEXT><IMAGE>", "text2video": "<VIDEO>"}
UNCAPTIONED_TRAINED = {"text2image": "as data.caption_dropout trains it", "text2video": "as the video task trains it"}
RESIZES = ("crop", "pad", "squash", "refuse")
# what squares a picture, as refuse's one line says: squash first, what a model trained on photos saw
SQUARING = "resize=squash (a model trained on photos saw them so), crop or pad"
ENCODE_BATCH = 256  # pictures per VQ-VAE call
# Sequences sampled together (a text2image sample is best_of of them): each holds a KV cache of the whole
# context (about 3 MB in a2a_nano, twice that with guidance), so num_samples=100000 in one batch grew until the
# OOM killer ended the process without a word. The batches draw in turn from the run's one generator, which
# draws each step for the whole batch: a run of up to SAMPLE_BATCH sequences is one batch, its samples those it
# always gave; a larger run's first batch is that of a run of one batch, the others drawn after it.
SAMPLE_BATCH = 64
# grid.png shows every sample: 1024 keep it a picture viewers open (42 million pixels for text2image, 72 million for
# 4-frame videos; PIL warns over 89 million); more samples are more runs, each with its own seed
MAX_SAMPLES = 1024
# a frame's time on screen in text2video's GIFs (ms); video2video's keep their input's (gif_frames.continued_timing)
FRAME_MS = 250
# The options each mode reads beyond those all do (ckpt, out, num_samples, seed, the sampler's, device):
# one it does not read, set on the command line, is refused rather than ignored without a word.
MODE_READS = {
    "text": ("prompt", "max_new_tokens"),
    "text2image": ("prompt", "image_size", "guidance", "best_of", "vqvae"),
    "image2text": ("image", "prompt", "image_size", "resize", "max_pixels", "max_new_tokens", "vqvae"),
    "video2video": ("image", "prompt", "frames", "given_frames", "image_size", "resize", "max_pixels", "vqvae"),
    "text2video": ("prompt", "frames", "image_size", "vqvae"),
}
# what generation.json records of a run beside its outputs: the sampler's options, read in every mode, and the
# mode's own that change its samples (max_pixels only refuses a picture; the prompt is recorded as the model
# was given it, vqvae beside ckpt)
SAMPLER_OPTIONS = ("temperature", "top_k", "top_p")
NOT_SAMPLE_SETTINGS = ("prompt", "vqvae", "max_pixels")


@dataclass(frozen=True)
class Request:
    """The generate config's keys (conf/generate.yaml), checked where they are read."""

    mode: str
    out: str
    prompt: str | None = None
    image: str | None = None
    frames: int = 4
    given_frames: int | None = None
    image_size: int = UNRECORDED_IMAGE_SIZE
    resize: str = "crop"
    num_samples: int = 4
    seed: int = 0
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    guidance: float = 1.0
    best_of: int = 1
    max_new_tokens: int = 64
    max_pixels: int = GENERATE_MAX_PIXELS
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_option_types(vars(self), whole=("frames", "given_frames", "image_size", "num_samples", "seed", "top_k",
                                              "best_of", "max_new_tokens", "max_pixels"),
                           numbers=("temperature", "top_p", "guidance"), optional=("given_frames", "top_k", "top_p"))
        check_seed("seed", self.seed)  # torch's generator takes 64 bits: a larger one was a traceback
        if self.mode not in MODES:
            raise SupraUserError(f"mode={self.mode!r} is unknown: choose one of {', '.join(MODES)}")
        if self.resize not in RESIZES:
            raise SupraUserError(f"resize={self.resize!r} is unknown: choose crop, pad, squash or refuse")
        check_image_size_option(self.image_size)
        for name in ("frames", "num_samples", "max_new_tokens", "max_pixels"):  # max_pixels < 1 refused every picture as too large
            if getattr(self, name) < 1:
                raise SupraUserError(f"{name}={getattr(self, name)} must be >= 1")
        if self.num_samples > MAX_SAMPLES:
            raise SupraUserError(f"num_samples={self.num_samples} is over {MAX_SAMPLES}, the samples grid.png can show: "
                                 "for more, run generate again with another seed")
        if self.device not in ("cpu", "cuda", "auto") and not re.fullmatch(r"cuda:\d+", self.device):
            raise SupraUserError(f"device={self.device!r} is unknown: choose cpu, cuda (or cuda:N) or auto")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise SupraUserError(f"device={self.device} but torch finds no CUDA GPU here: use device=cpu (or auto)")
        if self.device.startswith("cuda:") and int(self.device[5:]) >= torch.cuda.device_count():
            found = counted(torch.cuda.device_count(), "CUDA GPU")
            raise SupraUserError(f"device={self.device} but this machine has {found}: "
                                 "use cuda:0 up to the last, or device=auto")
        if self.mode in ("text2image", "text2video") and self.prompt is None:
            raise SupraUserError(f"mode={self.mode} needs prompt=\"...\" (e.g. prompt=\"a red square\")")
        if self.mode in ("text2image", "text2video") and not str(self.prompt).strip():  # " " is no caption either
            raise SupraUserError(f"prompt={self.prompt!r} is empty: mode={self.mode} draws from a caption; give one "
                                 f"(e.g. prompt=\"a red square\"), or prompt=\"{UNCAPTIONED[self.mode]}\" to draw "
                                 f"without one ({UNCAPTIONED_TRAINED[self.mode]})")
        if self.mode in ("image2text", "video2video") and not self.image:
            raise SupraUserError(f"mode={self.mode} needs image=PATH ({'a GIF' if self.mode == 'video2video' else 'a picture'})")
        names = control_names_in(self.prompt or "")
        if names and not self.raw_prompt:  # raw or plain, the prompt's first characters say, never a name inside it
            raise SupraUserError(f"prompt={self.prompt!r} holds {names[0]} but does not start with a control token: "
                                 f"start it with <TEXT> for a raw prompt, or write \\{names[0]} for the text")
        gen.check_image_search(self.guidance, self.best_of)
        gen.SamplingConfig(self.temperature, self.top_k, self.top_p)

    @property
    def raw_prompt(self) -> bool:
        """Whether the prompt is used as written: it starts with a control-token name ("<TEXT>a red</TEXT>")."""
        return (self.prompt or "").startswith(CONTROL_TOKENS)


# -- inputs ---------------------------------------------------------------------------------------------


def fit_picture(picture: np.ndarray, request: Request, what: str) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> uint8 [3, S, S], S = image_size: squared and resized (crop/pad), or, with
    resize=refuse, taken as it is when already image_size square and refused otherwise."""
    h, w = picture.shape[:2]
    size = request.image_size
    if request.resize == "refuse":
        if h != w:
            raise SupraUserError(f"{what} is {w}x{h}, not square: resize=refuse takes {size}x{size} images "
                                 f"(image_size); give one, or set {SQUARING}")
        if h != size:
            other = f"image_size={w}, " if is_image_side(w) else ""
            raise SupraUserError(f"{what} is {w}x{h}, not {size}x{size} (image_size): resize=refuse takes images "
                                 f"of that size; set {other}{SQUARING}, or give a {size}x{size} image")
        return torch.from_numpy(picture).permute(2, 0, 1).contiguous()
    try:
        return fit(picture, size, request.resize, request.max_pixels)
    except MediaDecodeError as err:  # a padded square over max_pixels
        raise SupraUserError(f"{what} cannot be used: {err}") from None


def load_picture(request: Request) -> torch.Tensor:
    """image= (any still, or a GIF's first frame) -> uint8 [3, S, S]."""
    require_image_file(request.image)
    try:
        picture = load_still(Path(request.image), request.max_pixels)
    except MediaDecodeError as err:  # unreadable or 0 bytes in caption's and explain's words; too large in its own
        raise (unreadable_picture(Path(request.image), err) if err.kind in (UNREADABLE, EMPTY_FILE) else
               SupraUserError(f"image={request.image} cannot be used: {err}")) from None
    if note := first_frame_cut_note(request.image, f"image={request.image}", request.max_pixels):
        print(note, file=sys.stderr)  # as video2video says a GIF cut short: its frame is used, not the file whole
    return fit_picture(picture, request, f"image={request.image}")


def load_clip(request: Request) -> tuple[torch.Tensor, list[int | None]]:
    """image= a GIF -> its first `frames` frames, uint8 [frames, 3, S, S], and their times on screen (ms, None
    where the file sets none). A GIF cut short is said: refused when the cut leaves too few frames, noted on
    stderr when the frames before it are enough."""
    path = Path(request.image)
    require_image_file(path)
    try:
        start = read_gif_start(path, request.frames, request.max_pixels)
    except MediaDecodeError as err:
        raise SupraUserError(f"image={path} cannot be used as a clip: {err}") from None
    frames = start.frames
    cut = f"image={path} {cut_short(start)}" if start.cut else None
    if len(frames) < request.frames:
        have = counted(len(frames), "frame")
        if cut:
            are = "is" if len(frames) == 1 else "are"
            raise SupraUserError(f"{cut}: its {have} before the cut {are} fewer than frames={request.frames}; "
                                 "give the whole GIF or fewer frames")
        raise SupraUserError(f"image={path} has {have} but frames={request.frames} asks for {request.frames}: "
                             "give a longer GIF or fewer frames")
    if cut:
        print(f"note: {cut}: its first {request.frames} frames, before the cut, are used", file=sys.stderr)
    clip = torch.stack([fit_picture(f, request, f"image={path}") for f in frames])
    return clip, start.delays_ms


# -- prompts ---------------------------------------------------------------------------------------------


# text.txt and captions.txt hold exactly one line per sample: line breaks (and the backslash) written as escapes
ONE_LINE = files.ONE_LINE


def terminal_line(text: str) -> str:
    """A sample as one line on the terminal: line breaks escaped as in text.txt, and the other control
    characters too (ESC starts a sequence the terminal would act on)."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" else c
                   for c in text.translate(ONE_LINE))


def sample_lines(texts: list[str]) -> str:
    """text.txt / captions.txt: one line per sample, a line break inside one written \\n (a backslash \\\\)."""
    return "".join(text.translate(ONE_LINE) + "\n" for text in texts)


def text_prefix(vocab: A2AVocab, request: Request) -> list[int]:
    """The prompt as ids before a generated block: raw as written, plain as <TEXT>prompt</TEXT>."""
    if not request.prompt:
        return []
    if request.raw_prompt:
        return vocab.parse_prompt(request.prompt)
    layout = vocab.layout  # parse_prompt: a plain prompt's escaped names ("\\<FRAME>") are text
    return [layout.text_open, *vocab.parse_prompt(request.prompt), layout.text_close]


def prompt_error(prompt: str | None, err: ValueError) -> SupraUserError:
    """A raw prompt the sampler refuses, in one line naming it; text inside an image or video block
    ("<IMAGE>hello", "<IMAGE><c5>") with what a raw prompt may hold there."""
    if isinstance(err, gen.TextInCodeBlock):
        return SupraUserError(f"prompt={prompt!r}: {err}; a raw prompt cannot write codes (<c5> in it is text): "
                              f"leave its {err.block} block empty")
    return SupraUserError(f"prompt={prompt!r}: {err}")


def opened(layout: TokenLayout, ids: list[int], block: str, opener: int, prompt: str | None) -> list[int]:
    """The prompt's ids with the block's opener (gen.with_opener); a raw prompt that ends inside another
    block ("<TEXT>a red square" asked for an image), or holds text in an image or video block, named in
    one line."""
    try:
        return gen.with_opener(layout, ids, block, opener)
    except ValueError as err:
        raise prompt_error(prompt, err) from None


def outside_blocks(layout: TokenLayout, ids: list[int], prompt: str | None, before: str) -> None:
    """A raw prompt that ends inside a block ("<TEXT>a red", "<VIDEO>") where `before` starts a block of
    its own: named in one line, as `opened` names one for the other modes."""
    try:
        block = gen.prompt_state(layout, ids).block
    except gen.TextInCodeBlock as err:
        raise prompt_error(prompt, err) from None
    if block != "free":
        raise SupraUserError(f"prompt={prompt!r}: prompt ends inside an open {block} block; close it before {before}")


def check_prompt_fits(context: int, prompt_len: int, needed: int, what: str) -> None:
    check_fits(prompt_len + needed, context, f"the prompt ({prompt_len} tokens) with {what} ({needed} more)",
               "shorten the prompt by {over} tokens")


def check_frames_fit(context: int, prefix_len: int, frames: int, side: int) -> None:
    room = frames_that_fit(VQVAE_DOWNSAMPLE * side, context, prefix_len)
    if frames > room:
        grid_tokens = side * side
        need = TokenLayout.video_block_len(frames, grid_tokens)
        raise SupraUserError(
            f"frames={frames} of {side}x{side} codes take 2 + {frames} x {grid_tokens + 1} = {need} tokens, which with "
            f"the prompt's {prefix_len} exceeds the context of {context}: at most {room} frame{'s' * (room != 1)} fit")


# -- outputs ---------------------------------------------------------------------------------------------


def output_names(request: Request) -> list[str]:
    """The files this run writes into out=, in the order generation.json lists them (and generation.json)."""
    n = request.num_samples
    if request.mode in ("text", "image2text"):
        return ["text.txt"] if request.mode == "text" else ["captions.txt", "grid.png"]
    sample = "image_{}.png" if request.mode == "text2image" else "video_{}.gif"
    return [*(sample.format(i) for i in range(n)), "grid.png"]


def refuse_overwriting_input(request: Request) -> None:
    """image= that this run would replace with an output (out=DIR holding grid.png given as image=DIR/grid.png):
    one line before any work."""
    files.refuse_overwriting_input(request.image, "image", request.out, [*output_names(request), RECORD])


def refuse_replacing_others(request: Request) -> None:
    """A file in out= that this run would write over is replaced only when an earlier generate wrote it
    (its generation.json lists it): the user's own grid.png or text.txt is refused in one line before any
    work, as export refuses a folder holding other files."""
    record = earlier_record(Path(request.out))
    files.refuse_replacing_others(request.out, [*output_names(request), RECORD],
                                  {RECORD, *record["files"]} if record else set(),
                                  "generate wrote (its generation.json does not list them)")


# -- sampling: each mode's inputs loaded and checked, then a function that samples its outputs ------------


@dataclass(frozen=True)
class Animation:
    """A GIF to write: its frames and each one's time on screen in ms."""

    frames: list[Image.Image]
    durations_ms: list[int]


Output = str | Image.Image | Animation  # a text file's content, a PNG, a GIF
Result = tuple[dict[str, Output], dict[str, Any]]  # the outputs by file name, and what generation.json says of them


@dataclass(frozen=True)
class Pair:
    """The loaded model: the GPT, its VQ-VAE and vocabulary, on the device they run on."""

    net: A2ANano
    vqvae: VQVAE
    vocab: A2AVocab
    device: torch.device

    @property
    def layout(self) -> TokenLayout:
        return self.vocab.layout

    @property
    def context(self) -> int:
        return self.net.config.context


def load_pair(request: Request, ckpt: str, vqvae_ckpt: str | None) -> Pair:
    net, vqvae, vocab = load_a2a(ckpt)
    if vqvae_ckpt:
        vqvae = replace_vqvae(net, vocab, vqvae_ckpt).eval()
    device = torch.device("cuda" if request.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if request.device == "auto" else request.device))
    return Pair(net.to(device), vqvae.to(device), vocab, device)


def sampling(request: Request, device: torch.device) -> dict[str, Any]:
    """The sampler's options, with one generator seeded for the whole run: same seed, same output."""
    generator = torch.Generator(device=device).manual_seed(request.seed)
    return {"temperature": request.temperature, "top_k": request.top_k, "top_p": request.top_p, "generator": generator}


def batches(n: int, size: int) -> list[range]:
    """The sample indices 0..n-1 in batches of `size` (the last one smaller), in order."""
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def prepare_texts(request: Request, pair: Pair) -> Callable[[], Result]:
    """text, image2text: the prompt (after the image's block) built and checked."""
    layout, vocab = pair.layout, pair.vocab
    pixels = codes = None
    image_ids: list[int] = []
    if request.mode == "image2text":
        check_image_size_fits(pair.context, request.mode, request.image_size)
        pixels = load_picture(request)
        codes = encode_items(pair.vqvae, pixels[None], ENCODE_BATCH, pair.device)[0]
        image_ids = layout.image_block(codes)
    tail = vocab.parse_prompt(request.prompt or "") if request.raw_prompt else \
        [layout.text_open, *vocab.parse_prompt(request.prompt or "")]
    # with the <TEXT> a prompt ending outside any block gets ("<TEXT>a red</TEXT>": a new text follows), so
    # generation.json records what the model was given; a prompt left inside an image: one line
    prompt = opened(layout, image_ids + tail, "text", layout.text_open, request.prompt)
    prompt_len = len(prompt) - len(image_ids)
    image = f"the image block ({len(image_ids)} tokens) and " if image_ids else ""
    check_fits(len(image_ids) + prompt_len + 1, pair.context, f"{image}the prompt ({prompt_len} tokens) with text "
               "generation (1 more)", "shorten the prompt by {over} tokens")
    limit, note = text_room(request.max_new_tokens, len(image_ids) + prompt_len, pair.context)
    if note:
        print(note, file=sys.stderr)
    return partial(sample_texts, request, pair, prompt, pixels, codes, limit)


def sample_texts(request: Request, pair: Pair, prompt: list[int], pixels: torch.Tensor | None,
                 codes: torch.Tensor | None, limit: int) -> Result:
    """image2text's `pixels` (uint8 [3, S, S], the picture as the model's input) and their `codes`, or None;
    `limit`: the text tokens that fit (text_room), recorded in generation.json as max_new_tokens."""
    vocab, n = pair.vocab, request.num_samples
    options = sampling(request, pair.device)
    texts = [text for batch in batches(n, SAMPLE_BATCH)
             for text in gen.generate_texts(pair.net, pair.layout, [prompt] * len(batch), limit, **options)]
    # the text each sample continues: the prompt's open text block ("a red" of "<TEXT>a red"), not a text
    # it closed ("<TEXT>a red</TEXT>" is followed by a new one), so a line of text.txt is one text block whole
    start = vocab.decode_text(prompt[len(prompt) - prompt[::-1].index(pair.layout.text_open):])
    lines = [vocab.decode_generated(t) for t in texts]
    name = "text.txt" if codes is None else "captions.txt"
    outputs: dict[str, Output] = {name: sample_lines([start + line for line in lines])}
    if pixels is not None and codes is not None:
        outputs["grid.png"] = render_pictures_captions(torch.stack([pixels, decode_codes(pair.vqvae, codes[None])[0]]),
                                                       picture_labels(request), lines,
                                                       title=grid_title(request, Path(request.image).name))
    return outputs, {"prompt": vocab.render(prompt), "max_new_tokens": limit, "prompt_text": start, "texts": lines}


def picture_labels(request: Request) -> list[str]:
    """What image2text's grid shows over the picture given and over what the model read of it (the VQ-VAE's
    codes, decoded: how far the model's view is from the picture)."""
    size = f"{request.image_size}x{request.image_size}"
    fitted = f"resize={request.resize}" if request.resize != "refuse" else "as given"
    return [f"{Path(request.image).name}, {size} ({fitted}): the model's input",
            "its VQ-VAE reconstruction: what the model read"]


def prepare_images(request: Request, pair: Pair) -> Callable[[], Result]:
    """text2image: the prompt built and checked."""
    check_image_size_fits(pair.context, request.mode, request.image_size)
    prefix = text_prefix(pair.vocab, request)
    prompt = opened(pair.layout, prefix, "image", pair.layout.image_open, request.prompt)
    # what shortening the prompt can take: its caption's tokens (a raw prompt's: all it holds)
    written = len(prefix) if request.raw_prompt else max(len(prefix) - 2, 0)  # less <TEXT> </TEXT>
    check_text2image_prompt(pair.context, len(prompt), request.image_size, written)
    return partial(sample_images, request, pair, prompt)


def sample_images(request: Request, pair: Pair, prompt: list[int]) -> Result:
    n, side = request.num_samples, request.image_size // VQVAE_DOWNSAMPLE
    options = sampling(request, pair.device)
    drawn = []
    for batch in batches(n, max(1, SAMPLE_BATCH // request.best_of)):  # best_of sequences a sample
        try:
            codes = gen.generate_images(pair.net, pair.layout, [prompt] * len(batch), (side, side), **options,
                                        guidance=request.guidance, best_of=request.best_of)
        except ValueError as err:  # best_of with a prompt that has no caption to read back
            raise SupraUserError(f"prompt={request.prompt!r}: {err}") from None
        drawn.append((codes, decode_codes(pair.vqvae, codes)))  # decoded a batch at a time too
    codes, images = (torch.cat(parts) for parts in zip(*drawn, strict=True))
    outputs: dict[str, Output] = {f"image_{i}.png": to_pil(image) for i, image in enumerate(images)}
    # the samples share the run's one seed (one generator): a sample is named by its place alone
    outputs["grid.png"] = render_generated_grid(images, [f"sample {i}" for i in range(n)], columns=min(n, 4),
                                                title=grid_title(request, request.prompt))
    return outputs, {"prompt": pair.vocab.render(prompt), "codes": codes.tolist()}


def given_frames(request: Request) -> int:
    """video2video: how many of the GIF's frames the model is given (the rest it generates)."""
    if request.frames < 2:
        raise SupraUserError("video2video needs frames >= 2: the first frames are given, the rest generated")
    given = max(1, request.frames // 2) if request.given_frames is None else request.given_frames
    if not 1 <= given < request.frames:
        raise SupraUserError(f"given_frames={given} must be between 1 and frames - 1 = {request.frames - 1}")
    return given


def prepare_videos(request: Request, pair: Pair) -> Callable[[], Result]:
    """text2video, video2video: the prompt (with the GIF's given frames) built and checked."""
    layout, side = pair.layout, request.image_size // VQVAE_DOWNSAMPLE
    check_image_size_fits(pair.context, request.mode, request.image_size)
    prefix = text_prefix(pair.vocab, request)
    clip = given_codes = None
    timing = [FRAME_MS] * request.frames  # text2video's
    if request.mode == "video2video":
        outside_blocks(layout, prefix, request.prompt, "the GIF's frames")
        given = given_frames(request)
        clip, durations = load_clip(request)  # the grid's first row: the GIF's own frames, image_size square
        timing = continued_timing(durations[:given], request.frames)
        given_codes = encode_items(pair.vqvae, clip, ENCODE_BATCH, pair.device)[:given]
    check_prompt_fits(pair.context, len(prefix), 3 + side * side, "a video of one frame")
    check_frames_fit(pair.context, len(prefix), request.frames, side)
    if given_codes is None:
        prompt = opened(layout, prefix, "video", layout.video_open, request.prompt)
    else:
        prompt = prefix + layout.video_block(given_codes)[:-1]  # the video stays open
    return partial(sample_videos, request, pair, prompt, side, clip, given_codes, timing)


def sample_videos(request: Request, pair: Pair, prompt: list[int], side: int, clip: torch.Tensor | None,
                  given_codes: torch.Tensor | None, timing: list[int]) -> Result:
    """`timing`: each frame's time on screen in the GIFs (ms)."""
    options = sampling(request, pair.device)
    given = 0 if given_codes is None else len(given_codes)
    rows = [] if clip is None else [clip]
    outputs: dict[str, Output] = {}
    all_codes = []
    for i in range(request.num_samples):
        new = gen.generate_video(pair.net, pair.layout, prompt, request.frames - given, (side, side), **options)
        codes = new if given_codes is None else torch.cat([given_codes, new])
        frames = decode_codes(pair.vqvae, codes)
        outputs[f"video_{i}.gif"] = Animation([to_pil(f) for f in frames], timing)
        rows.append(frames)
        all_codes.append(codes.tolist())
    outputs["grid.png"] = render_image_rows(rows, title=video_title(request),
                                            labels=video_row_labels(request, given))
    # the prompt as the model was given it: with its <VIDEO>, and video2video's given frames
    return outputs, {"prompt": pair.vocab.render(prompt), "given_frames": given, "codes": all_codes}


def video_title(request: Request) -> str:
    """The video grid's title: text2video's prompt, video2video's GIF (its prompt holds the GIF's codes)."""
    return grid_title(request, Path(request.image).name if request.mode == "video2video" else request.prompt)


def grid_title(request: Request, given: str) -> str:
    """Every mode's grid title alike: the mode, the seed and what the user gave (the prompt as typed, with no
    tokens the model was given around it, or the picture's file)."""
    return f"{request.mode}, seed {request.seed}: {given}"


def video_row_labels(request: Request, given: int) -> list[str]:
    """A line over each row of the video grid: video2video's first row is the GIF's own frames."""
    if not given:
        return [f"sample {i}" for i in range(request.num_samples)]
    return [f"the GIF's frames ({first_frames(given)} given)",
            *(f"sample {i}: {given} given, {request.frames - given} generated" for i in range(request.num_samples))]


PREPARE = {"text": prepare_texts, "image2text": prepare_texts, "text2image": prepare_images,
           "video2video": prepare_videos, "text2video": prepare_videos}


# -- the command -------------------------------------------------------------------------------------------


RECORD = "generation.json"  # what the folder holds: the prompt, codes, texts and the files this run wrote
INCOMPLETE = "a generate run stopped while writing these files: they may mix two runs; run generate again"


def generate(request: Request, ckpt: str, vqvae_ckpt: str | None = None,
             new_folder: bool = False) -> tuple[Path, dict[str, Any]]:
    """Run one generate command; returns the folder written and the summary written to its generation.json.
    `new_folder`: never write into an existing out (the dated default): take out_1, out_2, ... instead."""
    if not new_folder:  # a new folder holds no input, nothing to write over
        refuse_model_folder(Path(request.out), "the generated files")  # as caption and explain refuse them
        refuse_overwriting_input(request)
        files.refuse_folders_in_the_way(request.out, [*output_names(request), RECORD])
        refuse_replacing_others(request)
    pair = load_pair(request, ckpt, vqvae_ckpt)
    sample = PREPARE[request.mode](request, pair)  # every input read and checked: nothing written yet
    with output_folder(request.out, new_folder) as out:
        outputs, about = sample()
        summary = {**recorded_settings(request, ckpt, vqvae_ckpt, pair.device), "files": list(outputs), **about}
        # an earlier output given as image= is the user's input now: kept, by the file it is (a link to it given
        # from elsewhere keeps what it points to, not a name of the link's)
        given = Path(request.image).resolve() if request.image else None
        kept = [given.name] if given and given.parent == out.resolve() else []
        publish(out, outputs, summary, kept)
    return out, summary


def recorded_settings(request: Request, ckpt: str, vqvae_ckpt: str | None, device: torch.device) -> dict[str, Any]:
    """What generation.json records of how its samples were drawn: the model (ckpt, and vqvae= when given), the
    mode, seed and num_samples, and every other option of the mode that changes a sample, so that the record
    alone makes the run again (the seed alone does not: guidance=2 best_of=4 draws other pictures). The
    device too: a GPU's generator draws other numbers than the CPU's from the same seed. given_frames and
    max_new_tokens are then recorded as used (the sample's record gives them)."""
    model = {"ckpt": str(ckpt), **({"vqvae": str(vqvae_ckpt)} if vqvae_ckpt else {})}
    options = [*SAMPLER_OPTIONS, *(o for o in MODE_READS[request.mode] if o not in NOT_SAMPLE_SETTINGS)]
    return {"mode": request.mode, **model, "seed": request.seed, "num_samples": request.num_samples,
            **{option: getattr(request, option) for option in options}, "device": str(device)}


@contextmanager
def output_folder(out: str, new: bool = False) -> Iterator[Path]:
    """out= (with `new`, a folder beside it if it exists: new_folder), created and proved writable once the
    inputs are read, before the sampling; removed again when this run created it and stops before writing
    into it (an error while sampling, Ctrl-C)."""
    path = Path(out)
    created = new or not path.exists()
    folder = new_folder(path) if new else require_writable_dir(path, f"out={out}")
    try:
        yield folder
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise


def new_folder(path: Path) -> Path:
    """`path`, or the first of path_1, path_2, ... not there yet, created. mkdir makes a folder or fails
    when one is there, so two runs started in the same second take two folders."""
    folder, n = path, 0
    while True:
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            n += 1
            folder = path.with_name(f"{path.name}_{n}")
            continue
        except OSError as err:
            raise SupraUserError(f"cannot write to out={folder} ({unwritable_reason(folder, err)}): choose a folder with "
                                 "out=DIR") from None
        return require_writable_dir(folder, f"out={folder}")


def publish(out: Path, outputs: dict[str, Output], summary: dict[str, Any], kept: list[str]) -> None:
    """Write the outputs into `out`, replacing an earlier generate's (image_3.png of 4 beside this run's 1
    is removed). generation.json is first rewritten to say a run is writing (listing every file that may
    then be there) and written whole last: a run killed part-way never leaves two runs' files under one
    run's record, and the next run still removes them all."""
    earlier = earlier_files(out)
    write_json_atomic(out / RECORD, {"incomplete": INCOMPLETE, "files": sorted({*earlier, *outputs} - set(kept))})
    for name, value in outputs.items():
        save_output(out / name, value)
    remove_earlier_outputs(out, earlier, [*outputs, *kept])
    write_json_atomic(out / RECORD, summary)


def save_output(path: Path, value: Output) -> None:
    if isinstance(value, str):
        write_text_atomic(path, value)
    elif isinstance(value, Animation):
        save_gif_atomic(value.frames, path, value.durations_ms)
    else:
        save_image_atomic(value, path)


def earlier_record(out: Path) -> dict[str, Any] | None:
    """out/generation.json when an earlier generate wrote it; None when there is none, or it is not one."""
    return files.outputs_record(out / RECORD)


def earlier_files(out: Path) -> list[str]:
    """The files an earlier generate into `out` listed in its generation.json (none: none)."""
    record = earlier_record(out)
    return record["files"] if record else []


def run(cfg: DictConfig) -> dict[str, Any]:
    """The command for a composed conf/generate.yaml: returns what it wrote to out/generation.json."""
    values = OmegaConf.to_container(cfg, resolve=True)
    # the model first: a captioner's checkpoint given without a prompt was asked for one, then refused
    refuse_other_kind(cfg.ckpt, artifact_kind(cfg.ckpt, accepts=(A2A_CHECKPOINT,)), A2A_MODEL)
    if values["mode"] in MODE_READS:  # an unknown mode is named by Request
        reads = MODE_READS[values["mode"]]
        unread = [o for o in dict.fromkeys(o for os in MODE_READS.values() for o in os) if o not in reads]
        refuse_unread_options(values, "generate", unread, f"mode={values['mode']}", reads)
    reads_size = "image_size" in MODE_READS.get(values["mode"], ())
    values["image_size"] = model_image_size(str(cfg.ckpt), values["image_size"]) if reads_size else UNRECORDED_IMAGE_SIZE
    request = Request(**{f.name: values[f.name] for f in fields(Request) if f.name in values})
    if request.temperature == 0:  # greedy decoding draws nothing at random: these would change nothing
        refuse_unread_options(values, "generate", ["top_k", "top_p", "seed"], "temperature=0 (greedy decoding)")
    out, summary = generate(request, str(cfg.ckpt), cfg.get("vqvae"), new_folder=dated_out(cfg))
    print(f"wrote {out}: " + ", ".join([*summary["files"], "generation.json"]))
    for text in summary.get("texts", []):  # as text.txt / captions.txt has them: the prompt's text first
        print(f"  {terminal_line(summary['prompt_text'] + text)}")
    return summary


def dated_out(cfg: DictConfig) -> bool:
    """Whether out is a dated folder (conf/generate.yaml's default, `runs/${now:...}`, when no out= is given):
    two runs started in the same second share it, so an existing one is another run's, not an earlier
    generate to replace. As supra/utils/run_folders.py tells a dated hydra.run.dir."""
    return "${now:" in str(OmegaConf.to_container(cfg, resolve=False).get("out"))


_main = hydra_command("generate", run)


def main() -> None:
    sys.argv[1:] = quote_prompt(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
