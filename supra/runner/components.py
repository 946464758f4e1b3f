"""The parts of a run, built once each and handed one way: the stage-1 VQ-VAE (a2a_nano) and the tokenizer
to reuse are read from their files here, the task is built with them, and the DataModule gets what the
task says the data must follow (`task.data_settings()`: image size, context, the VQ-VAE).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from torch import nn

from supra.artifacts.a2a_release import (
    a2a_init_from_folder,
    load_checkpoint_vqvae,
    load_release_vocab,
    load_release_vqvae,
    load_stage1_vqvae,
)
from supra.artifacts.captioner_release import init_from_folder, load_release_tokenizer
from supra.artifacts.checkpoints import saved_tokenizer
from supra.artifacts.loaded_configs import instantiate_loaded
from supra.data.a2a.sources import TRAINED_SIZE
from supra.tasks.base import SupraTask
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.errors import SupraUserError, first_line
from supra.utils.numbers import is_whole
from supra.utils.unknown_keys import first_missing, nearest_key, user_options

log = logging.getLogger(__name__)


def stage1_vqvae(model_cfg: DictConfig, ckpt_path: str | None = None) -> nn.Module | None:
    """The frozen VQ-VAE a stage-2 model (model.vqvae_ckpt) works on, loaded once for task and data;
    None for models without one. A fine-tune (model.init_from) works on its release's own. A resumed or
    scored run (`ckpt_path`) without model.vqvae_ckpt takes the one in its checkpoint: the one it was
    trained over, whose file or release need not be there any more."""
    if "vqvae_ckpt" not in model_cfg:
        return None
    path = model_cfg.vqvae_ckpt
    if not path and ckpt_path:
        return load_checkpoint_vqvae(ckpt_path)
    if not path and model_cfg.get("init_from"):
        return load_release_vqvae(a2a_init_from_folder(model_cfg.init_from))
    if not path:
        return None  # the task says what to set
    vqvae, run_cfg = load_stage1_vqvae(path, what="model.vqvae_ckpt")  # a release's: a new stage 2 over its codes
    if run_cfg is not None:  # the size it learnt its codes at, which the stage-2 data is compared with (a release
        setattr(vqvae, TRAINED_SIZE, (run_cfg.get("data") or {}).get("image_size"))  # does not say it)
    return vqvae


def starting_model(model_cfg: DictConfig, ckpt_path: str | None) -> DictConfig:
    """The model config a task is built from. A resumed or scored run (`ckpt_path`) starts from its
    checkpoint's weights, so model.init_from's release is not read (it may be gone since the run began). A
    model that starts from saved weights (the checkpoint's, or model.init_from's release) holds its pretrained
    tower's there: the tower is built untrained (VLMNano's `rebuilt`), its weights file neither needed nor read."""
    init_from = model_cfg.get("init_from")
    rebuilt = bool(ckpt_path or init_from) and OmegaConf.select(model_cfg, "net.encoder") == "pretrained"
    if not (ckpt_path and init_from) and not rebuilt:
        return model_cfg
    started = model_cfg.copy()
    with open_dict(started):
        if ckpt_path:
            started.init_from = None
        if rebuilt:
            started.net.rebuilt = True
            started.net.pretrained.weights = None
    return started


def tower_file_unneeded(cfg: DictConfig) -> None:
    """model.net.pretrained.weights, required (???) of a new run with a pretrained tower, may be left out of one
    that starts from saved weights (ckpt_path, model.init_from), which hold the tower's: null then."""
    pretrained = OmegaConf.select(cfg, "model.net.pretrained")
    from_saved = cfg.get("ckpt_path") or OmegaConf.select(cfg, "model.init_from")
    if from_saved and isinstance(pretrained, DictConfig) and OmegaConf.is_missing(pretrained, "weights"):
        pretrained.weights = None


def tokenizer_to_reuse(cfg: DictConfig) -> Any:
    """The token ids a run must keep: a resumed checkpoint's, or the release's it fine-tunes; else None
    (the DataModule trains a tokenizer on its captions)."""
    if cfg.get("ckpt_path"):
        return saved_tokenizer(cfg.ckpt_path)
    init_from = cfg.model.get("init_from")
    if not init_from:
        return None
    if "vqvae_ckpt" in cfg.model:  # a stage-2 model (as stage1_vqvae tells them): a2a_nano's vocabulary
        return release_vocabulary(init_from, cfg.get("data") or {})
    return load_release_tokenizer(init_from_folder(init_from))


