"""The Supra-A2A-Nano release folder: the GPT and its VQ-VAE as a pair, written and read.

    config.json          {"model_type", "gpt": A2AConfig, "vqvae": VQVAE kwargs, "vocab": layout facts,
                          "image_size": the side its run trained at (left out when unknown)}
    model.safetensors    the GPT (a tied head saved under both names, as a copy: safetensors refuses shared memory)
    vqvae.safetensors    the frozen stage-1 VQ-VAE
    tokenizer.json       the text part's BPE in Hugging Face's format (control tokens and codes follow its ids)
    README.md            model card: sizes, vocabulary, how to generate
    scoring.json         the run's generation, code_softmax and test_metrics, which evaluate.py scores it with

`load_a2a` reads this folder or a train.py checkpoint of kind "supra.a2a" ("net.*" = GPT, "vqvae.*" =
VQ-VAE, checkpoint["supra"]: a2a_vocab, vqvae_config, net_config or run_config.model.net). A fine-tune
(`model.init_from=FOLDER`) reads the same files in three parts, each where the run needs it: the runner the
VQ-VAE (load_release_vqvae) and the vocabulary (load_release_vocab), the task the GPT (load_release_gpt).
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from supra.artifacts.captioner_release import RELEASE_KEYS as CAPTIONER_RELEASE_KEYS
from supra.artifacts.checkpoints import (
    artifact_kind,
    load_state_strictly,
    load_supra_checkpoint,
    load_vqvae,
    net_state,
    release_folder,
    run_config_of,
)
from supra.artifacts.hub import card_front_matter, local_path
from supra.artifacts.kinds import (
    A2A_CHECKPOINT,
    A2A_MODEL,
    A2A_MODEL_TYPE,
    A2A_RELEASE,
    VQVAE_CHECKPOINT,
    VQVAE_MODEL,
    refuse_other_kind,
    release_kind,
)
from supra.artifacts.release_files import (
    built_for_weights,
    data_names,
    given_release_folder,
    load_release_weights_file,
    load_weights,
    metrics_table,
    read_config_json,
    read_scoring,
    run_results,
    save_weights,
    scored_model_settings,
    write_config_json,
    write_scoring,
)
from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.models.vqvae import VQVAE
from supra.tokens.a2a_layout import CONTROL_TOKENS, VQVAE_DOWNSAMPLE
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.errors import SupraUserError
from supra.utils.files import atomic_dir
from supra.utils.numbers import counted, is_whole
from supra.utils.state_dicts import built_to_fit, same_state

RELEASE_FILES = ("config.json", "model.safetensors", "vqvae.safetensors", "tokenizer.json")


def check_pair(net: A2ANano, vqvae: torch.nn.Module, vocab: A2AVocab, source: str) -> None:
    """The GPT's vocabulary, the tokenizer's layout and the VQ-VAE's codebook must agree."""
    layout = vocab.layout
    codebook = vqvae.config.num_codes
    if codebook != layout.num_codes:
        raise SupraUserError(
            f"{source}: the VQ-VAE's codebook has {codebook} codes but the GPT's vocabulary has {layout.num_codes} "
            "code ids: use the VQ-VAE the GPT was trained with")
    if net.config.vocab_size != layout.vocab_size:
        raise SupraUserError(
            f"{source}: the GPT has {net.config.vocab_size} ids but its tokenizer lays out {layout.vocab_size} "
            f"({layout.text_size} text + 7 control + {layout.num_codes} codes): the files do not belong together")


# -- writing -----------------------------------------------------------------------------------------


