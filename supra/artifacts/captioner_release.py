"""The SupraVL-Nano-900k release folder (docs/releases.md), written and read, and the same folder for
the roadmap's other architectures (docs/architectures.md).

    model.safetensors   the release's tensor names; the tied head saved under both of its names
    config.json         exactly the release keys (+ bos_token_id, eos_token_id); another architecture adds
                        its choices (encoder, fusion, resampler_layers, vit / pretrained, ...)
    tokenizer.json      the caption BPE
    model.pt            full training state: model, optimizer and scheduler
    README.md           model card: architecture, training settings, metrics, sample grid
    scoring.json        the run's decoding (model.decode), which evaluate.py scores the folder with

The release architecture (CNN encoder, prefix fusion, any sizes of its keys) writes exactly the release
format; a folder of another architecture is read back by evaluate.py, the caption command and export,
and never into a model of another architecture (one line says which differs).
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from supra.artifacts.checkpoints import (
    artifact_kind,
    load_state_strictly,
    load_supra_checkpoint,
    net_state,
    release_folder,
    run_config_of,
    settings_to_give,
)
from supra.artifacts.hub import card_front_matter, local_path
from supra.artifacts.kinds import (
    CAPTIONER_CHECKPOINT,
    CAPTIONER_MODEL,
    CAPTIONER_RELEASE,
    refuse_other_kind,
)
from supra.artifacts.release_files import (
    built_for_weights,
    check_run_grid,
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
    weights_shapes,
    write_config_json,
    write_scoring,
)
from supra.models.vlm_generation import DecodeConfig
from supra.models.vlm_nano import UNREAD_UNLESS, VLMNano, VLMNanoConfig, check_settings
from supra.tokens.caption_bpe import SPECIAL_TOKENS, CaptionTokenizer, SpecialTokensError
from supra.utils.cli import refuse_unread_options
from supra.utils.errors import SupraUserError
from supra.utils.files import atomic_dir
from supra.utils.numbers import counted, is_whole
from supra.utils.state_dicts import built_to_fit

RELEASE_KEYS = ("D_MODEL", "N_HEADS", "N_LAYERS", "D_FF", "VIS_CH", "N_VIS", "VOCAB_SIZE", "MAX_SEQ", "IMG_SIZE")
OPTIONAL_KEYS = ("attn.mask",)  # the release may carry causal-mask buffers; our model computes the mask
ARCHITECTURE_KEYS = ("encoder", "encoder_activation", "vit", "pretrained", "resampler_layers", "fusion",
                     "cross_attention_every")
CONFIG_KEYS = (*RELEASE_KEYS, *ARCHITECTURE_KEYS, "bos_token_id", "eos_token_id")  # all a config.json may hold


def architecture_of(config: dict) -> dict:
    """The roadmap choices a config.json or a run's model.net names (none: the release architecture)."""
    return {k: config[k] for k in ARCHITECTURE_KEYS if k in config}


def describe_architecture(config: VLMNanoConfig) -> str:
    """One phrase naming the encoder, its visual tokens and the fusion, e.g. 'vit encoder, 16 pooled
    visual tokens, cross_attention fusion'."""
    tokens = f"{config.N_VIS} {'resampled' if config.resampler_layers else 'pooled'} visual tokens"
    encoder = f"pretrained {config.pretrained.model}" if config.encoder == "pretrained" else config.encoder
    return f"{encoder} encoder, {tokens}, {config.fusion} fusion, {config.N_LAYERS} x {config.D_MODEL} decoder"


def saved_net_config(net_config: dict) -> dict:
    """The VLMNano settings of a saved config (a run's model.net or a folder's config.json): Hydra's keys and
    a pretrained tower's weights file left out (the saved weights bring its values), and the settings of an
    encoder or fusion it did not use (which an older Supra took without a word, and which changed nothing)."""
    config = {k: v for k, v in net_config.items() if not k.startswith("_")}
    for name in ("vit", "pretrained"):
        if config.get("encoder", "cnn") != name:
            config.pop(name, None)
    for (choice, owner), keys in UNREAD_UNLESS.items():  # e.g. encoder_activation of a vit run, cross_attention_every
        if config.get(choice, getattr(VLMNanoConfig, choice)) != owner:  # of a prefix one: they built nothing
            for key in keys:
                config.pop(key, None)
    if isinstance(config.get("pretrained"), dict):
        config["pretrained"] = {k: v for k, v in config["pretrained"].items() if k != "weights"}
    return config


