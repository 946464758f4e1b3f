"""`data=a2a_mixture`: training sequences of a2a_nano mixed from several tasks with per-task weights,
built from captioned images and clips of other DataModules (the sources: shapes_images, shapes_video,
media_folder, ...).

What happens once, not per step:
- codes: each source's splits are encoded by the frozen stage-1 VQ-VAE the runner hands over (the
  task's own) and cached on disk under `cache_dir` (sources.py), by global rank 0 in `prepare_data`;
  other ranks and later runs only read the cache.
- vocabulary: the given one (a checkpoint's ids), else an A2AVocab trained on every source's train
  captions (or GPT-2's files at `text_tokenizer`), cached by content hash in cache_dir; written to
  `vocab_path` as a record of the run.

Training batches (batches.py; an IterableDataset: the task of each batch, or of each row, is drawn by the weights):
- ids int64 [B, L-1] (inputs; padding 0, never a target), targets int64 [B, L-1] (next ids; -100 on
  padding), tasks: the task name of each row, task: the batch's task ("mixed" if rows differ).
`batching: by_task` (default) makes every batch one task, so a batch of 80-token image sequences is not
padded to a 262-token clip: on CPU the padding would cost more than the data. `caption_dropout` leaves
that share of text2image captions empty (`<TEXT></TEXT><IMAGE>...`), so one model also learns images
without a prompt: classifier-free guidance samples against it (model.generation.image_guidance).
Evaluation batches are one task each, fixed items (caption i mod its count), with what the metrics need:
prompt_lengths, item keys, references, objects (shapes scenes), truth codes and pixels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from supra.data.a2a.batches import EvalBatches, MixtureBatches, SequenceBuilder, eligible, task_items
from supra.data.a2a.sources import SourceCodes, SourceSplit, media_source_class, source_pictures
from supra.data.base import (
    SPLITS,
    batch_is_ready,
    check_batch_sizes,
    check_num_workers,
    check_split,
    trust_exact_lengths,
)
from supra.data.epoch_loader import EpochLoader, trainer_progress
from supra.tokens.a2a_layout import A2A_CONTEXT, VQVAE_DOWNSAMPLE, TokenLayout
from supra.tokens.a2a_sequences import (
    NEEDS,
    TASKS,
    VIDEO_TASKS,
    check_fits,
    check_tasks,
    prompt_length,
    sequence_length,
)
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.cli import count_as_typed
from supra.utils.errors import SupraUserError
from supra.utils.files import write_text_atomic
from supra.utils.folder_walk import file_stamp, tree_stamp
from supra.utils.numbers import is_number, is_whole

log = logging.getLogger(__name__)

BATCHINGS = ("by_task", "mixed")
BYTE_SYMBOLS = 256  # the trained BPE's first text ids, always in (A2AVocab.train): the least text_vocab_size


def _source_configs(sources: Mapping[str, Any] | None) -> dict[str, Any]:
    """data.sources as plain dicts, a source set to null left out: how evaluate.py drops one of a
    checkpoint's (data.sources.X=null)."""
    if isinstance(sources, DictConfig):
        sources = OmegaConf.to_container(sources, resolve=True)
    return {name: cfg for name, cfg in (sources or {}).items() if cfg is not None}


def _task_weights(tasks: Mapping[str, float]) -> dict[str, float]:
    """data.tasks as a plain {task: weight} dict."""
    return dict(OmegaConf.to_container(tasks) if isinstance(tasks, DictConfig) else tasks)


