"""`python -m supra.demo ckpt=...`: a local demo page (Gradio) for any checkpoint or release folder, served
on 127.0.0.1 by default (conf/demo.yaml; `pip install "gradio>=4"` brings Gradio).

A captioner: upload a picture -> its caption, with decoding controls (beam width, greedy, sampling
temperature, top-k and seed) and where each word looked; the controls start at the model's run's decoding
(model.decode, its seed too where it sampled), so the page captions as `python -m supra.caption` does. An a2a_nano model: prompt -> image
(guidance, best of N, seed) with each word's map; picture -> caption with its maps; GIF -> its continuation.
A blank seed draws anew at each click (a text box: Gradio's number box sends a blank as 0); the seed drawn
with is shown, to draw the same again. Ctrl-C or SIGTERM ends it, its temporary GIF folder removed. A bad upload
(not an image, a truncated file, a decompression bomb, a 1-frame GIF for video) is a message on the page,
naming the file as uploaded and what to do; the server goes on.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from PIL import Image

from supra.artifacts.a2a_release import load_a2a
from supra.artifacts.captioner_release import checkpoint_decoding, load_captioner
from supra.artifacts.checkpoints import artifact_kind
from supra.artifacts.kinds import (
    A2A_CHECKPOINT,
    A2A_RELEASE,
    CAPTIONER_CHECKPOINT,
    CAPTIONER_RELEASE,
    KIND_NAMES,
)
from supra.data.gif_frames import (
    EMPTY,
    TOO_LARGE,
    MediaDecodeError,
    continued_timing,
    cut_short,
    first_frame_cut_note,
    read_gif_start,
)
from supra.data.images import (
    GENERATE_MAX_PIXELS,
    NOT_A_PICTURE,
    PixelRangeError,
    fit,
    load_still,
    normalize_images,
    squashed,
    why_unreadable,
)
from supra.data.media.codes import decode_codes, encode_items
from supra.models import a2a_generation as gen
from supra.models.attention_maps import explain_caption, explain_image2text, explain_text2image, why_no_places
from supra.models.vlm_generation import generate
from supra.pictures.attention import (
    DECODED_INPUT,
    GENERATED_PICTURE,
    INPUT_PICTURE,
    probability_text,
    render_token_strip,
    square_grid,
)
from supra.pictures.files import save_gif_atomic
from supra.pictures.grids import to_pil
from supra.tokens.a2a_layout import VQVAE_DOWNSAMPLE
from supra.tokens.a2a_sequences import (
    LEAST_TOKENS,
    check_text2image_prompt,
    frames_that_fit,
    text_room,
)
from supra.utils.cli import hydra_command
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted, is_whole
from supra.utils.seeds import MAX_SEED

CPU = torch.device("cpu")
PICTURE_KINDS = "a PNG, JPEG, GIF, WebP or BMP picture"
SEEDS = 1_000_000  # a blank seed draws one below this: short enough to type back in
CAPTION_TOKENS = 32  # the most a caption on the a2a page runs to, where the model's context leaves room for it


def _upload(path: str | None, what: str = "picture") -> Path:
    if not path:
        raise SupraUserError(f"upload a {what} first")
    return Path(path)


# tiles a row of an attention strip: 3 (504 px) show it at its drawn size in a page's column; 8 scaled its labels
# to ~5 px
STRIP_COLUMNS = 3
TOO_LARGE_SAID = f"it is too large to open safely (over {GENERATE_MAX_PIXELS:,} pixels); upload a smaller copy"


def _not_a_picture(source: Path, err: MediaDecodeError) -> str:
    """Why an upload is no picture, in words, naming it by its own name: Gradio keeps uploads under a
    temporary path that means nothing to the person at the page, and the loader's reason names that path."""
    if err.kind == TOO_LARGE:
        why = TOO_LARGE_SAID
    elif err.kind == EMPTY:
        why = f"it holds no pixels; upload {PICTURE_KINDS}"
    elif isinstance(err.__context__, PixelRangeError):  # readable, but of no known range: the loader says what to do
        why = str(err.__context__)
    elif (why := why_unreadable(source, err)) == NOT_A_PICTURE:  # said as caption and explain say it
        why = f"{why}; upload {PICTURE_KINDS}"
    else:
        why = f"{why}; upload it again or upload another picture ({PICTURE_KINDS})"
    return f"{source.name} cannot be used as a picture: {why}"


