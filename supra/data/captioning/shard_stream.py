"""Training batches streamed from WebDataset shards, decoded in the DataLoader's workers.

Resampled (`samples_per_epoch` set): each worker draws shards with replacement from a generator seeded by
(seed, epoch, rank, worker), and an epoch is samples_per_epoch samples over all ranks, the same number of
batches on each; samples may repeat within an epoch. The rest of this docstring is the default, without.

Each epoch every rank orders the shards by the same seeded shuffle (the seed and the epoch), takes every
world-th shard from its rank, and each of its workers every num_workers-th of those: without resampling,
every sample is read exactly once per epoch across ranks and workers. Samples are shuffled in a buffer
(webdataset's shuffle) seeded by (seed, epoch, rank, worker) and batched in the worker.

Equal batches on every rank (DDP waits for all ranks at each step, so one rank with more batches would
hang the others): from the shards' `_stats.json` sample counts, each worker of each rank knows what every
worker of every rank holds, so all agree on T = the fewest full batches any rank can make, and every
rank yields exactly T. The samples beyond that (at most a batch per worker, plus what uneven shard counts
leave over) are read but not trained on in that epoch; if unusable samples leave a worker short, it
repeats its last batch to make up the count (both counted in the epoch's summary line). Counts that are too
low leave more out: a worker that reads more samples from a shard than its _stats.json counts says so in
its line (its batches stay those the counts give).

Resuming mid-epoch: given how many batches of the epoch were trained, each worker works out how many of
those were its own (the DataLoader takes batches from its workers in turn) and skips that many batches'
samples before decoding: the resumed run trains on the same batches as one never interrupted, at the
cost of re-reading (not decoding) the skipped samples (exact unless undecodable images were among the
trained ones: then the resumed stream is shifted by that many samples). Without `_stats.json` counts (one
process only), a resumed run starts the interrupted epoch over.

Resumed with another data.num_workers: which samples an epoch holds, and in what order, depend on the worker
count it began with (the `layout`, kept in the checkpoint by the datamodule), so the interrupted epoch is
finished in its own layout: each of the workers there are now reads every layout worker's samples, in step,
and decodes only the batches that fall to it (exact on the same terms as above, undecodable images among
the skipped batches shifting their worker's stream too). Later epochs are laid out over the workers there are now.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import webdataset as wds
from torch.utils.data import IterableDataset, default_collate, get_worker_info

from supra.data.caption_sources.shards import (
    Unusable,
    decoded_samples,
    shard_names,
    stats_url,
    usable_samples,
)
from supra.data.caption_sources.tar_reading import libarchive_or_none
from supra.data.captioning.datamodule import trim_padding
from supra.data.epoch_loader import EpochLoader, EpochProgress
from supra.tokens.caption_bpe import CaptionTokenizer
from supra.utils.distributed import rank_and_world
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted

log = logging.getLogger(__name__)


def worker_quotas(sizes_by_rank: list[list[int]], batch_size: int) -> list[list[int]]:
    """Batches each worker of each rank yields: full batches of what it holds, trimmed (largest first) so
    every rank has the same total, the fewest any rank can make."""
    quotas = [[n // batch_size for n in workers] for workers in sizes_by_rank]
    total = min(sum(q) for q in quotas)
    for q in quotas:
        while sum(q) > total:
            q[q.index(max(q))] -= 1
    return quotas


def shard_assignment(count: int, world: int, workers: int, seed: int, epoch: int) -> list[list[list[int]]]:
    """[rank][worker] -> the shards (indices of `count`) it reads in `epoch`: every rank orders them by the
    same seeded shuffle, takes every world-th from its rank, and each of its workers every workers-th of those."""
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [[order[r::world][w::workers] for w in range(workers)] for r in range(world)]


def epoch_quotas(sizes: list[int], batch_size: int, world: int, workers: int, seed: int = 0,
                 epoch: int = 0) -> list[list[int]]:
    """[rank][worker] -> batches it yields in `epoch` of shards holding `sizes` samples each (their
    _stats.json counts), not resampled: rank 0's sum is the epoch's length on every rank, 0 where no worker
    holds a full batch (which data=shards refuses)."""
    held = [[sum(sizes[i] for i in shards) for shards in by_worker]
            for by_worker in shard_assignment(len(sizes), world, workers, seed, epoch)]
    return worker_quotas(held, batch_size)


def worker_turns(quotas: list[int]) -> list[int]:
    """The worker each batch of an epoch comes from, in the order the DataLoader takes them (see below)."""
    counts, worker, turns = [0] * len(quotas), 0, []
    for _ in range(sum(quotas)):
        while counts[worker] >= quotas[worker]:
            worker = (worker + 1) % len(quotas)
        turns.append(worker)
        counts[worker] += 1
        worker = (worker + 1) % len(quotas)
    return turns


def batches_per_worker(done: int, quotas: list[int]) -> tuple[list[int], int]:
    """How many of the first `done` batches came from each worker, and which worker's batch comes next:
    the DataLoader takes one from each worker in turn and passes over a worker once it is exhausted."""
    counts, worker = [0] * len(quotas), 0
    for _ in range(done):
        while counts[worker] >= quotas[worker]:
            worker = (worker + 1) % len(quotas)
        counts[worker] += 1
        worker = (worker + 1) % len(quotas)
    while done and sum(counts) < sum(quotas) and counts[worker] >= quotas[worker]:
        worker = (worker + 1) % len(quotas)
    return counts, worker


class ShardStream(EpochProgress, IterableDataset):
    """Batches {"images": uint8 [B, 3, S, S], "tokens": [B, L], "keys": [B]} from `shards` (URLs), one
    caption per image. `sizes`: samples per shard (from `_stats.json`), or None when unknown (then one
    process only, and every sample, the last batch of each worker possibly short). `workers`: the
    DataLoader's num_workers (0 = in the main process). Set `epoch`, `skip_batches` and `layout` before
    iterating (workers that persist across epochs see them: they are in shared memory)."""

    def __init__(self, shards: list[str], sizes: list[int] | None, batch_size: int, image_size: int,
                 tokenizer: CaptionTokenizer, max_tokens: int, seed: int = 0, shuffle_buffer: int = 1000,
                 draft: bool = True, workers: int = 0, samples_per_epoch: int | None = None) -> None:
        super().__init__()
        # resampled: shards drawn with replacement, an epoch being samples_per_epoch samples over all ranks
        self.samples_per_epoch = samples_per_epoch
        self.shards, self.sizes, self.batch_size, self.image_size = shards, sizes, batch_size, image_size
        self.names = shard_names(shards)  # of every shard: a sample's key is the same whichever worker reads it
        self.tokenizer, self.max_tokens, self.seed, self.shuffle_buffer = tokenizer, max_tokens, seed, shuffle_buffer
        self.draft, self.workers = draft, max(workers, 1)
        # the epoch and the batches of it already trained (EpochProgress), then the worker count it is laid
        # out for, in shared memory: a loader's persistent workers read what the main process sets each epoch
        self._share_progress(self.workers)
        # the layout of the epoch a resumed run's checkpoint was written in (from the checkpoint), if any
        self.resumed_layout: int | None = None
        libarchive_or_none()  # loaded (or its absence said) once, here, not by each worker every epoch

    @property
    def layout(self) -> int:
        """The worker count this epoch's shards and quotas are laid out for: `workers`, except in the
        interrupted epoch of a run resumed with another data.num_workers."""
        return int(self._progress[2])

    @layout.setter
    def layout(self, value: int) -> None:
        self._progress[2] = max(value, 1)

    # -- who reads what -------------------------------------------------------------------------

    def assignment(self, world: int, workers: int) -> list[list[list[int]]]:
        """[rank][worker] -> the shards (indices) it reads this epoch, laid out for `workers` workers."""
        return shard_assignment(len(self.shards), world, workers, self.seed, self.epoch)

    def quotas(self, world: int, workers: int) -> list[list[int]] | None:
        if self.samples_per_epoch is not None:  # resampled: every worker of every rank the same share
            share = max(1, self.samples_per_epoch // (world * workers * self.batch_size))
            return [[share] * workers for _ in range(world)]
        if self.sizes is None:
            return None
        return epoch_quotas(self.sizes, self.batch_size, world, workers, self.seed, self.epoch)

    def batches(self, layout: int) -> int | None:
        """Batches per rank in an epoch laid out for `layout` workers; None when unknown (no _stats.json)."""
        quotas = self.quotas(rank_and_world()[1], layout)
        return sum(quotas[0]) if quotas is not None else None

    def __len__(self) -> int:
        """Batches per rank per epoch (known from the shards' _stats.json)."""
        batches = self.batches(self.layout)
        if batches is None:
            raise TypeError("the number of batches is unknown without the shards' _stats.json")
        return batches

    # -- the stream -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # One batch held back, so the epoch's summary is logged before its last batch goes out: without
        # workers, Lightning stops asking after len() batches and this generator never runs past a yield.
        held = None
        for batch in self._epoch():
            if held is not None:
                yield held
            held = batch
        if held is not None:
            yield held

    def _epoch(self) -> Iterator[dict[str, Any]]:
        # read once, now: the main process may set the next epoch's while this one's last batches are still
        # being made and thrown away (an epoch cut short, e.g. by limit_train_batches)
        epoch, skip_batches, layout = self.epoch, self.skip_batches, self.layout
        rank, world = self.place or rank_and_world()
        info = get_worker_info()
        worker, readers = (info.id, info.num_workers) if info is not None else (0, 1)
        if layout != readers:
            yield from self._in_layout(epoch, skip_batches, layout, rank, world, worker, readers)
            return
        quotas = self.quotas(world, layout)
        skip = 0
        if quotas is not None and skip_batches:
            # A resumed loader asks its worker 0 first; the batch due next was another worker's. Workers
            # take the roles (shards, quota, place in turn) rotated so that worker 0 plays that one.
            done, due = batches_per_worker(skip_batches, quotas[rank])
            worker = (worker + due) % layout
            skip = done[worker]
        quota = quotas[rank][worker] if quotas is not None else None
        tally, read = Unusable(), Counter()
        shuffled = self._samples(epoch, rank, world, worker, layout, quota, tally, read)
        kept = itertools.islice(shuffled, skip * self.batch_size, None)  # already trained on: read, not decoded
        made, last = 0, None
        batch: list = []
        for sample, image in decoded_samples(kept, self.image_size, tally, self.draft):
            if quota is not None and made + skip >= quota:
                break
            batch.append((sample, image))
            if len(batch) == self.batch_size:
                last = self._collate(batch, epoch)
                made, batch = made + 1, []
                yield last
        if quota is None and batch:
            made += 1
            yield self._collate(batch, epoch)
        repeats = 0
        while quota is not None and made + skip < quota and last is not None:  # unusable samples left it short
            repeats, made = repeats + 1, made + 1
            yield last
        if quota is not None and made + skip < quota:  # not one usable sample: the main process says so
            log.warning("shards, epoch %d, rank %d worker %d: no usable sample; unusable: %s",
                        epoch, rank, worker, tally.describe())
        uncounted = self._uncounted(read)
        log.log(logging.WARNING if uncounted else logging.INFO,
                "shards, epoch %d, rank %d worker %d: %s of %d (%d repeated, %d skipped as trained); "
                "unusable: %s%s", epoch, rank, worker, counted(made, "batch", plural="batches"), self.batch_size, repeats,
                skip, tally.describe(), uncounted)

    def _samples(self, epoch: int, rank: int, world: int, worker: int, layout: int, quota: int | None,
                 tally: Unusable, read: Counter) -> Iterator[Any]:
        """The usable samples of a worker (of `layout` workers), shuffled: the same order on every run;
        those read from each shard counted in `read`."""
        if self.samples_per_epoch is not None:
            assert quota is not None  # resampled epochs always have quotas
            shards = self._resampled(random.Random(f"{self.seed}-{epoch}-{rank}-{worker}-shards"), quota)
        else:
            shards = [self.shards[i] for i in self.assignment(world, layout)[rank][worker]]
        samples = usable_samples(shards, tally, self.names, read)
        rng = random.Random(f"{self.seed}-{epoch}-{rank}-{worker}")
        return wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)(samples)

    def _in_layout(self, epoch: int, skip_batches: int, layout: int, rank: int, world: int, reader: int,
                   readers: int) -> Iterator[dict[str, Any]]:
        """This epoch's batches still to come as `layout` workers make them, in the order the DataLoader
        takes them, when `readers` workers (this one `reader`) make them now: the DataLoader takes batches
        from its readers in turn, so this one makes every readers-th, reading every layout worker's samples
        in step and decoding only its own."""
        quotas = self.quotas(world, layout)
        if quotas is None:  # unknown counts: a resumed epoch starts over (ShardCaptionsDataModule._progress)
            raise RuntimeError("an epoch laid out for other workers needs the shards' sizes")
        done, _ = batches_per_worker(skip_batches, quotas[rank])
        tally, read = Unusable(), Counter()
        streams = [itertools.islice(self._samples(epoch, rank, world, w, layout, quotas[rank][w], tally, read),
                                    done[w] * self.batch_size, None) for w in range(layout)]
        made = repeats = 0
        last = None
        for turn, worker in enumerate(worker_turns(quotas[rank])[skip_batches:]):
            if turn % readers != reader:  # another reader's batch: its samples read, not decoded
                for _ in itertools.islice(streams[worker], self.batch_size):
                    pass
                continue
            batch: list = []
            while len(batch) < self.batch_size:  # undecodable ones passed over, as the layout's worker did
                raw = list(itertools.islice(streams[worker], self.batch_size - len(batch)))
                if not raw:
                    break
                batch.extend(decoded_samples(raw, self.image_size, tally, self.draft))
            if len(batch) == self.batch_size:
                last = self._collate(batch, epoch)
            elif last is not None:  # unusable samples left its worker short: a batch repeated, as it would be
                repeats += 1
            else:
                log.warning("shards, epoch %d, rank %d reader %d: no usable sample; unusable: %s",
                            epoch, rank, reader, tally.describe())
                break
            made += 1
            yield last
        uncounted = self._uncounted(read)
        log.log(logging.WARNING if uncounted else logging.INFO,
                "shards, epoch %d, rank %d worker %d (of %d, finishing an epoch begun by %d): %s of %d "
                "(%d repeated, %d skipped as trained); unusable: %s%s", epoch, rank, reader, readers, layout,
                counted(made, "batch", plural="batches"), self.batch_size, repeats, skip_batches, tally.describe(),
                uncounted)

    def _uncounted(self, read: Counter) -> str:
        """For the epoch's summary line: samples read beyond their shards' _stats.json counts, which cut the
        epoch (its batches are reckoned from the counts) and leave the rest of the samples out of it silently
        otherwise ("" where none were: always so for shards whose counts are right)."""
        if self.sizes is None or self.samples_per_epoch is not None:  # no counts, or shards drawn again and again
            return ""
        size = dict(zip(self.shards, self.sizes, strict=True))
        beyond = {url: n - size[url] for url, n in read.items() if n > size[url]}
        if not beyond:
            return ""
        return (f"; samples left out: the _stats.json files of {counted(len(beyond), 'shard')} (e.g. "
                f"{stats_url(next(iter(beyond)))}) count fewer samples than the shards hold (at least "
                f"{sum(beyond.values())} more), and an epoch's batches are reckoned from them: fix or delete them")

    def _resampled(self, rng: random.Random, quota: int) -> Iterator[str]:
        """Shards drawn with replacement; bounded (a draw per sample wanted, plus one per shard) so that
        shards with nothing usable end the stream instead of spinning forever."""
        for _ in range(quota * self.batch_size + len(self.shards)):
            yield rng.choice(self.shards)

    def _collate(self, batch: list, epoch: int) -> dict[str, Any]:
        # one of each image's captions, drawn anew each epoch (as each image's captions take turns)
        captions = [s.captions[random.Random(f"{self.seed}-{epoch}-{s.key}").randrange(len(s.captions))]
                    for s, _ in batch]
        tokens, _ = self.tokenizer.encode_batch(captions, self.max_tokens)
        # default_collate stacks straight into shared memory in a worker: no copy on the way to the trainer
        return {"images": default_collate([image for _, image in batch]), "tokens": trim_padding(tokens),
                "keys": [s.key for s, _ in batch]}


