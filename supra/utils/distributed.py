"""The few torch.distributed collectives Supra needs, each an identity without DDP (one process)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(this process's global rank, number of processes); (0, 1) without DDP."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over all ranks, in place (returned for chaining)."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def broadcast_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's values of `tensor` on every rank."""
    if is_distributed():
        tensor = tensor.contiguous()
        dist.broadcast(tensor, 0)
    return tensor


def broadcast_object(obj: T) -> T:
    """Rank 0's (picklable) object on every rank: computed once, used identically everywhere."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_mappings(local: Mapping[K, V]) -> dict[K, V]:
    """All ranks' {key: value} merged on every rank, each key once: ranks are read in order and the first
    value of a key wins (samplers pad the last batch with repeats). Sorted by key, so a DDP run sees the
    items in the same order as a single-process run; `dict(local)` without DDP."""
    if not is_distributed():
        return dict(local)
    parts: list[dict[K, V]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, dict(local))
    merged: dict[K, V] = {}
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
    return dict(sorted(merged.items()))  # type: ignore[type-var]
