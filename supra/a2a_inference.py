"""What `python -m supra.generate` does: inputs -> prompt ids -> constrained sampling -> .txt/.png/.gif + grid.

Modes mirror the release script's: text, text2image, image2text, video2video (GIF in, GIF out) and
text2video. A prompt with a control token name ("<TEXT>a red square</TEXT><IMAGE>") is used as written;
a plain one is wrapped for the mode:

    text         <TEXT>prompt                      -> text up to </TEXT>
    text2image   <TEXT>prompt</TEXT><IMAGE>        -> one grid of codes
    text2video   <TEXT>prompt</TEXT><VIDEO>        -> `frames` frames
    image2text   [image block]<TEXT>prompt         -> text (a prompt starts the caption)
    video2video  <TEXT>prompt</TEXT><VIDEO>[the GIF's first given_frames frames]   -> the remaining frames

Every bad input is a one-line SupraUserError, found before anything is generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.utils import make_grid

from supra.a2a_release import load_a2a, replace_vqvae
from supra.callbacks.caption_grid import render_caption_grid
from supra.callbacks.image_logging import save_gif_atomic, save_image_atomic
from supra.data.a2a_vocab import A2AVocab
from supra.data.gif_frames import MediaDecodeError, read_gif_frames
from supra.data.media_datamodule import to_uint8, to_unit_range
from supra.data.media_folder import fit, load_still
from supra.models import a2a_generation as gen
from supra.models.a2a_layout import CONTROL_TOKENS, TokenLayout
from supra.utils.errors import SupraUserError
from supra.utils.files import write_json_atomic, write_text_atomic

MODES = ("text", "text2image", "image2text", "video2video", "text2video")
RESIZES = ("crop", "pad", "refuse")
GRID_TILE = 128  # px per frame/image in grids: 64x64 samples upscaled so they can be seen


@dataclass(frozen=True)
class Request:
    """The generate config's keys (conf/generate.yaml), checked where they are read."""

    mode: str
    out: str
    prompt: str | None = None
    image: str | None = None
    frames: int = 4
    given_frames: int | None = None
    image_size: int = 64
    resize: str = "crop"
    num_samples: int = 4
    seed: int = 0
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    guidance: float = 1.0
    best_of: int = 1
    max_new_tokens: int = 64
    max_pixels: int = 50_000_000
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SupraUserError(f"mode={self.mode!r} is unknown: choose one of {', '.join(MODES)}")
        if self.resize not in RESIZES:
            raise SupraUserError(f"resize={self.resize!r} is unknown: choose crop, pad or refuse")
        if self.image_size < 8 or self.image_size % 8:
            raise SupraUserError(f"image_size={self.image_size} must be a positive multiple of 8 (the VQ-VAE's patch)")
        if self.frames < 1 or self.num_samples < 1 or self.max_new_tokens < 1:
            raise SupraUserError(f"frames={self.frames}, num_samples={self.num_samples} and "
                                 f"max_new_tokens={self.max_new_tokens} must be >= 1")
        if self.mode in ("text2image", "text2video") and not self.prompt:
            raise SupraUserError(f"mode={self.mode} needs prompt=\"...\" (e.g. prompt=\"a red square\")")
        if self.mode in ("image2text", "video2video") and not self.image:
            raise SupraUserError(f"mode={self.mode} needs image=PATH ({'a GIF' if self.mode == 'video2video' else 'a picture'})")
        if self.guidance < 0:
            raise SupraUserError(f"guidance={self.guidance} must be >= 0 (1 = off)")
        if self.best_of < 1:
            raise SupraUserError(f"best_of={self.best_of} must be >= 1 (1 = off)")
        try:
            gen.SamplingConfig(self.temperature, self.top_k, self.top_p)
        except ValueError as err:
            raise SupraUserError(str(err)) from None

    @property
    def raw_prompt(self) -> bool:
        return any(token in (self.prompt or "") for token in CONTROL_TOKENS)


# -- inputs ---------------------------------------------------------------------------------------------