def _still(path: str | None, size: int, resize: str) -> tuple[torch.Tensor, str]:
    """An uploaded picture (or a GIF's first frame) -> (uint8 [3, size, size], squashed as the captioner's data
    (resize="squash") or squared by crop / pad; a note for a GIF cut short after its first frame, as caption,
    explain and generate note it, else ""); one line when it is no picture."""
    source = _upload(path)
    try:
        picture = load_still(source, GENERATE_MAX_PIXELS)
        picture = squashed(picture, size) if resize == "squash" else fit(picture, size, resize, GENERATE_MAX_PIXELS)
    except MediaDecodeError as err:  # a padded square over GENERATE_MAX_PIXELS too
        raise SupraUserError(_not_a_picture(source, err)) from None
    return picture, first_frame_cut_note(source, source.name, GENERATE_MAX_PIXELS, mark="ℹ️") or ""


def _seed(value: float | str | None) -> int:
    """The page's seed field: blank -> a fresh seed (each click draws anew), else a whole number from 0 to
    MAX_SEED, the seeds explain and generate take: a seed shown here is one they draw the same with. Read
    exactly: the seed box's text as typed, ASCII digits read as a whole number (no float rounds them; "2.5" is
    refused); a float given by a caller is read as the number it is (3.0 is 3)."""
    if value is None or str(value).strip() == "":
        return secrets.randbelow(SEEDS)
    seed: int | None = None
    if isinstance(value, float):
        seed = int(value) if value.is_integer() else None
    else:  # ASCII digits alone: int() also reads "1_000" and other scripts' digits, which no command takes
        text = str(value).strip()
        seed = int(text) if text.isascii() and text.isdigit() else None
    if seed is None or not 0 <= seed <= MAX_SEED:
        raise SupraUserError(f"seed {value} must be a whole number from 0 to {MAX_SEED}, or blank for a new draw at "
                             "each click")
    return seed


def _drawn_with(seed: int) -> str:
    return f"🎲 seed {seed}: give it as the seed to draw this again"


class CaptionerDemo:
    """The captioner's page, as plain functions of uploads and controls (the Gradio page calls these)."""

    def __init__(self, ckpt: str) -> None:
        self.net, self.tokenizer, run_config = load_captioner(ckpt)
        # the model's run's decoding: the page's controls start at it, and what they do not set comes from it
        self.decode = checkpoint_decoding(ckpt, run_config)
        # a resampler's latents, or one visual token, are no places on the image: its captions come without maps
        self.no_maps = why_no_places(self.net.config)
        self.grid = None if self.no_maps else square_grid(self.net.config.N_VIS)

    def caption(self, path: str | None, decode: str | None = None, beam_width: int | None = None,
                temperature: float | None = None, top_k: int | None = None,
                seed: float | str | None = None) -> tuple[str, Image.Image | None, str]:
        """-> (caption, the attention strip, a message: empty when all went well, the seed when sampled).
        A setting left None is the model's run's; top_k 0: all tokens; seed None: a fresh draw."""
        try:
            image, gif_note = _still(path, self.net.config.IMG_SIZE, "squash")
            given = {"strategy": decode, "beam_width": None if beam_width is None else int(beam_width),
                     "temperature": None if temperature is None else float(temperature)}
            settings = dataclasses.replace(self.decode, **{k: v for k, v in given.items() if v is not None})
            if top_k is not None:  # the slider's 0: every token (top_k=None), not the run's value
                settings = dataclasses.replace(settings, top_k=int(top_k) or None)
            drawn = settings.strategy == "sample"
            if drawn:
                settings = dataclasses.replace(settings, seed=_seed(seed))
            settings.check_vocabulary(self.net.config.VOCAB_SIZE)  # a beam wider than a small model's vocabulary
        except (SupraUserError, ValueError) as err:
            return "", None, f"⚠️ {err}"
        note = "\n\n".join(filter(None, [gif_note, _drawn_with(settings.seed) if drawn else ""]))
        tokenizer = self.tokenizer
        pixels = normalize_images(image[None], self.net.image_input.mean, self.net.image_input.std)
        if self.grid is None:
            (ids,) = generate(self.net, pixels, tokenizer.bos_id, tokenizer.eos_id, settings)
            return tokenizer.decode(ids), None, "\n\n".join(filter(None, [
                f"ℹ️ no attention maps: {self.no_maps}", note]))
        ids, tokens = explain_caption(self.net, pixels[0], tokenizer.bos_id, tokenizer.eos_id,
                                      tokenizer.token_label, settings)
        caption = tokenizer.decode(ids)
        strip = render_token_strip(image, [t.token for t in tokens], [t.mean_map for t in tokens],
                                   [f"p={probability_text(t.probability)}" for t in tokens], self.grid, STRIP_COLUMNS,
                                   title=caption, picture_label=INPUT_PICTURE)
        return caption, strip, note


