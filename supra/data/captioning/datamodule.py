"""What every image-captioning DataModule shares: splits held as uint8 tensors at the model's image
size, the tokenizer, batched datasets, and normalisation on the device.

Subclasses give `load_split`, and may add scores (`extra_caption_scores`, `scene_scores`), prepare or read their
source in their own way (photos.py), or stream their training split (shards.py).

Batches (dicts) the task receives, images already normalised on its device:
- train: images float [B, 3, S, S], tokens int64 [B, L] (BOS ... EOS, PAD 0).
- val/test (and train when it is the split scored): images [B, 3, S, S], image_ids int64 [B], tokens [C, L] holding every reference
  caption of those images, caption_image int64 [C] (row of `images` each caption belongs to); under DDP also
  repeated: list[bool] [B], True for a row repeated to keep the ranks in step, not to be scored (data/base.py
  RankBatches).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from torch.utils.data import DataLoader, Dataset

from supra.data.base import SPLITS, SplitDataModule
from supra.data.images import normalize_images
from supra.tokens.caption_bpe import (
    MIN_TRAINED_VOCAB,
    PAD_ID,
    SPECIAL_TOKENS,
    TRAINING_VERSION,
    CaptionTokenizer,
    SpecialTokensError,
)
from supra.utils.cli import count_as_typed
from supra.utils.distributed import broadcast_object, rank_and_world
from supra.utils.errors import SupraUserError
from supra.utils.files import absolute_path, require_writable_dir
from supra.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from supra.utils.numbers import counted, is_whole

log = logging.getLogger(__name__)

# The train split scored (data.split=train): served as val and test are, beside the pairs it trains on.
SCORED_TRAIN = "train (scored)"

__all__ = ["SPLITS", "CaptionDataModule", "CaptionedImages", "ImageRows"]


class ImageRows:
    """Rows of a (memory-mapped) image store, indexed like a tensor; only the rows asked for are copied."""

    def __init__(self, store: torch.Tensor, rows: torch.Tensor) -> None:
        self.store, self.rows = store, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor | slice | int) -> torch.Tensor:
        return self.store[self.rows[index]]


@dataclass
class CaptionedImages:
    """One split: images uint8 [N, 3, S, S] (a tensor or ImageRows), the captions each is trained on (and its
    loss measured on), and the references each is scored against: the source's captions as published
    (CaptionIndex.references; default: the captions)."""

    images: torch.Tensor | ImageRows
    captions: list[list[str]]
    names: list[str] = field(default_factory=list)  # each image's own id: its file name, or a generated one
    files: list[str | None] = field(default_factory=list)  # each image's file relative to the data root, if any
    references: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.captions):
            raise ValueError(f"{len(self.images)} images but {len(self.captions)} caption lists")
        if not self.names:
            self.names = [str(i) for i in range(len(self.images))]
        if not self.files:
            self.files = [None] * len(self.images)
        if not self.references:
            self.references = self.captions
        if len(self.references) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.references)} reference lists")

    def __len__(self) -> int:
        return len(self.images)


def trim_padding(tokens: torch.Tensor) -> torch.Tensor:
    """Drop columns that are padding in every row (captions vary in length)."""
    width = int((tokens != PAD_ID).sum(1).max()) if len(tokens) else 0
    return tokens[:, :width]


class CaptionPairs(Dataset):
    """Training samples: one (image, caption) pair per reference caption, fetched a batch at a time."""

    def __init__(self, images: torch.Tensor, tokens: torch.Tensor, caption_image: torch.Tensor) -> None:
        self.images, self.tokens, self.caption_image = images, tokens, caption_image

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return {"images": self.images[self.caption_image[idx]], "tokens": trim_padding(self.tokens[idx])}


class ImagesWithReferences(Dataset):
    """Evaluation samples: one image with all its reference captions (for loss and generation)."""

    def __init__(self, images: torch.Tensor, tokens: torch.Tensor, caption_image: torch.Tensor) -> None:
        self.images, self.tokens = images, tokens
        order = torch.argsort(caption_image, stable=True)
        self.tokens, caption_image = tokens[order], caption_image[order]
        counts = torch.bincount(caption_image, minlength=len(images))
        self.first = torch.cumsum(counts, 0) - counts  # first caption row of each image
        self.counts = counts

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices)
        rows = torch.cat([torch.arange(f, f + c) for f, c in zip(self.first[idx].tolist(), self.counts[idx].tolist(), strict=True)])
        caption_image = torch.repeat_interleave(torch.arange(len(idx)), self.counts[idx])
        return {
            "images": self.images[idx], "image_ids": idx,
            "tokens": trim_padding(self.tokens[rows]), "caption_image": caption_image,
        }


def check_model_sizes(sizes: dict[str, Any]) -> None:
    """The sizes the data takes from the model, whole numbers >= 1, else one line: null in a config means "the
    model's" because the runner passes the model's; built from Python, None or 0 failed deep inside a split."""
    for key, size in sizes.items():
        if size is None:
            raise SupraUserError(f"{key}=None: give the model's (build the DataModule with **task.data_settings())")
        if not is_whole(size, 1):
            raise SupraUserError(f"{count_as_typed(key, size)} must be a whole number >= 1: the model's "
                                 "(task.data_settings())")


class CaptionDataModule(SplitDataModule):
    """Base of captioning DataModules. Subclasses implement `load_split` (and may add scores).

    image_size, image_mean/std, max_caption_tokens and vocab_size are the model's (the runner passes them from the net:
    the data follows the model, never the other way). `tokenizer`: the ids to use (a checkpoint's or a
    release's); else GPT-2's files when `gpt2_tokenizer` names their folder (vocab.json + merges.txt);
    without either, tokenizer.json at `tokenizer_path` is reused when it exists, else a BPE is
    trained on the train captions (cached by their hash in `cache_dir`) and written there (its folder made,
    with a warning, where it is not there); a trained one
    holds at least 260 tokens (MIN_TRAINED_VOCAB), so vocab_size must be at least that.
    """

    item_name = "images"

    def __init__(
        self,
        image_size: int = 112,
        max_caption_tokens: int = 48,
        vocab_size: int = 2048,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        tokenizer: CaptionTokenizer | None = None,
        tokenizer_path: str | None = None,
        gpt2_tokenizer: str | None = None,
        cache_dir: str | None = None,
        show_progress: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.show_progress = show_progress  # bars while a set-up step takes seconds (encoding every caption)
        check_model_sizes({"image_size": image_size, "max_caption_tokens": max_caption_tokens,
                           "vocab_size": vocab_size})
        self.image_size, self.max_caption_tokens, self.vocab_size = image_size, max_caption_tokens, vocab_size
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else None
        self.gpt2_tokenizer = gpt2_tokenizer
        self.cache_dir = Path(cache_dir) if cache_dir else None  # tokenizers (and images) keyed by content
        self.tokenizer = tokenizer
        self.datasets: dict[str, Dataset] = {}

    @property
    def shows_progress(self) -> bool:
        """Whether set-up draws its bars: on rank 0 alone, as every DDP rank sets up alike and theirs would draw
        over each other."""
        return self.show_progress and rank_and_world()[0] == 0

    # -- what subclasses provide ------------------------------------------------------------------

    def load_split(self, split: str) -> CaptionedImages:
        """Images uint8 [N, 3, image_size, image_size] and their captions for `split`."""
        raise NotImplementedError

    scene_scores: tuple[str, ...] = ()  # the names of extra_caption_scores, known before any is computed

    def extra_caption_scores(self, split: str, predictions: dict[int, str]) -> dict[str, float]:
        """Dataset-specific scores of generated captions keyed by image id (e.g. shapes' attr_acc)."""
        return {}

    # -- Lightning hooks --------------------------------------------------------------------------

    def prepare_data(self) -> None:
        # Lightning calls this before setup: a source that decodes its images here (COCO: 123k) hears of a
        # tokenizer setting it refuses first
        self.check_tokenizer_settings()

    def setup(self, stage: str | None = None) -> None:
        splits = self.splits_for(stage)
        self.check_tokenizer_settings()
        for split in splits:
            self.loaded(split)
        self.tokenizer = self._tokenizer_of_rank_zero()
        self.save_tokenizer()
        for split in splits:
            if split == "train" and stage in ("test", "predict"):
                continue  # scored, not trained on: SCORED_TRAIN below
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)
        if self.split == "train" and stage in (None, "test", "predict") and SCORED_TRAIN not in self.datasets:
            self.datasets[SCORED_TRAIN] = self._dataset("train", scored=True)

    def _tokenizer_of_rank_zero(self) -> CaptionTokenizer:
        """The tokenizer global rank 0 makes (and saves), handed to the other DDP ranks, which wait for it here:
        each rank trained its own on the same captions (a shard stream's sample read once per rank), racing
        rank 0 to the files it writes. The tokenizer in one process."""
        rank, _ = rank_and_world()
        if rank == 0:
            self.tokenizer = self._tokenizer()
            self.save_tokenizer()
        return broadcast_object(self.tokenizer)

    def check_tokenizer_settings(self) -> None:
        """Before any data is read: a VOCAB_SIZE no trained tokenizer fits, and a data.tokenizer_path the
        tokenizer cannot be written to, each as one line; a data.tokenizer_path whose folder is not there has it
        made, said in a warning naming it."""
        if self._trains_tokenizer():
            self._check_trainable_vocab()
        if self.tokenizer_path is not None and not self.tokenizer_path.exists():
            folder = self.tokenizer_path.parent
            made = not folder.exists()
            require_writable_dir(folder, f"data.tokenizer_path={self.tokenizer_path}",
                                 "point data.tokenizer_path at a file in a writable folder")
            if made:  # a mistyped folder passed unnoticed: a new one, and a new tokenizer where one was to be reused
                log.warning("data.tokenizer_path=%s: its folder %s was not there and is made: the run's tokenizer is "
                            "written there (to reuse a tokenizer.json, check the path)", self.tokenizer_path,
                            absolute_path(folder))

    def save_tokenizer(self) -> None:
        """Write the tokenizer to data.tokenizer_path, unless one is there (the one it was read from)."""
        if self.tokenizer_path is not None and not self.tokenizer_path.exists():
            try:
                self.tokenizer.save(self.tokenizer_path)
            except OSError as err:
                raise SupraUserError(f"cannot write to data.tokenizer_path={self.tokenizer_path} "
                                     f"({err.strerror or err}): point data.tokenizer_path at a file in a writable "
                                     "folder") from None

    def _trains_tokenizer(self) -> bool:
        """Whether setup trains a BPE: no tokenizer given, no GPT-2 files, no tokenizer.json to reuse."""
        reused = self.tokenizer_path is not None and self.tokenizer_path.exists()
        return self.tokenizer is None and not self.gpt2_tokenizer and not reused

    def _check_trainable_vocab(self) -> None:
        if self.vocab_size < MIN_TRAINED_VOCAB:
            raise SupraUserError(
                f"model.net.VOCAB_SIZE={self.vocab_size} is too small for a trained tokenizer: a byte-level BPE "
                f"always holds the 256 bytes and {' '.join(SPECIAL_TOKENS)}, {MIN_TRAINED_VOCAB} tokens: set "
                f"model.net.VOCAB_SIZE to at least {MIN_TRAINED_VOCAB}"
            )

    def _tokenizer(self) -> CaptionTokenizer:
        """The given tokenizer, else tokenizer.json when it exists, else one trained on the train captions."""
        tokenizer = self.tokenizer
        if tokenizer is None and self.gpt2_tokenizer:
            try:
                tokenizer = CaptionTokenizer.from_gpt2_files(self.gpt2_tokenizer)
            except ValueError as err:
                raise SupraUserError(f"data.gpt2_tokenizer={self.gpt2_tokenizer}: {err}") from None
        if tokenizer is None and self.tokenizer_path is not None and self.tokenizer_path.exists():
            try:
                tokenizer = CaptionTokenizer.from_file(self.tokenizer_path)
            except SpecialTokensError as err:
                # err names the file ("PATH reads, but its ids 0-3 are ..."): the user's own, never to delete
                raise SupraUserError(f"data.tokenizer_path={err}: give a tokenizer.json with those at ids 0-3 (a Supra "
                                     "run's), or leave data.tokenizer_path at its default to train one") from None
            except ValueError as err:
                raise SupraUserError(f"{err}: delete it to train a new tokenizer, or point data.tokenizer_path "
                                     "at another") from None
            log.info("tokenizer: reusing %s (%d tokens)", self.tokenizer_path, tokenizer.vocab_size)
        if tokenizer is None:
            tokenizer = self._train_or_cached_tokenizer(self.tokenizer_captions())
        if tokenizer.vocab_size > self.vocab_size and self.tokenizer is None and self.gpt2_tokenizer:
            # a new model sized for GPT-2's files, not one trained with another tokenizer
            raise SupraUserError(
                f"data.gpt2_tokenizer={self.gpt2_tokenizer} has {tokenizer.vocab_size} tokens (GPT-2's after Supra's "
                f"{len(SPECIAL_TOKENS)} special ones) but model.net.VOCAB_SIZE is {self.vocab_size}: set "
                f"model.net.VOCAB_SIZE={tokenizer.vocab_size}"
            )
        if tokenizer.vocab_size > self.vocab_size:
            raise SupraUserError(
                f"tokenizer has {tokenizer.vocab_size} tokens but the model's VOCAB_SIZE is {self.vocab_size}: "
                "use the tokenizer.json the model was trained with"
            )
        return tokenizer

    def tokenizer_captions(self) -> list[str]:
        """The captions a new tokenizer is trained on: every train caption (streams: a bounded number, in a seeded shard order)."""
        return [c for caps in self.loaded("train").captions for c in caps]

    def _train_or_cached_tokenizer(self, captions: list[str]) -> CaptionTokenizer:
        """Train on the train captions, or reuse a tokenizer trained on exactly these captions before."""
        # TRAINING_VERSION: a tokenizer cached by an older train() (NFKC) is not handed to this one; a JSON list,
        # not captions joined by "\n": ["a red\nball"] and ["a red", "ball"] are two keys
        key = hashlib.sha256(json.dumps([TRAINING_VERSION, self.vocab_size, captions]).encode()).hexdigest()[:16]
        cached = self.cache_dir / f"tokenizer_{key}.json" if self.cache_dir else None
        if cached is not None and cached.exists():
            try:
                return CaptionTokenizer.from_file(cached)
            except ValueError:
                log.warning("tokenizer cache %s is unreadable: retraining", cached)
        self._check_trainable_vocab()  # setup said so before reading data; here for callers of this alone
        if self.cache_dir is not None:  # before training, not after
            require_writable_dir(self.cache_dir, f"the tokenizer cache {self.cache_dir}",
                                 "set data.cache_dir to a writable folder")
        tokenizer = CaptionTokenizer.train(captions, self.vocab_size)
        log.info("tokenizer: trained %d BPE tokens on %d train captions", tokenizer.vocab_size, len(captions))
        if cached is not None:
            tokenizer.save(cached)
        return tokenizer

    def _dataset(self, split: str, scored: bool = False) -> Dataset:
        """The split's batches: (image, caption) pairs to train on for the train split, else (and when `scored`)
        each image once with all its references, as the captions are generated and scored."""
        data = self.data[split]
        flat = [c for caps in data.captions for c in caps]
        caption_image = torch.repeat_interleave(torch.arange(len(data.captions)), torch.tensor([len(c) for c in data.captions]))
        with Progress(disable=not self.shows_progress, transient=True) as progress:
            task = progress.add_task(f"tokenizing {counted(len(flat), split + ' caption', grouped=True)}", total=len(flat))
            tokens, n_cut = self.tokenizer.encode_batch(flat, self.max_caption_tokens,
                                                        lambda n: progress.advance(task, n))
        if n_cut and rank_and_world()[0] == 0:  # every DDP rank encodes the whole split, alike: said by rank 0 alone
            log.warning("%s: %d of %d captions cut to MAX_SEQ=%d tokens (EOS kept)", split, n_cut, len(flat), self.max_caption_tokens)
        if split == "train" and not scored:
            return CaptionPairs(data.images, tokens, caption_image)
        return ImagesWithReferences(data.images, tokens, caption_image)

    def dataset(self, split: str) -> Dataset:
        if split not in self.datasets:  # a loader asked for before setup (from Python; Lightning calls setup first)
            stage = "fit" if split in ("train", "val") else "test"
            raise SupraUserError(f"the {split} split is not set up: call setup({stage!r}) before its dataloader")
        return self.datasets[split]

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(SCORED_TRAIN if self.split == "train" else self.split)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        # Normalise on the device: uint8 crosses the host->device copy at a quarter of float's size.
        return {**batch, "images": self.normalize(batch["images"])}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> float, normalised as the model's encoder expects (its image_mean/std), in the
        dtype of the trainer's precision (float64 for 64-true, bfloat16 for bf16-true; float32 outside a trainer):
        Lightning converts a batch's floats before this hook, when the images are still uint8 and left as they are."""
        images = normalize_images(images, self.image_mean, self.image_std)
        return self.trainer.precision_plugin.convert_input(images) if self.trainer is not None else images

    # -- for metrics and pictures -----------------------------------------------------------------

    def references(self, split: str) -> dict[int, list[str]]:
        """Every reference caption of `split` as its source publishes them (scored as COCOEvalCap scores
        them), by image id (the row in the split)."""
        return dict(enumerate(self.loaded(split).references))

    def split_source(self, split: str) -> str:
        """The split and what it is read from, for a message about its data."""
        return f"the {split} split of {type(self).__name__}"

    def image_records(self, split: str) -> list[dict[str, str | None]]:
        """Who each image of `split` is, for predictions.json: {"image_id": its own id, "file": its path
        relative to the data root (None for generated images)}, by row."""
        data = self.loaded(split)
        return [{"image_id": name, "file": file} for name, file in zip(data.names, data.files, strict=True)]

    def sample_images(self, split: str, n: int) -> tuple[torch.Tensor, list[list[str]]]:
        """The first n images of a split, uint8 [n, 3, S, S], with their references as scored (fixed samples for
        grids, whose "ref:" line is then what the caption was scored against)."""
        data = self.loaded(split)
        return data.images[:n], data.references[:n]