def _model_card(config: dict, net: A2ANano, vqvae: torch.nn.Module, metrics: dict | None) -> str:
    gpt, vocab = config["gpt"], config["vocab"]
    text = ("GPT-2's byte-level BPE" if vocab["text_source"] == "gpt2"
            else "a byte-level BPE trained on the training captions")
    lines = [
        "# Supra-A2A-Nano (exported by Supra)", "",
        "One GPT over one token stream of text, 7 control tokens and VQ-VAE image codes: text -> text, "
        "text -> image, image -> text, video -> video, text -> video.", "",
        "## Sizes", "", "| part | parameters |", "|---|---|",
        f"| GPT ({counted(gpt['n_layers'], 'block')}, d {gpt['d_model']}, {counted(gpt['n_heads'], 'head')}, "
        f"MLP {gpt['d_mlp']} "
        f"{gpt['activation']}, context {gpt['context']}, {'tied' if gpt['tie_head'] else 'untied'} head) "
        f"| {net.get_num_params():,} |",
        f"| VQ-VAE ({vqvae.config.num_codes} codes, downsampling 8) | {vqvae.get_num_params():,} |", "",
        "## Vocabulary", "",
        f"{vocab['vocab_size']:,} ids = {vocab['text_size']:,} text ids ({text}) + 7 control tokens "
        f"{' '.join(f'`{t}`' for t in CONTROL_TOKENS)} (ids {vocab['text_size']}..{vocab['code_offset'] - 1}) "
        f"+ {vocab['num_codes']} visual codes (ids {vocab['code_offset']}..{vocab['vocab_size'] - 1}).", "",
    ]
    if metrics:
        lines += [f"## Metrics ({metrics.get('split', 'test')} split)", "", *metrics_table(metrics), ""]
    lines += [
        "## Use", "", "```",
        "python -m supra.generate ckpt=THIS_FOLDER mode=text2image prompt=\"a red square\" out=samples/",
        "python -m supra.generate ckpt=THIS_FOLDER mode=image2text image=photo.png out=samples/",
        "python -m supra.generate ckpt=THIS_FOLDER mode=video2video image=clip.gif frames=4 out=samples/",
        "```", "",
        "Images are square with a side that is a multiple of 8; a 64x64 image is 8x8 = 64 codes in raster order.", "",
    ]
    return "\n".join(lines)


def release_config(net: A2ANano, vqvae: torch.nn.Module, vocab: A2AVocab,
                   image_size: int | None = None) -> dict[str, Any]:
    """A release's config.json: the GPT's and VQ-VAE's settings, the vocabulary's layout and (given) the picture
    side the model was trained at."""
    layout = vocab.layout
    trained_at = {} if image_size is None else {"image_size": image_size}  # generate's default image_size
    return {
        "model_type": A2A_MODEL_TYPE,
        "gpt": net.config.to_dict(),
        "vqvae": json.loads(json.dumps(asdict(vqvae.config))),  # tuples -> lists
        "vocab": {"text_size": layout.text_size, "num_codes": layout.num_codes, "code_offset": layout.code_offset,
                  "vocab_size": layout.vocab_size, "control_tokens": list(CONTROL_TOKENS),
                  "text_source": vocab.source},
        **trained_at,
    }


def save_a2a_release(out_dir: str | Path, net: A2ANano, vqvae: torch.nn.Module, vocab: A2AVocab,
                     metrics: dict | None = None, datasets: list[str] | None = None, license: str = "other",
                     scoring: dict | None = None, image_size: int | None = None) -> Path:
    """Write the release folder; it appears complete or not at all (a temp folder, then one rename).
    `scoring`: how its run scored `metrics` (generation, code_softmax, test_metrics), for evaluate.py;
    `image_size`: the side its run trained at, recorded in config.json for generate (None: not recorded)."""
    check_pair(net, vqvae, vocab, f"release {out_dir}")
    config = release_config(net, vqvae, vocab, image_size)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        save_weights(net, tmp / "model.safetensors")
        save_weights(vqvae, tmp / "vqvae.safetensors")
        write_config_json(tmp, config)
        vocab.hf.save(str(tmp / "tokenizer.json"))
        if scoring is not None:
            write_scoring(tmp, scoring)
        front = card_front_matter("any-to-any", "Supra-A2A-Nano", ["supra", "any-to-any", "text-to-image",
                                  "image-to-text", "vq-vae"], datasets or [], metrics, license)
        (tmp / "README.md").write_text(front + _model_card(config, net, vqvae, metrics))
    return out_dir


def scored_settings(path: str | Path, run_config: dict | None) -> dict[str, Any]:
    """How an a2a model's scores were measured (its generation, code_softmax, test_metrics): its run's model
    settings for a checkpoint (its run config), a release's scoring.json ({} for one made without it)."""
    if run_config is None:
        return read_scoring(local_path(path))
    model = run_config.get("model") or {}
    return {key: model[key] for key in ("generation", "code_softmax", "test_metrics") if key in model}


def export_a2a_release(ckpt: str | Path, out_dir: str | Path, license: str = "other") -> Path:
    """A train.py checkpoint of kind supra.a2a -> a release folder (its card with its run's test metrics, if any)."""
    net, vqvae, vocab = load_a2a(ckpt)
    run_config = run_config_of(load_supra_checkpoint(ckpt, kind=A2A_CHECKPOINT)) or {}
    metrics = run_results(ckpt)[0]
    # scored as the test whose scores the card prints (a resumed run's carried best.ckpt keeps the earlier run's)
    return save_a2a_release(out_dir, net, vqvae, vocab, metrics, data_names(run_config), license,
                            scored_settings(ckpt, {"model": scored_model_settings(ckpt, run_config, metrics)}),
                            sources_image_size(run_config))