# The model.net keys a config group chooses (conf/model/encoder/, conf/model/fusion/): another model's encoder is
# given as model/encoder=vit, which also brings the ViT's settings, not as a bare model.net.encoder=vit
CHOSEN_BY_GROUP = {"encoder": "model/encoder", "fusion": "model/fusion"}


def build_captioner(net_config: dict) -> VLMNano:
    """A VLMNano from a saved config (a run's model.net or a folder's config.json), to load saved weights
    into: a pretrained tower is built untrained, so its original file is not needed."""
    return VLMNano(**saved_net_config(net_config), rebuilt=True)


def run_length(trainer: dict) -> str:
    """What bounded a run, in words: Lightning's -1 (no bound) is not a number of steps or epochs to print."""
    steps, epochs = (trainer.get(key) for key in ("max_steps", "max_epochs"))
    bounds = [counted(steps, "step", grouped=True) if isinstance(steps, int) and steps >= 0 else None,
              counted(epochs, "epoch", grouped=True) if isinstance(epochs, int) and epochs >= 0 else None]
    given = [bound for bound in bounds if bound]
    if not given:
        return "until stopped (no max_steps or max_epochs)"
    return " or ".join(given) + (", whichever came first" if len(given) == 2 else "")


def trained_length(trainer: dict, step: Any) -> str:
    """The step the exported weights are of, then what bounded their run: a best.ckpt is often of an earlier step
    than the run's bound ("weights of step 40, of a run of 80 steps"). Without a step: the bound alone."""
    bound = run_length(trainer)
    if not is_whole(step, 0):
        return bound
    of_a_run = "of a run of" if bound[0].isdigit() else "of a run"  # "of a run until stopped (...)"
    return f"weights of step {step:,}, {of_a_run} {bound}"


def _named_with_settings(config: dict) -> str:
    """A config named by its `_target_` (torch.optim.SGD: SGD) with the settings it gives: "SGD lr 0.05, momentum 0.9"."""
    name = str(config.get("_target_") or "?").rsplit(".", 1)[-1]
    settings = [f"{key} {value}" for key, value in config.items() if not str(key).startswith("_")]
    return ", ".join([f"{name} {settings[0]}" if settings else name, *settings[1:]])


def describe_optimizer(optimizer: dict, weight_decay: Any) -> str:
    """The run's optimizer with the settings its config gives (an SGD has no betas to print), and the task's
    weight decay, which every optimizer gets in its groups."""
    return f"{_named_with_settings(optimizer)}, weight decay {weight_decay}"


def describe_schedule(scheduler: dict | None) -> str:
    """The run's learning-rate schedule: the recipes' warm-up + cosine in words, another by its `_target_` and
    settings, none (model.scheduler=null) as the constant rate it is."""
    if not scheduler:
        return "none (a constant learning rate)"
    if scheduler.get("_target_") == "supra.tasks.lr_schedules.warmup_cosine":
        return f"warm-up {counted(scheduler.get('warmup_steps'), 'step')}, cosine to {scheduler.get('min_lr')}"
    return _named_with_settings(scheduler)


def _model_card(config: dict, run_config: dict | None, metrics: dict | None, has_grid: bool, step: Any) -> str:
    net_config = release_net_config(config)
    title = "SupraVL-Nano-900k" if net_config.is_release_architecture else "Supra captioner (SupraVL-Nano roadmap)"
    lines = [f"# {title} (exported by Supra)", "",
             f"Image captioner: {describe_architecture(net_config)}.", "",
             "## Architecture", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in config.items()]
    if run_config:
        model, trainer = run_config.get("model", {}), run_config.get("trainer", {})
        data = run_config.get("data", {})
        lines += ["", "## Training", "",
                  f"- data: `{data.get('_target_', '?')}`, batch {data.get('batch_size', '?')}",
                  f"- optimizer: {describe_optimizer(model.get('optimizer') or {}, model.get('weight_decay'))}",
                  f"- schedule: {describe_schedule(model.get('scheduler'))}",
                  f"- {trained_length(trainer, step)}, precision {trainer.get('precision')}, "
                  f"gradient clipping {trainer.get('gradient_clip_val') or 'off'}"]
    if metrics:
        lines += ["", f"## Metrics ({metrics.get('split', 'test')} split, {counted(metrics.get('n_images', '?'), 'image')}, "
                      f"decode={metrics.get('decode', 'beam')})", ""]
        lines += metrics_table(metrics)
    if has_grid:
        lines += ["", "## Samples", "", "![sample captions](samples.png)"]
    if net_config.is_release_architecture:
        lines += ["", "## Use", "", "Build the model from config.json, load model.safetensors, tie `lm_head` to `tok_emb`,",
                  "caption with beam search of width 3 (BOS/EOS ids in config.json).", ""]
    else:
        lines += ["", "## Use", "", "`python -m supra.caption ckpt=<this folder> images=<folder>` or "
                  "`python evaluate.py ckpt=<this folder>`; `supra.artifacts.captioner_release.load_captioner` in Python.", ""]
    return "\n".join(lines)


