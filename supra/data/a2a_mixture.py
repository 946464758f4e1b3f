"""`data=a2a_mixture`: training sequences of a2a_nano mixed from several tasks with per-task weights,
built from captioned images and clips of other DataModules (the sources: shapes_images, shapes_video,
media_folder, ...).

What happens once, not per step:
- codes: each source's splits are encoded by the frozen stage-1 VQ-VAE and cached on disk under
  `cache_dir/<source>-<key>/` (media_codes' layout: codes_<split>.npy, items_<split>.json, meta.json
  last; plus objects_<split>.json and, for val/test, pixels_<split>.npy, the truth of video PSNR and
  grids). The key hashes the VQ-VAE's weights (the same VQ-VAE read from its .ckpt or from an a2a
  checkpoint shares codes) and the source's data config. The folder is built beside its final name and
  renamed into place, by global rank 0 in `prepare_data`; other ranks and later runs only read it.
- vocabulary: A2AVocab trained on every source's train captions (or GPT-2's files), cached by content
  hash in cache_dir and written to `vocab_path` (reused when it exists: a checkpoint's ids).

Training batches (an IterableDataset: the task of each batch, or of each row, is drawn by the weights):
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from supra.checkpoints import load_vqvae
from supra.data.a2a_sequences import (
    NEEDS,
    TASKS,
    build_sequence,
    check_fits,
    check_tasks,
    prompt_length,
    sequence_length,
)
from supra.data.a2a_vocab import A2AVocab
from supra.data.media_codes import codes_dtype, save_npy_atomic, write_meta, write_split
from supra.data.media_datamodule import SPLITS, MediaDataModule
from supra.tokenization import encode_items
from supra.utils.errors import SupraUserError
from supra.utils.files import atomic_dir, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the cache layout changes: old folders are then simply not found
IMAGE_TASKS = ("text2image", "image2text")
VIDEO_TASKS = ("video", "text2video")
BATCHINGS = ("by_task", "mixed")


def weights_sha256(net: torch.nn.Module) -> str:
    """Hash of a module's weights and buffers (names, dtypes, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class SourceSplit:
    """One split of one source, as codes: int64 [N, h, w] (images) or [N, T, h, w] (clips)."""

    source: str
    codes: torch.Tensor
    names: list[str]
    captions: list[list[str]]
    objects: list[list[tuple[str, str]]] | None  # per item, when the source knows them (shapes scenes)
    pixels: torch.Tensor | None = None  # uint8 truth, val/test only
    caption_ids: list[list[list[int]]] | None = None  # filled once the vocabulary exists

    @property
    def is_clips(self) -> bool:
        return self.codes.ndim == 4

    def __len__(self) -> int:
        return len(self.codes)


def _eligible(task: str, part: SourceSplit) -> bool:
    if task == "text":
        return True
    return (task in VIDEO_TASKS) == part.is_clips


def _task_items(task: str, parts: list[SourceSplit]) -> list[tuple[int, int]]:
    """(part index, row) of every item usable for `task` (captioned where the task needs a caption)."""
    needs_caption = task != "video"
    return [(p, row) for p, part in enumerate(parts) if _eligible(task, part)
            for row in range(len(part)) if not needs_caption or part.captions[row]]