def fit_picture(picture, request: Request, what: str) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> uint8 [3, S, S]: squared and resized to image_size (crop/pad), or, with
    resize=refuse, kept as it is when square with a side that is a multiple of 8 and refused otherwise."""
    h, w = picture.shape[:2]
    if request.resize == "refuse":
        if h != w or h % 8:
            problem = "not square" if h != w else "not a multiple of 8"
            raise SupraUserError(f"{what} is {w}x{h}, {problem}: images must be square with a side that is a "
                                 "multiple of 8; give such an image or set resize=crop (or pad)")
        return torch.from_numpy(picture).permute(2, 0, 1).contiguous()
    return fit(picture, request.image_size, request.resize)


def load_picture(request: Request) -> torch.Tensor:
    """image= (any still, or a GIF's first frame) -> uint8 [3, S, S]."""
    if not Path(request.image).is_file():
        raise SupraUserError(f"image={request.image} does not exist")
    try:
        picture = load_still(Path(request.image), request.max_pixels)
    except MediaDecodeError as err:
        raise SupraUserError(f"image={request.image} cannot be used: {err}") from None
    return fit_picture(picture, request, f"image={request.image}")


def load_clip(request: Request) -> torch.Tensor:
    """image= a GIF -> its first `frames` frames, uint8 [frames, 3, S, S]."""
    path = Path(request.image)
    if not path.is_file():
        raise SupraUserError(f"image={path} does not exist")
    try:
        frames = read_gif_frames(path, request.max_pixels, max_frames=request.frames)
    except MediaDecodeError as err:
        raise SupraUserError(f"image={path} cannot be used as a clip: {err}") from None
    if len(frames) < request.frames:
        raise SupraUserError(f"image={path} has {len(frames)} frame{'s' * (len(frames) != 1)} but frames="
                             f"{request.frames} asks for {request.frames}: give a longer GIF or fewer frames")
    return torch.stack([fit_picture(f, request, f"image={path}") for f in frames])


@torch.no_grad()
def encode_pixels(vqvae: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, S, S] -> codes int64 [N, S/8, S/8]."""
    device = next(vqvae.parameters()).device
    return vqvae.encode(to_unit_range(pixels.to(device))).cpu()


@torch.no_grad()
def decode_codes(vqvae: torch.nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """codes int64 [N, h, w] -> uint8 [N, 3, 8h, 8w]."""
    device = next(vqvae.parameters()).device
    return to_uint8(vqvae.decode(codes.to(device))).cpu()


# -- prompts ---------------------------------------------------------------------------------------------


def text_prefix(vocab: A2AVocab, request: Request) -> list[int]:
    """The prompt as ids before a generated block: raw as written, plain as <TEXT>prompt</TEXT>."""
    if not request.prompt:
        return []
    if request.raw_prompt:
        return vocab.parse_prompt(request.prompt)
    return vocab.encode([("text", request.prompt)])


def check_fits(context: int, prompt_len: int, needed: int, what: str) -> None:
    if prompt_len + needed > context:
        over = prompt_len + needed - context
        raise SupraUserError(f"the prompt is {prompt_len} tokens and {what} needs {needed} more: {over} over the "
                             f"context of {context}; shorten the prompt by {over} tokens")


def check_frames_fit(context: int, prefix_len: int, frames: int, grid_tokens: int, side: int) -> None:
    room = TokenLayout.frames_that_fit(grid_tokens, context, prefix_len)
    if frames > room:
        need = TokenLayout.video_block_len(frames, grid_tokens)
        raise SupraUserError(
            f"frames={frames} of {side}x{side} codes take 2 + {frames} x {grid_tokens + 1} = {need} tokens, which with "
            f"the prompt's {prefix_len} exceeds the context of {context}: at most {room} frame{'s' * (room != 1)} fit")


# -- outputs -----------------------------------------------------------------------------------------------


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def frame_strip_grid(rows: list[torch.Tensor]) -> Image.Image:
    """rows of uint8 [T, 3, S, S] (e.g. the truth, then samples) -> one picture, a row per clip, upscaled."""
    width = max(len(r) for r in rows)
    tiles = []
    for row in rows:
        row = torch.nn.functional.interpolate(row.float(), size=(GRID_TILE, GRID_TILE), mode="nearest")
        pad = width - len(row)
        tiles.append(torch.cat([row, torch.full((pad, *row.shape[1:]), 255.0)]) if pad else row)
    return _pil(make_grid(torch.cat(tiles), nrow=width, padding=4, pad_value=255).to(torch.uint8))


def _write_gif(frames: torch.Tensor, path: Path) -> Path:
    return save_gif_atomic([_pil(f) for f in frames], path)


# -- the command -------------------------------------------------------------------------------------------


def generate(request: Request, ckpt: str, vqvae_ckpt: str | None = None) -> dict[str, Any]:
    """Run one generate command; returns the summary written to out/generation.json."""
    net, vqvae, vocab = load_a2a(ckpt)
    if vqvae_ckpt:
        vqvae = replace_vqvae(net, vocab, vqvae_ckpt).eval()
    device = torch.device("cuda" if request.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if request.device == "auto" else request.device))
    net, vqvae = net.to(device), vqvae.to(device)
    layout, context = vocab.layout, net.config.context
    out = Path(request.out)
    generator = torch.Generator(device=device).manual_seed(request.seed)
    sampling = {"temperature": request.temperature, "top_k": request.top_k, "top_p": request.top_p,
                "generator": generator}
    n, side = request.num_samples, request.image_size // 8
    summary: dict[str, Any] = {"mode": request.mode, "seed": request.seed, "num_samples": n, "files": []}
    files: list[Path] = []

    if request.mode in ("text", "image2text"):
        if request.mode == "text":
            image_ids: list[int] = []
            prompt = vocab.parse_prompt(request.prompt or "") if request.raw_prompt else \
                [layout.text_open, *vocab.encode_text(request.prompt or "")]
        else:
            pixels = load_picture(request)
            codes = encode_pixels(vqvae, pixels[None])[0]
            image_ids = layout.image_block(codes)
            tail = vocab.parse_prompt(request.prompt) if request.raw_prompt else \
                [layout.text_open, *vocab.encode_text(request.prompt or "")]
            prompt = image_ids + tail
        check_fits(context, len(prompt) + (gen.prompt_state(layout, prompt).block != "text"), 1, "text generation")
        texts = gen.generate_texts(net, layout, [prompt] * n, request.max_new_tokens, **sampling)
        start = vocab.decode_text(prompt[len(image_ids):])  # the prompt's text, without control tokens
        lines = [vocab.decode_text(t) for t in texts]
        summary |= {"prompt": vocab.render(prompt), "texts": lines}
        name = "text.txt" if request.mode == "text" else "captions.txt"
        files.append(write_text_atomic(out / name, "".join(f"{start}{line}\n" for line in lines)))
        if request.mode == "image2text":
            recon = decode_codes(vqvae, codes[None])
            grid = render_caption_grid(recon.expand(n, -1, -1, -1), lines, columns=min(n, 4),
                                       title=f"image2text, seed {request.seed}: {Path(request.image).name}")
            files.append(save_image_atomic(grid, out / "grid.png"))

    elif request.mode == "text2image":
        prompt = gen.with_opener(layout, text_prefix(vocab, request), "image", layout.image_open)
        check_fits(context, len(prompt), side * side + 1, f"a {side}x{side} image")
        try:
            codes = gen.generate_images(net, layout, [prompt] * n, (side, side), **sampling, guidance=request.guidance,
                                        best_of=request.best_of)
        except ValueError as err:  # best_of with a prompt that has no caption to read back
            raise SupraUserError(f"prompt={request.prompt!r}: {err}") from None
        images = decode_codes(vqvae, codes)
        for i, image in enumerate(images):
            files.append(save_image_atomic(_pil(image), out / f"image_{i}.png"))
        grid = render_caption_grid(images, [f"sample {i}" for i in range(n)], columns=min(n, 4),
                                   title=f"{vocab.render(prompt)}  (seed {request.seed})")
        files.append(save_image_atomic(grid, out / "grid.png"))
        summary |= {"prompt": vocab.render(prompt), "codes": codes.tolist()}

    else:  # video2video, text2video
        prefix = text_prefix(vocab, request)
        truth = None
        if request.mode == "video2video":
            if request.frames < 2:
                raise SupraUserError("video2video needs frames >= 2: the first frames are given, the rest generated")
            given = request.given_frames or max(1, request.frames // 2)
            if not 1 <= given < request.frames:
                raise SupraUserError(f"given_frames={given} must be between 1 and frames - 1 = {request.frames - 1}")
            clip = load_clip(request)
            side = clip.shape[-1] // 8
            clip_codes = encode_pixels(vqvae, clip)
            truth = clip  # the grid's first row: the GIF's own frames
        check_fits(context, len(prefix), 3 + side * side, "a video of one frame")
        check_frames_fit(context, len(prefix), request.frames, side * side, side)
        if request.mode == "video2video":
            prompt = prefix + layout.video_block(clip_codes[:given])[:-1]  # the video stays open
            new_frames = request.frames - given
        else:
            prompt = gen.with_opener(layout, prefix, "video", layout.video_open)
            given, new_frames = 0, request.frames
        rows = [] if truth is None else [truth]
        all_codes = []
        for i in range(n):
            new = gen.generate_video(net, layout, prompt, new_frames, (side, side), **sampling)
            codes = new if truth is None else torch.cat([clip_codes[:given], new])
            frames = decode_codes(vqvae, codes)
            files.append(_write_gif(frames, out / f"video_{i}.gif"))
            rows.append(frames)
            all_codes.append(codes.tolist())
        files.append(save_image_atomic(frame_strip_grid(rows), out / "grid.png"))
        summary |= {"prompt": vocab.render(prompt[: len(prefix)]), "given_frames": given, "codes": all_codes}

    summary["files"] = [p.name for p in files]
    write_json_atomic(out / "generation.json", summary)
    return summary
