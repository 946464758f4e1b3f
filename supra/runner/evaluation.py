"""The evaluation run behind `evaluate.py`, for every kind of model file: the model (and its tokenizer,
and for stage 2 its VQ-VAE) from the checkpoint or release folder, the data of its run unless another is
chosen, then a test on one split with the one report (metrics.json, predictions.json) and sample pictures."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from supra.artifacts.a2a_release import load_a2a, scored_settings
from supra.artifacts.captioner_release import command_decoding, load_captioner
from supra.artifacts.checkpoints import (
    artifact_kind,
    checkpoint_step,
    load_supra_checkpoint,
    load_vqvae,
    run_config_of,
)
from supra.artifacts.hub import local_path
from supra.artifacts.kinds import (
    A2A_CHECKPOINT,
    A2A_RELEASE,
    CAPTIONER_CHECKPOINT,
    CAPTIONER_RELEASE,
    CHECKPOINT_KINDS,
    KIND_NAMES,
    VQVAE_CHECKPOINT,
    release_kind,
)
from supra.callbacks.a2a_samples import A2ASamplesCallback
from supra.callbacks.caption_grid import CaptionGridCallback
from supra.callbacks.checkpoint import AtomicCheckpointIO
from supra.callbacks.reconstruction_grid import ReconstructionGridCallback
from supra.callbacks.test_report import TestReport
from supra.metrics.caption_scores import check_metric_families
from supra.runner.components import build_datamodule, chosen_data_config, tests_nothing
from supra.runner.run_checks import check_java_for_caption_scores
from supra.runner.run_paths import relative_paths_read_against, trained_folder, with_absolute_paths
from supra.runner.scored_data import ScoredData, scored_folders
from supra.tasks.a2a import A2ATask
from supra.tasks.base import SupraTask
from supra.tasks.captioning import CaptioningTask
from supra.tasks.vq_autoencoding import VQAutoencodingTask
from supra.utils.cli import check_option_types, count_as_typed, refuse_job_chdir, refuse_unread_options
from supra.utils.errors import SupraUserError, user_error_in
from supra.utils.files import require_writable_dir
from supra.utils.hardware import check_command_accelerator
from supra.utils.numbers import is_whole
from supra.utils.overrides import parsed_overrides
from supra.utils.run_folders import finished_run_file
from supra.utils.seeds import check_seed
from supra.utils.state_dicts import non_finite_tensors
from supra.utils.unknown_keys import exit_if_unknown_key

# What to add when a release folder (which holds no data config) or a checkpoint whose run config has no data
# section (a VQ-VAE saved outside train.py) is scored.
DATA_HINTS = {CAPTIONER_RELEASE: "add data=shapes, or data=flickr8k data.root=DIR",
              A2A_RELEASE: "add data=a2a_mixture (and its sources)",
              VQVAE_CHECKPOINT: "add data=shapes_images (or data=shapes_video, or data=media_folder data.root=DIR)"}
# Files of the run's data that belong to this evaluation's folder instead.
OUTPUT_FILES = {"tokenizer_path": "tokenizer.json", "vocab_path": "a2a_vocab.json"}
# Data options that make a new run's tokenizer (a captioner's, an a2a model's text ids): a model file is scored
# with its own, so these would be ignored; refused unless left at their defaults.
TOKENIZER_OPTIONS = ("gpt2_tokenizer", "tokenizer_sample", "text_tokenizer", "text_vocab_size")

log = logging.getLogger(__name__)


def data_for_release(argv: Sequence[str]) -> list[str]:
    """evaluate.py's command line, with the data a model file needs. A checkpoint's data.x (without data=...)
    change the data config of its run: passed to Hydra as +data.x, since conf/eval.yaml holds only
    data.split. A release holds no data config, so `ckpt=<captioner release> data.root=DIR` without `data=...`
    scores Flickr8k at DIR (said in one line); other data.x keys are one line naming the option to add."""
    argv = list(argv)
    ckpt = next((a.split("=", 1)[1] for a in argv if a.startswith("ckpt=")), None)
    try:
        kind = release_kind(local_path(ckpt)) if ckpt else None
    except SupraUserError:
        return argv  # evaluate reports the path's problem itself
    data_keys = [a.split("=", 1)[0].lstrip("~") for a in argv
                 if a.startswith(("data.", "~data.sources.")) and not a.startswith("data.split=")]
    if not data_keys or any(a.startswith(("data=", "+data=")) for a in argv):
        return argv
    if kind is None:  # a checkpoint: data.x changes its run's data config, which conf/eval.yaml does not list
        return [_onto_run_data(a) for a in argv]
    if kind == CAPTIONER_RELEASE and data_keys == ["data.root"]:
        print(f"ckpt={ckpt} is a release folder, which holds no data config: scoring data=flickr8k at data.root",
              file=sys.stderr)
        return ["data=flickr8k", *argv]
    print(f"error: ckpt={ckpt} is a release folder, which holds no data config for {', '.join(data_keys)}: "
          f"{DATA_HINTS[kind]}", file=sys.stderr)
    raise SystemExit(2)


def exit_if_unknown_eval_key(argv: Sequence[str]) -> None:
    """A misspelled key of evaluate.py's command line (`data=flickr8k data.batch_sizee=8`, `paths.log_dri=DIR`)
    as train.py's: one line with the nearest key, exit status 2, before Hydra composes; an added top-level key
    (`+seeed=1`) too, which nothing would read. `argv`: as
    data_for_release leaves it. Without data=<name>, a data.x (other than data.split) is a key of the
    checkpoint's run data, which conf/eval.yaml does not hold: chosen_data_config checks it once that is read."""
    chooses_data = any(o.key_or_group == "data" for o in parsed_overrides(argv))
    exit_if_unknown_key("eval", argv if chooses_data else [a for a in argv if not _run_data_key(a)], new_top_keys=False)