def export_release(ckpt: str | Path, out_dir: str | Path, license: str = "other") -> Path:
    """Write the release folder for a captioning checkpoint; the folder appears complete or not at all."""
    net, tokenizer, run_config, checkpoint = _from_checkpoint(ckpt)
    config = {**net.config.release_config, **net.config.architecture,
              "bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id}
    metrics, grid = run_results(ckpt)  # the run's test metrics and sample grid, when they are this checkpoint's
    if grid is not None:
        check_run_grid(grid, ckpt)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        save_weights(net, tmp / "model.safetensors")
        write_config_json(tmp, config)
        (tmp / "tokenizer.json").write_text(tokenizer.to_json())
        torch.save({"model": net.state_dict(), "optimizer": (checkpoint.get("optimizer_states") or [None])[0],
                    "scheduler": (checkpoint.get("lr_schedulers") or [None])[0],
                    "global_step": checkpoint.get("global_step")}, tmp / "model.pt")
        if grid is not None:
            shutil.copyfile(grid, tmp / "samples.png")
        # the decoding of the test whose scores the card prints (a resumed run's carried best.ckpt keeps the
        # earlier run's), so that evaluate.py of the release gives them again
        write_scoring(tmp, {"decode": scored_model_settings(ckpt, run_config, metrics).get("decode") or {}})
        name = "SupraVL-Nano-900k" if net.config.is_release_architecture else "Supra captioner (SupraVL-Nano roadmap)"
        front = card_front_matter("image-to-text", name, ["supra", "image-captioning", "supravl-nano"],
                                  data_names(run_config), metrics, license)
        (tmp / "README.md").write_text(front + _model_card(config, run_config, metrics, grid is not None,
                                                              checkpoint.get("global_step")))
    return out_dir


def read_release_config(folder: str | Path) -> dict:
    """config.json of a captioner release, checked whole: the release keys there, every setting of a type and
    value a model can be built from, and a captioner they (with the architecture's choices) can build, its ViT
    included; one line naming the file otherwise."""
    folder = Path(folder)
    path = folder / "config.json"
    config = read_config_json(folder)
    missing = [k for k in RELEASE_KEYS if k not in config]
    if missing:
        raise SupraUserError(f"{path} lacks the release keys {missing}")
    try:  # every setting's type and least value, named as the file spells it ("vit.patch_size=0")
        check_settings({k: v for k, v in config.items() if k in RELEASE_KEYS or k in ARCHITECTURE_KEYS}, prefix="")
    except SupraUserError as err:
        raise SupraUserError(f"{path}: {err}: fix the file, or export the release again") from None
    unknown = [k for k in config if k not in CONFIG_KEYS]
    if unknown:  # a misspelt choice would otherwise be dropped, and the model built with its default
        close = difflib.get_close_matches(unknown[0], CONFIG_KEYS, n=1)
        hint = f"did you mean {close[0]}?" if close else f"its keys: {', '.join(CONFIG_KEYS)}"
        raise SupraUserError(f"{path} has the unknown key {unknown[0]} ({hint}): fix the file, or export the release again")
    try:
        release_net_config(config)
    except (SupraUserError, TypeError, ValueError) as err:  # VLMNanoConfig's own checks (N_HEADS, widths, ...)
        raise SupraUserError(f"{path}: {err}: fix the file, or export the release again") from None
    return config


def release_net_config(config: dict) -> VLMNanoConfig:
    """The VLMNanoConfig a release's config.json describes (its release keys and architecture choices)."""
    return VLMNanoConfig(**saved_net_config({k: v for k, v in config.items() if k in RELEASE_KEYS or k in ARCHITECTURE_KEYS}))


def read_release(folder: str | Path) -> tuple[dict, CaptionTokenizer]:
    """(config.json, tokenizer) of a captioner release, both checked and checked to belong together: the one
    reading of them that caption, evaluate, export and a fine-tune (model.init_from) all go through."""
    folder = Path(folder)
    config = read_release_config(folder)
    tokenizer = read_release_tokenizer(folder)
    # captions start and stop at the tokenizer's ids: a config.json naming others would be decoded otherwise
    # by code that reads them from there (the reference does), so the two must agree
    named = (config.get("bos_token_id", tokenizer.bos_id), config.get("eos_token_id", tokenizer.eos_id))
    if named != (tokenizer.bos_id, tokenizer.eos_id):
        raise SupraUserError(f"{folder}/config.json names bos_token_id={named[0]}, eos_token_id={named[1]} but its "
                             f"tokenizer.json has {tokenizer.bos_id} and {tokenizer.eos_id}: the files do not belong together")
    return config, tokenizer


def init_from_folder(init_from: str | Path) -> Path:
    """The local folder of the captioner release `model.init_from` names (a folder or a Hub id), or one line
    saying what it is instead: missing, a checkpoint file, an a2a release, a run's folder."""
    return release_folder(init_from, CAPTIONER_RELEASE)


def load_release_weights(net: VLMNano, folder: str | Path) -> None:
    """Load model.safetensors of the release `model.init_from` names into `net`: names and shapes checked
    strictly, the optional attn.mask buffers ignored; any mismatch is reported in one message."""
    path = init_from_folder(folder) / "model.safetensors"
    folder_config = release_net_config(read_release(path.parent)[0])
    if architecture_differences(folder_config, net.config):
        differ = model_differences(folder_config, net.config)  # its sizes too: one try names every setting to change
        # with model/encoder=vit, the folder's vit.* sizes: that group's config would give its own
        to_give = settings_to_give([(k, theirs) for k, theirs, _ in differ], CHOSEN_BY_GROUP,
                                   settings_of_their_choices(folder_config, net.config))
        raise SupraUserError(f"{path.parent} holds a captioner with {describe_architecture(folder_config)}; this model has "
                             f"{describe_architecture(net.config)} ("
                             + ", ".join(f"{k}={theirs} there, {ours} here" for k, theirs, ours in differ)
                             + f"): choose the same model.net settings: give {to_give}, or a folder of this architecture")
    sizes = [k for k in RELEASE_KEYS if getattr(folder_config, k) != getattr(net.config, k)]
    if sizes:  # before the weights, whose wrong shapes would not say which setting to change
        raise SupraUserError(f"{path.parent} holds a captioner of other sizes ("
                             + ", ".join(f"{k}={getattr(folder_config, k)} there, {getattr(net.config, k)} here" for k in sizes)
                             + "): add " + " ".join(f"model.net.{k}={getattr(folder_config, k)}" for k in sizes)
                             + ", or choose a folder of this model's sizes")
    state = {k: v for k, v in load_weights(path).items() if not k.endswith(OPTIONAL_KEYS)}
    load_release_weights_file(net, path, state, tied_head=True)
    net.lm_head.weight = net.tok_emb.weight  # re-tie: loading gave the head its own copy of the values


def model_differences(theirs: VLMNanoConfig, ours: VLMNanoConfig) -> list[tuple[str, object, object]]:
    """(model.net key, theirs, ours) for each setting in which two captioners are other models: the release
    keys (sizes; a pretrained tower decides IMG_SIZE itself) and the roadmap choices."""
    tower = theirs.encoder == ours.encoder == "pretrained"
    sizes = [(k, getattr(theirs, k), getattr(ours, k)) for k in RELEASE_KEYS
             if getattr(theirs, k) != getattr(ours, k) and not (tower and k == "IMG_SIZE")]
    return sizes + architecture_differences(theirs, ours)


def architecture_differences(theirs: VLMNanoConfig, ours: VLMNanoConfig) -> list[tuple[str, object, object]]:
    """(dotted model.net key, theirs, ours) for each roadmap choice (`architecture`) in which two configs differ."""
    their_choices, our_choices = _flat(theirs.architecture), _flat(ours.architecture)
    differ = []
    for key in sorted(their_choices.keys() | our_choices.keys()):  # a choice left at its default is not listed
        group = key.partition(".")[0]
        if group in ("vit", "pretrained") and theirs.encoder != ours.encoder:
            continue  # the settings of an encoder one side does not have: `encoder` says what differs
        if not _read_by_both(key, theirs, ours):
            continue  # cross_attention_every of a prefix model: a default it never read, and `fusion` differs
        pair = (their_choices.get(key, _value(theirs, key)), our_choices.get(key, _value(ours, key)))
        if pair[0] != pair[1]:
            differ.append((key, *pair))
    return differ


def settings_of_their_choices(theirs: VLMNanoConfig, ours: VLMNanoConfig) -> list[tuple[str, object]]:
    """(dotted model.net key, theirs) for each setting that only an encoder or fusion `theirs` chose and `ours` did
    not reads (vit.*, cross_attention_every, ...), where it is off what that choice's config gives: the settings to
    give along with model/encoder=vit, which brings the ViT's default sizes (architecture_differences leaves them
    out, as `encoder` says what differs)."""
    plain = VLMNanoConfig(encoder=theirs.encoder, fusion=theirs.fusion)  # what the config groups of their choices give
    along = []
    for key, value in sorted(_flat(theirs.architecture).items()):
        owner = _owner(key)
        if owner and getattr(theirs, owner[0]) == owner[1] != getattr(ours, owner[0]) and value != _value(plain, key):
            along.append((key, value))
    return along


def _owner(key: str) -> tuple[str, str] | None:
    """The (choice, value) whose model alone reads the setting `key` (vit.layers: encoder=vit), or None."""
    group = key.partition(".")[0]
    if group in ("vit", "pretrained"):
        return "encoder", group
    return next((owner for owner, keys in UNREAD_UNLESS.items() if key in keys), None)


def _read_by_both(key: str, theirs: VLMNanoConfig, ours: VLMNanoConfig) -> bool:
    """Whether both models read the setting `key`: not one only an encoder or fusion reads (UNREAD_UNLESS) that
    one of them did not choose."""
    return all(getattr(config, choice) == owner for (choice, owner), keys in UNREAD_UNLESS.items() if key in keys
               for config in (theirs, ours))


def _flat(choices: dict, prefix: str = "") -> dict[str, object]:
    """{"vit": {"layers": 2}} -> {"vit.layers": 2}: the architecture's choices as model.net keys."""
    flat: dict[str, object] = {}
    for key, value in choices.items():
        flat |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return flat


def _value(config: VLMNanoConfig, key: str) -> object:
    """The setting a dotted model.net key names ("vit.layers")."""
    for part in key.split("."):
        config = getattr(config, part)
    return config


def load_release_tokenizer(folder: str | Path) -> CaptionTokenizer:
    """The tokenizer of the captioner release `model.init_from` names, read with its config.json (read_release)."""
    return read_release(local_path(folder, "model.init_from"))[1]


def read_release_tokenizer(folder: Path) -> CaptionTokenizer:
    """tokenizer.json of a captioner release; one line saying whether it is missing, unreadable, or a
    tokenizer whose special tokens are not the captioner's (ids 0-3: SPECIAL_TOKENS)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise SupraUserError(f"{path} is missing: a release folder needs its tokenizer (export the release again)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises bare Exceptions on bad JSON
        raise SupraUserError(f"{path} is not a readable tokenizer ({err}): export the release again") from None
    try:
        return CaptionTokenizer(tokenizer)
    except SpecialTokensError as err:
        raise SupraUserError(f"{path} reads, but its ids 0-3 are {' '.join(map(str, err.found))}, and a Supra "
                             f"captioner's are its special tokens {' '.join(SPECIAL_TOKENS)}: give the tokenizer.json "
                             "the model was trained with (a Supra export's)") from None


def load_release(folder: str | Path) -> tuple[VLMNano, CaptionTokenizer, dict]:
    """(net in eval mode, tokenizer, config.json) from a release folder, local or on the Hugging Face Hub
    (org/name[@revision]); load_captioner reads a checkpoint too."""
    folder = given_release_folder(local_path(folder), "load_captioner")
    config, tokenizer = read_release(folder)
    net_config = {**{k: config[k] for k in RELEASE_KEYS}, **architecture_of(config)}
    path = folder / "model.safetensors"
    shapes = {k: v for k, v in weights_shapes(path).items() if not k.endswith(OPTIONAL_KEYS)}
    net = built_for_weights(lambda: build_captioner(net_config), path, shapes, tied_head=True)
    load_release_weights(net, folder)
    return net.eval(), tokenizer, config


def _from_checkpoint(path: str | Path) -> tuple[VLMNano, CaptionTokenizer, dict, dict]:
    """(net in eval mode, tokenizer, run config, the checkpoint itself) from a train.py checkpoint."""
    checkpoint = load_supra_checkpoint(path, kind=CAPTIONER_CHECKPOINT)
    run_config, tokenizer_json = run_config_of(checkpoint), checkpoint["supra"].get("tokenizer")
    if not run_config or not tokenizer_json:
        raise SupraUserError(f"ckpt={path} lacks its run config or tokenizer: was it written by train.py?")
    state = net_state(checkpoint)
    net = built_to_fit(lambda: build_captioner(run_config["model"]["net"]), state, f"ckpt={path}")
    load_state_strictly(net, state, f"ckpt={path}")
    return net.eval(), CaptionTokenizer.from_json(tokenizer_json), run_config, checkpoint


def scored_decoding(path: str | Path, run_config: dict | None) -> dict[str, Any]:
    """The decoding a captioner's scores were measured with: its run's model.decode for a checkpoint (its
    run config), a release's scoring.json ({} for a release made without one)."""
    if run_config:
        return dict((run_config.get("model") or {}).get("decode") or {})
    return dict(read_scoring(local_path(path)).get("decode") or {})


def checkpoint_decoding(path: str | Path, run_config: dict | None, **given: Any) -> DecodeConfig:
    """The decoding a captioner was scored with (scored_decoding: width, length penalty, strategy, ...), with
    the settings the user gave over it (those not None): evaluate.py, caption, explain and the demo all
    caption with it, so an image gets one caption from each and evaluate.py the run's own test scores."""
    return DecodeConfig(**{**scored_decoding(path, run_config), **{k: v for k, v in given.items() if v is not None}})


# The decoding options of evaluate.py and explain (conf/eval.yaml, conf/explain.yaml) beside decode=.
STRATEGY_OPTIONS = ("beam_width", "seed")


def command_decoding(cfg: Mapping[str, Any], config_name: str, net: VLMNano, run_config: dict | None) -> DecodeConfig:
    """checkpoint_decoding with a command's decode=, beam_width= and seed= over the run's, checked before any
    work: a beam wider than the model's vocabulary, and beam_width= or seed= given to a strategy that does not
    read it (decode=greedy beam_width=5; seed= with beam search), which would be ignored without a word."""
    decode = checkpoint_decoding(cfg["ckpt"], run_config, strategy=cfg["decode"], beam_width=cfg["beam_width"],
                                 seed=cfg["seed"])
    decode.check_vocabulary(net.config.VOCAB_SIZE)
    read = decode.settings_used()
    strategy = f"decode={decode.strategy}" + ("" if cfg["decode"] else " (the model's run's)")
    refuse_unread_options(cfg, config_name, [o for o in STRATEGY_OPTIONS if o not in read], strategy,
                          [o for o in STRATEGY_OPTIONS if o in read])
    return decode


def load_captioner(path: str | Path) -> tuple[VLMNano, CaptionTokenizer, dict | None]:
    """(net in eval mode, tokenizer, training run config or None) from a train.py checkpoint or a release
    folder, local or on the Hugging Face Hub (org/name[@revision])."""
    given, path = path, local_path(path)  # errors name what was typed (org/name), not the cache's folder
    kind = artifact_kind(given, accepts=(CAPTIONER_CHECKPOINT,))  # given: a missing path is named as typed
    refuse_other_kind(given, kind, CAPTIONER_MODEL)  # an a2a model captions too, by its own command
    if kind == CAPTIONER_RELEASE:
        net, tokenizer, _ = load_release(path)
        return net, tokenizer, None
    net, tokenizer, run_config, _ = _from_checkpoint(path)
    return net, tokenizer, run_config