def sources_image_size(run_config: dict[str, Any] | None) -> int | None:
    """The picture side an a2a run trained at: the one image_size its data sources give (the mixture refuses
    sources of two sizes); None for a run whose sources state none (or a config of no sources)."""
    sources = ((run_config or {}).get("data") or {}).get("sources") or {}
    sizes = {source.get("image_size") for source in sources.values() if isinstance(source, dict)} - {None}
    return sizes.pop() if len(sizes) == 1 else None


def trained_image_size(path: str | Path) -> int | None:
    """The picture side the a2a model at `path` (a checkpoint or a release folder) was trained at, as far as
    it records one: a checkpoint's run config's sources, a release's config.json; None when it records none
    (a release exported before it was recorded, or made elsewhere)."""
    path = local_path(path)
    if artifact_kind(path, accepts=(A2A_CHECKPOINT,)) == A2A_RELEASE:
        size = read_config_json(path).get("image_size")
        return size if is_whole(size, 1) else None
    # its run config alone: the weights, which the command loads next, stay on disk (mmap)
    return sources_image_size(run_config_of(load_supra_checkpoint(path, kind=A2A_CHECKPOINT, mmap=True)))


# image_size for a model that records no training size (a release exported before config.json held it):
# the side of experiment=a2a_shapes and the published card
UNRECORDED_IMAGE_SIZE = 64


def model_image_size(ckpt: str, given: Any) -> Any:
    """image_size= as the run uses it: the side the model was trained at when none is given (its GPT learnt
    grids of that many codes), UNRECORDED_IMAGE_SIZE when the model records none; a given one that differs
    from the model's is used, with one note (the context refuses one it cannot hold, as Request checks)."""
    trained = trained_image_size(ckpt)
    if given is None:
        return UNRECORDED_IMAGE_SIZE if trained is None else trained
    if trained is not None and given != trained and is_whole(given, VQVAE_DOWNSAMPLE) and given % VQVAE_DOWNSAMPLE == 0:
        print(f"note: image_size={given} but ckpt={ckpt} was trained at {trained} px (grids of {trained // VQVAE_DOWNSAMPLE}"
              f"x{trained // VQVAE_DOWNSAMPLE} codes): its samples may be poorer; leave image_size out to use "
              f"{trained}", file=sys.stderr)
    return given


# -- reading -----------------------------------------------------------------------------------------


def _gpt_config(net_config: dict, vocab: A2AVocab) -> A2AConfig:
    known = {f.name for f in fields(A2AConfig)}
    kwargs = {k: v for k, v in net_config.items() if k in known}
    kwargs["vocab_size"] = vocab.layout.vocab_size  # "???" in conf/, filled from the vocabulary at setup
    return A2AConfig(**kwargs)


def _unknown_keys(folder: Path, config: dict[str, Any]) -> None:
    """Refuse a key config.json (or its "gpt" block) does not have: a misspelt setting would otherwise be
    dropped, and the GPT built with its default."""
    known = {f.name for f in fields(A2AConfig)}
    for where, block, keys in (("", config, ("model_type", "gpt", "vqvae", "vocab", "image_size")),
                               ("gpt.", config.get("gpt"), sorted(known))):
        unknown = [k for k in block if k not in keys] if isinstance(block, dict) else []
        if unknown:
            close = difflib.get_close_matches(unknown[0], keys, n=1)
            hint = f"did you mean {where}{close[0]}?" if close else f"its keys: {', '.join(keys)}"
            raise SupraUserError(f"{folder / 'config.json'} has the unknown key {where}{unknown[0]} ({hint}): "
                                 "fix the file, or export the release again (python -m supra.export)")


def _unreadable_config(folder: Path, err: Exception) -> SupraUserError:
    """A config.json edited by hand or cut short: one line naming it, not a KeyError from deep inside."""
    return SupraUserError(f"{folder / 'config.json'} is not a readable a2a_nano config ({type(err).__name__}: "
                          f"{err}): export the release again (python -m supra.export)")


