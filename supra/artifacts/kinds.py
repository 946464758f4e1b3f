"""The kinds of model files Supra reads and writes (checkpoints.artifact_kind says which one a path is).

Supra writes two sorts of files: train.py checkpoints (`.ckpt`, a Lightning checkpoint whose "supra"
section names its kind) and release folders (the published layouts of the two models). The kind decides
how a file is loaded, evaluated, exported and sampled; `refuse_other_kind` says, for a file of one kind given
where another model is read, what to give instead (or what reads it; for train.py's ckpt_path=, how to resume it).
"""

from __future__ import annotations

from pathlib import Path

from supra.utils.errors import SupraUserError
from supra.utils.files import parse_json

CAPTIONER_CHECKPOINT = "supra.captioning"  # train.py checkpoints, by the task that wrote them
VQVAE_CHECKPOINT = "supra.vqvae"
A2A_CHECKPOINT = "supra.a2a"
CAPTIONER_RELEASE = "release.supravl_nano"  # release folders: config.json + model.safetensors (+ vqvae.safetensors)
A2A_RELEASE = "release.a2a_nano"
CHECKPOINT_KINDS = (CAPTIONER_CHECKPOINT, VQVAE_CHECKPOINT, A2A_CHECKPOINT)
RELEASE_NAMES = {CAPTIONER_RELEASE: "a SupraVL-Nano (captioner) release", A2A_RELEASE: "an a2a_nano release"}
# every kind as a message names it: the kind strings above are the files' own labels
KIND_NAMES = {CAPTIONER_CHECKPOINT: "a captioner checkpoint", VQVAE_CHECKPOINT: "a VQ-VAE checkpoint",
              A2A_CHECKPOINT: "an a2a_nano checkpoint", **RELEASE_NAMES}


A2A_MODEL_TYPE = "supra_a2a_nano"  # config.json's model_type in an a2a release

# The models the commands read, and the kinds of file that hold each
CAPTIONER_MODEL, A2A_MODEL, VQVAE_MODEL = "captioner", "a2a_nano", "VQ-VAE"
MODEL_KINDS = {CAPTIONER_MODEL: (CAPTIONER_CHECKPOINT, CAPTIONER_RELEASE), A2A_MODEL: (A2A_CHECKPOINT, A2A_RELEASE),
               VQVAE_MODEL: (VQVAE_CHECKPOINT,)}
MODEL_OF = {kind: model for model, kinds in MODEL_KINDS.items() for kind in kinds}
_FOUND = {**KIND_NAMES, CAPTIONER_RELEASE: "a SupraVL-Nano captioner release"}  # "(captioner)" reads oddly here
_WANTED = {CAPTIONER_MODEL: "a captioner", A2A_MODEL: "an a2a_nano one", VQVAE_MODEL: "a VQ-VAE"}
# (the kind found, the model wanted): what to give instead, or what reads the file given ("{given}": the path). The
# loaders are called from Python too (a notebook): what reads a model names its Python loader beside the commands.
_READ_CAPTIONER = "load_captioner reads it in Python, python -m supra.caption and evaluate.py on the command line"
_GIVE_VQVAE = ("give a VQ-VAE checkpoint (a captioner is read by load_captioner in Python, python -m supra.caption and "
               "evaluate.py)")
_CAPTION_WITH_A2A = ("load_a2a reads it in Python; caption a picture with it by python -m supra.generate ckpt={given} "
                     "mode=image2text image=PICTURE")
_INSTEAD = {
    (CAPTIONER_CHECKPOINT, A2A_MODEL): _READ_CAPTIONER, (CAPTIONER_RELEASE, A2A_MODEL): _READ_CAPTIONER,
    (CAPTIONER_CHECKPOINT, VQVAE_MODEL): _GIVE_VQVAE, (CAPTIONER_RELEASE, VQVAE_MODEL): _GIVE_VQVAE,
    (A2A_CHECKPOINT, CAPTIONER_MODEL): _CAPTION_WITH_A2A, (A2A_RELEASE, CAPTIONER_MODEL): _CAPTION_WITH_A2A,
    (A2A_CHECKPOINT, VQVAE_MODEL): "give the VQ-VAE checkpoint it was trained over, or an a2a release folder "
                                   "(its vqvae.safetensors)",
    (VQVAE_CHECKPOINT, A2A_MODEL): "give the a2a_nano model trained over it (python -m supra.tokenize_media and "
                                   "evaluate.py read a VQ-VAE)",
    (VQVAE_CHECKPOINT, CAPTIONER_MODEL): "python -m supra.tokenize_media and evaluate.py read it",
}


# train.py's ckpt_path= resumes a run: the experiment that trains each kind of checkpoint
_RESUMED_BY = {CAPTIONER_CHECKPOINT: "experiment=vlm_shapes (or the captioner experiment its run used)",
               VQVAE_CHECKPOINT: "experiment=vqvae_shapes", A2A_CHECKPOINT: "experiment=a2a_shapes"}


def refuse_other_kind(given: str | Path, found: str, model: str, what: str = "ckpt") -> None:
    """The option `what`=`given`, a file of kind `found`, where `model` (one of MODEL_KINDS) is read: nothing when it
    holds one, else one line naming what it is and what to give instead (or what reads it); for train.py's
    ckpt_path=, how to resume it."""
    if found in MODEL_KINDS[model]:
        return
    holds = " (GPT + VQ-VAE)" if MODEL_OF.get(found) == A2A_MODEL and model == CAPTIONER_MODEL else ""
    found_name = _FOUND.get(found, f"a {found} checkpoint")  # a later Supra's kind: its own label
    instead = _INSTEAD.get((found, model), "give a checkpoint of that model").format(given=given)
    if what == "ckpt_path" and found in _RESUMED_BY:
        instead = f"resume it with python train.py {_RESUMED_BY[found]} ckpt_path={given} and its run's other overrides"
        if (found, model) == (VQVAE_CHECKPOINT, A2A_MODEL):  # a stage 1 for the a2a run to train over
            instead += f"; to train an a2a_nano model over it, give it as model.vqvae_ckpt={given} instead"
    raise SupraUserError(f"{what}={given} is {found_name}{holds}, not {_WANTED[model]}: {instead}")


def release_kind(folder: str | Path) -> str | None:
    """The kind of a release folder, or None when `folder` is not one (no config.json + model.safetensors).
    The a2a release holds its VQ-VAE beside the GPT, and its config.json says so: one that lost its VQ-VAE
    is still an a2a release (reading it then names the missing file), not a captioner."""
    folder = Path(folder)
    if not (folder.is_dir() and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        return None
    if (folder / "vqvae.safetensors").is_file():
        return A2A_RELEASE
    try:
        says_a2a = parse_json((folder / "config.json").read_text()).get("model_type") == A2A_MODEL_TYPE
    except (ValueError, AttributeError, OSError):  # unreadable: the captioner's reader names it
        says_a2a = False
    return A2A_RELEASE if says_a2a else CAPTIONER_RELEASE
