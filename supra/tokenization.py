"""The run behind `python -m supra.tokenize_media`: a VQ-VAE checkpoint and a media DataModule -> every
item of the chosen splits encoded to codes once, written to `out` for stage 2 (see data/media_codes.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.progress import Progress

from supra.checkpoints import load_vqvae
from supra.config_safety import instantiate_loaded
from supra.data.media_codes import codes_dtype, file_sha256, write_meta, write_split
from supra.data.media_datamodule import MediaDataModule, to_unit_range
from supra.tasks.vq_autoencoding import as_images
from supra.utils.errors import SupraUserError
from supra.utils.files import check_writable_dir

log = logging.getLogger(__name__)


def _data_config(cfg: DictConfig, run_cfg: dict) -> DictConfig:
    """The data chosen with data=..., else the data the VQ-VAE was trained on."""
    chosen = cfg.get("data") or OmegaConf.create({})
    if "_target_" in chosen:
        return OmegaConf.create(OmegaConf.to_container(chosen, resolve=True))
    if "data" not in run_cfg:
        raise SupraUserError(f"ckpt={cfg.ckpt} holds no data config: choose one, e.g. data=media_folder data.root=DIR")
    data_cfg = OmegaConf.create(run_cfg["data"])
    with open_dict(data_cfg):
        data_cfg.merge_with(OmegaConf.to_container(chosen, resolve=True))
    return data_cfg


@torch.no_grad()
def encode_items(net: torch.nn.Module, pixels: torch.Tensor, batch_size: int, device: torch.device,
                 progress: Progress | None = None, label: str = "") -> torch.Tensor:
    """uint8 [N, 3, S, S] or [N, T, 3, S, S] -> codes int64 [N, S/8, S/8] or [N, T, S/8, S/8]."""
    per_item = pixels.shape[1] if pixels.ndim == 5 else 1
    rows = max(1, batch_size // per_item)  # batch_size counts images, a clip is T of them
    task = progress.add_task(label, total=len(pixels)) if progress else None
    out = []
    for start in range(0, len(pixels), rows):
        batch = pixels[start:start + rows].to(device)
        codes = net.encode(to_unit_range(as_images(batch)))
        out.append(codes.view(*batch.shape[:-3], *codes.shape[-2:]).cpu())
        if progress:
            progress.advance(task, len(batch))
    return torch.cat(out)


def tokenize_media(cfg: DictConfig) -> Path:
    net, run_cfg = load_vqvae(cfg.ckpt)  # first: a bad checkpoint must not leave an empty out folder behind
    out = Path(cfg.out)
    if (out / "meta.json").exists() and not cfg.overwrite:
        raise SupraUserError(f"out={out} already holds codes (meta.json): choose another folder or add overwrite=true")
    try:
        check_writable_dir(out)
    except OSError as err:
        raise SupraUserError(f"cannot write to out={out} ({err.strerror}): choose another folder") from None
    (out / "meta.json").unlink(missing_ok=True)  # overwriting: the folder is incomplete until the end
    device = torch.device("cuda" if cfg.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu")
    net.to(device)
    data_cfg = _data_config(cfg, run_cfg)
    datamodule = instantiate_loaded(data_cfg, f"ckpt={cfg.ckpt}", "run_config.data")  # partly from the checkpoint
    if not isinstance(datamodule, MediaDataModule):
        raise SupraUserError(f"data {data_cfg.get('_target_')} is not an image/clip DataModule: "
                             "use data=shapes_images, data=shapes_video or data=media_folder")
    dtype = codes_dtype(net.config.num_codes)
    counts, shapes = {}, {}
    with Progress(disable=not cfg.show_progress, transient=True) as progress:
        for split in cfg.splits:
            items = datamodule.items(split)
            codes = encode_items(net, items.pixels, cfg.batch_size, device, progress, f"encoding {split}")
            write_split(out, split, codes.numpy().astype(dtype), items.names, items.captions)
            counts[split], shapes[split] = len(codes), list(codes.shape[1:])
            log.info("%s: %d items -> codes %s (%s)", split, len(codes), list(codes.shape), dtype.name)
    write_meta(out, {
        "vqvae_ckpt": str(Path(cfg.ckpt).resolve()), "vqvae_sha256": file_sha256(cfg.ckpt),
        "num_codes": net.config.num_codes, "image_size": datamodule.image_size, "dtype": dtype.name,
        "splits": counts, "item_shapes": shapes, "data": OmegaConf.to_container(data_cfg, resolve=True),
    })
    print(f"wrote codes of {', '.join(f'{n} {s}' for s, n in counts.items())} items to {out}")
    return out
