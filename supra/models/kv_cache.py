"""A preallocated key/value cache for incremental decoding of a GPT."""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer, [n_layers, B, n_heads, max_len, head_dim] each.

    Preallocated once so a decode step writes one slot instead of concatenating tensors;
    `reorder` lets beam search follow the surviving beams. `context` holds what does not grow: the
    keys and values of the visual tokens for cross-attention layers ([B, H, N_VIS, hd] pairs), computed
    once per image at prefill.
    """

    def __init__(
        self, n_layers: int, batch_size: int, n_heads: int, max_len: int, head_dim: int,
        device: torch.device, dtype: torch.dtype,
    ) -> None:
        shape = (n_layers, batch_size, n_heads, max_len, head_dim)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0  # positions already committed
        self.context: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def max_len(self) -> int:
        return self.keys.shape[3]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [B, H, T, hd] after the committed positions; return all keys/values so far.

        `length` moves on only in `advance`, once every layer has appended its part.
        """
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; {end} requested")
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def reorder(self, index: torch.Tensor, keep_prefix: int = 0) -> None:
        """Keep rows `index` (int64 [B']) of the batch, in that order (beam search, finished rows).

        keep_prefix: the first positions are equal in every row `index` maps between (beams of one
        image share the image and BOS), so they need no copying: only later positions move. Then the
        visual context is equal in those rows too and stays put.
        """
        n = self.length
        if not (keep_prefix and index.numel() == self.keys.shape[1]):
            self.context = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.context]
        if index.numel() == self.keys.shape[1]:
            # Same batch size: move only the positions that differ, in place (the hot path of beam search).
            self.keys[:, :, :, keep_prefix:n] = self.keys[:, :, :, keep_prefix:n].index_select(1, index)
            self.values[:, :, :, keep_prefix:n] = self.values[:, :, :, keep_prefix:n].index_select(1, index)
        else:
            shape = (self.keys.shape[0], index.numel(), *self.keys.shape[2:])
            keys, values = self.keys.new_empty(shape), self.values.new_empty(shape)
            keys[:, :, :, :n] = self.keys[:, :, :, :n].index_select(1, index)
            values[:, :, :, :n] = self.values[:, :, :, :n].index_select(1, index)
            self.keys, self.values = keys, values
