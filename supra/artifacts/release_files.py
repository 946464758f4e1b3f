"""The files both release folders are made of: weights as safetensors, config.json, and the metrics of the
run a checkpoint came from (for the model card), each read with one-line errors naming the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from supra.artifacts.checkpoints import checkpoint_step
from supra.metrics.caption_scores import SCORER_FAMILIES
from supra.models.a2a_generation import GENERATION_KEYS, generation_setting_problem
from supra.models.vlm_generation import DecodeConfig
from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import give_plain_permissions, parse_json
from supra.utils.numbers import noun_for
from supra.utils.state_dicts import check_state_fits, shapes_only, with_unread_counters


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """The module's state dict as safetensors. Tied weights are saved as copies under each name:
    safetensors refuses tensors that share memory."""
    state = {k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()}
    save_file(state, path, metadata={"format": "pt"})
    give_plain_permissions(path)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own error types
        raise SupraUserError(f"{path} is not a readable safetensors file ({err})") from None


HEAD, EMBEDDING = "lm_head.weight", "tok_emb.weight"  # a tied head's two names (both GPTs)


def with_tied_head(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a model whose head is tied to its token embedding, as loading needs them: a file may leave
    the head out (the published loader ties it to the embedding again, as Supra does), but not the embedding,
    which one line names with the cause where the head is there."""
    if EMBEDDING not in state and HEAD in state:
        raise SupraUserError(f"{path} lacks {EMBEDDING}, the token embedding that {HEAD} is tied to: it was saved with "
                             "its tied weights de-duplicated (safetensors' save_model keeps one name of the two), and "
                             "the head is tied to the embedding, not the other way: save the state dict with both names "
                             "(safetensors' save_file), or export the release again (python -m supra.export)")
    return state if HEAD in state or EMBEDDING not in state else {**state, HEAD: state[EMBEDDING]}


def load_release_weights_file(module: torch.nn.Module, path: Path, state: dict[str, torch.Tensor] | None = None,
                              tied_head: bool = False) -> None:
    """Load a release's weights file (`state`: its tensors, when read already) into `module`, built as the
    folder's config.json says (`tied_head`: its head tied to its embedding, with_tied_head). The BatchNorm
    counters a converter dropped are not needed (with_unread_counters); any other mismatch means the two files
    are not of one model, so both are named."""
    state = load_weights(path) if state is None else state
    state = _fitting_state(module, state, path, tied_head)
    module.load_state_dict(state)


def built_for_weights(build: Callable[[], torch.nn.Module], path: Path, state: dict[str, torch.Tensor] | None = None,
                      tied_head: bool = False) -> torch.nn.Module:
    """`build()` (the model a folder's config.json describes), once the shapes in the header of its weights file
    `path` (or `state`'s) are found to fit it, as load_release_weights_file checks them: built first on the
    meta device, which holds no memory, so a config.json edited to VOCAB_SIZE=10**9 is that one line, not
    gigabytes taken before it."""
    state = weights_shapes(path) if state is None else state
    with shapes_only():
        _fitting_state(build(), state, path, tied_head)
    return build()