class A2ADemo:
    """a2a_nano's page: prompt -> image, picture -> caption, GIF -> continuation."""

    def __init__(self, ckpt: str, image_size: int = 64) -> None:
        self.net, self.vqvae, self.vocab = load_a2a(ckpt)
        self.size, self.side = image_size, image_size // VQVAE_DOWNSAMPLE
        self.max_frames = frames_that_fit(image_size, self.net.config.context)  # given and added, together
        # one folder for the page's GIFs, removed with the demo: a folder per call filled /tmp on a long run
        self.gif_folder = tempfile.TemporaryDirectory(prefix="supra_demo_")

    def check_fits(self, mode: str) -> None:
        """The page's picture (image_size px) with the least the mode adds, over the model's context: one line,
        as check_image_size_fits says it, with what to do here (the page has no image_size to give)."""
        what, tokens = LEAST_TOKENS[mode]
        needed, context = tokens(self.side), self.net.config.context
        if needed > context:
            raise SupraUserError(f"this model's context of {context} tokens cannot hold "
                                 f"{what.format(p=self.size, s=self.side, block=self.side * self.side + 3)} "
                                 f"({needed} tokens): the page works at {self.size} px; give a model of a longer "
                                 "context, or use python -m supra.explain with a smaller image_size=")

    def most_frames_to_add(self, given: int) -> int:
        """How many frames the model's context leaves room for after `given` ones (the page's slider)."""
        return max(1, self.max_frames - int(given))

    def text2image(self, prompt: str, guidance: float = 1.0, best_of: int = 1, temperature: float = 1.0,
                   seed: float | str | None = None) -> tuple[Image.Image | None, Image.Image | None, str]:
        """-> (image, each word's map, a message: the seed drawn with, or what went wrong). seed None: a
        fresh draw."""
        if not prompt or not prompt.strip():
            return None, None, "⚠️ write a prompt first, e.g. a red square above a blue circle"
        try:
            drawn_with = _seed(seed)
            caption_ids = self.vocab.encode_text(prompt.strip())
            # before drawing, as explain and generate check it: the generator's own refusal says no remedy; the
            # picture first (no shorter prompt fits a context too small for it)
            self.check_fits("text2image after a caption")
            prompt_len = len(caption_ids) + 3  # <TEXT> caption </TEXT><IMAGE>
            check_text2image_prompt(self.net.config.context, prompt_len, self.size)
            explained = explain_text2image(
                self.net, self.vocab.layout, caption_ids, (self.side, self.side),
                self.vocab.token_label, temperature=float(temperature), guidance=float(guidance),
                best_of=int(best_of), generator=torch.Generator().manual_seed(drawn_with))
        except ValueError as err:  # a prompt longer than the context, a bad setting (SupraUserError too)
            return None, None, f"⚠️ {err}"
        image = decode_codes(self.vqvae, explained.codes)
        strip = render_token_strip(image, explained.words, list(explained.mean_map), [""] * len(explained.words),
                                   (self.side, self.side), STRIP_COLUMNS,
                                   title=f"each word: which codes attended to it ({prompt!r})",
                                   picture_label=GENERATED_PICTURE)
        note = _drawn_with(drawn_with) if float(temperature) > 0 else ""  # temperature 0 draws nothing at random
        return to_pil(image).resize((256, 256), Image.NEAREST), strip, note

    def image2text(self, path: str | None) -> tuple[str, Image.Image | None, str]:
        """-> (caption, each word's map, a message: what went wrong, or that the context cut the caption)."""
        context = self.net.config.context
        prompt_len = self.side * self.side + 3  # <IMAGE> codes </IMAGE><TEXT>
        try:
            self.check_fits("image2text")  # as explain and generate check it: a context too small is said, no crash
            picture, gif_note = _still(path, self.size, "crop")
        except SupraUserError as err:
            return "", None, f"⚠️ {err}"
        codes = encode_items(self.vqvae, picture[None], 1, CPU)[0]
        limit, _ = text_room(CAPTION_TOKENS, prompt_len, context)  # the room the context leaves, as explain's
        ids, tokens = explain_image2text(self.net, self.vocab.layout, codes, [], limit, self.vocab.token_label)
        caption = self.vocab.decode_generated(ids).strip()
        strip = render_token_strip(decode_codes(self.vqvae, codes), [t.token for t in tokens], [t.mean_map for t in tokens],
                                   [f"p={probability_text(t.probability)}" for t in tokens], (self.side, self.side),
                                   STRIP_COLUMNS, title=caption, picture_label=DECODED_INPUT)
        # no </TEXT> within the room left: the context, not the model, ended it
        cut = limit < CAPTION_TOKENS and len(ids) == limit
        note = (f"ℹ️ the caption is cut at {limit} tokens: the model's context of {context} leaves no more after the "
                f"picture's {prompt_len}") if cut else ""
        return caption, strip, "\n\n".join(filter(None, [gif_note, note]))

    def video2video(self, path: str | None, given: int = 2, new: int = 2) -> tuple[str | None, str]:
        """A GIF -> (a GIF of its first `given` frames and the `new` ones the model continues them with, message)."""
        try:
            source = _upload(path, "GIF")
        except SupraUserError as err:
            return None, f"⚠️ {err}"
        try:
            start = read_gif_start(source, int(given), GENERATE_MAX_PIXELS)
        except MediaDecodeError as err:  # its reasons name no path (the GIF reader reads the bytes)
            # too large: said as the picture tab says it (the reader's max_pixels is no option of this page)
            why = TOO_LARGE_SAID if err.kind == TOO_LARGE else f"{err}; upload an animated GIF"
            return None, f"⚠️ {source.name} cannot be used as a clip: {why}"
        frames, have = start.frames, counted(len(start.frames), "frame")
        if len(frames) < int(given):
            if start.cut:  # as generate says it: the file is damaged, not only short
                are = "is" if len(frames) == 1 else "are"
                return None, (f"⚠️ {source.name} {cut_short(start)}: its {have} before the cut {are} fewer than the "
                              f"{int(given)} the model needs to continue it; upload the whole GIF")
            return None, (f"⚠️ {source.name} has {have}: the model needs {int(given)} to continue it; upload a "
                          "longer GIF")
        used = f"its first {counted(int(given), 'frame')}, before the cut, {'is' if int(given) == 1 else 'are'}"
        note = f"ℹ️ {source.name} {cut_short(start)}: {used} continued" if start.cut else ""
        clip = torch.stack([fit(f, self.size, "crop") for f in frames])
        codes = encode_items(self.vqvae, clip, 64, CPU)
        prompt = self.vocab.layout.video_block(codes)[:-1]  # the video stays open
        try:
            continued = gen.generate_video(self.net, self.vocab.layout, prompt, int(new), (self.side, self.side),
                                           temperature=0.0)
        except ValueError as err:
            return None, f"⚠️ {err}"
        pictures = decode_codes(self.vqvae, torch.cat([codes, continued]))
        # replaced by each call (atomically): Gradio copies it into its cache before it answers, one call at a time
        out = Path(self.gif_folder.name) / "continued.gif"
        # at the GIF's own pace, as generate's video2video plays: the given frames' times, their lower median after them
        timing = continued_timing(start.delays_ms, len(pictures))
        save_gif_atomic([to_pil(p).resize((256, 256), Image.NEAREST) for p in pictures], out, timing)
        return str(out), note