def _run_data_key(arg: str) -> bool:
    """Whether `arg` sets or removes a data.x other than conf/eval.yaml's data.split."""
    key = arg.lstrip("+~").partition("=")[0]
    return key.startswith("data.") and key != "data.split"


def _onto_run_data(arg: str) -> str:
    """data.x=v as +data.x=v; ~data.sources.X (train.py's way to leave an a2a source out) as
    +data.sources.X=null, which the mixture reads as left out (Hydra cannot delete from what it does not hold)."""
    if arg.startswith("data.") and not arg.startswith("data.split="):
        return f"+{arg}"
    if arg.startswith("~data.sources."):
        return f"+{arg[1:].split('=', 1)[0]}=null"
    return arg


def given_seed(cfg: DictConfig) -> dict[str, int]:
    """{"seed": N} for seed=N on the command line; {} for none, so the run's own seed samples again (an a2a
    run's model.generation.seed: the test it scored) rather than a fixed 0."""
    return {} if cfg.seed is None else {"seed": cfg.seed}


def run_settings(model_cfg: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The task settings among `keys` that the scored run's model config sets, to build its task with; one
    it leaves unset (null, or no metrics) is left to the task's own default, the only copy of it."""
    return {key: model_cfg[key] for key in keys if model_cfg.get(key) not in (None, [], ())}


def scored_metrics(cfg: DictConfig, settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` (the run's, from run_settings) with `metrics=` over the run's test_metrics where given: a run's
    METEOR left out where its Java process cannot have its ~1 GB, say."""
    if cfg.get("metrics") is None:
        return settings
    metrics = list(cfg.metrics) if isinstance(cfg.metrics, ListConfig) else cfg.metrics
    check_metric_families(metrics, "metrics")
    if not metrics:
        raise SupraUserError("metrics=[] scores no captions: name some, e.g. metrics=[Bleu,ROUGE_L,CIDEr], or leave "
                             "metrics out for the run's model.test_metrics")
    return {**settings, "test_metrics": metrics}


def _captioner(cfg: DictConfig, kind: str) -> tuple[SupraTask, Any, dict | None, L.Callback]:
    net, tokenizer, run_cfg = load_captioner(cfg.ckpt)
    # the run's decoding (a release's: the one its card's scores were measured with), with what this command
    # line gives over it: left alone, the run's test scores come out again
    decode = command_decoding(cfg, "eval", net, run_cfg)
    # and the run's test metrics, as an a2a run's: a run that left METEOR out is not scored with it (nor starts Java)
    task = CaptioningTask(net=net, optimizer=None, decode=dataclasses.asdict(decode), run_config=run_cfg,
                          **scored_metrics(cfg, run_settings((run_cfg or {}).get("model") or {}, ("test_metrics",))))
    return task, tokenizer, run_cfg, CaptionGridCallback(cfg.num_grid_images, output_dir=cfg.paths.output_dir)


def _a2a(cfg: DictConfig, kind: str) -> tuple[SupraTask, Any, dict | None, L.Callback]:
    """`kind`: artifact_kind's answer for cfg.ckpt (a checkpoint holds its run config, a release folder none)."""
    # the test's draws add to the seed (tasks/a2a.py): train.py's range keeps them within torch's 64 bits
    check_option_types(cfg, whole=("seed",), optional=("seed",))
    check_seed("seed", cfg.seed, null="the run's own model.generation.seed")
    net, vqvae, vocab = load_a2a(cfg.ckpt)
    path, is_checkpoint = local_path(cfg.ckpt), kind in CHECKPOINT_KINDS
    run_cfg = run_config_of(load_supra_checkpoint(path)) if is_checkpoint else None
    model_cfg = scored_settings(path, (run_cfg or {}) if is_checkpoint else None)
    generation = {**(model_cfg.get("generation") or {}), **given_seed(cfg)}  # the run's sampling, seed= aside
    # the run's loss too: with code_softmax its losses normalise over the codes where a code comes next
    task = A2ATask(net=net, optimizer=None, vqvae=vqvae, generation=generation, run_config=run_cfg,
                   **scored_metrics(cfg, run_settings(model_cfg, ("code_softmax", "test_metrics"))))
    return task, vocab, run_cfg, A2ASamplesCallback(cfg.num_grid_images, output_dir=cfg.paths.output_dir)


def _vqvae(cfg: DictConfig, kind: str) -> tuple[SupraTask, Any, dict | None, L.Callback]:
    net, run_cfg = load_vqvae(cfg.ckpt)
    task = VQAutoencodingTask(net=net, optimizer=None, run_config=run_cfg,
                              **run_settings(run_cfg.get("model") or {}, ("recon_loss",)))
    return task, None, run_cfg, ReconstructionGridCallback(cfg.num_grid_images, output_dir=cfg.paths.output_dir)


# conf/eval.yaml's decoding and scoring options, and those each kind of model reads (the rest would be ignored)
DECODING_OPTIONS = ("decode", "beam_width", "seed", "metrics")
DECODING_READ = {A2A_CHECKPOINT: ("seed", "metrics"), A2A_RELEASE: ("seed", "metrics"), VQVAE_CHECKPOINT: ()}

LOADERS = {CAPTIONER_CHECKPOINT: _captioner, CAPTIONER_RELEASE: _captioner, A2A_CHECKPOINT: _a2a, A2A_RELEASE: _a2a,
           VQVAE_CHECKPOINT: _vqvae}


def refuse_tokenizer_options(given: Mapping[str, Any], data_class: type, ckpt: str,
                             tokenizer_written_to: str | None = None) -> None:
    """Each of TOKENIZER_OPTIONS the command gave (`given`: its data options) another value than `data_class`'s
    default, and a data.tokenizer_path other than `tokenizer_written_to` (where evaluate.py writes the model's),
    as one line: the model's own tokenizer is used, and the option was ignored without a word."""
    for key in TOKENIZER_OPTIONS:
        if key not in given:
            continue
        # the default of the first __init__ up the classes that names the option (CaptionDataModule's gpt2_tokenizer)
        found = (inspect.signature(c.__init__).parameters.get(key) for c in data_class.__mro__ if "__init__" in c.__dict__)
        default = next((p.default for p in found if p is not None), None)
        if given[key] != default:
            raise SupraUserError(f"data.{key}={given[key]} is not used: evaluate.py scores ckpt={ckpt} with the "
                                 f"model's own tokenizer (stored with it); leave data.{key} out")
    path = given.get("tokenizer_path")
    if path is not None and (tokenizer_written_to is None or Path(path) != Path(tokenizer_written_to)):
        raise SupraUserError(f"data.tokenizer_path={path} is not used: evaluate.py scores ckpt={ckpt} with the model's "
                             "own tokenizer (stored with it) and writes it beside the scores; leave "
                             "data.tokenizer_path out")


def interrupted_evaluation(cfg: DictConfig, started: float) -> str:
    """What an evaluate.py run started at `started` (time.time()) that Ctrl-C or a SIGTERM ended leaves behind: no
    scores, unless it stopped after the test wrote metrics.json (at its end), in the moment before the command
    ends. An older metrics.json there (an earlier evaluate.py into the same hydra.run.dir) is not this run's."""
    scores = Path(cfg.paths.output_dir) / "metrics.json"
    if scores.is_file() and scores.stat().st_mtime >= started:
        return f"the scores were written before it stopped: {scores}"
    return f"no scores written into {cfg.paths.output_dir}: score it again with python evaluate.py ckpt={cfg.get('ckpt')}"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score `cfg.ckpt` on `cfg.data.split`; writes metrics.json, predictions.json and sample pictures
    into the run directory, and returns metrics.json's content."""
    refuse_job_chdir()  # first: ckpt= and data.root= would be read from the run folder
    output_dir = Path(cfg.paths.output_dir)
    require_writable_dir(output_dir, f"the output directory {output_dir}", "choose another with hydra.run.dir=DIR")
    check_command_accelerator(str(cfg.accelerator))  # before the checkpoint loads (Lightning: a traceback)
    grid = cfg.num_grid_images
    if not is_whole(grid, 0):  # below 0 it drew nothing, as 0 does
        raise SupraUserError(f"{count_as_typed('num_grid_images', grid)} must be a whole number >= 0 (0: no sample "
                             "pictures)")
    kind = artifact_kind(cfg.ckpt)
    # the a2a model captions greedily (seed: its image sampling); a VQ-VAE decodes nothing
    refuse_unread_options(cfg, "eval", [o for o in DECODING_OPTIONS if o not in DECODING_READ.get(kind, DECODING_OPTIONS)],
                          f"ckpt={cfg.ckpt} is {KIND_NAMES[kind]}, whose scoring")
    task, tokenizer, run_cfg, pictures = LOADERS[kind](cfg, kind)
    warn_of_diverged_weights(task, cfg.ckpt)
    # the step its pictures are named by, not this trainer's 0 (a release folder keeps none of its own)
    is_checkpoint = kind in CHECKPOINT_KINDS
    task.weights_step = checkpoint_step(local_path(cfg.ckpt)) if is_checkpoint else None
    what = ("a checkpoint whose run config has no data section" if is_checkpoint else
            "a release folder, which holds no data config")
    run_cfg = run_data_as_trained(run_cfg, cfg.ckpt)
    data_cfg = chosen_data_config(cfg.get("data"), run_cfg, f"ckpt={cfg.ckpt} is {what}: "
                                  f"{DATA_HINTS.get(kind, 'add data=...')}", cfg.paths.cache_dir)
    if tests_nothing(data_cfg):  # a fit's way not to test: scored, an empty split without metrics.json
        whose = "" if "test_items" in (cfg.get("data") or {}) else f" (the run's, stored in ckpt={cfg.ckpt})"
        raise SupraUserError(f"data.test_items=0{whose} leaves nothing to score: evaluate.py scores the first "
                             f"data.test_items items per task of data.split={data_cfg.get('split', 'test')}; give "
                             "data.test_items=N (N >= 1), or null for every item")
    check_java_for_caption_scores([task.hparams.get("test_metrics")], data_cfg)  # before the split is decoded
    outputs = {key: str(output_dir / name) for key, name in OUTPUT_FILES.items() if key in data_cfg}
    if "output_dir" in data_cfg:
        outputs["output_dir"] = str(output_dir)
    # the data config comes (partly) from the checkpoint: only allow-listed classes are built from it
    datamodule = build_datamodule(data_cfg, task, tokenizer, loaded_from=f"ckpt={cfg.ckpt}", given=cfg.get("data") or {},
                                  **outputs)
    refuse_tokenizer_options(cfg.get("data") or {}, type(datamodule), cfg.ckpt, outputs.get("tokenizer_path"))
    roots = scored_folders(data_cfg)
    for option, folder in roots.items():
        print(f"scoring {option}={folder}")
    report = TestReport(str(output_dir), print_table=True, ckpt=cfg.ckpt)
    # what was scored, and whether the run trained on any of it, beside the scores
    scored_data = ScoredData(report, cfg.ckpt, local_path(cfg.ckpt), data_cfg, (run_cfg or {}).get("data"), roots)
    trainer = L.Trainer(
        accelerator=cfg.accelerator, devices=1, logger=False, enable_checkpointing=False,
        default_root_dir=str(output_dir), enable_model_summary=False, callbacks=[scored_data, report, pictures],
        plugins=[AtomicCheckpointIO()],  # as train.py's: a checkpoint Lightning writes is written whole
    )
    try:
        trainer.test(task, datamodule=datamodule, verbose=False)
    except BaseException:
        if trainer.received_sigterm:  # stopped at a batch's end: as Ctrl-C, evaluate.py's own line (exit_on_ctrl_c)
            raise KeyboardInterrupt from None
        raise
    # where the scores went, as generate and export say: a dated run folder is not found without it
    print(f"wrote {output_dir}: {', '.join(report.written)}" if report.written else f"no scores written into {output_dir}")
    return report.report


def warn_of_diverged_weights(task: SupraTask, ckpt: str) -> None:
    """One warning line where the model scored (an a2a model's VQ-VAE too) holds NaN or inf weights, export's check:
    it is still scored (its run diverged; how badly is worth seeing), but its scores are a broken model's."""
    state = task.state_dict()
    not_finite = non_finite_tensors(state)
    if not_finite:
        log.warning("ckpt=%s holds weights that are not finite (NaN or inf) in %d of its %d tensors (e.g. %s): its run "
                    "diverged, and these are a broken model's scores; score an earlier checkpoint of that run",
                    ckpt, len(not_finite), len(state), not_finite[0])


def run_data_as_trained(run_cfg: dict | None, ckpt: str) -> dict | None:
    """`run_cfg` with the relative data paths its run recorded (runs before they were recorded absolute) read against
    the folder it trained in, not this command's, said in one line; against this folder where that is not recorded."""
    if not run_cfg or not isinstance(run_cfg.get("data"), dict):
        return run_cfg
    folder = trained_folder(run_cfg)
    read = with_absolute_paths(run_cfg, folder)
    changed = relative_paths_read_against(run_cfg["data"], read["data"])
    if changed:
        against = f"the folder its run trained in, {folder}" if folder else "this folder (its run's is not recorded)"
        print(f"ckpt={ckpt} holds relative data paths, read against {against}: {'; '.join(changed)}", file=sys.stderr)
    return read


@contextmanager
def no_folder_left_if_refused(cfg: DictConfig) -> Iterator[None]:
    """A refused evaluate.py (bad input found once the model and its data are read, after Hydra made the run
    folder) leaves no dated run folder holding only its config, log and vocabulary, which `ls -t` would take
    for the last scores; the `error: ...` line is on the console. A folder named with hydra.run.dir is kept,
    its evaluate.log saying why, as train.py keeps a refused run's. Nor the empty folders above it (logs/eval/runs/
    in a folder where no evaluate.py had run), up to the working folder."""
    try:
        yield
    except Exception as err:
        folder = Path(cfg.paths.output_dir)
        if user_error_in(err) is not None and _dated_folder_of_this_run(folder) and finished_run_file(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
            remove_empty_parents(folder, Path(cfg.paths.root_dir))
        raise


def remove_empty_parents(folder: Path, working_folder: Path) -> None:
    """Each folder above `folder` and below `working_folder` while it is empty, deepest first: those Hydra made
    for a run folder now removed. One holding anything (another run's folder) ends it."""
    working_folder = working_folder.resolve()
    for parent in folder.resolve().parents:
        if parent == working_folder or not parent.is_relative_to(working_folder):
            return
        try:
            parent.rmdir()  # only an empty folder: never anything written there
        except OSError:
            return


def _dated_folder_of_this_run(folder: Path) -> bool:
    """Whether `folder` is the run folder Hydra made for this run from a dated hydra.run.dir (the default)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode == RunMode.MULTIRUN:  # a sweep's job: its own folder
        return False
    run = HydraConfig.get().run
    dated = "${now:" in str(OmegaConf.to_container(run, resolve=False)["dir"])
    return dated and Path(str(run.dir)).resolve() == folder.resolve()
