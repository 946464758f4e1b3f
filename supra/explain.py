"""`python -m supra.explain ckpt=... image=...`: where each generated token looked (conf/explain.yaml;
`--help` lists every option). Writes <out>/attention.png (the picture, then one heat tile per token),
<out>/attention.html (self-contained: every layer's and head's map with its share of the attention, each scaled
to its own maximum; probabilities, alternatives) and
<out>/explain.json (the same numbers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from PIL import Image

from supra.artifacts.a2a_release import load_a2a, model_image_size
from supra.artifacts.captioner_release import command_decoding, load_captioner
from supra.artifacts.checkpoints import artifact_kind
from supra.artifacts.kinds import (
    A2A_CHECKPOINT,
    A2A_RELEASE,
    CAPTIONER_CHECKPOINT,
    CAPTIONER_RELEASE,
    KIND_NAMES,
)
from supra.data.gif_frames import TOO_LARGE, MediaDecodeError, first_frame_cut_note
from supra.data.images import (
    GENERATE_MAX_PIXELS,
    MAX_PIXELS,
    UNREADABLE,
    fit,
    image_to_uint8,
    load_rgb,
    load_still,
    normalize_images,
    require_image_file,
    unreadable_picture,
)
from supra.data.media.codes import decode_codes, encode_items
from supra.models.a2a_generation import SamplingConfig, check_image_search
from supra.models.attention_maps import (
    TokenAttention,
    check_maps_are_places,
    explain_caption,
    explain_image2text,
    explain_text2image,
    why_codes_are_no_places,
)
from supra.pictures.attention import (
    CODES_ON_WORD,
    DECODED_INPUT,
    GENERATED_PICTURE,
    INPUT_PICTURE,
    TILE_SCALE_NOTE,
    TOKEN_ON_IMAGE,
    MapShare,
    explain_page,
    probability_text,
    render_token_strip,
    square_grid,
)
from supra.tokens.a2a_layout import CONTROL_TOKENS, VQVAE_DOWNSAMPLE
from supra.tokens.a2a_sequences import (
    check_image_size_fits,
    check_image_size_option,
    check_text2image_prompt,
    text_room,
)
from supra.utils.cli import check_option_types, check_paths_given, hydra_command, refuse_unread_options
from supra.utils.disk_room import room_to_write
from supra.utils.errors import SupraUserError
from supra.utils.files import (
    atomic_paths,
    parse_json,
    refuse_folders_in_the_way,
    refuse_overwriting_input,
    refuse_replacing_others,
    require_writable_dir,
)
from supra.utils.hydra_quoting import quote_prompt
from supra.utils.run_folders import refuse_model_folder
from supra.utils.seeds import check_seed

OUTPUTS = ("attention.png", "attention.html", "explain.json")  # what explain writes into out=
# how an a2a image2text picture becomes square: as generate's (less refuse); squash for a model trained on photos
EXPLAIN_RESIZES = ("crop", "pad", "squash")

# The options each use of explain reads. Another use's option given at other than its default would be
# ignored without a word (temperature= on a captioner, beam_width= on an a2a model, prompt= with
# mode=image2text), so it is refused; so are a captioner's beam_width= and seed= where its decoding does not
# read them (command_decoding: seed= with beam search, beam_width= with decode=greedy).
OPTIONS_READ = {
    "a captioner": ("image", "decode", "beam_width", "seed"),
    "image2text": ("image", "image_size", "resize", "max_new_tokens"),
    "text2image": ("prompt", "image_size", "seed", "temperature", "guidance", "best_of"),
}


def _picture(path: str | None, what: str = "image") -> Path:
    if not path:
        raise SupraUserError(f"{what}= is needed: give the picture to explain, e.g. {what}=photo.jpg")
    return require_image_file(path, what)


def _too_large(path: Path, err: Exception, limit: int) -> SupraUserError:
    """The loader's reason (which may name a max_pixels= explain has no option for) as explain says it: the size,
    explain's `limit` (MAX_PIXELS for a captioner's picture, GENERATE_MAX_PIXELS for an a2a model's) and what to do."""
    size = str(err).partition(", over ")[0]  # "12000x10000 = 120000000 pixels"
    return SupraUserError(f"image={path} is too large ({size}; explain reads up to {limit:,} pixels): "
                          "resize the picture and give the smaller copy")