def weights_shapes(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as meta tensors: their names and shapes, read from its header alone."""
    try:
        with safe_open(path, "pt") as weights:
            names = weights.keys()  # a safe_open is no mapping: its names are asked for
            return {name: torch.empty(weights.get_slice(name).get_shape(), device="meta") for name in names}
    except Exception as err:  # safetensors raises its own error types
        raise SupraUserError(f"{path} is not a readable safetensors file ({err})") from None


def _fitting_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path,
                   tied_head: bool) -> dict[str, torch.Tensor]:
    """`state` as `module` loads it (a tied head, BatchNorm counters), or one line naming both files."""
    state = with_unread_counters(module, with_tied_head(state, path) if tied_head else state)
    check_state_fits(module, state, str(path), f"the model {path.parent / 'config.json'} describes",
                     f": config.json and {path.name} are not of one model (one was edited or replaced): export "
                     "the release again (python -m supra.export)")
    return state


def given_release_folder(folder: str | Path, loader: str) -> Path:
    """`folder` as a Path, or one line for what no release folder is: a file (a checkpoint, which `loader` reads;
    its config.json was said to be "not readable JSON (Not a directory)"), or no path at all (None)."""
    if not isinstance(folder, str | Path):
        raise SupraUserError(f"{folder!r} is not a path: give a release folder (or any model file to {loader})")
    folder = Path(folder)
    if folder.is_file():
        raise SupraUserError(f"{folder} is a file, not a release folder: call {loader}({str(folder)!r}), which reads "
                             "checkpoints and release folders both")
    return folder


def read_config_json(folder: Path) -> dict[str, Any]:
    """config.json of a release folder, which must hold a JSON object (a `null` or a list edited in would
    fail later in whatever first looks a key up)."""
    try:
        config = parse_json((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SupraUserError(f"{folder / 'config.json'} is not readable JSON ({err})") from None
    if not isinstance(config, dict):
        raise SupraUserError(f"{folder / 'config.json'} holds {json.dumps(config)[:40]}, not a model's settings (a JSON "
                             "object): export the release again (python -m supra.export)")
    return config


def write_config_json(folder: Path, config: dict[str, Any]) -> None:
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


# How the run scored the metrics on a release's card: a captioner's decoding (model.decode), an a2a model's
# generation and loss (model.generation, code_softmax, test_metrics). evaluate.py scores a release with them,
# as it scores the checkpoint with its run's; without the file (a release made elsewhere) with its defaults.
SCORING_FILE = "scoring.json"


def write_scoring(folder: Path, settings: dict[str, Any]) -> None:
    (folder / SCORING_FILE).write_text(json.dumps(settings, indent=2) + "\n")


# What scoring.json may hold: a captioner's model.decode (DecodeConfig's fields), an a2a model's
# model.generation (A2ATask's sampling settings, conf/model/a2a_nano.yaml), code_softmax and test_metrics.
SCORING_KEYS = ("decode", "generation", "code_softmax", "test_metrics")
SCORING_FIX = "fix it (or export the release again), or delete it to score with the defaults"


def read_scoring(folder: str | Path) -> dict[str, Any]:
    """A release folder's scoring settings ({} when it has none), each field checked: a file edited by hand
    is refused in one line naming it, not a TypeError where a setting is first used."""
    path = Path(folder) / SCORING_FILE
    if not path.is_file():
        return {}
    try:
        settings = parse_json(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SupraUserError(f"{path} is not readable JSON ({err}): export the release again, or delete it to "
                             "score with the defaults") from None
    if not isinstance(settings, dict):
        raise SupraUserError(f"{path} holds {type(settings).__name__}, not the settings of a run: export the release "
                             "again, or delete it to score with the defaults")
    problem = _scoring_problem(settings)
    if problem:
        raise SupraUserError(f"{path}: {problem}: {SCORING_FIX}")
    return settings


JSON_KINDS = {"int": ((int,), "a whole number"), "float": ((int, float), "a number"), "str": ((str,), "a string"),
              "None": ((type(None),), "null")}


def _fits(value: Any, annotation: str) -> bool:
    """Whether a JSON value fits a DecodeConfig field's annotation ("int", "float", "int | None", "str")."""
    options = [part.strip() for part in annotation.split("|")]
    return not isinstance(value, bool) and any(isinstance(value, JSON_KINDS[o][0]) for o in options if o in JSON_KINDS)


def _described(annotation: str) -> str:
    return " or ".join(JSON_KINDS[o.strip()][1] for o in annotation.split("|") if o.strip() in JSON_KINDS)


def _scoring_problem(settings: dict[str, Any]) -> str | None:
    """What is wrong with scoring.json's fields, in a phrase, or None."""
    unknown = [key for key in settings if key not in SCORING_KEYS]
    if unknown:
        return f"unknown {noun_for(len(unknown), 'field')} {', '.join(map(repr, unknown))} (it may hold {', '.join(SCORING_KEYS)})"
    decode, generation = settings.get("decode"), settings.get("generation")
    if decode is not None:
        if not isinstance(decode, dict):
            return f'"decode" is {json.dumps(decode)[:40]}, not an object of decoding settings'
        known = {f.name: str(f.type) for f in fields(DecodeConfig)}
        unknown = [key for key in decode if key not in known]
        if unknown:
            return f'"decode" has unknown {noun_for(len(unknown), "setting")} {", ".join(map(repr, unknown))} (known: {", ".join(known)})'
        for key, value in decode.items():
            if not _fits(value, known[key]):
                return f'"decode".{key}={json.dumps(value)} must be {_described(known[key])}'
        try:
            DecodeConfig(**decode)
        except (SupraUserError, TypeError) as err:
            return f'"decode" does not work ({err})'
    if generation is not None:
        if not isinstance(generation, dict):
            return f'"generation" is {json.dumps(generation)[:40]}, not an object of sampling settings'
        unknown = [key for key in generation if key not in GENERATION_KEYS]
        if unknown:
            return (f'"generation" has unknown {noun_for(len(unknown), "setting")} {", ".join(map(repr, unknown))} '
                    f"(known: {', '.join(GENERATION_KEYS)})")
        for key, value in generation.items():
            # the sampler's own type and range (a best_of of 0, a negative temperature): else a traceback mid-test
            problem = generation_setting_problem(key, value)
            if problem:
                return f'"generation".{key}={json.dumps(value)} {problem}'
    if "code_softmax" in settings and not isinstance(settings["code_softmax"], bool):
        return f'"code_softmax"={json.dumps(settings["code_softmax"])} must be true or false'
    metrics = settings.get("test_metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            return f'"test_metrics"={json.dumps(metrics)} must be a list of metric names, e.g. {json.dumps(SCORER_FAMILIES)}'
        unknown = [m for m in metrics if m not in SCORER_FAMILIES]
        if unknown:
            return f'"test_metrics" names unknown {noun_for(len(unknown), "metric")} {", ".join(unknown)} (choose from {", ".join(SCORER_FAMILIES)})'
    return None


def run_dir_of(ckpt: str | Path) -> Path:
    """train.py writes checkpoints to <run dir>/checkpoints/*.ckpt."""
    return Path(ckpt).resolve().parent.parent


def tested_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run's test scored: checkpoints/best.ckpt, else last.ckpt (its last weights when it kept
    no best); None when it has neither."""
    folder = run_dir / "checkpoints"
    return next((path for path in (folder / "best.ckpt", folder / "last.ckpt") if path.is_file()), None)


def tested_by_its_run(ckpt: str | Path) -> bool:
    """Whether `ckpt` holds the weights its run was tested with (its metrics.json and samples.png): the tested
    checkpoint, or one saved at the same step (an earlier one, or last.ckpt past the best, was not)."""
    tested = tested_checkpoint(run_dir_of(ckpt))
    if tested is None:
        return False
    step = checkpoint_step(tested)
    return Path(ckpt).resolve() == tested.resolve() or (step is not None and checkpoint_step(ckpt) == step)


def run_results(ckpt: str | Path) -> tuple[dict[str, Any] | None, Path | None]:
    """The test metrics (metrics.json) and sample grid (samples.png) of the run that wrote `ckpt`, each where
    the run wrote it, when they are `ckpt`'s own (tested_by_its_run); else None. Only a run that tested
    (its metrics.json is the test's report) has a test grid: the samples.png of a run with test=false (every
    sweep trial) is its last validation's, which a card must not show as the test's. A metrics.json that
    cannot be read (cut short, edited) is one line naming it; the grid is checked where it is used
    (check_run_grid)."""
    run = run_dir_of(ckpt)
    metrics, grid = run / "metrics.json", run / "samples.png"
    if not metrics.is_file() or not tested_by_its_run(ckpt):
        return None, None
    remedy = (f"move it away to export without the run's test scores (`python evaluate.py ckpt={ckpt}` "
              "writes them again in its own run folder)")
    try:
        scores = parse_json(metrics.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SupraUserError(f"{metrics}, the test scores of the checkpoint's run, is not readable JSON ({err}): "
                             f"{remedy}") from None
    if not isinstance(scores, dict):
        raise SupraUserError(f"{metrics}, the test scores of the checkpoint's run, holds {json.dumps(scores)[:40]}, not "
                             f"the metrics a test writes (a JSON object): {remedy}")
    return scores, (grid if grid.is_file() else None)


# The model settings a test's scores depend on: a captioner's decoding, an a2a model's sampling and scoring.
SCORED_MODEL_KEYS = ("decode", "generation", "code_softmax", "test_metrics")


def scored_model_settings(ckpt: str | Path, run_config: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The model settings (SCORED_MODEL_KEYS) a release of `ckpt` is scored with: those of the run whose test
    metrics its card prints (`metrics`, from run_results), read from that run's saved config, else the
    checkpoint's own (`run_config`). They differ for a resumed run's best.ckpt carried over from the run it
    resumed (a copy, keeping that run's settings) and tested with the settings given now: the card's scores,
    scoring.json and evaluate.py of the release agree only with the run's."""
    stored = run_config.get("model") or {}
    settings = {key: stored[key] for key in SCORED_MODEL_KEYS if key in stored}
    if metrics is None:
        return settings
    try:
        model = OmegaConf.load(run_dir_of(ckpt) / ".hydra" / "config.yaml").get("model")
    except Exception:  # noqa: BLE001 - none saved (a run in-process, hydra.output_subdir=null): the checkpoint's
        return settings
    for key in SCORED_MODEL_KEYS if isinstance(model, DictConfig) else ():
        try:
            value = model[key]
            settings[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) \
                else value
        except Exception:  # noqa: BLE001 - not given, or not readable outside Hydra: the checkpoint's
            continue
    return settings


def check_run_grid(grid: Path, ckpt: str | Path) -> None:
    """The sample grid run_results found for `ckpt`, read whole before a release carries it, as a release's
    own is before it is copied (read_picture): one line naming it otherwise, not a release that cannot be read."""
    try:
        read_picture(grid)
    except Exception as err:  # whatever PIL or the codec raise for a damaged file
        raise SupraUserError(f"{grid}, the sample grid of the checkpoint's run, cannot be read ({first_line(err, 120, sentence=True)}): it is "
                             f"damaged or cut short; move it away to export without it (`python evaluate.py "
                             f"ckpt={ckpt}` draws one again in its own run folder)") from None


def read_picture(path: Path) -> None:
    """Decode the picture at `path` whole: a file cut short fails here, not where it is shown."""
    from PIL import Image

    with Image.open(path) as picture:
        picture.load()


def metrics_table(metrics: dict[str, Any]) -> list[str]:
    """Markdown rows of the numbers in metrics.json, for model cards."""
    return ["| metric | score |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float)]


# The data classes of a run, by the names the Hub's card metadata and Supra's configs use for them.
DATA_NAMES = {"ShapesDataModule": "shapes", "ShapesImagesDataModule": "shapes", "ShapesVideoDataModule": "shapes_video",
              "Flickr8kDataModule": "flickr8k", "MediaFolderDataModule": "media_folder",
              "ShardCaptionsDataModule": "webdataset", "ShardImagesMediaDataModule": "webdataset"}
# The DataModules of any caption source, named by their `source` (coco, flickr30k, folder, ...).
SOURCE_DATA = ("PhotoCaptionsDataModule", "PhotoCaptionsMediaDataModule")


def data_names(run_config: dict[str, Any] | None) -> list[str]:
    """The data a run trained on (its data config and, for the a2a mixture, its sources), by name."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
            name = str(node.get("source")) if target in SOURCE_DATA else DATA_NAMES.get(target)
            if name is not None and name not in found:
                found.append(name)
            for value in node.values():
                walk(value)

    walk((run_config or {}).get("data"))
    return found