def seed_box(value: str, label: str) -> Any:
    """The seed field: text, read by _seed. Gradio's number box shows and sends a blank as 0 (every click would
    draw with seed 0), rounds 2.5 to 2 and answers -3 with its own message: typed text reaches _seed as it is."""
    import gradio as gr

    return gr.Textbox(value, label=label, max_lines=1, placeholder="blank: a new draw", elem_id="seed")


SHOWN = (CAPTIONER_CHECKPOINT, CAPTIONER_RELEASE, A2A_CHECKPOINT, A2A_RELEASE)  # the models the page has a view of


def build_page(ckpt: str) -> Any:
    """The Gradio page for `ckpt` (a captioner's or an a2a_nano's)."""
    import gradio as gr

    kind = artifact_kind(ckpt, accepts=SHOWN)
    if kind not in SHOWN:
        raise SupraUserError(f"ckpt={ckpt} is {KIND_NAMES[kind]}: the demo shows captioner and a2a_nano models")
    with gr.Blocks(title="Supra demo") as page:
        gr.Markdown(f"## Supra demo: `{ckpt}`")
        if kind in (CAPTIONER_CHECKPOINT, CAPTIONER_RELEASE):
            demo = CaptionerDemo(ckpt)
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="a picture", elem_id="upload")
                    run_decode = demo.decode  # the model's run's: the page starts as python -m supra.caption
                    decode = gr.Radio(["beam", "greedy", "sample"], value=run_decode.strategy, label="decoding",
                                      elem_id="decode")
                    beam = gr.Slider(1, max(8, run_decode.beam_width), value=run_decode.beam_width, step=1,
                                     label="beam width")
                    # the range holds the run's value, below 0.1 too: Gradio refuses every click outside it
                    temperature = gr.Slider(min(0.1, run_decode.temperature), max(2.0, run_decode.temperature),
                                            value=run_decode.temperature, label="temperature (sample)")
                    top_k = gr.Slider(0, max(200, run_decode.top_k or 0), value=run_decode.top_k or 0, step=1,
                                      label="top-k (sample; 0 = all)")
                    # a run that sampled: its seed, so the first caption is the caption command's; blank draws anew
                    run_seed = run_decode.seed if run_decode.strategy == "sample" else None
                    seed = seed_box("" if run_seed is None else str(run_seed), "seed (sample; blank: a new draw each click)")
                    run = gr.Button("Caption", elem_id="run")
                with gr.Column():
                    caption = gr.Textbox(label="caption", elem_id="caption")
                    message = gr.Markdown(elem_id="message")
                    # its own drawn title says what it is: Gradio's label would sit over it
                    maps = gr.Image(label="where each word looked", show_label=False, elem_id="maps", type="pil",
                                    format="png")
            run.click(demo.caption, [upload, decode, beam, temperature, top_k, seed], [caption, maps, message])
        else:
            demo = A2ADemo(ckpt)
            message = gr.Markdown(elem_id="message")
            with gr.Tab("text -> image"):
                prompt = gr.Textbox(label="prompt", value="a red square above a blue circle", elem_id="prompt")
                guidance = gr.Slider(1.0, 4.0, value=2.0, label="guidance")
                best_of = gr.Slider(1, 8, value=4, step=1, label="best of")
                temperature = gr.Slider(0.1, 1.5, value=0.5, label="temperature")
                seed = seed_box("", "seed (blank: a new draw each click)")
                draw = gr.Button("Draw", elem_id="draw")
                # PNG: Gradio's default WebP is lossy, pixels off by up to 12 levels
                picture = gr.Image(label="image", type="pil", format="png", elem_id="picture")
                word_maps = gr.Image(label="each word's codes", show_label=False, type="pil", format="png",
                                     elem_id="word_maps")
                draw.click(demo.text2image, [prompt, guidance, best_of, temperature, seed], [picture, word_maps, message])
            with gr.Tab("image -> text"):
                upload = gr.File(label="a picture", elem_id="upload")
                read = gr.Button("Caption", elem_id="run")
                caption = gr.Textbox(label="caption", elem_id="caption")
                maps = gr.Image(label="maps", show_label=False, type="pil", format="png", elem_id="maps")
                read.click(demo.image2text, [upload], [caption, maps, message])
            with gr.Tab("GIF -> continuation"):
                if demo.max_frames < 2:
                    gr.Markdown(f"This model's context ({demo.net.config.context} tokens) holds "
                                f"{counted(demo.max_frames, 'frame')} of {demo.size} px: too few to continue a GIF.")
                else:  # the sliders stay within the context: frames given + frames added <= max_frames
                    gif = gr.File(label="a GIF", elem_id="gif")
                    most_given = min(4, demo.max_frames - 1)
                    given = gr.Slider(1, most_given, value=min(2, most_given), step=1, label="frames given")
                    first_most = demo.most_frames_to_add(min(2, most_given))
                    new = gr.Slider(1, first_most, value=min(2, first_most), step=1, label="frames to add")

                    def frames_to_add(given_now: int, new_now: int) -> Any:  # the value kept where it still fits
                        most = demo.most_frames_to_add(given_now)
                        return gr.Slider(maximum=most, value=min(int(new_now), most))

                    given.change(frames_to_add, [given, new], new)
                    go = gr.Button("Continue", elem_id="continue")
                    go.click(demo.video2video, [gif, given, new], [gr.Image(label="continued", type="filepath"), message])
    return page


