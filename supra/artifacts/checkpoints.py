"""Reading Supra's model files safely, with one-line errors for files that are not ours, and telling
what kind of file a path is (`artifact_kind`: one answer for every command that takes `ckpt=`)."""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from supra.artifacts.hub import RELEASE_FILES, local_path
from supra.artifacts.kinds import (
    CHECKPOINT_KINDS,
    KIND_NAMES,
    MODEL_OF,
    RELEASE_NAMES,
    VQVAE_CHECKPOINT,
    refuse_other_kind,
    release_kind,
)
from supra.artifacts.loaded_configs import instantiate_loaded, upgrade_run_config
from supra.tokens.a2a_vocab import A2AVocab
from supra.tokens.caption_bpe import CaptionTokenizer
from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import openable_path
from supra.utils.numbers import counted
from supra.utils.start_up import REPO_ROOT
from supra.utils.state_dicts import built_to_fit, check_state_fits

ANY_MODEL = "a .ckpt file written by train.py, a release folder or a Hugging Face Hub repo id (org/name)"


def load_supra_checkpoint(path: str | Path, kind: str | None = None, what: str = "ckpt",
                          mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by train.py (weights_only: no code runs while reading it). `mmap`: its tensors
    stay on disk until read, for a caller that reads only its records (the run config), not its weights.

    Raises SupraUserError naming the file (as the option `what` that gave it) if it is missing,
    unreadable, not a Supra checkpoint, or of another kind than `kind` (e.g. "supra.captioning").
    """
    path = Path(path)
    if path.is_dir():
        raise SupraUserError(f"{what}={path} is a directory: give a .ckpt file written by train.py")
    if not path.is_file():
        raise SupraUserError(f"{what}={path} does not exist: give a .ckpt file written by train.py")
    folder = release_of_file(path)
    if folder is not None:  # not a damaged checkpoint (torch's error would say so), nor one without a state_dict
        raise SupraUserError(f"{what}={path} is the {path.name} of the release folder {folder}, not a .ckpt written "
                             "by train.py")
    if path.suffix == ".safetensors":  # recent torch reads one as a plain dict of tensors: said as what it is
        raise bare_weights(path, "a safetensors file", what)
    try:
        # torch maps only its zip format: another file is read whole, to be named (or loaded) as without mmap
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, LookupError) as err:
        if (refusal := objects_refusal(f"{what}={path}", err, "checkpoints")) is not None:
            raise SupraUserError(refusal) from None
        # LookupError: torch's legacy unpickler on bytes that are no pickle says KeyError(101)
        reason = "not a PyTorch file" if isinstance(err, LookupError) else first_line(err, 120, sentence=True)
        raise SupraUserError(f"{what}={path} is not a readable PyTorch checkpoint ({reason}): "
                             "give a .ckpt written by train.py, and copy it again if it was cut short") from None
    if isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise bare_weights(path, f"a state dict of {counted(len(checkpoint), 'tensor')}, torch.save'd", what)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise SupraUserError(f"{what}={path} is not a Lightning checkpoint (no state_dict): give a .ckpt written by "
                             "train.py")
    meta = checkpoint.get("supra")
    if not isinstance(meta, dict) or "kind" not in meta:
        raise SupraUserError(f"{what}={path} was not written by Supra's train.py (no 'supra' section)")
    if kind is not None and meta["kind"] != kind:
        refuse_other_kind(path, meta["kind"], MODEL_OF[kind], what)
    return checkpoint


def bare_weights(path: Path, described: str, what: str = "ckpt") -> SupraUserError:
    """The refusal of weights alone given where a checkpoint is read: they hold no config or tokenizer to build
    and read the model with. Weights of a captioner in the release's tensor names make a release folder beside
    its config.json and tokenizer.json (docs/releases.md), which every command reads."""
    return SupraUserError(f"{what}={path} holds bare weights ({described}), not a .ckpt written by train.py: give "
                          "that, or a release folder (the weights as model.safetensors beside their config.json and "
                          f"tokenizer.json; {openable_path(REPO_ROOT / 'docs' / 'releases.md')})")


def release_of_file(path: Path) -> Path | None:
    """The release folder whose own file `path` is (its model.safetensors, config.json, model.pt, ...), or None."""
    return path.parent if path.name in RELEASE_FILES and path.is_file() and release_kind(path.parent) else None


def run_config_of(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The composed config of the run that wrote `checkpoint`, with the names of an older Supra layout
    brought up to date (loaded_configs.upgrade_run_config), or None."""
    run_cfg = checkpoint["supra"].get("run_config")
    return upgrade_run_config(run_cfg) if run_cfg else None


def net_state(checkpoint: dict[str, Any], prefix: str = "net.") -> dict[str, torch.Tensor]:
    """The part of a task checkpoint's state dict under `prefix`, without it ("net." = the model)."""
    return {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}


def objects_refusal(shown: str, err: BaseException, kind: str) -> str | None:
    """The line for torch.load(weights_only=True)'s refusal of a file holding pickled objects other than tensors
    (a crafted file's os.system): not loaded, which is true, where "cut short" would send the user to fetch the
    same file again; None for any other failure. `kind`: what to use only trusted ones of ("checkpoints").
    Only a refusal naming the global it met is told apart: torch says "Weights only load failed" of bytes that
    are no pickle at all (a file cut short) too."""
    named = re.search(r"\bGLOBAL ([\w.]+)", str(err))  # "Unsupported global: GLOBAL x.y", "unsupported GLOBAL x.y"
    if not isinstance(err, pickle.UnpicklingError) or "Weights only load failed" not in str(err) or not named:
        return None
    return (f"{shown} was not loaded: it holds objects other than tensors ({named[1]}), which could run code if "
            f"loaded, and no file Supra writes does: use only {kind} you trust")


def checkpoint_step(path: str | Path) -> int | None:
    """The global step a checkpoint file was saved at, memory-mapped (no weights read); None for a file that
    holds none or cannot be read."""
    try:
        step = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step")
    except (OSError, RuntimeError, ValueError, EOFError, AttributeError, pickle.UnpicklingError):
        return None
    return step if isinstance(step, int) else None


def refuse_changed_model(source: str, differ: list[tuple[str, object, object]], given: Collection[str] = (),
                         groups: Mapping[str, str] | None = None, along: Sequence[tuple[str, object]] = ()) -> None:
    """A resumed run's model.net settings that differ from its checkpoint's run (`differ`: key, theirs, ours),
    in one line: the weights would go on training as another model than the one they were trained as. `given`:
    the model.net keys this run's command line sets (those to drop); the others came from its configs, so the
    line names the checkpoint's to give, each by its config group where one chooses it (`groups`: key -> group,
    e.g. encoder -> model/encoder). `along`: (key, theirs) of the settings to give with those groups, where the
    checkpoint's differ from what the group's config gives (its vit.* sizes with model/encoder=vit)."""
    if not differ:
        return
    theirs, ours = (" ".join(_net_option(key, pair[i]) for key, *pair in differ) for i in (0, 1))
    raise SupraUserError(f"{source} was trained with {theirs}, this run sets {ours}: a resumed run goes on with its "
                         f"checkpoint's model, so resume with its settings"
                         f"{_resume_hint(differ, given, groups or {}, along)}")


def _resume_hint(differ: list[tuple[str, object, object]], given: Collection[str], groups: Mapping[str, str],
                 along: Sequence[tuple[str, object]]) -> str:
    """What to change: drop the command line's overrides; give the checkpoint's value of what a config chose
    (the default config, or a variant such as study=release: there is no override to drop), with the settings
    that group's config would give otherwise (`along`): one try names every one."""
    dropped = [_net_option(key, ours) for key, _, ours in differ if key in given]
    to_give = [(key, theirs) for key, theirs, _ in differ if key not in given]
    if not to_give and not along:
        return f" (drop {'the override' if len(dropped) == 1 else 'the overrides'})"
    hint = ": " + (f"drop {' '.join(dropped)}, " if dropped else "") + "give " + settings_to_give(to_give, groups, along)
    by_group = any(key in groups for key, _ in to_give)  # a variant of the study chooses these groups too
    return hint + (" (or the study= variant it ran)" if by_group else "")


def settings_to_give(to_give: Sequence[tuple[str, object]], groups: Mapping[str, str],
                     along: Sequence[tuple[str, object]] = ()) -> str:
    """The overrides that give another run's model.net settings (`to_give`: key, theirs), each by its config group
    where one chooses it (`groups`: encoder -> model/encoder=vit), then `along`'s, which that group's config would
    give otherwise (its vit.* sizes): a resumed run and a fine-tune (model.init_from) name them the same way."""
    return " ".join([f"{groups[key]}={theirs}" if key in groups else _net_option(key, theirs) for key, theirs in to_give]
                    + [_net_option(key, theirs) for key, theirs in along])


def _net_option(key: str, value: object) -> str:
    """A model.net setting as typed on the command line (true, not True)."""
    return f"model.net.{key}={json.dumps(value) if isinstance(value, bool) else value}"


def load_vqvae(path: str | Path, what: str = "ckpt") -> tuple[torch.nn.Module, dict[str, Any]]:
    """A VQ-VAE checkpoint from train.py -> (VQVAE in eval mode, the run config it was trained with)."""
    checkpoint = load_supra_checkpoint(path, kind=VQVAE_CHECKPOINT, what=what)
    run_cfg = run_config_of(checkpoint) or {}
    net_cfg = run_cfg.get("model", {}).get("net")
    if not isinstance(net_cfg, dict) or "_target_" not in net_cfg:
        raise SupraUserError(f"{what}={path} holds no VQ-VAE config (model.net): was it written by train.py?")
    state = net_state(checkpoint)
    net = built_to_fit(lambda: instantiate_loaded(net_cfg, f"{what}={path}", "run_config.model.net"), state,
                       f"{what}={path}")
    load_state_strictly(net, state, f"{what}={path}")
    return net.eval(), run_cfg


def load_state_strictly(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                        target: str = "this model", hint: str = "") -> None:
    """module.load_state_dict(state), with every missing, unexpected or wrongly shaped key reported in one
    line naming `source` (the file) and `target`, then `hint`, instead of torch's multi-line RuntimeError."""
    check_state_fits(module, state, source, target, hint)
    module.load_state_dict(state)


def artifact_kind(path: str | Path, what: str = "ckpt", accepts: Collection[str] = CHECKPOINT_KINDS) -> str:
    """One of CHECKPOINT_KINDS, CAPTIONER_RELEASE or A2A_RELEASE; a one-line SupraUserError naming `what`
    (the option that gave the path) for anything else. A Hugging Face Hub repo id (org/name[@revision]) is
    a release folder there. `accepts`: the kinds the calling command takes; a checkpoint of a kind this
    version does not know is told to give one of those (not one the command would refuse next)."""
    given, path = path, local_path(path, what)
    if not path.exists():  # every command that asks takes all three; load_supra_checkpoint would name .ckpt alone
        raise SupraUserError(f"{what}={given} does not exist: give {ANY_MODEL}")
    folder = release_of_file(path)
    if folder is not None:  # the folder is the model
        raise SupraUserError(f"{what}={path} is the {path.name} of the release folder {folder}: give the folder, "
                             f"{what}={folder}")
    if path.is_dir():
        kind = release_kind(path)
        if kind is None:
            raise SupraUserError(f"{what}={path} " + (lost_release_files(path) or f"is a folder without "
                                 f"{' and '.join(release_files_lacking(path))}: give a release folder or a .ckpt file "
                                 "written by train.py"))
        return kind
    kind = load_supra_checkpoint(path, what=what)["supra"]["kind"]
    if kind not in CHECKPOINT_KINDS:
        raise SupraUserError(f"{what}={path} is a {kind} checkpoint, which this version of Supra does not know: "
                             f"give {', '.join(KIND_NAMES[known] for known in CHECKPOINT_KINDS if known in accepts)}")
    return kind


# The files only a release folder holds: a run's folder, or evaluate.py's, may hold a README.md, samples.png or
# tokenizer.json too
RELEASE_ONLY_FILES = ("config.json", "model.safetensors", "vqvae.safetensors", "model.pt", "scoring.json")


def release_files_lacking(folder: Path) -> list[str]:
    """Which of the two files every release folder holds (config.json, model.safetensors) `folder` lacks."""
    return [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]


def lost_release_files(folder: Path) -> str | None:
    """For a folder that holds some of a release's own files but not config.json or model.safetensors (a copy
    that left one behind): what it lacks and what to do, as a sentence's end ("is a release folder without
    ..."); None for a folder that holds none of them."""
    held = [name for name in RELEASE_FILES if (folder / name).is_file()]
    if not any(name in RELEASE_ONLY_FILES for name in held):
        return None
    lacking = " and ".join(release_files_lacking(folder))
    return (f"is a release folder without {lacking} (it holds {', '.join(held)}): copy {lacking} again from where "
            "the release came from, or export the release again (python -m supra.export)")


def release_folder(spec: str | Path, kind: str, what: str = "model.init_from") -> Path:
    """The local folder of the release of `kind` that the option `what` names (a folder, or a Hub id:
    org/name[@revision]), or one line saying what it is instead: missing, a file (a checkpoint), a release
    of the other model, a folder that is no release (a run's)."""
    folder = local_path(spec, what)
    found = release_kind(folder)
    if found != kind:
        problem = ("does not exist" if not folder.exists() else
                   "is a file: it takes a release folder (python -m supra.export ckpt=FILE out=DIR writes one; "
                   "ckpt_path=FILE resumes a run instead)" if folder.is_file() else
                   f"is {RELEASE_NAMES[found]}: it takes {RELEASE_NAMES[kind]}" if found else
                   lost_release_files(folder) or "is not a release folder (config.json + model.safetensors)")
        raise SupraUserError(f"{what}={spec} {problem}")
    return folder


def saved_tokenizer(path: str | Path, what: str = "ckpt_path") -> CaptionTokenizer | A2AVocab | None:
    """The text tokenizer a checkpoint was trained with (the captioner's BPE, or a2a_nano's vocabulary), so
    a resumed run keeps its token ids; None for a VQ-VAE checkpoint, which has none."""
    meta = load_supra_checkpoint(path, what=what)["supra"]
    if meta.get("tokenizer"):
        return CaptionTokenizer.from_json(meta["tokenizer"])
    if meta.get("a2a_vocab"):
        return A2AVocab.from_json(meta["a2a_vocab"])
    return None