def _release_config(folder: Path) -> dict[str, Any]:
    """config.json of a complete a2a release folder (every file of RELEASE_FILES there, model_type ours)."""
    missing = [name for name in RELEASE_FILES if not (folder / name).is_file()]
    if missing:
        raise SupraUserError(f"{folder} is not a complete a2a release folder: {', '.join(missing)} missing")
    config = read_config_json(folder)
    if config.get("model_type") != A2A_MODEL_TYPE:
        raise _not_a2a_config(folder, config)
    _unknown_keys(folder, config)
    return config


def _not_a2a_config(folder: Path, config: dict[str, Any]) -> SupraUserError:
    """A release folder whose config.json is not an a2a_nano's (its vqvae.safetensors made it look like an a2a
    release), named for what it holds instead: another model_type, a captioner's settings beside a stray
    VQ-VAE, or settings of no model named."""
    give = "give an a2a release folder or checkpoint"
    if "model_type" in config:
        return SupraUserError(f"{folder} holds a {json.dumps(config['model_type'])} model (its config.json's "
                              f"model_type), not an a2a_nano one: {give}")
    if all(key in config for key in CAPTIONER_RELEASE_KEYS):
        return SupraUserError(f"{folder} holds a SupraVL-Nano captioner release (its config.json) and a "
                              "vqvae.safetensors, which no captioner release has: remove vqvae.safetensors to use "
                              f"it as a captioner release, or {give}")
    return SupraUserError(f"{folder / 'config.json'} names no model_type (an a2a_nano release's says "
                          f"{json.dumps(A2A_MODEL_TYPE)}): {give}")


def load_release_vocab(folder: str | Path) -> A2AVocab:
    """The vocabulary of an a2a release folder: its tokenizer.json, laid out as config.json's "vocab" says
    (the text ids, then the 7 control tokens, then num_codes codes)."""
    folder = Path(folder)
    config = _release_config(folder)
    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as err:  # tokenizers raises bare Exceptions
        raise SupraUserError(f"{folder / 'tokenizer.json'} is not a readable tokenizer ({err})") from None
    try:
        vocab = A2AVocab(tokenizer, config["vocab"]["num_codes"], config["vocab"].get("text_source", "trained"))
        text_size = config["vocab"]["text_size"]
    except SupraUserError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _unreadable_config(folder, err) from None
    if vocab.layout.text_size != text_size:
        raise SupraUserError(f"{folder / 'tokenizer.json'} has {vocab.layout.text_size} text ids, config.json says "
                             f"{text_size}: the files do not belong together")
    return vocab


def load_a2a_release(folder: str | Path) -> tuple[A2ANano, VQVAE, A2AVocab]:
    """(GPT, VQ-VAE, vocabulary), both models in eval mode, from a local a2a release folder; load_a2a reads a
    checkpoint or a Hub id too."""
    folder = given_release_folder(folder, "load_a2a")
    config = _release_config(folder)
    vocab = load_release_vocab(folder)
    try:
        gpt_config = _gpt_config(config["gpt"], vocab)
        # each built once its weights' shapes are found to fit it: sizes edited into config.json take no memory
        net = built_for_weights(lambda: A2ANano(gpt_config), folder / "model.safetensors", tied_head=gpt_config.tie_head)
        vqvae = built_for_weights(lambda: VQVAE(**config["vqvae"]), folder / "vqvae.safetensors")
    except SupraUserError:  # a value VQVAEConfig names itself
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _unreadable_config(folder, err) from None
    load_release_weights_file(net, folder / "model.safetensors", tied_head=net.config.tie_head)
    load_release_weights_file(vqvae, folder / "vqvae.safetensors")
    if net.config.tie_head:
        net.lm_head.weight = net.tok_emb.weight  # loading gave the head its own copy of the values
    check_pair(net, vqvae, vocab, str(folder))
    return net.eval(), vqvae.eval(), vocab


def load_release_vqvae(folder: str | Path) -> VQVAE:
    """The frozen VQ-VAE of an a2a release folder (config.json's "vqvae", vqvae.safetensors), in eval mode:
    a new stage 2 can train over the published codes (model.vqvae_ckpt=FOLDER)."""
    folder = Path(folder)
    try:
        vqvae = VQVAE(**read_config_json(folder)["vqvae"])
    except SupraUserError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise SupraUserError(f"{folder / 'config.json'} holds no readable VQ-VAE config ({type(err).__name__}: {err}): "
                             "export the release again (python -m supra.export)") from None
    load_release_weights_file(vqvae, folder / "vqvae.safetensors")
    return vqvae.eval()


