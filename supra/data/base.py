"""What every Supra DataModule shares: the train/val/test splits, each loaded once on first use and
checked for being empty, the batch-size and split settings checked where they are read, and loaders over
datasets that build whole batches themselves; under DDP the val and test loaders give each rank its rows of
every batch, so that each item is scored once (rank_rows, RankBatches).

A subclass says how to load a split (`load_split`) and which Dataset serves it (`dataset`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from supra.data.epoch_loader import ShuffledLoader, trainer_progress
from supra.procedural.shapes_scenes import MIN_DRAWING_SIZE
from supra.utils.cli import check_option_types, count_as_typed
from supra.utils.distributed import rank_and_world
from supra.utils.errors import SupraUserError
from supra.utils.hardware import memory_limit
from supra.utils.numbers import is_whole
from supra.utils.seeds import check_seed

SPLITS = ("train", "val", "test")


def check_split(split: str, key: str = "data.split") -> str:
    if split not in SPLITS:
        raise SupraUserError(f"{key}={split!r} is unknown: choose one of {', '.join(SPLITS)}")
    return split


def check_batch_sizes(batch_size: int, eval_batch_size: int) -> None:
    """data.batch_size and data.eval_batch_size whole numbers >= 1, else one line: 2.5 given from Python (train.py
    refuses it first) passed here and failed in torch's DataLoader at the first batch."""
    check_option_types({"data.batch_size": batch_size, "data.eval_batch_size": eval_batch_size},
                       whole=("data.batch_size", "data.eval_batch_size"))
    if batch_size < 1 or eval_batch_size < 1:
        raise SupraUserError(f"data.batch_size={batch_size} and eval_batch_size={eval_batch_size} must be >= 1")


def check_num_workers(num_workers: int) -> None:
    """data.num_workers a whole number >= 0 (0: batches made in the main process), else one line: torch's
    DataLoader refuses -1 with a traceback when the first batch is loaded, and 2.5 or true further in."""
    if not is_whole(num_workers, 0):
        raise SupraUserError(f"{count_as_typed('data.num_workers', num_workers)} must be a whole number >= 0 (0: "
                             "batches are made in the main process)")


def check_split_sizes(num_train: int, num_val: int, num_test: int, item_name: str = "item") -> dict[str, int]:
    """{split: size} of a generated data set; one line when a split would be empty or is no whole number
    (`data.num_train=2.5` passed here and failed as a traceback once the split was drawn)."""
    sizes = {"train": num_train, "val": num_val, "test": num_test}
    check_option_types({f"data.num_{split}": n for split, n in sizes.items()}, whole=[f"data.num_{s}" for s in sizes])
    for split, n in sizes.items():
        if n < 1:
            raise SupraUserError(f"data.num_{split}={n}: every split needs at least 1 {item_name}")
    return sizes


def check_split_memory(sizes: dict[str, int], item_bytes: int, item: str, settings: str) -> None:
    """One line, before anything is drawn, for a split whose `item_bytes` each (its pixels as drawn and as
    kept) would take more memory than this process can ever hold (hardware.memory_limit): else numpy's
    MemoryError traceback after minutes of drawing, or a machine swapping. `item` and `settings` describe an
    item and the options that size it, for the message ("128 px scene", "at data.canvas_size=128")."""
    limit = memory_limit()
    if limit is None:
        return
    most, what = limit
    for split, n in sizes.items():
        if n * item_bytes > most:
            raise SupraUserError(f"data.num_{split}={n} {settings} needs {n * item_bytes / 2**30:.1f} GiB of memory "
                                 f"({item_bytes} bytes a {item}), more than {what} ({most / 2**30:.1f} GiB): lower it")


def check_drawing(seed: int, size: int, size_key: str) -> None:
    """One line for a procedural data set's seed or side `size_key` that is no whole number, a seed outside
    the one seed range (numpy seeds no generator from one below 0, and splits a larger one into 32-bit words,
    ignoring trailing zeros: seed 5 + 7 * 2**32's clip 0 would be seed 5's clip 7), or a side too small to
    draw its shapes at (the drawing code's own errors name neither key)."""
    check_option_types({"data.seed": seed, f"data.{size_key}": size}, whole=["data.seed", f"data.{size_key}"])
    check_seed("data.seed", seed)
    if size < MIN_DRAWING_SIZE:
        raise SupraUserError(f"data.{size_key}={size} is too small to draw shapes: use {MIN_DRAWING_SIZE} or more")


def batch_is_ready(batch: Any) -> Any:
    """The collate function of datasets that build whole batches (`__getitems__`, or an iterable of
    batches): there is nothing left to collate."""
    return batch


def resolve_pin_memory(pin_memory: bool | str) -> bool:
    """"auto": pin when CUDA is there. Even without workers it pays: a copy from pageable memory waits
    for the GPU's queued work, a pinned one (non_blocking) does not."""
    if pin_memory == "auto":
        return torch.cuda.is_available()
    if not isinstance(pin_memory, bool):
        raise SupraUserError(f"data.pin_memory={pin_memory!r}: choose true, false or auto")
    return pin_memory