class _Sequences:
    """Builds padded batches from items; shared by training and evaluation."""

    def __init__(self, parts: list[SourceSplit], layout, context: int, given_frames: int) -> None:
        self.parts, self.layout, self.context, self.given_frames = parts, layout, context, given_frames

    def sequence(self, task: str, part_index: int, row: int, caption: int, drop_caption: bool = False) -> list[int]:
        """drop_caption: an empty caption instead (text2image only: what guidance contrasts with)."""
        part = self.parts[part_index]
        text = part.caption_ids[row][caption] if part.caption_ids[row] else None
        if drop_caption and task == "text2image":
            text = []
        codes = None if task == "text" else part.codes[row]
        return build_sequence(task, self.layout, text, codes, self.context, f"{part.source} item {part.names[row]}")

    @staticmethod
    def pad(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequences -> (inputs, targets) int64 [B, L-1]: targets -100 past each sequence's end."""
        length = max(map(len, sequences))
        ids = torch.zeros(len(sequences), length, dtype=torch.long)
        targets = torch.full((len(sequences), length), -100, dtype=torch.long)
        for i, seq in enumerate(sequences):
            ids[i, : len(seq)] = torch.tensor(seq)
            targets[i, : len(seq)] = ids[i, : len(seq)]
        return ids[:, :-1], targets[:, 1:].contiguous()


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class MixtureBatches(IterableDataset):
    """Endless-looking training stream of `batches_per_epoch` batches per epoch. Each rank (and loader
    worker) draws its own batches from its own seed, so ranks see different data without a sampler."""

    def __init__(self, builder: _Sequences, pools: dict[str, list[tuple[int, int]]], weights: dict[str, float],
                 batch_size: int, batches_per_epoch: int, batching: str, seed: int,
                 caption_dropout: float = 0.0) -> None:
        self.builder, self.pools, self.batch_size = builder, pools, batch_size
        self.caption_dropout = caption_dropout
        self.tasks = [t for t in weights if weights[t] > 0]
        total = sum(weights[t] for t in self.tasks)
        self.probs = np.array([weights[t] / total for t in self.tasks])
        self.batches_per_epoch, self.batching, self.seed = batches_per_epoch, batching, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, _ = _rank_and_world()
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        rng = np.random.default_rng([self.seed, rank, self.epoch])
        self.epoch += 1
        orders = {t: rng.permutation(len(self.pools[t])) for t in self.tasks}
        cursors = dict.fromkeys(self.tasks, 0)

        def take(task: str) -> tuple[int, int]:
            # Items without replacement within a task, reshuffled when its pool runs out.
            if cursors[task] == len(orders[task]):
                orders[task], cursors[task] = rng.permutation(len(self.pools[task])), 0
            cursors[task] += 1
            return self.pools[task][orders[task][cursors[task] - 1]]

        for b in range(self.batches_per_epoch):
            if self.batching == "by_task":
                row_tasks = [self.tasks[rng.choice(len(self.tasks), p=self.probs)]] * self.batch_size
            else:
                row_tasks = [self.tasks[i] for i in rng.choice(len(self.tasks), size=self.batch_size, p=self.probs)]
            items = [take(t) for t in row_tasks]
            captions = [int(rng.integers(max(1, len(self.builder.parts[p].captions[r])))) for p, r in items]
            # drawn only when on, so runs without dropout keep their exact batches
            dropped = rng.random(len(items)) < self.caption_dropout if self.caption_dropout > 0 else [False] * len(items)
            if b % workers != worker_id:  # every worker draws the same plan and keeps its share
                continue
            sequences = [self.builder.sequence(t, p, r, c, bool(d))
                         for t, (p, r), c, d in zip(row_tasks, items, captions, dropped, strict=True)]
            ids, targets = self.builder.pad(sequences)
            yield {"ids": ids, "targets": targets, "tasks": row_tasks,
                   "task": row_tasks[0] if len(set(row_tasks)) == 1 else "mixed"}


class EvalBatches(IterableDataset):
    """The fixed evaluation batches of one split. Under DDP every rank takes its share of the rows of
    every batch (rank r: rows r, r + world, ...), so all ranks run the same tasks the same number of
    times and log the same metrics (their collectives stay in step)."""

    def __init__(self, batches: list[dict[str, Any]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = _rank_and_world()
        for batch in self.batches:
            n = len(batch["tasks"])
            # a batch smaller than the world repeats rows; metrics gather by item key, so each counts once
            yield batch if world == 1 else _take_rows(batch, [i % n for i in range(rank, max(n, world), world)])


def _take_rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    index = torch.tensor(rows)
    return {k: (v[index] if isinstance(v, torch.Tensor) else [v[i] for i in rows] if isinstance(v, list) else v)
            for k, v in batch.items()}


def _ready(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


class A2AMixtureDataModule(L.LightningDataModule):
    """Mixed a2a sequences from `sources` ({name: DataModule config with _target_}) with `tasks`
    ({task: weight}); codes from the VQ-VAE at `vqvae_ckpt`. See the module docstring."""

    def __init__(
        self,
        sources: Mapping[str, Any],
        tasks: Mapping[str, float],
        vqvae_ckpt: str | None = None,
        text_tokenizer: str | None = None,
        text_vocab_size: int = 4096,
        num_codes: int = 256,
        vocab_path: str | None = None,
        cache_dir: str | None = None,
        context: int = 384,
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
        if isinstance(sources, DictConfig):
            sources = OmegaConf.to_container(sources, resolve=True)
        if not sources:
            raise SupraUserError("data.sources is empty: name at least one DataModule, e.g. shapes_images")
        for name, cfg in sources.items():
            if not isinstance(cfg, Mapping) or "_target_" not in cfg:
                raise SupraUserError(f"data.sources.{name} must be a DataModule config with a _target_")
        tasks = dict(OmegaConf.to_container(tasks) if isinstance(tasks, DictConfig) else tasks)
        check_tasks(list(tasks))
        for task, weight in tasks.items():
            if not isinstance(weight, int | float) or weight < 0:
                raise SupraUserError(f"data.tasks.{task}={weight!r}: a task weight must be a number >= 0")
        if not any(w > 0 for w in tasks.values()):
            raise SupraUserError("data.tasks: every weight is 0; give at least one task a weight > 0")
        if batching not in BATCHINGS:
            raise SupraUserError(f"data.batching={batching!r} is unknown: choose one of {', '.join(BATCHINGS)}")
        if split not in SPLITS:
            raise SupraUserError(f"data.split={split!r} is unknown: choose one of {', '.join(SPLITS)}")
        if not 0 <= caption_dropout < 1:
            raise SupraUserError(f"data.caption_dropout={caption_dropout} must be in [0, 1): the share of text2image "
                                 "captions left empty in training")
        if batch_size < 1 or eval_batch_size < 1:
            raise SupraUserError(f"data.batch_size={batch_size} and eval_batch_size={eval_batch_size} must be >= 1")
        self.source_configs = {name: dict(cfg) for name, cfg in sources.items()}
        self.weights = {t: float(tasks.get(t, 0.0)) for t in TASKS}
        self.vqvae_ckpt, self.text_tokenizer = vqvae_ckpt, text_tokenizer
        self.text_vocab_size, self.num_codes, self.context = text_vocab_size, num_codes, context
        self.vocab_path = Path(vocab_path) if vocab_path else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size, self.batching, self.batches_per_epoch = batch_size, batching, batches_per_epoch
        self.caption_dropout = caption_dropout
        self.eval_batch_size = eval_batch_size
        self.eval_items = {"val": val_items, "test": test_items, "train": val_items}
        self.video_given_frames, self.split, self.seed, self.num_workers = video_given_frames, split, seed, num_workers
        self.vqvae: torch.nn.Module | None = None
        self.vocab: A2AVocab | None = None
        self.data: dict[str, list[SourceSplit]] = {}  # split -> one SourceSplit per source
        self.cache_builds = 0  # how many code folders this object encoded (tests: 0 on a cache hit)
        self._eval_batches: dict[str, list[dict[str, Any]]] = {}

    # -- the frozen VQ-VAE ------------------------------------------------------------------------

    def attach_vqvae(self, net: torch.nn.Module) -> None:
        """Use this VQ-VAE (e.g. the one inside an a2a checkpoint) instead of loading `vqvae_ckpt`."""
        self.vqvae = net.eval()

    def _vqvae(self) -> torch.nn.Module:
        if self.vqvae is None:
            if not self.vqvae_ckpt:
                raise SupraUserError("model.vqvae_ckpt is not set: give the stage-1 VQ-VAE checkpoint, "
                                     "e.g. model.vqvae_ckpt=logs/train/runs/<run>/checkpoints/best.ckpt")
            if not Path(self.vqvae_ckpt).is_file():
                raise SupraUserError(f"model.vqvae_ckpt={self.vqvae_ckpt} does not exist: give a VQ-VAE checkpoint "
                                     "written by `python train.py experiment=vqvae_shapes`")
            self.vqvae, _ = load_vqvae(self.vqvae_ckpt)
        num_codes = self.vqvae.config.num_codes
        if num_codes != self.num_codes:
            raise SupraUserError(
                f"the VQ-VAE (model.vqvae_ckpt={self.vqvae_ckpt}) has a codebook of {num_codes} codes but the GPT's "
                f"vocabulary has {self.num_codes} visual codes (data.num_codes): use a VQ-VAE with {self.num_codes} "
                f"codes or set data.num_codes={num_codes}"
            )
        return self.vqvae

    # -- the code cache -----------------------------------------------------------------------------

    def _cache_folder(self, name: str, vqvae_hash: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key_data = {"format": CACHE_FORMAT, "vqvae_sha256": vqvae_hash, "data": self.source_configs[name]}
        key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return self.cache_dir / f"{name}-{key}"

    def _encode_source(self, name: str, vqvae: torch.nn.Module) -> dict[str, SourceSplit]:
        """Every split of source `name`, encoded by the VQ-VAE (the expensive part, done once)."""
        module = instantiate(self.source_configs[name])
        if not isinstance(module, MediaDataModule):
            raise SupraUserError(f"data.sources.{name} ({self.source_configs[name]['_target_']}) is not an image/clip "
                                 "DataModule: use shapes_images, shapes_video or media_folder")
        device = next(vqvae.parameters()).device
        out = {}
        for split in SPLITS:
            items = module.items(split)
            codes = encode_items(vqvae, items.pixels, 256, device)
            out[split] = SourceSplit(name, codes, list(items.names), [list(c) for c in items.captions],
                                     _objects(module, split, len(items)), items.pixels if split != "train" else None)
        self.cache_builds += 1
        log.info("a2a codes of %s: %s", name, ", ".join(f"{len(p)} {s}" for s, p in out.items()))
        return out

    def _write_cache(self, folder: Path, name: str, parts: dict[str, SourceSplit], vqvae_hash: str) -> None:
        """Written into a temp folder beside `folder`, then renamed: readers see all of it or nothing."""
        # replace=False: if another process renamed its copy in first, theirs is as good
        with atomic_dir(folder, replace=False) as tmp:
            dtype = codes_dtype(self.num_codes)
            for split, part in parts.items():
                write_split(tmp, split, part.codes.numpy().astype(dtype), part.names, part.captions)
                write_json_atomic(tmp / f"objects_{split}.json", part.objects)
                if part.pixels is not None:
                    save_npy_atomic(tmp / f"pixels_{split}.npy", part.pixels.numpy())
            write_meta(tmp, {"vqvae_sha256": vqvae_hash, "vqvae_ckpt": self.vqvae_ckpt, "num_codes": self.num_codes,
                             "splits": {s: len(p) for s, p in parts.items()}, "data": self.source_configs[name]})

    @staticmethod
    def _read_cache(folder: Path, name: str) -> dict[str, SourceSplit]:
        out = {}
        for split in SPLITS:
            items = json.loads((folder / f"items_{split}.json").read_text())
            objects = json.loads((folder / f"objects_{split}.json").read_text())
            pixels_path = folder / f"pixels_{split}.npy"
            pixels = torch.from_numpy(np.load(pixels_path)) if pixels_path.exists() else None
            codes = torch.from_numpy(np.load(folder / f"codes_{split}.npy").astype(np.int64))
            objects = [[tuple(o) for o in item] for item in objects] if objects is not None else None
            out[split] = SourceSplit(name, codes, items["names"], items["captions"], objects, pixels)
        return out

    def _codes(self) -> dict[str, dict[str, SourceSplit]]:
        """{source: {split: SourceSplit}}, from the cache when it has them, else encoded (and cached)."""
        vqvae = self._vqvae()
        vqvae_hash = weights_sha256(vqvae)
        result = {}
        for name in self.source_configs:
            folder = self._cache_folder(name, vqvae_hash)
            if folder is not None and (folder / "meta.json").is_file():
                result[name] = self._read_cache(folder, name)
                continue
            result[name] = self._encode_source(name, vqvae)
            if folder is not None:
                self._write_cache(folder, name, result[name], vqvae_hash)
                log.info("a2a codes of %s cached in %s", name, folder)
        return result

    def prepare_data(self) -> None:
        # Lightning calls this on one process (per node) before setup: the cache is built once there.
        if self.cache_dir is not None:
            self._codes()

    # -- the vocabulary -----------------------------------------------------------------------------

    def _vocabulary(self, train: list[SourceSplit]) -> A2AVocab:
        if self.vocab is not None:
            vocab = self.vocab
        elif self.vocab_path is not None and self.vocab_path.is_file():
            vocab = A2AVocab.from_json(self.vocab_path.read_text())
            log.info("a2a vocabulary: reusing %s (%d ids)", self.vocab_path, vocab.layout.vocab_size)
        else:
            captions = [c for part in train for caps in part.captions for c in caps]
            key = hashlib.sha256(json.dumps([self.text_vocab_size, self.num_codes, self.text_tokenizer, captions]).encode()).hexdigest()[:16]
            cached = self.cache_dir / f"a2a_vocab_{key}.json" if self.cache_dir else None
            if cached is not None and cached.is_file():
                vocab = A2AVocab.from_json(cached.read_text())
            else:
                vocab = A2AVocab.build(self.text_tokenizer, captions, self.text_vocab_size, self.num_codes)
                log.info("a2a vocabulary: %d text ids from %d train captions", vocab.layout.text_size, len(captions))
                if cached is not None:
                    write_text_atomic(cached, vocab.to_json())
            if self.vocab_path is not None:
                write_text_atomic(self.vocab_path, vocab.to_json())
        if vocab.layout.num_codes != self.num_codes:
            raise SupraUserError(f"the a2a vocabulary ({self.vocab_path}) has {vocab.layout.num_codes} visual codes but "
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
            if self.weights[task] <= 0 or not _eligible(task, part):
                continue
            for row, caps in enumerate(part.caption_ids):
                longest = max(map(len, caps), default=0)
                if task != "video" and not caps:
                    continue
                length = sequence_length(task, longest, grid, frames)
                if length > self.context:
                    caption = part.captions[row][max(range(len(caps)), key=lambda i: len(caps[i]))] if caps else ""
                    check_fits(length, self.context, task,
                               f"{part.source} {split} item {part.names[row]}" + (f" (caption {caption[:60]!r})" if caption else ""))

    # -- Lightning hooks ----------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.vocab is not None and self.data:
            return
        codes = self._codes()
        self.data = {split: [codes[name][split] for name in self.source_configs] for split in SPLITS}
        self.vocab = self._vocabulary(self.data["train"])
        for split, parts in self.data.items():
            for part in parts:
                self._encode_captions(part)
                self._check_lengths(split, part)
        for task in TASKS:
            if self.weights[task] > 0 and not _task_items(task, self.data["train"]):
                raise SupraUserError(f"data.tasks.{task} has weight {self.weights[task]:g} but no source has items "
                                     f"for it (it needs {NEEDS[task]} items): add such a source or set its weight to 0")

    @property
    def layout(self):
        return self.vocab.layout

    @property
    def active_tasks(self) -> list[str]:
        return [t for t in TASKS if self.weights[t] > 0]

    def _builder(self, split: str) -> _Sequences:
        return _Sequences(self.data[split], self.vocab.layout, self.context, self.video_given_frames)

    def train_dataset(self) -> MixtureBatches:
        pools = {t: _task_items(t, self.data["train"]) for t in self.active_tasks}
        per_epoch = self.batches_per_epoch or max(1, math.ceil(max(sum(map(len, self.data["train"])), 1) / self.batch_size))
        return MixtureBatches(self._builder("train"), pools, self.weights, self.batch_size, per_epoch, self.batching,
                              self.seed, self.caption_dropout)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_dataset(), batch_size=None, collate_fn=_ready, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def eval_batches(self, split: str) -> list[dict[str, Any]]:
        """The fixed evaluation batches of `split`: per active task, its first `val_items`/`test_items`
        items (all when null) in batches of eval_batch_size, caption i mod its count."""
        if split in self._eval_batches:
            return self._eval_batches[split]
        builder, limit, batches = self._builder(split), self.eval_items[split], []
        for task in self.active_tasks:
            items = _task_items(task, self.data[split])
            if task in VIDEO_TASKS:  # prediction needs frames to predict
                items = [(p, r) for p, r in items if self.data[split][p].codes.shape[1] > self.video_given_frames]
            items = items[:limit] if limit is not None else items
            for start in range(0, len(items), self.eval_batch_size):
                batches.append(self._eval_batch(builder, task, items[start:start + self.eval_batch_size]))
        self._eval_batches[split] = batches
        return batches

    def _eval_batch(self, builder: _Sequences, task: str, items: list[tuple[int, int]]) -> dict[str, Any]:
        parts = builder.parts
        captions = [r % len(parts[p].captions[r]) if parts[p].captions[r] else 0 for p, r in items]
        sequences = [builder.sequence(task, p, r, c) for (p, r), c in zip(items, captions, strict=True)]
        ids, targets = builder.pad(sequences)
        batch: dict[str, Any] = {
            "ids": ids, "targets": targets, "tasks": [task] * len(items), "task": task,
            "prompt_lengths": torch.tensor([prompt_length(task, s, builder.layout, self.video_given_frames) for s in sequences]),
            "keys": [f"{parts[p].source}/{parts[p].names[r]}" for p, r in items],
            "references": [parts[p].captions[r] for p, r in items],
            "prompts_text": [parts[p].captions[r][c] if parts[p].captions[r] else "" for (p, r), c in zip(items, captions, strict=True)],
            "objects": [parts[p].objects[r] if parts[p].objects is not None else None for p, r in items],
        }
        if task != "text":
            batch["codes"] = torch.stack([parts[p].codes[r] for p, r in items])
            if all(parts[p].pixels is not None for p, _ in items):
                batch["pixels"] = torch.stack([parts[p].pixels[r] for p, r in items])
        return batch

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(EvalBatches(self.eval_batches(split)), batch_size=None, collate_fn=_ready)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.split)

    def sample_batch(self, split: str, task: str, n: int) -> dict[str, Any] | None:
        """The first n evaluation items of `task` in `split` as one batch (fixed samples for grids)."""
        if task not in self.active_tasks:
            return None
        items = _task_items(task, self.data[split])[:n]
        return self._eval_batch(self._builder(split), task, items) if items else None


def _objects(module: MediaDataModule, split: str, n: int) -> list[list[tuple[str, str]]] | None:
    """The (colour, shape) objects of each item when the source draws them: shapes scenes, or the
    first frame of shapes clips; None for other sources."""
    scenes = getattr(module, "scenes", {}).get(split)
    if scenes is not None and len(scenes) == n:
        return [[(o.colour, o.shape) for o in s.objects] for s in scenes]
    clips = getattr(module, "clips", {}).get(split)
    if clips is not None and len(clips) == n:
        return [[(o.colour, o.shape) for o in c.objects] for c in clips]
    return None

