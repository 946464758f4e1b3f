"""A DataLoader over a dataset that draws its own batches per epoch (the a2a mixture, the shard stream)
and so must be told, before each epoch, which epoch this is and how many of its batches were already
trained (a run resumed mid-epoch): then a resumed run trains on the batches an uninterrupted one would.
ShuffledLoader does the same for a shuffled map-style dataset (the captioner's and VQ-VAE's splits held in
memory): a resumed epoch trains the rest of the permutation it began, at the run's batch size whatever the
checkpoint's was (`resume_after`).

Lightning calls `set_epoch` on samplers only, and builds the loader's iterator before it restores a
checkpoint's progress, so the loader asks `progress` (the trainer's) when the epoch's first batch is asked
for. Its workers persist across epochs (no fork and start-up per epoch): the dataset keeps `epoch` and
`skip_batches` where they can read what the main process sets (shared memory), and `place`, this process's
(rank, world) taken in the main process: DataLoader workers have no process group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sized
from typing import Any

import lightning as L
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
)

from supra.utils.distributed import rank_and_world
from supra.utils.private_apis import batches_done_in_epoch

Progress = Callable[[], tuple[int, int]]  # () -> (epoch, batches of it already trained)


def trainer_progress(trainer: L.Trainer) -> tuple[int, int]:
    """The trainer's (epoch, batches of it already trained), with epoch 0 in every epoch under
    trainer.overfit_batches (debug=overfit): Lightning turns a sampler's shuffle off there so that each epoch
    fits the same few batches, but these datasets draw their own batches per epoch, which would bring new
    ones every epoch (with overfit_batches=1, every step)."""
    epoch = 0 if trainer.overfit_batches else trainer.current_epoch
    return epoch, batches_done_in_epoch(trainer)


class EpochProgress:
    """What an EpochLoader sets on its dataset before each epoch: `epoch` and `skip_batches` in shared memory,
    where persistent workers read them (a subclass may keep more after them: `_share_progress(*more)`), and
    `place`, a plain attribute: it is set before the workers first start and never changes."""

    place: tuple[int, int] | None = None

    def _share_progress(self, *more: int) -> None:
        self._progress = torch.tensor([0, 0, *more], dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._progress[0])

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._progress[0] = value

    @property
    def skip_batches(self) -> int:
        return int(self._progress[1])

    @skip_batches.setter
    def skip_batches(self, value: int) -> None:
        self._progress[1] = value


class EpochLoader(DataLoader):
    """`dataset` yields whole batches and keeps its EpochProgress. Without
    `progress`, epochs are counted from 0 as the loader is iterated."""

    def __init__(self, dataset: EpochProgress | IterableDataset | Dataset, progress: Progress | None = None,
                 **settings: Any) -> None:
        super().__init__(dataset, **{"batch_size": None, "persistent_workers": settings.get("num_workers", 0) > 0,
                                     **settings})
        self.progress, self.epochs_started = progress, 0

    def __iter__(self) -> Iterator[Any]:
        def batches() -> Iterator[Any]:
            epoch, done = self.progress() if self.progress is not None else (self.epochs_started, 0)
            self.begin_epoch(epoch, done)
            self.epochs_started += 1
            yield from self.epoch_batches(epoch, done)

        return batches()

    def begin_epoch(self, epoch: int, done: int) -> None:
        """Tell the dataset the epoch about to be iterated and its batches already trained."""
        self.dataset.epoch, self.dataset.skip_batches = epoch, done
        self.dataset.place = rank_and_world()

    def epoch_batches(self, epoch: int, done: int) -> Iterator[Any]:
        """The epoch's batches from the workers (they start, or resume, here)."""
        return super().__iter__()

    # Lightning's mark of a loader that resumes mid-epoch (it warns "not resumable" of the others): this one
    # resumes from the trainer's own progress, so it has no state of its own to keep.
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


class EpochShuffle(RandomSampler):
    """torch's RandomSampler, drawing as it draws (a seed from torch's generator as each epoch begins, then that
    seed's permutation: a run's batches are those a plain shuffled loader gave it), which keeps the seed: a run
    resumed mid-epoch in one process draws that epoch's permutation again from its checkpoint (`resume_seed`)."""

    def __init__(self, data_source: Sized) -> None:
        super().__init__(data_source)
        self.seed: int | None = None  # that of the epoch begun last
        self.resume_seed: int | None = None

    def __iter__(self) -> Iterator[int]:
        drawn = int(torch.empty((), dtype=torch.int64).random_().item())  # drawn even when resuming: the same draws
        self.seed, self.resume_seed = drawn if self.resume_seed is None else self.resume_seed, None
        yield from torch.randperm(len(self.data_source), generator=torch.Generator().manual_seed(self.seed)).tolist()