def run(cfg: DictConfig) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SupraUserError('the demo needs Gradio: pip install "gradio>=4"') from None  # from any folder
    check_can_serve(cfg.host, cfg.port)  # before the model loads, not after
    # Gradio's start-up checks its own page over HTTP, which httpx logs at INFO through Hydra's console log:
    # "HTTP Request: GET http://127.0.0.1:7860/..." read as the page calling out to the network
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # SIGTERM (a service manager's stop, kill) comes as Ctrl-C, as in every command (hydra_command), the model's
    # loading and launch's start-up included, and the process exits normally, so the demo's temporary GIF folder
    # (made as the page is built) is removed; closing the page from a handler of its own instead, during launch's
    # own start-up checks, failed them with a traceback
    page = None
    try:
        page = build_page(str(cfg.ckpt))
        host = url_host(cfg.host)
        print(f"Supra demo of {cfg.ckpt} on http://{host}:{cfg.port} (Ctrl-C ends it)", flush=True)
        page.launch(server_name=host, server_port=int(cfg.port), share=False, quiet=True, footer_links=[])
    except KeyboardInterrupt:  # before launch serves (once it does, it ends the page itself)
        if page is not None:
            page.close(verbose=False)
    except OSError as err:  # taken in the meantime
        raise SupraUserError(f"cannot serve on {cfg.host}:{cfg.port} ({err}): choose another with port=N") from None