def say_started_from_release(cfg: DictConfig, token_ids: Any) -> None:
    """One INFO line as a run starts from a release (model.init_from), saying what it took from it: the model's
    weights and its token ids (`token_ids`, tokenizer_to_reuse's), which the data then keeps rather than
    training its own. A resumed or scored checkpoint (ckpt_path) takes neither from it: nothing said."""
    init_from = OmegaConf.select(cfg, "model.init_from")
    if not init_from or cfg.get("ckpt_path") or token_ids is None:
        return
    if isinstance(token_ids, A2AVocab):
        layout = token_ids.layout
        vqvae = "" if cfg.model.get("vqvae_ckpt") else ", over its VQ-VAE"
        log.info("model.init_from=%s: the run starts from that a2a release's GPT weights and vocabulary (%d text ids, "
                 "%d visual codes)%s", init_from, layout.text_size, layout.num_codes, vqvae)
    else:
        log.info("model.init_from=%s: the run starts from that captioner release's weights and tokenizer (%d ids)",
                 init_from, token_ids.vocab_size)


def release_vocabulary(init_from: str, data_cfg: DictConfig | dict) -> A2AVocab:
    """The vocabulary of the a2a release `model.init_from` names, which the data then keeps (its own
    text_vocab_size is not read): data settings that would lay out other ids are refused in one line, not
    followed by a GPT whose rows would mean other tokens."""
    vocab = load_release_vocab(a2a_init_from_folder(init_from))
    layout = vocab.layout
    num_codes = data_cfg.get("num_codes")
    if num_codes is not None and num_codes != layout.num_codes:
        raise SupraUserError(f"data.num_codes={num_codes} but model.init_from={init_from} has {layout.num_codes} visual "
                             f"codes (its VQ-VAE's codebook): set data.num_codes={layout.num_codes}")
    text_tokenizer = data_cfg.get("text_tokenizer")
    if text_tokenizer:  # GPT-2's files again are welcome; another tokenizer's ids are not the release's
        given = A2AVocab.from_gpt2(text_tokenizer, layout.num_codes)
        if given.hf.get_vocab(with_added_tokens=True) != vocab.hf.get_vocab(with_added_tokens=True):
            raise SupraUserError(f"data.text_tokenizer={text_tokenizer} ({given.layout.text_size:,} text ids) is not the "
                                 f"tokenizer of model.init_from={init_from} ({layout.text_size:,} text ids, "
                                 f"{vocab.source}): leave data.text_tokenizer unset, the release's tokenizer.json is used")
    return vocab


def build_task(model_cfg: DictConfig, run_config: dict | None, vqvae: nn.Module | None = None) -> SupraTask:
    """The configured LightningModule, with the run config it stores in checkpoints and, for stage 2, its
    frozen VQ-VAE. Given to the built factory, not to `instantiate`, which would instantiate every
    `_target_` inside the run config."""
    factory = instantiate(model_cfg, _partial_=True)
    return factory(run_config=run_config, **({"vqvae": vqvae} if vqvae is not None else {}))


def build_datamodule(data_cfg: DictConfig | dict, task: SupraTask, tokenizer: Any = None, loaded_from: str | None = None,
                     given: DictConfig | dict | None = None, **settings: Any) -> L.LightningDataModule:
    """The configured DataModule, following the task's model (`data_settings`) and keeping `tokenizer`'s ids
    when one is given. `loaded_from`: the file the config was read from (only allow-listed classes are
    built from it); `given`: the data options the command gave (default: all of data_cfg), refused where they
    set what the model dictates to another value."""
    kwargs = {**task.data_settings(), **({"tokenizer": tokenizer} if tokenizer is not None else {}), **settings}
    if loaded_from:
        factory = instantiate_loaded(data_cfg, loaded_from, "run_config.data", given, _partial_=True)
    else:
        factory = instantiate(data_cfg, _partial_=True)
    check_data_fits(task, getattr(factory, "func", None))
    # the command's own options: a checkpoint's stored config is scored as its run trained
    refuse_settings_of_model(data_cfg if given is None else given, task)
    return factory(**kwargs)  # objects (a VQ-VAE, a tokenizer) go to the class as they are


def refuse_settings_of_model(data_cfg: DictConfig | dict, task: SupraTask) -> None:
    """A data option the model dictates (`task.data_settings()`: a captioner's image_size, max_caption_tokens,
    vocab_size) set to another value, as one line: the model's was used without a word (+data.image_size=224 ran
    at 112 px). The model's own value is accepted."""
    for key, wanted in task.data_settings().items():
        if key not in data_cfg:
            continue
        given = data_cfg[key]
        if isinstance(given, DictConfig | ListConfig):
            given = OmegaConf.to_container(given, resolve=True)
        if given is None or given == wanted:  # null: the model's, as when left out
            continue
        shown = f" is {wanted}" if isinstance(wanted, int | float | str | list) else ""
        where = task.data_settings_from.get(key, "its config")
        raise SupraUserError(f"data.{key}={given} is not used: the data follows the model, whose {key}{shown} "
                             f"({where}); leave data.{key} out")