def check_mixture_settings(
    sources: Mapping[str, Any],
    tasks: Mapping[str, float],
    *,
    vqvae: torch.nn.Module | None,
    batching: str,
    caption_dropout: float,
    batch_size: int,
    eval_batch_size: int,
    num_workers: int,
    val_items: int | None,
    test_items: int | None,
    num_codes: int,
    batches_per_epoch: int | None,
    video_given_frames: int,
    text_vocab_size: int | None = None,
) -> None:
    """Refuse, with a SupraUserError naming the setting, what the mixture cannot be built from: before any
    source is read or encoded. `text_vocab_size`: None where it is not read (a vocabulary given, or GPT-2's files)."""
    if not sources:
        raise SupraUserError("data.sources is empty: name at least one DataModule, e.g. shapes_images")
    for name, cfg in sources.items():
        if not isinstance(cfg, Mapping) or "_target_" not in cfg:
            raise SupraUserError(f"data.sources.{name} must be a DataModule config with a _target_")
    check_tasks(list(tasks))
    for task, weight in tasks.items():
        # NaN would drop the task without a word (NaN > 0 is false), inf break the draw, true count as 1
        if not is_number(weight) or weight < 0:
            raise SupraUserError(f"data.tasks.{task}={weight!r}: a task weight must be a finite number >= 0")
    if not any(w > 0 for w in tasks.values()):
        raise SupraUserError("data.tasks: every weight is 0; give at least one task a weight > 0")
    # each weight finite is not enough: 1e308 twice sums to inf, and every task's share of the draw was 0 or NaN
    if not math.isfinite(sum(tasks.values())):
        raise SupraUserError(f"data.tasks: the weights {dict(tasks)} sum past the largest float: they are relative, "
                             "so give the same ratios in smaller numbers (e.g. each divided by the largest)")
    if batching not in BATCHINGS:
        raise SupraUserError(f"data.batching={batching!r} is unknown: choose one of {', '.join(BATCHINGS)}")
    if not 0 <= caption_dropout < 1:
        raise SupraUserError(f"data.caption_dropout={caption_dropout} must be in [0, 1): the share of text2image "
                             "captions left empty in training")
    if vqvae is None:
        raise SupraUserError("data=a2a_mixture needs the stage-1 VQ-VAE: set model.vqvae_ckpt=PATH "
                             "(from `python train.py experiment=vqvae_shapes`)")
    check_batch_sizes(batch_size, eval_batch_size)
    check_num_workers(num_workers)
    for key, value in (("val_items", val_items), ("test_items", test_items)):
        if value is not None and not is_whole(value, 0):
            raise SupraUserError(f"{count_as_typed(f'data.{key}', value)} must be a whole number >= 0, or null for "
                                 "every item")
    if not is_whole(num_codes, 2):
        raise SupraUserError(f"{count_as_typed('data.num_codes', num_codes)} must be a whole number >= 2: the visual "
                             "codes of the GPT's vocabulary, the codebook size of the VQ-VAE (model.vqvae_ckpt)")
    # null: the default epoch; 0 was read as null without a word, -3 and 2.5 failed after the encoding
    if batches_per_epoch is not None and not is_whole(batches_per_epoch, 1):
        raise SupraUserError(f"{count_as_typed('data.batches_per_epoch', batches_per_epoch)} must be a whole number "
                             ">= 1, or null for (items of all sources) / data.batch_size")
    if not is_whole(video_given_frames, 1):
        raise SupraUserError(f"{count_as_typed('data.video_given_frames', video_given_frames)} must be a whole number "
                             ">= 1: the frames a video prediction is given")
    # the BPE always holds the 256 byte symbols: under that, -7 crashed inside tokenizers and 0 meant 256 unsaid
    if text_vocab_size is not None and not is_whole(text_vocab_size, BYTE_SYMBOLS):
        raise SupraUserError(f"{count_as_typed('data.text_vocab_size', text_vocab_size)} must be a whole number >= "
                             f"{BYTE_SYMBOLS}: the trained BPE's text ids, its {BYTE_SYMBOLS} byte symbols and merges "
                             f"up to that size ({BYTE_SYMBOLS}: bytes alone, captions several times longer; default "
                             "4096)")