def url_host(host: str) -> str:
    """`host` as a URL writes it: an IPv6 address in brackets (http://[::1]:7860). Gradio binds to it without
    them and builds its own URL from it, which without them is no URL (http://::1:7860: a traceback)."""
    return f"[{host}]" if ":" in host else host


THIS_MACHINE = "give one of its own, e.g. host=127.0.0.1 (this machine only) or host=0.0.0.0 (the network)"


def check_can_serve(host: Any, port: Any) -> None:
    """A host or port that is none, taken by another program, or a host this machine is not: one line."""
    if isinstance(host, Sequence) and not isinstance(host, str) and len(host) == 1 and isinstance(host[0], str):
        host = f"[{host[0]}]"  # host=[::1] unquoted: Hydra reads the brackets as a list, ['::1']
    if not isinstance(host, str) or not host.strip():  # host=1234, host=null; "" would serve every network
        raise SupraUserError(f"host={'null' if host is None else host} is no address: give this machine's, e.g. host=127.0.0.1 "
                             "(this machine only), host=0.0.0.0 (the network) or host=::1 (IPv6)")
    if host.startswith("[") or host.endswith("]"):  # as the URL shows it, http://[::1]:7860
        raise SupraUserError(f"host={host}: give the address without brackets (host={host.strip('[]')}); the page "
                             "is then at the URL with them")
    if not is_whole(port, 1) or port > 65535:
        raise SupraUserError(f"port={port!r} must be a whole number from 1 to 65535 (e.g. 7860)")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except socket.gaierror as err:  # a name that resolves to no address
        raise SupraUserError(f"host={host} is no address this machine can serve on ({err.strerror or err}): "
                             f"{THIS_MACHINE}") from None
    except OSError as err:
        if err.errno == errno.EADDRNOTAVAIL:  # an address, but another machine's: no port would do
            raise SupraUserError(f"host={host} is not an address of this machine ({err.strerror}): {THIS_MACHINE}") from None
        other_host = "" if host == "127.0.0.1" else " (or host=127.0.0.1)"  # not offered where it is the host
        raise SupraUserError(f"cannot serve on {host}:{port} ({err.strerror or err}): choose another with port=N"
                             f"{other_host}") from None


main = hydra_command("demo", run)

if __name__ == "__main__":
    main()