class SkipBatches(BatchSampler):
    """A BatchSampler whose next epoch leaves out its sampler's first `skip` indices (drawn, no item loaded): those
    of the batches a resumed run had trained, of whatever size, and batches the rest. Under DDP Lightning makes it
    again around its DistributedSampler."""

    skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        rest = itertools.islice(iter(self.sampler), skip, None)
        while batch := list(itertools.islice(rest, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def batches_after(self, skip: int) -> int:
        """The batches of an epoch begun after its first `skip` indices."""
        left = max(0, len(self.sampler) - skip)
        return left // self.batch_size if self.drop_last else math.ceil(left / self.batch_size)


class ShuffledLoader(EpochLoader):
    """The shuffled train loader of a map-style `dataset` of whole batches (`__getitems__`): in one process in
    torch's RandomSampler's order, under DDP in Lightning's DistributedSampler's (seeded by the seed and the
    epoch), from which a run resumed mid-epoch trains the rest of the permutation the interrupted run began, on
    every rank. That permutation's seed is the loader's state, kept in the checkpoint: in one process the epoch's,
    under DDP the sampler's (the run's `seed`), so that a run resumed with another `seed` finishes the epoch on its
    own samples and shuffles the epochs after it by the new one. A run resumed at another batch size than its
    checkpoint's is told the samples of each rank's share already trained (`resume_after`): the batches done, of
    the checkpoint's size, cannot say them."""

    def __init__(self, dataset: Dataset, progress: Progress | None = None, **settings: Any) -> None:
        super().__init__(dataset, progress, **{"batch_size": 1, **settings})  # 1: the batch sampler's batches
        self.restored_seed: int | None = None
        self.restored_distributed_seed: int | None = None  # under DDP, that of the epoch resumed next
        self.distributed_seed: int | None = None  # under DDP, this run's: the sampler's as Lightning made it
        self.samples_trained: int | None = None  # of the epoch resumed next, where resume_after said them

    @classmethod
    def over(cls, dataset: Dataset, batch_size: int, progress: Progress | None = None, **settings: Any) -> ShuffledLoader:
        return cls(dataset, progress, batch_sampler=SkipBatches(EpochShuffle(dataset), batch_size, drop_last=False),
                   **settings)

    def resume_after(self, samples_trained: int) -> int:
        """Begin the next epoch (the one the checkpoint stopped in) after the first `samples_trained` indices of this
        rank's share of its permutation, batching the rest at this loader's size; the batches that rest makes."""
        self.samples_trained = samples_trained
        return self.batch_sampler.batches_after(samples_trained)

    def begin_epoch(self, epoch: int, done: int) -> None:
        resumed = self.samples_trained is not None
        self.batch_sampler.skip = self.samples_trained if resumed else done * self.batch_sampler.batch_size
        sampler = self.batch_sampler.sampler
        in_stopped_epoch = bool(done or resumed)  # the epoch the checkpoint stopped in
        if in_stopped_epoch and isinstance(sampler, EpochShuffle):
            sampler.resume_seed = self.restored_seed
        if isinstance(sampler, DistributedSampler):
            self.seed_distributed_epoch(sampler, self.restored_distributed_seed if in_stopped_epoch else None)
        self.restored_seed = self.restored_distributed_seed = self.samples_trained = None

    def seed_distributed_epoch(self, sampler: DistributedSampler, checkpoint_seed: int | None) -> None:
        """Draw the epoch about to begin from `checkpoint_seed` (the one its checkpoint's run drew it from), or from
        this run's seed (None): Lightning seeds its sampler once, from the resumed run's seed."""
        if self.distributed_seed is None:
            self.distributed_seed = sampler.seed
        sampler.seed = self.distributed_seed if checkpoint_seed is None else checkpoint_seed

    def state_dict(self) -> dict[str, Any]:
        sampler = self.batch_sampler.sampler
        if isinstance(sampler, DistributedSampler):  # the seed the epoch under way was drawn from
            return {"distributed_seed": sampler.seed}
        return {"shuffle_seed": sampler.seed} if isinstance(sampler, EpochShuffle) and sampler.seed is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.restored_seed = state_dict.get("shuffle_seed")
        self.restored_distributed_seed = state_dict.get("distributed_seed")