def check_context_fits_pictures(sources: Mapping[str, Any], weights: Mapping[str, float], context: int) -> None:
    """Refuse, from the configs alone (before any source is encoded or a vocabulary trained), a context too short
    for the image or clip of some source in a weighted task with even an empty caption: no caption could be short
    enough, so the line names model.net.context and the least value that fits (of the longest such sequence)."""
    needs = []  # (tokens, task, source, side, frames, codes per picture)
    for name, config in sources.items():
        pictures = source_pictures(config)
        if pictures is None or not is_whole(pictures[0], VQVAE_DOWNSAMPLE) or not is_whole(pictures[1], 0):
            continue  # an unknown source, or a size the source refuses itself as it is built
        side, frames = pictures
        grid = (side // VQVAE_DOWNSAMPLE) ** 2
        for task in VIDEO_TASKS if frames else ("text2image", "image2text"):
            if weights.get(task, 0) > 0:
                needs.append((sequence_length(task, 0, grid, frames), task, name, side, frames, grid))
    if not needs or max(needs)[0] <= context:
        return
    tokens, task, name, side, frames, grid = max(needs)
    picture = f"clips of {frames} {side}x{side} frames" if frames else f"{side}x{side} images"
    fits = TokenLayout.frames_that_fit(grid, context, 2 if task == "text2video" else 0) if frames else 0
    fewer = f", or fewer frames (data.sources.{name}.frames={fits} fits)" if 2 <= fits < frames else ""
    raise SupraUserError(f"model.net.context={context} is too short for the {picture} of data.sources.{name}: a "
                         f"{task} sequence of one takes {tokens} tokens with an empty caption; give model.net.context="
                         f"{tokens} or more (and room for the captions), or a smaller "
                         f"data.sources.{name}.image_size{fewer}")


def no_source_for(task: str, weight: float) -> SupraUserError:
    """The one line for a weighted task no source has items for, whether known from the configs or the data."""
    return SupraUserError(f"data.tasks.{task} has weight {weight:g} but no source has items for it (it needs "
                          f"{NEEDS[task]} items): add such a source or set its weight to 0")


def check_tasks_have_sources(sources: Mapping[str, Any], weights: Mapping[str, float]) -> None:
    """Refuse, from the configs alone, before any source is decoded or encoded (minutes for a large folder), a
    weighted task that needs images or clips where the configs say no source gives that kind (a media folder in
    mode=images gives no clips). A source of a class unknown here may give either: the check on the data, once
    encoded, is left to say it (as it says a kind given but never captioned)."""
    kinds = set()
    for config in sources.values():
        source_class = media_source_class(config)
        if source_class is None:
            return
        kinds.add("clips" if source_class.gives_clips(config) else "images")
    for task, weight in weights.items():
        if weight > 0 and task != "text" and ("clips" if task in VIDEO_TASKS else "images") not in kinds:
            raise no_source_for(task, weight)


class A2AMixtureDataModule(L.LightningDataModule):
    """Mixed a2a sequences from `sources` ({name: DataModule config with _target_}) with `tasks`
    ({task: weight}); codes from `vqvae`, the frozen stage-1 VQ-VAE. See the module docstring."""

    def __init__(
        self,
        sources: Mapping[str, Any],
        tasks: Mapping[str, float],
        vqvae: torch.nn.Module | None = None,
        tokenizer: A2AVocab | None = None,
        text_tokenizer: str | None = None,
        text_vocab_size: int = 4096,
        num_codes: int = 256,
        vocab_path: str | None = None,
        cache_dir: str | None = None,
        context: int = A2A_CONTEXT,
        batch_size: int = 32,
        batching: str = "by_task",
        batches_per_epoch: int | None = None,
        caption_dropout: float = 0.0,
        eval_batch_size: int = 100,
        val_items: int | None = 64,
        test_items: int | None = None,
        video_given_frames: int = 1,
        split: str = "test",
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        sources, tasks = _source_configs(sources), _task_weights(tasks)
        check_mixture_settings(
            sources, tasks, vqvae=vqvae, batching=batching, caption_dropout=caption_dropout, batch_size=batch_size,
            eval_batch_size=eval_batch_size, num_workers=num_workers, val_items=val_items, test_items=test_items,
            num_codes=num_codes, batches_per_epoch=batches_per_epoch, video_given_frames=video_given_frames,
            text_vocab_size=text_vocab_size if tokenizer is None and not text_tokenizer else None)
        self.source_configs = {name: dict(cfg) for name, cfg in sources.items()}
        self.weights = {t: float(tasks.get(t, 0.0)) for t in TASKS}
        check_context_fits_pictures(sources, self.weights, context)
        self.text_tokenizer = text_tokenizer
        self.text_vocab_size, self.num_codes, self.context = text_vocab_size, num_codes, context
        self.vocab_path = Path(vocab_path) if vocab_path else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size, self.batching, self.batches_per_epoch = batch_size, batching, batches_per_epoch
        self.caption_dropout = caption_dropout
        self.eval_batch_size = eval_batch_size
        # validation scores the first val_items of val; the test (trainer.test, evaluate.py of any split)
        # test_items of the split it scores: by default all of it
        self.val_items, self.test_items = val_items, test_items
        self.video_given_frames, self.seed, self.num_workers = video_given_frames, seed, num_workers
        self.split = check_split(split)  # the split trainer.test / evaluate.py scores
        self.vqvae = vqvae.eval()
        self._check_codebook()
        self.vocab = tokenizer
        self.codes = SourceCodes(self.source_configs, self.vqvae, num_codes, self.cache_dir)
        self.data: dict[str, list[SourceSplit]] = {}  # split -> one SourceSplit per source
        self._eval_batches: dict[tuple[str, int | None], list[dict[str, Any]]] = {}

    # -- the frozen VQ-VAE and its codes ----------------------------------------------------------------

    def _check_codebook(self) -> None:
        num_codes = self.vqvae.config.num_codes
        if num_codes != self.num_codes:
            raise SupraUserError(
                f"the VQ-VAE (model.vqvae_ckpt) has a codebook of {num_codes} codes but the GPT's vocabulary has "
                f"{self.num_codes} visual codes (data.num_codes): use a VQ-VAE with {self.num_codes} codes or set "
                f"data.num_codes={num_codes}")

    def prepare_data(self) -> None:
        # Lightning calls this on one process (per node) before setup: the cache is built once there.
        if self.cache_dir is not None:
            if self.trainer is None or self.trainer.state.fn == TrainerFn.FITTING:  # a test scores what there is
                check_tasks_have_sources(self.source_configs, self.weights)
            self.codes.all()

    # -- the vocabulary -----------------------------------------------------------------------------

    def _vocabulary(self, train: list[SourceSplit]) -> A2AVocab:
        if self.vocab is not None:
            vocab = self.vocab
        else:
            captions = [c for part in train for caps in part.captions for c in caps]
            files = None  # GPT-2's files by their stamps (sizes, modification times): edited ones, another vocabulary
            if self.text_tokenizer:
                given = Path(self.text_tokenizer)
                files = tree_stamp(given) if given.is_dir() else file_stamp(given)
            key = hashlib.sha256(json.dumps([self.text_vocab_size, self.num_codes, self.text_tokenizer, files, captions]
                                            ).encode()).hexdigest()[:16]
            cached = self.cache_dir / f"a2a_vocab_{key}.json" if self.cache_dir else None
            if cached is not None and cached.is_file():
                vocab = A2AVocab.from_json(cached.read_text())
            else:
                vocab = A2AVocab.build(self.text_tokenizer, captions, self.text_vocab_size, self.num_codes)
                log.info("a2a vocabulary: %d text ids from %d train captions", vocab.layout.text_size, len(captions))
                if cached is not None:
                    write_text_atomic(cached, vocab.to_json())
        if self.vocab_path is not None and not self.vocab_path.exists():
            write_text_atomic(self.vocab_path, vocab.to_json())
        if vocab.layout.num_codes != self.num_codes:
            raise SupraUserError(f"the a2a vocabulary has {vocab.layout.num_codes} visual codes but "
                                 f"data.num_codes={self.num_codes}: use the vocabulary of a matching model")
        return vocab

    def _encode_captions(self, part: SourceSplit) -> None:
        flat = [c for caps in part.captions for c in caps]
        encoded = [e.ids for e in self.vocab.hf.encode_batch(flat, add_special_tokens=False)] if flat else []
        part.caption_ids, start = [], 0
        for caps in part.captions:
            part.caption_ids.append(encoded[start:start + len(caps)])
            start += len(caps)

    def _check_lengths(self, split: str, part: SourceSplit) -> None:
        """Refuse, before any batch, an item whose sequence of some weighted task would not fit."""
        grid = part.codes.shape[-2] * part.codes.shape[-1]
        frames = part.codes.shape[1] if part.is_clips else 0
        for task in TASKS:
            if self.weights[task] <= 0 or not eligible(task, part):
                continue
            for row, caps in enumerate(part.caption_ids):
                longest = max(map(len, caps), default=0)
                if task != "video" and not caps:
                    continue
                length = sequence_length(task, longest, grid, frames)
                if length > self.context:
                    name = f"{part.source} {split} item {part.names[row]}"
                    if task != "video":  # the video task reads no caption: naming one would mislead
                        caption = part.captions[row][max(range(len(caps)), key=lambda i: len(caps[i]))]
                        name += f" (caption {caption[:60]!r}, {longest} tokens)"
                    check_fits(length, self.context, f"{name}: its {task} sequence",
                               self._shorten(task, part.source, longest, grid, frames, length))

    def _shorten(self, task: str, source: str, caption_tokens: int, grid: int, frames: int, length: int) -> str:
        """What makes a `task` sequence of source `source` (`length` tokens) fit: only what that task holds, by
        its key, or a context that holds it."""
        remedies = [] if task == "video" else ["shorten the caption"]  # the video task reads no caption
        if task in VIDEO_TASKS:
            prefix = caption_tokens + 2 if task == "text2video" else 0  # <TEXT> caption </TEXT> before the video
            fewer = TokenLayout.frames_that_fit(grid, self.context, prefix)
            if 2 <= fewer < frames:  # a clip is at least 2 frames
                remedies.append(f"use fewer frames (data.sources.{source}.frames={fewer} fits)")
        if task != "text":
            remedies.append(f"use a smaller image size (data.sources.{source}.image_size, every source alike)")
        remedies.append(f"give model.net.context={length} or more")
        return f"{', '.join(remedies[:-1])} or {remedies[-1]}"

    # -- Lightning hooks ----------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if not self.data:
            self._load(training=stage in (None, "fit"))
        # every stage: a fit checks the splits it will score, a later test (evaluate.py too) its own
        for split in self._splits_scored(stage):
            self._check_items_to_score(split, stage)

    def _load(self, training: bool) -> None:
        """The codes of every split; `training`: a fit, which needs train items of every source (a scoring run
        needs only the split it scores: a copy of a data set's test images alone is scored)."""
        if training:
            check_tasks_have_sources(self.source_configs, self.weights)
        codes = self.codes.all()
        self.data = {split: [codes[name][split] for name in self.source_configs] for split in SPLITS}
        if training:
            self._check_train_items()
        self.vocab = self._vocabulary(self.data["train"])
        for split, parts in self.data.items():
            for part in parts:
                self._encode_captions(part)
                self._check_lengths(split, part)
        log.info(self._summary())
        for task in TASKS if training else ():
            if self.weights[task] > 0 and not task_items(task, self.data["train"]):
                raise no_source_for(task, self.weights[task])
        for task in (t for t in VIDEO_TASKS if self.weights[t] > 0):  # before training, not at its validation
            clips = [(split, part.codes.shape[1]) for split in ("val", self.split) for part in self.data[split]
                     if task_items(task, [part])]
            short = next(((split, frames) for split, frames in clips if frames <= self.video_given_frames), None)
            if short is not None:
                raise SupraUserError(f"data.video_given_frames={self.video_given_frames} leaves nothing to predict in "
                                     f"the {short[0]} clips of {short[1]} frames: give fewer (at most {short[1] - 1}) "
                                     "or use longer clips")

    def train_codes_used(self) -> list[int]:
        """The distinct codes the VQ-VAE gave the train split's pictures and frames, every source's, ascending
        (one alone: a collapsed VQ-VAE, every picture the same to the GPT)."""
        return torch.unique(torch.cat([part.codes.flatten().long() for part in self.data["train"]])).tolist()

    def _check_train_items(self) -> None:
        """One line naming a source with no train item: a fit would train on the others alone without a word."""
        for name, part in zip(self.source_configs, self.data["train"], strict=True):
            if len(part):
                continue
            counts = "/".join(str(len(self.data[split][list(self.source_configs).index(name)])) for split in SPLITS)
            raise SupraUserError(f"data.sources.{name} has no train {'clips' if part.is_clips else 'images'} "
                                 f"(train/val/test {counts}): training needs train items of every source; give "
                                 f"it a copy with train items (data.sources.{name}.root) or leave the source out of "
                                 "the run (evaluate.py scores a copy of test items alone)")

    def _summary(self) -> str:
        """One line: each source's items per split, and those no captioned task can use (no caption)."""
        described = []
        for name in self.source_configs:
            parts = [self.data[split][list(self.source_configs).index(name)] for split in SPLITS]
            line = f"{name} {'/'.join(str(len(p)) for p in parts)} {'clips' if parts[0].is_clips else 'images'}"
            uncaptioned = [sum(not caps for caps in p.captions) for p in parts]
            if any(uncaptioned):
                use = "only the video task uses them" if parts[0].is_clips else "no task uses them"
                line += f", {'/'.join(map(str, uncaptioned))} of them without a caption ({use})"
            described.append(line)
        return f"a2a sources ({'/'.join(SPLITS)}): " + "; ".join(described)

    def _splits_scored(self, stage: str | None) -> list[str]:
        """The splits a stage scores. A fit checks the test split too, as the captioner's data does: a test
        follows the training (train.py's test=true), and an empty one should stop the run before, not after."""
        validating = self.val_items != 0 and (self.trainer is None or self.trainer.limit_val_batches != 0)
        testing = self.test_items != 0
        scored = {"fit": ["val"] * validating + [self.split] * testing, "validate": ["val"] * validating}
        return list(dict.fromkeys(scored.get(stage or "fit", [self.split] * testing)))

    def _check_items_to_score(self, split: str, stage: str | None) -> None:
        """One line when an active task has no item in `split` to be scored on: Lightning's loop would run
        over nothing, log no metric and exit 0 (a media folder whose captioned files all fell in train)."""
        empty = [task for task in self.active_tasks if not task_items(task, self.data[split])]
        if not empty:
            return
        holders, remedies = [], []
        for name, part in zip(self.source_configs, self.data[split], strict=True):
            if not any(eligible(task, part) for task in empty):
                continue
            captioned = sum(bool(caps) for caps in part.captions)
            unit = ("clip" if part.is_clips else "image") + ("s" if len(part) != 1 else "")
            holders.append(f"data.sources.{name} has {len(part)} {split} {unit}, {captioned or 'none'} captioned")
            # a media folder's: its split is drawn by file (val_fraction, test_fraction), its captions are the user's
            fraction = f"{split}_fraction" if hasattr(self.codes.modules.get(name), f"{split}_fraction") else None
            if not len(part) and fraction:
                remedies.append(f"set data.sources.{name}.{fraction} above 0")
            elif captioned < len(part):
                remedies.append(f"caption more of data.sources.{name}'s files" + (
                    f" or raise data.sources.{name}.{fraction}" if fraction else ""))
        if len(empty) < len(self.active_tasks):  # weights all 0 are refused: only a task beside others
            remedies.append("set " + " ".join(f"data.tasks.{task}=0" for task in empty))
        if split == "val" and stage in (None, "fit", "validate"):
            remedies.append("turn validation off (+trainer.limit_val_batches=0)")
        elif stage in (None, "fit"):
            remedies.append("do not test (test=false data.test_items=0)")
        else:
            remedies.append(f"score another split than data.split={split}")
        needs = ", ".join(f"{task}: {NEEDS[task]}" for task in empty)
        # no holder where no source can hold such items (the clips' source left out): no empty item after "; "
        raise SupraUserError(f"the {split} split has nothing to score for data.tasks {', '.join(empty)} "
                             f"({'; '.join([needs, *holders])}): " + " or ".join(filter(None, (", ".join(remedies[:-1]), remedies[-1]))))

    @property
    def layout(self) -> TokenLayout:
        return self.vocab.layout

    @property
    def active_tasks(self) -> list[str]:
        return [t for t in TASKS if self.weights[t] > 0]

    def _builder(self, split: str) -> SequenceBuilder:
        return SequenceBuilder(self.data[split], self.vocab.layout, self.context, self.video_given_frames)

    def train_dataset(self) -> MixtureBatches:
        pools = {t: task_items(t, self.data["train"]) for t in self.active_tasks}
        per_epoch = self.batches_per_epoch or max(1, math.ceil(max(sum(map(len, self.data["train"])), 1) / self.batch_size))
        return MixtureBatches(self._builder("train"), pools, self.weights, self.batch_size, per_epoch, self.batching,
                              self.seed, self.caption_dropout)

    def train_dataloader(self) -> DataLoader:
        return EpochLoader(self.train_dataset(), self._progress if self.trainer is not None else None,
                           collate_fn=batch_is_ready, num_workers=self.num_workers)

    def _progress(self) -> tuple[int, int]:
        """(epoch, batches of it already trained): after a resume, what the checkpoint recorded."""
        return trainer_progress(self.trainer)

    def eval_batches(self, split: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The fixed evaluation batches of `split`: per active task, its first `limit` items (all when None)
        in batches of eval_batch_size, caption i mod its count."""
        if (split, limit) in self._eval_batches:
            return self._eval_batches[split, limit]
        builder, batches = self._builder(split), []
        for task in self.active_tasks:
            items = self._task_items(split, task)
            items = items[:limit] if limit is not None else items
            for start in range(0, len(items), self.eval_batch_size):
                batches.append(self._eval_batch(builder, task, items[start:start + self.eval_batch_size]))
        self._eval_batches[split, limit] = batches
        return batches

    def _task_items(self, split: str, task: str) -> list[tuple[int, int]]:
        """(part, row) of every item of `split` the task can be scored on: a video prediction needs a clip
        with frames to predict after the given ones."""
        items = task_items(task, self.data[split])
        if task in VIDEO_TASKS:
            items = [(p, r) for p, r in items if self.data[split][p].codes.shape[1] > self.video_given_frames]
        return items

    def _eval_batch(self, builder: SequenceBuilder, task: str, items: list[tuple[int, int]]) -> dict[str, Any]:
        parts = builder.parts
        captions = [r % len(parts[p].captions[r]) if parts[p].captions[r] else 0 for p, r in items]
        sequences = [builder.sequence(task, p, r, c) for (p, r), c in zip(items, captions, strict=True)]
        ids, targets = builder.pad(sequences)
        batch: dict[str, Any] = {
            "ids": ids, "targets": targets, "tasks": [task] * len(items), "task": task,
            "prompt_lengths": torch.tensor([prompt_length(task, s, builder.layout, self.video_given_frames) for s in sequences]),
            "keys": [f"{parts[p].source}/{parts[p].names[r]}" for p, r in items],
            "files": [parts[p].files[r] if parts[p].files else None for p, r in items],
            # the source's captions as published (a repeat twice, a final stop kept), as the captioner scores them
            "references": [parts[p].references[r] for p, r in items],
            "prompts_text": [parts[p].captions[r][c] if parts[p].captions[r] else "" for (p, r), c in zip(items, captions, strict=True)],
            "objects": [parts[p].objects[r] if parts[p].objects is not None else None for p, r in items],
        }
        if task != "text":
            batch["codes"] = torch.stack([parts[p].codes[r] for p, r in items])
            if all(parts[p].pixels is not None for p, _ in items):
                batch["pixels"] = torch.stack([parts[p].pixels[r] for p, r in items])
            if task in VIDEO_TASKS and any(parts[p].real_frames is not None for p, _ in items):
                # clips padded from a short GIF: only their real frames are truth to score against
                batch["real_frames"] = torch.tensor([parts[p].real_frames[r] if parts[p].real_frames is not None
                                                     else parts[p].codes.shape[1] for p, r in items])
        return batch

    def _eval_loader(self, split: str, limit: int | None) -> DataLoader:
        trust_exact_lengths()  # served in one process: exact, in one process or under DDP
        return DataLoader(EvalBatches(self.eval_batches(split, limit)), batch_size=None, collate_fn=batch_is_ready)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val", self.val_items)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split, self.test_items)

    def sample_batch(self, split: str, task: str, n: int) -> dict[str, Any] | None:
        """The first n evaluation items of `task` in `split` as one batch (fixed samples for grids)."""
        if task not in self.active_tasks:
            return None
        items = self._task_items(split, task)[:n]  # a clip too short to predict from is no sample either
        return self._eval_batch(self._builder(split), task, items) if items else None
