"""A media corpus encoded once to VQ-VAE codes, on disk, for your own code (read_media_codes); the a2a mixture
encodes its sources itself, and caches them in this layout.

Layout of the directory (written by `python -m supra.tokenize_media`; the a2a mixture's cache adds to it):
- codes_<split>.npy   uint8 (<= 256 codes), int16 (<= 32,768) or int32: [N, h, w] for images, [N, T, h, w] for clips;
- items_<split>.json  {"names": [...], "captions": [[...], ...], "files": [...], "references": [[...], ...]} in the
                      same row order (files: each item's file relative to the data root, null for generated items;
                      captions: those trained on; references: what image2text scores each item against, a photo's
                      captions as published, repeats kept; a file written without them: its captions;
                      real_frames, clips only: how many of each clip's frames are its GIF's, the rest repeats of
                      its last frame that padded a short GIF; absent: every frame real);
- meta.json           what produced it (VQ-VAE checkpoint and its hash, data config, grid, splits),
                      written last: a directory without it is incomplete and is refused.
Every file is written atomically, so an interrupted run leaves whole files or none.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from supra.data.images import as_images, to_uint8, to_unit_range
from supra.tokens.a2a_layout import VQVAE_DOWNSAMPLE
from supra.utils.errors import SupraUserError
from supra.utils.files import atomic_path, write_json_atomic

META = "meta.json"
KIND = "supra.media_codes"


def codes_dtype(num_codes: int) -> np.dtype:
    """The smallest integer type that holds every code: uint8 up to 256 codes, int16 up to 32,768, else int32."""
    if num_codes <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.int16) if num_codes <= 32768 else np.dtype(np.int32)


def save_npy_atomic(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        np.save(tmp, array)
    return path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class MediaCodes:
    """One split: codes int64 [N, h, w] or [N, T, h, w], names, captions (trained on) and references (scored
    against) per row."""

    codes: torch.Tensor
    names: list[str]
    captions: list[list[str]]
    meta: dict[str, Any]
    files: list[str | None]  # relative to the data root; None for generated items
    references: list[list[str]] | None = None  # MediaItems.references: image2text's, as the a2a mixture's (default: captions)
    real_frames: list[int] | None = None  # MediaItems.real_frames: clips padded from a short GIF; None: all real

    def __post_init__(self) -> None:
        if self.references is None:
            self.references = self.captions


def write_split(out: Path, split: str, codes: np.ndarray, names: list[str], captions: list[list[str]],
                files: list[str | None] | None = None, references: list[list[str]] | None = None,
                real_frames: list[int] | None = None) -> None:
    save_npy_atomic(out / f"codes_{split}.npy", codes)
    items = {"names": names, "captions": captions, **({"files": files} if files is not None else {}),
             **({"references": references} if references is not None else {}),
             **({"real_frames": real_frames} if real_frames is not None else {})}
    write_json_atomic(out / f"items_{split}.json", items)


def write_meta(out: Path, meta: dict[str, Any]) -> None:
    write_json_atomic(out / META, {"kind": KIND, **meta})


def read_media_codes(directory: str | Path, split: str) -> MediaCodes:
    """Load one split of a code directory; one-line errors for an incomplete or foreign directory."""
    directory = Path(directory)
    meta_path = directory / META
    if not meta_path.is_file():
        raise SupraUserError(f"{directory} has no {META}: not a finished `python -m supra.tokenize_media` output, run it again")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != KIND:
        raise SupraUserError(f"{meta_path} is not a Supra code directory (kind {meta.get('kind')!r})")
    if split not in meta.get("splits", {}):
        raise SupraUserError(f"{directory} holds splits {', '.join(meta.get('splits', {}))}, not {split!r}")
    codes = np.load(directory / f"codes_{split}.npy")
    items = json.loads((directory / f"items_{split}.json").read_text())
    if len(codes) != len(items["names"]):
        raise SupraUserError(f"{directory}: codes_{split}.npy has {len(codes)} rows but items_{split}.json {len(items['names'])}")
    # an items file written before references were: its captions, as it was read then
    return MediaCodes(torch.from_numpy(codes.astype(np.int64)), items["names"], items["captions"], meta,
                      items.get("files") or [None] * len(items["names"]), items.get("references") or items["captions"],
                      items.get("real_frames"))


@torch.no_grad()
def encode_items(net: torch.nn.Module, pixels: torch.Tensor, batch_size: int, device: torch.device,
                 progress: Progress | None = None, label: str = "") -> torch.Tensor:
    """uint8 [N, 3, S, S] or [N, T, 3, S, S] -> codes int64 [N, S/8, S/8] or [N, T, S/8, S/8]."""
    if len(pixels) == 0:  # a split turned off: no VQ-VAE call, codes of the grid the patch gives
        return torch.zeros((*pixels.shape[:-3], pixels.shape[-2] // VQVAE_DOWNSAMPLE, pixels.shape[-1] // VQVAE_DOWNSAMPLE), dtype=torch.long)
    per_item = pixels.shape[1] if pixels.ndim == 5 else 1
    rows = max(1, batch_size // per_item)  # batch_size counts images, a clip is T of them
    task = progress.add_task(label, total=len(pixels)) if progress else None
    out = []
    for start in range(0, len(pixels), rows):
        batch = pixels[start:start + rows].to(device)
        # in the weights' dtype: a trainer's 64-true or bf16-true converted them
        codes = net.encode(to_unit_range(as_images(batch)).to(next(net.parameters()).dtype))
        out.append(codes.view(*batch.shape[:-3], *codes.shape[-2:]).cpu())
        if progress:
            progress.advance(task, len(batch))
    return torch.cat(out)


@torch.no_grad()
def decode_codes(net: torch.nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """codes int64 [..., h, w] -> uint8 pictures [..., 3, 8h, 8w] (8: VQVAE_DOWNSAMPLE) on the CPU, through the VQ-VAE
    `net`."""
    device = next(net.parameters()).device
    flat = codes.reshape(-1, *codes.shape[-2:]).to(device)
    images = to_uint8(net.decode(flat)).cpu()
    return images.view(*codes.shape[:-2], *images.shape[1:])