def is_explain_record(path: Path) -> bool:
    """An explain.json that explain wrote (an object with the checkpoint and the tokens it explained): its
    run's attention.png and attention.html beside it may be replaced too."""
    try:
        record = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"ckpt", "tokens"} <= record.keys()


def say_gif_cut_short(path: Path, max_pixels: int) -> None:
    """A GIF cut short is explained by its first frame, with a note, as generate's image2text notes it."""
    if note := first_frame_cut_note(path, f"image={path}", max_pixels):
        print(note, file=sys.stderr)


def _out_dir(cfg: DictConfig) -> Path:
    """out=, made and proven writable once every input has been checked (a refused one leaves nothing)."""
    return require_writable_dir(cfg.out, f"out={cfg.out}")


def _rows(tokens: list[TokenAttention]) -> list[dict[str, Any]]:
    return [{"token": t.token, "probability": t.probability, "alternatives": t.alternatives, "maps": t.maps} for t in tokens]


def _write(out: Path, title: str, summary: str, image: torch.Tensor, picture_label: str, grid: tuple[int, int],
           rows: list[dict[str, Any]], record: dict[str, Any], share: MapShare = TOKEN_ON_IMAGE) -> dict[str, Any]:
    captions = [f"p={probability_text(r['probability'])}" if r.get("probability") is not None else "" for r in rows]
    # the picture names its model and input as the page's heading does, and how its tiles are scaled as the
    # page's text does: attention.png is shared alone
    strip = render_token_strip(image, [r["token"] for r in rows], [r["maps"].mean(dim=(0, 1)) for r in rows],
                               captions, grid, title=f"{title}\n{summary}\n{TILE_SCALE_NOTE}",
                               picture_label=picture_label)
    page = explain_page(title, summary, strip, image, grid, rows, share)
    record["tokens"] = [{"token": r["token"], "probability": r.get("probability"), "alternatives": r.get("alternatives"),
                         "mean_map": [round(float(v), 6) for v in r["maps"].mean(dim=(0, 1))]} for r in rows]
    # the three renamed in together, once all are written: a write cut short (a full disk) is one line and
    # leaves an earlier run's three as they were, never this run's picture beside that run's page and record
    with room_to_write(f"out={out}", "free space there, or give another out= folder"), \
            atomic_paths(*(out / name for name in OUTPUTS)) as (png, html, record_file):
        strip.save(png, format="PNG")
        html.write_text(page, encoding="utf-8")
        record_file.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def explain_captioner(cfg: DictConfig) -> dict[str, Any]:
    net, tokenizer, run_config = load_captioner(cfg.ckpt)
    check_maps_are_places(net)  # a resampler's: refused before out= is made
    path = _picture(cfg.image)
    try:
        image = image_to_uint8(load_rgb(path), net.config.IMG_SIZE)  # up to MAX_PIXELS, as caption reads it
    except Image.DecompressionBombError as err:  # readable, but too large to decode safely
        raise _too_large(path, err, MAX_PIXELS) from None
    except UNREADABLE as err:  # PixelRangeError too: readable, but of no known range (its reason says what to do)
        raise unreadable_picture(path, err) from None
    say_gif_cut_short(path, MAX_PIXELS)
    # the caption `python -m supra.caption` writes: the run's decoding, what this command line gives over it
    decode = command_decoding(cfg, "explain", net, run_config)
    out = _out_dir(cfg)
    ids, tokens = explain_caption(net, normalize_images(image[None], net.image_input.mean, net.image_input.std)[0], tokenizer.bos_id, tokenizer.eos_id,
                                  tokenizer.token_label, decode)
    caption = tokenizer.decode(ids)
    grid = square_grid(net.config.N_VIS)
    summary = f"{caption!r} ({decode.strategy}); attention of each token over the {grid[0]}x{grid[1]} visual tokens"
    return _write(out, f"{Path(str(cfg.ckpt)).name}: {path.name}", summary, image, INPUT_PICTURE, grid, _rows(tokens),
                  {"ckpt": str(cfg.ckpt), "image": str(path), "caption": caption, "decode": decode.strategy,
                   "decode_settings": decode.settings_used(net), "grid": list(grid)})


