"""`data=shards`: image-caption pairs in WebDataset tar shards as img2dataset writes them (CC3M, LAION, or
any source written with `python -m supra.write_shards`), local or on object storage, for the captioner.

Training streams the train shards (caption_sources/shards.py reads them, shard_stream.py batches them in
the DataLoader's workers, split across DDP ranks and workers); the val and test shards, small by design,
are read once and decoded into memory, then scored like any other split. The caption tokenizer is trained
on the first tokenizer_sample captions of the train shards in a seeded shard order, cached by their content.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from torch.utils.data import DataLoader

from supra.data.caption_sources.shards import (
    Unusable,
    check_local_shards,
    expand_shards,
    read_whole,
    shard_sizes,
    unknown_sizes_reason,
    usable_samples,
    warn_scored_shards_trained_on,
)
from supra.data.captioning.datamodule import CaptionDataModule, CaptionedImages
from supra.data.captioning.shard_stream import ShardLoader, ShardStream
from supra.data.epoch_loader import trainer_progress
from supra.utils.distributed import rank_and_world
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted

log = logging.getLogger(__name__)


def check_stream_settings(shuffle_buffer: int, tokenizer_sample: int, resampled: bool,
                          samples_per_epoch: int | None) -> None:
    """One line for a setting out of its range, which would otherwise train on something else silently."""
    if shuffle_buffer < 0:  # webdataset's shuffle takes it for no shuffle at all
        raise SupraUserError(f"data.shuffle_buffer={shuffle_buffer} must be >= 0: the samples each worker holds "
                             "for shuffling (0: none, read in shard order)")
    if tokenizer_sample < 1:  # the first sample's captions would be read, then the count checked
        raise SupraUserError(f"data.tokenizer_sample={tokenizer_sample} must be >= 1: how many train captions a "
                             "new tokenizer is trained on")
    if samples_per_epoch is not None and not resampled:  # an epoch reads every sample once: its length is theirs
        raise SupraUserError(f"data.samples_per_epoch={samples_per_epoch} is the length of a resampled epoch: add "
                             "data.resampled=true (shards drawn with replacement), or leave it null (each epoch "
                             "reads every sample once)")
    if samples_per_epoch is not None and samples_per_epoch < 1:  # else an epoch of a batch per worker
        raise SupraUserError(f"data.samples_per_epoch={samples_per_epoch} must be >= 1: the samples of a resampled "
                             "epoch over all ranks (or null: the shards' _stats.json total)")


class ShardCaptionsDataModule(CaptionDataModule):
    """Train on `train_shards`, validate on `val_shards`, test on `test_shards` (brace-expanded URLs).

    shuffle_buffer: samples held for shuffling in each worker; draft: JPEG draft-mode decoding of the train
    stream (val and test are decoded in full, so they score as their source's files do);
    tokenizer_sample: how many train captions a new tokenizer is trained on; seed: the shard order and
    the shuffle, per epoch; resampled: shards drawn with replacement, an epoch of samples_per_epoch
    samples (default: the shards' _stats.json total).
    """

    resumes_at_another_batch_size = False  # its workers draw the batches: an epoch goes on at the size it began

    def __init__(self, train_shards: str, val_shards: str, test_shards: str, shuffle_buffer: int = 1000,
                 draft: bool = True, tokenizer_sample: int = 50_000, seed: int = 0, resampled: bool = False,
                 samples_per_epoch: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        if not val_shards or not test_shards:
            raise SupraUserError("data.val_shards and data.test_shards are needed (a shard or two each, scored "
                                 "whole): write them with python -m supra.write_shards, or split off a few shards")
        check_stream_settings(shuffle_buffer, tokenizer_sample, resampled, samples_per_epoch)
        self.shard_specs = {"train": train_shards, "val": val_shards, "test": test_shards}
        self.shuffle_buffer, self.draft, self.tokenizer_sample, self.seed = shuffle_buffer, draft, tokenizer_sample, seed
        self.resampled, self.samples_per_epoch = resampled, samples_per_epoch
        self.stream: ShardStream | None = None
        self.resumed_layout: int | None = None  # from a resumed run's checkpoint (load_state_dict)

    def shards(self, split: str) -> list[str]:
        urls = expand_shards(self.shard_specs[split], f"data.{split}_shards")
        check_local_shards(urls, f"data.{split}_shards={self.shard_specs[split]!r}")
        return urls

    # -- val / test: read whole ---------------------------------------------------------------------

    def load_split(self, split: str) -> CaptionedImages:
        if split == "train":
            raise SupraUserError("data.split=train: the train shards are streamed, never read whole to be scored: "
                                 "score data.split=val or test, or name a few train shards as data.test_shards=...")
        # decoded in full, draft or not: a split scored here scores as the folder it was written from, or caption
        # and explain on its files (draft mode's speed is for the train stream, which decodes every epoch)
        whole = read_whole(self.shards(split), self.image_size, draft=False)
        log.info("shards %s: %d images; unusable: %s", split, len(whole.keys), whole.tally.describe())
        if not whole.keys:  # why, rather than the base's "check its size/path settings"
            why = (f"{whole.tally.describe()}; the warnings above name each shard and why" if whole.tally else
                   "their tars hold no sample")
            raise SupraUserError(f"{self.split_source(split)} hold no usable image: {why}")
        # COCO's ids stay integers
        return CaptionedImages(whole.images, whole.captions, whole.ids, whole.files, whole.references)

    def refuse_counted_empty(self, split: str, urls: list[str]) -> None:
        """One line where the _stats.json files of the split's shards count no image written (each failed to
        download or to be read): scoring them has nothing to score. Shards without them are read at their turn."""
        sizes = shard_sizes(urls)
        if sizes is not None and not sum(sizes):
            raise SupraUserError(f"{self.split_source(split)} hold no image: their _stats.json files count 0 "
                                 "successes (the .parquet beside each says why each image failed): give "
                                 f"data.{split}_shards shards that hold images")

    def split_source(self, split: str) -> str:
        return f"the {split} shards data.{split}_shards={self.shard_specs[split]!r}"

    def tokenizer_captions(self) -> list[str]:
        """Up to tokenizer_sample captions of the train shards, read in a seeded shard order."""
        shards = self.shards("train")
        random.Random(self.seed).shuffle(shards)
        tally, captions = Unusable(), []
        for sample in usable_samples(shards, tally):
            captions.extend(sample.captions)
            if len(captions) >= self.tokenizer_sample:
                break
        if not captions:
            raise SupraUserError(f"the train shards {self.shard_specs['train']!r} hold no usable caption: {tally.describe()}")
        return captions

    # -- Lightning hooks ----------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        splits = self.splits_for(stage)
        self.check_tokenizer_settings()
        if stage in (None, "fit"):  # a typo in test_shards is named now, not after the training it follows
            urls = {split: self.shards(split) for split in self.shard_specs}
            warn_scored_shards_trained_on(urls)
            for split in ("val", "test"):  # so is a split written without an image (as the test is read only then)
                self.refuse_counted_empty(split, urls[split])
        for split in splits:
            if split != "train" or stage in ("test", "predict"):  # the train split to score: load_split says why not
                self.loaded(split)
        self.tokenizer = self._tokenizer_of_rank_zero()
        self.save_tokenizer()
        for split in splits:
            if split != "train" and split not in self.datasets:
                self.datasets[split] = self._dataset(split)
        if "train" in splits and self.stream is None:
            self.stream = self._stream()
            self._resume_in_layout(self.stream)

    def _stream(self) -> ShardStream:
        shards = self.shards("train")
        sizes = shard_sizes(shards)
        per_epoch = None
        if self.resampled:
            per_epoch = self.samples_per_epoch or (sum(sizes) if sizes else None)
            if not per_epoch:
                raise SupraUserError("data.resampled=true needs an epoch length: set data.samples_per_epoch=N "
                                     f"(their sample counts are unknown: {unknown_sizes_reason(shards)})")
        elif sizes is None and rank_and_world()[1] > 1:
            raise SupraUserError("DDP needs the train shards' sample counts to give every rank the same batches, "
                                 f"but {unknown_sizes_reason(shards)}")
        elif sizes is None:
            # a time-based interval leaves it unset; Lightning refuses any other share in a traceback
            interval = getattr(self.trainer, "val_check_interval", None) if self.trainer is not None else None
            if isinstance(interval, float) and interval != 1.0:
                raise SupraUserError(f"trainer.val_check_interval={interval} is a share of an epoch, whose length is "
                                     "unknown without the train shards' _stats.json: validate at each epoch's end "
                                     "(1.0), or every N steps (trainer.val_check_interval=N "
                                     "trainer.check_val_every_n_epoch=null)")
        stream = ShardStream(shards, sizes, self.batch_size, self.image_size, self.tokenizer, self.max_caption_tokens,
                             self.seed, self.shuffle_buffer, self.draft, self.num_workers, per_epoch)
        if sizes is not None or per_epoch:
            samples = (f"{counted(per_epoch, 'sample')} drawn with replacement" if per_epoch
                       else counted(sum(sizes), "sample"))
            log.info("shards train: %s, %s, %s of %d per rank per epoch", counted(len(shards), "shard"), samples,
                     counted(len(stream), "batch", plural="batches"), self.batch_size)
            if len(stream) == 0:  # Lightning would skip training and the run test the initial weights
                readers = f"{counted(rank_and_world()[1], 'rank')} x {counted(max(self.num_workers, 1), 'worker')}"
                raise SupraUserError(f"the train shards hold {counted(sum(sizes) if sizes else per_epoch, 'sample')}: not one full "
                                     f"batch of data.batch_size={self.batch_size} for each of {readers}, each batching "
                                     "its own shards: lower data.batch_size or data.num_workers, or write more shards")
        return stream

    def train_dataloader(self) -> DataLoader:
        return ShardLoader(self.stream, self._progress if self.trainer is not None else None,
                           num_workers=self.num_workers, pin_memory=self.pin_memory)

    def state_dict(self) -> dict[str, Any]:
        """Kept in the checkpoint: the worker count the epoch in progress is laid out for, which decides
        which samples its batches hold and in what order (ShardStream), so that a run resumed with
        another data.num_workers finishes that epoch on the batches it would have trained on."""
        return {"shard_layout": self.stream.layout} if self.stream is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.resumed_layout = state_dict.get("shard_layout")
        if self.stream is not None:
            self._resume_in_layout(self.stream)

    def _resume_in_layout(self, stream: ShardStream) -> None:
        # set before Lightning asks the loader's length: the epoch resumed keeps the length it was begun with
        stream.resumed_layout = self.resumed_layout
        if self.resumed_layout is not None:
            stream.layout = self.resumed_layout
            if self.resumed_layout != stream.workers:  # the lengths differ too: the set-up line gave the later one
                log.info("resuming with data.num_workers=%d: an epoch interrupted is finished as the %s it "
                         "was begun with would have (each worker reading all their shards), %s per rank; "
                         "later epochs are split over %d, %s per rank", self.num_workers,
                         counted(self.resumed_layout, "worker"),
                         counted(stream.batches(self.resumed_layout) or "?", "batch", plural="batches"), stream.workers,
                         counted(stream.batches(stream.workers) or "?", "batch", plural="batches"))

    def _progress(self) -> tuple[int, int]:
        """(epoch, batches of it already trained): after a resume, what the checkpoint recorded."""
        epoch, done = trainer_progress(self.trainer)
        if done and self.stream.sizes is None and self.stream.samples_per_epoch is None:
            log.warning("resuming mid-epoch without the shards' _stats.json: epoch %d starts over", epoch)
            done = 0
        return epoch, done
