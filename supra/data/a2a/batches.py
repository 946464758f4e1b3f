"""How the a2a mixture turns items into batches: one sequence per (task, item, caption), padded batches,
the weighted training stream and the fixed evaluation batches (each sharded over DDP ranks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from supra.data.a2a.sources import SourceSplit
from supra.data.base import rank_rows
from supra.data.epoch_loader import EpochProgress
from supra.tokens.a2a_layout import TokenLayout
from supra.tokens.a2a_sequences import VIDEO_TASKS, build_sequence
from supra.utils.distributed import rank_and_world


def eligible(task: str, part: SourceSplit) -> bool:
    if task == "text":
        return True
    return (task in VIDEO_TASKS) == part.is_clips


def task_items(task: str, parts: list[SourceSplit]) -> list[tuple[int, int]]:
    """(part index, row) of every item usable for `task` (captioned where the task needs a caption)."""
    needs_caption = task != "video"
    return [(p, row) for p, part in enumerate(parts) if eligible(task, part)
            for row in range(len(part)) if not needs_caption or part.captions[row]]


class SequenceBuilder:
    """Builds padded batches from items; shared by training and evaluation."""

    def __init__(self, parts: list[SourceSplit], layout: TokenLayout, context: int, given_frames: int) -> None:
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


class MixtureBatches(EpochProgress, IterableDataset):
    """Training stream of `batches_per_epoch` batches per epoch. Each rank draws its own batches from a
    generator seeded by (seed, rank, epoch), so ranks see different data without a sampler: the batches are
    drawn by task weights, not indexed, which no torch sampler expresses. Loader workers draw the same plan
    and build every num_workers-th batch. Iterated through an EpochLoader, which sets `epoch` and
    `skip_batches` (a resumed run's batches of the epoch already trained: drawn, not built), so a run
    resumed mid-epoch trains on the batches an uninterrupted one would."""

    def __init__(self, builder: SequenceBuilder, pools: dict[str, list[tuple[int, int]]], weights: dict[str, float],
                 batch_size: int, batches_per_epoch: int, batching: str, seed: int,
                 caption_dropout: float = 0.0) -> None:
        self.builder, self.pools, self.batch_size = builder, pools, batch_size
        self.caption_dropout = caption_dropout
        self.tasks = [t for t in weights if weights[t] > 0]
        total = sum(weights[t] for t in self.tasks)
        self.probs = np.array([weights[t] / total for t in self.tasks])
        self.batches_per_epoch, self.batching, self.seed = batches_per_epoch, batching, seed
        self._share_progress()

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, _ = self.place or rank_and_world()
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        rng, skip = np.random.default_rng([self.seed, rank, self.epoch]), self.skip_batches
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
            # every worker draws the same plan and builds its share of the batches not yet trained, in the
            # order the DataLoader takes them (worker 0 first)
            if b < skip or (b - skip) % workers != worker_id:
                continue
            sequences = [self.builder.sequence(t, p, r, c, bool(d))
                         for t, (p, r), c, d in zip(row_tasks, items, captions, dropped, strict=True)]
            ids, targets = self.builder.pad(sequences)
            yield {"ids": ids, "targets": targets, "tasks": row_tasks,
                   "task": row_tasks[0] if len(set(row_tasks)) == 1 else "mixed"}


class EvalBatches(IterableDataset):
    """The fixed evaluation batches of one split. Under DDP every rank takes its share of the rows of
    every batch (data/base.py rank_rows: rank r: rows r, r + world, ...), so all ranks run the same tasks the same number of
    times and log the same metrics (their collectives stay in step); each share carries the weight its
    loss is logged with (`loss_weight`)."""

    def __init__(self, batches: list[dict[str, Any]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = rank_and_world()
        for batch in self.batches:
            if world == 1:
                yield batch
                continue
            # a batch smaller than the world repeats rows; metrics gather by item key, so each counts once, and
            # `repeated` marks them for those that are not keyed (video PSNR)
            rows, repeated = rank_rows(len(batch["tasks"]), rank, world)
            own = [row for row, again in zip(rows, repeated, strict=True) if not again]
            yield {**take_rows(batch, rows), "loss_weight": loss_weight(batch, own), "repeated": repeated}


def loss_weight(batch: dict[str, Any], rows: list[int]) -> float:
    """The weight a rank logs its mean token loss over `rows` of `batch` with, so that the ranks' weighted mean
    (Lightning's sync_dist) is what one process logs: the whole batch's mean token loss, weighted by its row
    count. That is the row count times the rank's share of the batch's target tokens (0 for repeated rows). A
    float: Lightning averages the ranks' summed weights in their own dtype, and ints are truncated on gloo
    (rows 2 and 1: 1, not 1.5)."""
    counts = (batch["targets"] != -100).sum(1)
    n, total = len(batch["tasks"]), int(counts.sum())
    return n * (int(counts[rows].sum()) / total if total else len(rows) / n)


def take_rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    index = torch.tensor(rows)
    return {k: (v[index] if isinstance(v, torch.Tensor) else [v[i] for i in rows] if isinstance(v, list) else v)
            for k, v in batch.items()}