def check_data_fits(task: SupraTask, data_class: type | None) -> None:
    """A model given data of another kind (model=vqvae_f8 with data=shapes, a captioner with data=shapes_images)
    as one line, not a TypeError from the DataModule or a KeyError from training_step."""
    wanted = task.reads_data
    if wanted is None or not isinstance(data_class, type) or issubclass(data_class, wanted):
        return
    raise SupraUserError(f"{type(task).__name__} trains and scores on {wanted.__name__}s but the data is a "
                         f"{data_class.__name__}: choose {task.data_choices}")


def instantiate_group(group: DictConfig | None, group_name: str) -> list[Any]:
    """Instantiate every `_target_` entry of a group such as callbacks/ or logger/ (keyed by name); `group_name`
    ("callbacks") names an entry in the line for a setting its class refuses."""
    if not group:
        return []
    return [instantiate_entry(node, f"{group_name}.{key}") for key, node in group.items()
            if isinstance(node, DictConfig) and "_target_" in node]


def instantiate_entry(node: DictConfig, entry_name: str) -> Any:
    """`node` instantiated. A setting Lightning refuses as the object is built (a ModelCheckpoint's mode=maximum, a
    LearningRateMonitor's logging_interval=batch) is one line naming the entry (`callbacks.model_checkpoint`)
    with Lightning's own words, which name the setting and what it takes, not Hydra's multi-line error."""
    try:
        return instantiate(node)
    except InstantiationException as err:
        if not isinstance(err.__cause__, MisconfigurationException):
            raise
        raise SupraUserError(f"{entry_name}: {first_line(err.__cause__).rstrip('.')}") from None


def chosen_data_config(chosen: DictConfig | None, run_cfg: dict | None, no_data_message: str,
                       cache_dir: str | None = None) -> DictConfig:
    """The data config chosen on the command line (data=...), else the one a model file's run trained on
    with any data.x overrides merged in, its cache folders under this command's paths.cache_dir (`cache_dir`);
    `no_data_message` when there is neither (a release folder)."""
    chosen = chosen or OmegaConf.create({})
    if "_target_" in chosen:
        return OmegaConf.create(OmegaConf.to_container(chosen, resolve=True))
    if not run_cfg or "data" not in run_cfg:
        raise SupraUserError(no_data_message)
    trained_cache = (run_cfg.get("paths") or {}).get("cache_dir")
    data_cfg = OmegaConf.create(rebased_cache_dirs(run_cfg["data"], trained_cache, cache_dir))
    given = OmegaConf.to_container(chosen, resolve=False)
    run_data = OmegaConf.to_container(data_cfg)
    for parts in key_paths({k: v for k, v in given.items() if k != "split"}):
        if missing := first_missing(run_data, parts):
            depth, node = missing
            # data.batch_sizee=8; data.sources.photos.rooot=/x, a source's key, as the first level's
            close = nearest_key(node, parts, depth, extra=["split"] if depth == 0 else [])
            nearest = f" (did you mean data.{close}?)" if close else ""
            raise SupraUserError(f"data.{'.'.join(parts[:depth + 1])} is not an option of the data this model was "
                                 f"trained on{nearest} ({str(node.get('_target_', '?')).rsplit('.', 1)[-1]}: "
                                 f"{', '.join(user_options(node))}); data=<name> chooses other data")
    with open_dict(data_cfg):
        data_cfg.merge_with(OmegaConf.to_container(chosen, resolve=True))
    return data_cfg


def key_paths(given: dict, path: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """The keys of nested overrides (`{"sources": {"photos": {"root": ...}}}`), each as its path, in sorted order."""
    for key, value in sorted(given.items(), key=lambda item: str(item[0])):
        if isinstance(value, dict) and value:
            yield from key_paths(value, (*path, str(key)))
        else:
            yield [*path, str(key)]


def tests_nothing(data_cfg: DictConfig | dict | None) -> bool:
    """Whether `data_cfg` holds data.test_items=0 (an a2a run's way not to test): a test of it runs over no
    batch and exits 0 without metrics.json, Lightning's warnings aside."""
    items = data_cfg.get("test_items") if data_cfg else None
    return is_whole(items) and items == 0


def rebased_cache_dirs(data_cfg: Any, trained: str | None, here: str | None) -> Any:
    """`data_cfg` with each cache_dir under the training run's paths.cache_dir (`trained`) moved under this
    command's (`here`): the run config is stored resolved, and a model trained elsewhere (Kaggle) would
    otherwise cache its data at that machine's absolute path. What is cached stays the same."""
    if isinstance(data_cfg, dict):
        return {key: rebased_cache_dirs(value, trained, here) if key != "cache_dir" else _rebased(value, trained, here)
                for key, value in data_cfg.items()}
    return data_cfg


def _rebased(path: Any, trained: str | None, here: str | None) -> Any:
    if not (isinstance(path, str) and trained and here) or trained == here:
        return path
    inner = Path(path).relative_to(trained) if Path(path).is_relative_to(trained) else None
    return path if inner is None else str(Path(here) / inner)