# -- fine-tuning from a release (model.init_from) -------------------------------------------------------

# What a fine-tune may set otherwise than its release: dropout only regularises training; vocab_size follows
# the vocabulary, which is the release's (the runner hands it to the data).
FREE_SETTINGS = ("dropout", "vocab_size")


def a2a_init_from_folder(init_from: str | Path) -> Path:
    """The local folder of the complete a2a release `model.init_from` names (a folder or a Hub id), or one
    line saying what it is instead: missing, a checkpoint file, a captioner release, a run's folder, a
    release that lost one of its files."""
    folder = release_folder(init_from, A2A_RELEASE)
    _release_config(folder)
    return folder


def load_release_gpt(net: A2ANano | Callable[..., A2ANano], folder: str | Path) -> A2ANano:
    """The GPT of the a2a release `folder`, in the model `net` configures (an A2ANano, or a factory taking
    vocab_size, built here at the release's vocabulary), its weights loaded strictly. Its settings must be the
    release's but for FREE_SETTINGS: one line names those that differ and the model.net options to add."""
    folder = Path(folder)
    config = _release_config(folder)
    vocab = load_release_vocab(folder)
    try:
        theirs = _gpt_config(config["gpt"], vocab)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _unreadable_config(folder, err) from None
    if not isinstance(net, torch.nn.Module):
        net = net(vocab_size=theirs.vocab_size)
    ours = net.config
    differ = [name for name, _, _ in gpt_differences(theirs, ours)]
    if differ:  # before the weights, whose wrong shapes would not say which setting to change
        raise SupraUserError(f"{folder} holds an a2a GPT of other settings ("
                             + ", ".join(f"{k}={_option(getattr(theirs, k))} there, {_option(getattr(ours, k))} here" for k in differ)
                             + "): add " + " ".join(f"model.net.{k}={_option(getattr(theirs, k))}" for k in differ)
                             + ", or choose a release of this model's settings")
    if ours.vocab_size != theirs.vocab_size:  # a GPT built elsewhere, not at the release's vocabulary
        raise SupraUserError(f"{folder} holds a GPT of {theirs.vocab_size} token ids, this one has {ours.vocab_size}: "
                             "build it at the release's vocabulary")
    path = folder / "model.safetensors"
    load_release_weights_file(net, path, tied_head=ours.tie_head)
    if ours.tie_head:
        net.lm_head.weight = net.tok_emb.weight  # loading gave the head its own copy of the values
    return net


def gpt_differences(theirs: A2AConfig, ours: A2AConfig) -> list[tuple[str, object, object]]:
    """(model.net key, theirs, ours) for each GPT setting but FREE_SETTINGS in which two configs differ."""
    return [(f.name, getattr(theirs, f.name), getattr(ours, f.name)) for f in fields(A2AConfig)
            if f.name not in FREE_SETTINGS and getattr(theirs, f.name) != getattr(ours, f.name)]


def gpt_config_of(net_config: dict) -> A2AConfig:
    """The GPT settings a run's model.net (or its Hydra factory's keywords) gives; vocab_size, which follows the
    vocabulary at setup, is left at its default."""
    known = {f.name for f in fields(A2AConfig)} - {"vocab_size"}
    return A2AConfig(**{k: v for k, v in net_config.items() if k in known})


def _option(value: object) -> object:
    """A setting as typed on the command line (true, not True)."""
    return json.dumps(value) if isinstance(value, bool) else value


def check_release_vqvae(vqvae: torch.nn.Module, init_from: str | Path, vqvae_ckpt: str | None) -> None:
    """A fine-tune's VQ-VAE must be its release's own (vqvae.safetensors, weights and buffers equal): the
    GPT learnt what that one's codes mean, and another's mean other pictures."""
    path = a2a_init_from_folder(init_from) / "vqvae.safetensors"
    if not same_state(load_weights(path), vqvae.state_dict()):
        given = f"model.vqvae_ckpt={vqvae_ckpt}" if vqvae_ckpt else "the VQ-VAE given"
        raise SupraUserError(f"{given} is another VQ-VAE than the one of model.init_from={init_from} (its codes mean other "
                             "pictures than those the release's GPT learnt): leave model.vqvae_ckpt unset, and the "
                             "release's vqvae.safetensors is used")