def check_a2a_options(cfg: DictConfig) -> None:
    """The a2a options, before any work, with the checks generate's Request makes of the same ones (check_seed,
    check_image_size_option, SamplingConfig, check_image_search)."""
    check_option_types(cfg, whole=("image_size", "seed", "best_of", "max_new_tokens"), numbers=("temperature", "guidance"),
                       optional=("seed",))
    check_seed("seed", cfg.seed)
    check_image_size_option(cfg.image_size)
    if why := why_codes_are_no_places((cfg.image_size // VQVAE_DOWNSAMPLE,) * 2):  # image_size=8: refused before out=
        raise SupraUserError(f"image_size={cfg.image_size}: attention maps show where on the image each token looked, "
                             f"but {why}: give image_size=16 or more (a grid of 2x2 codes or more)")
    if cfg.max_new_tokens < 1:
        raise SupraUserError(f"max_new_tokens={cfg.max_new_tokens} must be >= 1")
    if cfg.resize not in EXPLAIN_RESIZES:
        raise SupraUserError(f"resize={cfg.resize!r} is unknown: choose {', '.join(EXPLAIN_RESIZES)}")
    SamplingConfig(cfg.temperature)
    check_image_search(cfg.guidance, cfg.best_of)


def a2a_mode(cfg: DictConfig) -> str:
    """mode=auto read as image2text given image=, text2image given only prompt= (an empty one too: it is said
    to be empty, not asked for an image); given both, which one is meant is the user's to say (the other would
    be ignored)."""
    if cfg.mode != "auto":
        return cfg.mode
    if cfg.prompt and cfg.image:
        raise SupraUserError(f"image={cfg.image} and prompt={cfg.prompt!r} with mode=auto: choose mode=image2text "
                             "(explain the image's caption) or mode=text2image (explain drawing the prompt)")
    return "text2image" if cfg.prompt is not None and not cfg.image else "image2text"


def explain_a2a(cfg: DictConfig) -> dict[str, Any]:
    cfg.image_size = model_image_size(str(cfg.ckpt), cfg.image_size)  # null: the model's, as generate takes it
    check_a2a_options(cfg)
    net, vqvae, vocab = load_a2a(cfg.ckpt)
    layout, side = vocab.layout, cfg.image_size // VQVAE_DOWNSAMPLE
    mode = a2a_mode(cfg)
    if mode == "image2text":
        prompt_len = side * side + 3  # <IMAGE> codes </IMAGE><TEXT>
        check_image_size_fits(net.config.context, mode, cfg.image_size)
        path = _picture(cfg.image)
        try:
            picture = fit(load_still(path, GENERATE_MAX_PIXELS), cfg.image_size, cfg.resize, GENERATE_MAX_PIXELS)
        except MediaDecodeError as err:
            if err.kind == TOO_LARGE:
                raise _too_large(path, err, GENERATE_MAX_PIXELS) from None
            raise unreadable_picture(path, err) from None
        except Exception as err:  # Pillow's own: one line either way
            raise unreadable_picture(path, err) from None
        say_gif_cut_short(path, GENERATE_MAX_PIXELS)
        out = _out_dir(cfg)
        codes = encode_items(vqvae, picture[None], 1, torch.device("cpu"))[0]
        limit, note = text_room(cfg.max_new_tokens, prompt_len, net.config.context)
        if note:
            print(note, file=sys.stderr)
        ids, tokens = explain_image2text(net, layout, codes, [], limit, vocab.token_label)
        caption = vocab.decode_generated(ids).strip()
        summary = f"image2text: {caption!r}; attention of each word over the image's {side}x{side} codes"
        return _write(out, f"{Path(str(cfg.ckpt)).name}: {path.name}", summary, decode_codes(vqvae, codes), DECODED_INPUT,
                      (side, side), _rows(tokens), {"ckpt": str(cfg.ckpt), "mode": mode, "image": str(path), "caption": caption,
                                     "image_size": cfg.image_size, "resize": cfg.resize, "max_new_tokens": limit})
    if mode != "text2image":
        raise SupraUserError(f"mode={mode!r} is unknown for an a2a model: choose image2text or text2image")
    if cfg.prompt is None:
        raise SupraUserError("mode=text2image needs prompt=\"...\" (e.g. prompt=\"a red square\")")
    if not str(cfg.prompt).strip():  # " " is no caption either: no word to map the attention to
        raise SupraUserError(f"prompt={cfg.prompt!r} is empty: explain maps the attention each drawn code pays the "
                             "prompt's words; give a caption (e.g. prompt=\"a red square\")")
    if any(token in cfg.prompt for token in CONTROL_TOKENS):  # generate's raw prompts: not read as text here
        raise SupraUserError(f"prompt={cfg.prompt!r}: explain draws the caption alone (prompt=\"a red square\"), "
                             "without control tokens such as <TEXT> or <IMAGE>")
    # the image after a one-word caption: a shorter prompt is refused above, so none is to shorten
    check_image_size_fits(net.config.context, "text2image after a caption", cfg.image_size)
    caption_ids = vocab.encode_text(cfg.prompt)
    prompt_len = len(caption_ids) + 3  # <TEXT> caption </TEXT><IMAGE>
    check_text2image_prompt(net.config.context, prompt_len, cfg.image_size)
    out = _out_dir(cfg)
    seed = 0 if cfg.seed is None else cfg.seed
    generator = torch.Generator().manual_seed(seed)
    explained = explain_text2image(net, layout, caption_ids, (side, side), vocab.token_label,
                                   temperature=cfg.temperature, guidance=cfg.guidance, best_of=cfg.best_of,
                                   generator=generator)
    image = decode_codes(vqvae, explained.codes)
    rows = [{"token": word, "probability": None, "alternatives": None, "maps": explained.maps[:, :, w]}
            for w, word in enumerate(explained.words)]
    summary = f"text2image: {cfg.prompt!r}; per word, the attention each generated code paid it"
    return _write(out, f"{Path(str(cfg.ckpt)).name}: {cfg.prompt}", summary, image, GENERATED_PICTURE, (side, side), rows,
                  # every setting that changes the picture drawn, as generate's generation.json records them
                  {"ckpt": str(cfg.ckpt), "mode": mode, "prompt": cfg.prompt, "seed": seed, "temperature": cfg.temperature,
                   "guidance": cfg.guidance, "best_of": cfg.best_of, "image_size": cfg.image_size,
                   "codes": explained.codes.tolist()},
                  CODES_ON_WORD)


EXPLAINED = (CAPTIONER_CHECKPOINT, CAPTIONER_RELEASE, A2A_CHECKPOINT, A2A_RELEASE)  # models with attention to map


def run(cfg: DictConfig) -> dict[str, Any]:
    # out="" is the current folder: its three files would land there without a word
    check_paths_given(cfg, {"out": "the folder to write attention.png, attention.html and explain.json to"})
    kind = artifact_kind(cfg.ckpt, accepts=EXPLAINED)
    captioner = kind in (CAPTIONER_CHECKPOINT, CAPTIONER_RELEASE)
    if kind not in EXPLAINED:
        raise SupraUserError(f"ckpt={cfg.ckpt} is {KIND_NAMES[kind]}: explain reads captioner and a2a_nano models")
    if captioner and (cfg.prompt or cfg.mode == "text2image"):  # a captioner draws nothing
        raise SupraUserError(f"ckpt={cfg.ckpt} is a captioner: it explains the caption of image=PICTURE; "
                             "prompt= and mode=text2image are for a2a_nano models")
    use = "a captioner" if captioner else a2a_mode(cfg)
    if use in OPTIONS_READ:  # an unknown mode is named by explain_a2a
        others = [option for read in OPTIONS_READ.values() for option in read if option not in OPTIONS_READ[use]]
        if captioner:  # it has one use, whatever mode= says (mode=text2image is named above)
            others.append("mode")
        refuse_unread_options(cfg, "explain", dict.fromkeys(others), f"explaining {use}", OPTIONS_READ[use])
    if use == "text2image" and cfg.temperature == 0:  # greedy decoding draws nothing at random (as in generate)
        refuse_unread_options(cfg, "explain", ["seed"], "temperature=0 (greedy decoding)")
    refuse_model_folder(Path(cfg.out), "the attention maps")  # as caption and generate refuse them
    refuse_overwriting_input(cfg.image, "image", cfg.out, OUTPUTS)  # image=ex/attention.png out=ex: kept
    refuse_folders_in_the_way(cfg.out, OUTPUTS)
    refuse_replacing_others(cfg.out, OUTPUTS, OUTPUTS if is_explain_record(Path(cfg.out) / "explain.json") else (),
                            "explain wrote (its explain.json names the checkpoint and the tokens explained)")
    record = explain_captioner(cfg) if captioner else explain_a2a(cfg)
    print("wrote " + ", ".join(str(Path(cfg.out) / name) for name in OUTPUTS))
    return record


_main = hydra_command("explain", run)


def main() -> None:
    sys.argv[1:] = quote_prompt(sys.argv[1:])  # prompt="a red square!" as typed, as generate takes it
    _main()


if __name__ == "__main__":
    main()