def rank_rows(n: int, rank: int, world: int) -> tuple[list[int], list[bool]]:
    """Rank `rank`'s share of the n rows of an eval batch under DDP (`world` ranks), each row scored once: rows
    rank, rank + world, ... A rank the batch has no row left for takes one row again, marked repeated (True), so
    that every rank runs every batch (their collectives and logged names stay in step); a share is either rows of
    its own or that one repeat. (Lightning's DistributedSampler pads a split with repeated items instead, which
    losses and PSNR sums would count twice.)"""
    shares = range(rank, max(n, world), world)
    return [i % n for i in shares], [i >= n for i in shares]


class RankBatches(IterableDataset):
    """The val / test batches of `batch_size` items of a batched Dataset (`__getitems__`) under DDP: each rank
    its rows of every batch (rank_rows), so all ranks run the same number of steps, each item scored once; the
    batch says which of its rows are repeats (`repeated`, not to be scored or weighed again). DataLoader workers
    take every num_workers-th batch."""

    def __init__(self, items: Dataset, batch_size: int, rank: int, world: int) -> None:
        self.items, self.batch_size, self.rank, self.world = items, batch_size, rank, world

    def __len__(self) -> int:
        return math.ceil(len(self.items) / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for b, start in enumerate(range(0, len(self.items), self.batch_size)):
            if b % workers != worker:  # the DataLoader takes batches from its workers in turn: still in order
                continue
            rows, repeated = rank_rows(min(self.batch_size, len(self.items) - start), self.rank, self.world)
            yield {**self.items.__getitems__([start + row for row in rows]), "repeated": repeated}


def trust_exact_lengths() -> None:
    """Silence Lightning's warning that an IterableDataset's `__len__` "could be inaccurate" with DataLoader
    workers, printed at every DDP val and test loader (each rank's, even with no worker). It is meant for a
    dataset each worker serves whole; Supra's eval batches are exact: RankBatches' workers take every
    num_workers-th batch, and the a2a EvalBatches are served with no worker."""
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined", category=UserWarning)


class SplitDataModule(L.LightningDataModule):
    """Base of the captioning and media DataModules. Subclasses implement `load_split` and `dataset`."""

    item_name = "items"  # what a split holds, for messages ("the val split ... has 0 images")
    # its train loader (ShuffledLoader) finishes an epoch begun at another data.batch_size; one whose data draws its
    # own batches (the a2a mixture, the shard stream) cannot, and such a resume is refused
    resumes_at_another_batch_size = True

    def __init__(
        self,
        split: str = "test",
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        pin_memory: bool | str = False,
    ) -> None:
        super().__init__()
        self.split = check_split(split)  # the split `trainer.test` (and evaluate.py) scores
        check_batch_sizes(batch_size, eval_batch_size)
        check_num_workers(num_workers)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.pin_memory = num_workers, resolve_pin_memory(pin_memory)
        self.data: dict[str, Any] = {}

    # -- what subclasses provide ------------------------------------------------------------------

    def load_split(self, split: str) -> Any:
        """The split's items (anything with a length)."""
        raise NotImplementedError

    def dataset(self, split: str) -> Dataset:
        """The Dataset that serves `split` in batches."""
        raise NotImplementedError

    # -- splits -----------------------------------------------------------------------------------

    def splits_for(self, stage: str | None) -> list[str]:
        """The splits Lightning's `stage` uses (None: fit's); any other stage in one line, not every split."""
        needed = {"fit": ["train", "val"], "validate": ["val"], "test": [self.split], "predict": [self.split]}
        if stage is not None and stage not in needed:
            raise SupraUserError(f"stage={stage!r} is unknown: fit, validate, test or predict")
        return needed[stage or "fit"]

    def loaded(self, split: str) -> Any:
        """The split, loaded once; a one-line error when it is empty."""
        check_split(split, "split")
        if split not in self.data:
            data = self.load_split(split)
            if len(data) == 0:
                raise SupraUserError(f"the {split} split of {type(self).__name__} has 0 {self.item_name}: "
                                     "check its size/path settings")
            self.data[split] = data
        return self.data[split]

    def setup(self, stage: str | None = None) -> None:
        for split in self.splits_for(stage):
            self.loaded(split)

    # -- loaders ----------------------------------------------------------------------------------

    def loader(self, split: str, batch_size: int) -> DataLoader:
        """The split's batches in order."""
        return DataLoader(
            self.dataset(split), batch_size=batch_size, shuffle=False, collate_fn=batch_is_ready,
            num_workers=self.num_workers, pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled; a run resumed mid-epoch trains the rest of the epoch's permutation (ShuffledLoader)."""
        progress = (lambda: trainer_progress(self.trainer)) if self.trainer is not None else None
        return ShuffledLoader.over(self.dataset("train"), self.batch_size, progress, collate_fn=batch_is_ready,
                                   num_workers=self.num_workers, pin_memory=self.pin_memory,
                                   persistent_workers=self.num_workers > 0)

    def eval_loader(self, split: str) -> DataLoader:
        """Under DDP each item scored once (RankBatches); in one process the loader every split has."""
        rank, world = rank_and_world()  # here: DataLoader workers have no process group
        if world == 1:
            return self.loader(split, self.eval_batch_size)
        trust_exact_lengths()
        return DataLoader(RankBatches(self.dataset(split), self.eval_batch_size, rank, world), batch_size=None,
                          collate_fn=batch_is_ready, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self.split)