def load_a2a_checkpoint(path: str | Path) -> tuple[A2ANano, VQVAE, A2AVocab]:
    """(GPT, VQ-VAE, vocabulary), both models in eval mode, from a train.py checkpoint of kind supra.a2a."""
    checkpoint = load_supra_checkpoint(path, kind=A2A_CHECKPOINT)
    meta = checkpoint["supra"]
    if not meta.get("a2a_vocab") or not meta.get("vqvae_config"):
        raise SupraUserError(f"ckpt={path} lacks its vocabulary or VQ-VAE config: was it written by train.py?")
    vocab = A2AVocab.from_json(meta["a2a_vocab"])
    net_config = meta.get("net_config") or ((run_config_of(checkpoint) or {}).get("model") or {}).get("net") or {}
    state = net_state(checkpoint, "net.")
    net = built_to_fit(lambda: A2ANano(_gpt_config(net_config, vocab)), state, f"ckpt={path} (net.*)")
    load_state_strictly(net, state, f"ckpt={path} (net.*)")
    vqvae = _checkpoint_vqvae(checkpoint, f"ckpt={path}")
    check_pair(net, vqvae, vocab, f"ckpt={path}")
    return net.eval(), vqvae, vocab


def load_checkpoint_vqvae(path: str | Path, what: str = "ckpt_path") -> VQVAE:
    """The frozen VQ-VAE an a2a checkpoint (given as the option `what`) was trained over, in eval mode."""
    checkpoint = load_supra_checkpoint(path, kind=A2A_CHECKPOINT, what=what)
    if not checkpoint["supra"].get("vqvae_config"):
        raise SupraUserError(f"{what}={path} lacks its VQ-VAE config: was it written by train.py?")
    return _checkpoint_vqvae(checkpoint, f"{what}={path}")


def _checkpoint_vqvae(checkpoint: dict[str, Any], where: str) -> VQVAE:
    state = net_state(checkpoint, "vqvae.")
    vqvae = built_to_fit(lambda: VQVAE(**{k: v for k, v in checkpoint["supra"]["vqvae_config"].items()
                                          if not k.startswith("_")}), state, f"{where} (vqvae.*)")
    load_state_strictly(vqvae, state, f"{where} (vqvae.*)")
    return vqvae.eval()


def load_a2a(path: str | Path) -> tuple[A2ANano, VQVAE, A2AVocab]:
    """(GPT, VQ-VAE, vocabulary), both models in eval mode, from a release folder (local, or on the Hugging
    Face Hub: org/name[@revision]) or a supra.a2a checkpoint."""
    given, path = path, local_path(path)  # errors name what was typed (org/name), not the cache's folder
    kind = artifact_kind(given, accepts=(A2A_CHECKPOINT,))  # given: a missing path is named as typed
    refuse_other_kind(given, kind, A2A_MODEL)
    return load_a2a_release(path) if kind == A2A_RELEASE else load_a2a_checkpoint(path)


def load_stage1_vqvae(path: str | Path, what: str) -> tuple[torch.nn.Module, dict[str, Any] | None]:
    """A frozen stage-1 VQ-VAE in eval mode, from the option `what` (model.vqvae_ckpt, generate's vqvae=): a VQ-VAE
    checkpoint train.py wrote, with the config of its run, or an a2a release folder's vqvae.safetensors (no run
    config: None), local or on the Hugging Face Hub (org/name[@revision]); one line naming `what` for anything else."""
    given, path = path, local_path(path, what)  # errors name what was typed (org/name), not the cache's folder
    if not path.exists() or (path.is_dir() and release_kind(path) is None):  # what it takes, named
        problem = "is a folder but no a2a release" if path.is_dir() else "does not exist"
        raise SupraUserError(f"{what}={given} {problem}: give a VQ-VAE checkpoint (.ckpt) written by "
                             "`python train.py experiment=vqvae_shapes`, or an a2a release folder (its vqvae.safetensors)")
    kind = artifact_kind(path, what, accepts=(VQVAE_CHECKPOINT,))
    if kind == A2A_RELEASE:
        return load_release_vqvae(path), None  # a published stage 1
    refuse_other_kind(given, kind, VQVAE_MODEL, what)
    return load_vqvae(path, what=what)


def replace_vqvae(net: A2ANano, vocab: A2AVocab, vqvae_ckpt: str | Path) -> torch.nn.Module:
    """A VQ-VAE from its own train.py checkpoint or an a2a release folder, in place of the one in the pair; its
    codebook must fit."""
    vqvae, _ = load_stage1_vqvae(vqvae_ckpt, what="vqvae")
    check_pair(net, vqvae, vocab, f"vqvae={vqvae_ckpt}")
    return vqvae