class ShardLoader(EpochLoader):
    """An EpochLoader over a ShardStream: an interrupted epoch goes on in the worker layout it began with,
    and an epoch without one usable sample is an error, not an empty epoch."""

    def epoch_batches(self, epoch: int, done: int) -> Iterator[dict[str, Any]]:
        # an interrupted epoch goes on in the layout it began with; a new one is laid out for the workers there are
        resumed = self.dataset.resumed_layout
        self.dataset.layout = resumed if done and resumed is not None else self.dataset.workers
        delivered, last = 0, None
        for batch in super().epoch_batches(epoch, done):
            delivered, last = delivered + 1, batch
            yield batch
        if delivered == 0 and not done:
            raise SupraUserError(self.nothing_usable(epoch))
        # A worker whose shards held no usable sample made none of its batches, which its stream cannot
        # repeat: the rank repeats its last one for them, or it would run fewer batches than the other
        # ranks, which then wait for it in their collectives for ever.
        due = self.dataset.batches(self.dataset.layout)
        short = due - done - delivered if due is not None else 0
        if short > 0 and last is not None:
            log.warning("shards, epoch %d: %s of a worker with no usable sample %s this rank's last batch again, so "
                        "that every rank runs the same number", epoch, counted(short, "batch", plural="batches"),
                        "is" if short == 1 else "are")
            for _ in range(short):
                yield last

    def nothing_usable(self, epoch: int) -> str:
        """The error of an epoch without one usable sample in this process. Under DDP it is this rank's shards
        that held none (the others' may be fine, and a rank cannot borrow their samples): it names them."""
        stream = self.dataset
        rank, world = stream.place or rank_and_world()
        if world == 1:
            return (f"the train shards ({stream.shards[0]}, ...) gave no usable sample in epoch {epoch}: see the "
                    "warnings above for what was wrong with them")
        if stream.samples_per_epoch is not None:  # resampled: drawn from all of them
            return (f"rank {rank} of {world} drew no usable sample from the train shards ({stream.shards[0]}, "
                    f"...) in epoch {epoch}: see the warnings above for what was wrong with them, and repair or "
                    "replace them")
        mine = [stream.shards[i] for by_worker in stream.assignment(world, stream.layout)[rank] for i in by_worker]
        named = ", ".join(mine[:2]) + (f" and {len(mine) - 2} more" if len(mine) > 2 else "")
        return (f"rank {rank} of {world}: its share of the train shards in epoch {epoch} ({named}) gave no usable "
                "sample, so it has no batch to train on while the other ranks do: see the warnings above for what "
                "was wrong with them; repair or replace them, give more shards, train on fewer ranks, or set "
                "data.resampled=true (every rank then draws from all of them)")
