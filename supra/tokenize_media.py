"""`python -m supra.tokenize_media ckpt=VQVAE.ckpt out=DIR [data=media_folder data.root=DIR data.mode=clips]`:
every item of a media corpus encoded once to VQ-VAE codes, for stage 2 (the layout: data/media/codes.py).
Without data=..., the data the VQ-VAE was trained on is encoded. `--help` lists every option."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import Progress

from supra.artifacts.checkpoints import load_vqvae
from supra.artifacts.loaded_configs import instantiate_loaded
from supra.data.media.codes import codes_dtype, encode_items, file_sha256, write_meta, write_split
from supra.data.media.datamodule import MediaDataModule
from supra.runner.components import chosen_data_config
from supra.utils.cli import check_option_types, hydra_command
from supra.utils.errors import SupraUserError
from supra.utils.files import require_writable_dir
from supra.utils.hardware import check_command_accelerator

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Path:
    check_option_types(cfg, whole=("batch_size",))
    if cfg.batch_size < 1:
        raise SupraUserError(f"batch_size={cfg.batch_size} must be >= 1")
    splits = [cfg.splits] if isinstance(cfg.splits, str) else list(cfg.splits)  # splits=train: that one
    if not splits or any(s not in ("train", "val", "test") for s in splits):
        raise SupraUserError(f"splits={cfg.splits} must name some of train, val, test (e.g. splits=[train,val])")
    check_command_accelerator(str(cfg.accelerator))
    net, run_cfg = load_vqvae(cfg.ckpt)  # first: a bad checkpoint must not leave an empty out folder behind
    out = Path(cfg.out)
    if (out / "meta.json").exists() and not cfg.overwrite:
        raise SupraUserError(f"out={out} already holds codes (meta.json): choose another folder or add overwrite=true")
    require_writable_dir(out, f"out={out}")  # before the work, not after
    device = torch.device("cuda" if cfg.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu")
    net.to(device)
    data_cfg = chosen_data_config(cfg.get("data"), run_cfg, f"ckpt={cfg.ckpt} holds no data config: choose one, "
                                  "e.g. data=media_folder data.root=DIR")
    datamodule = instantiate_loaded(data_cfg, f"ckpt={cfg.ckpt}", "run_config.data")  # partly from the checkpoint
    if not isinstance(datamodule, MediaDataModule):
        raise SupraUserError(f"data {data_cfg.get('_target_')} is not an image/clip DataModule: "
                             "use data=shapes_images, data=shapes_video or data=media_folder")
    dtype = codes_dtype(net.config.num_codes)
    encoded = {}  # every split encoded before the folder is touched: codes it holds stay whole if data fails
    with Progress(disable=not cfg.show_progress, transient=True) as progress:
        for split in splits:
            items = datamodule.items(split)
            codes = encode_items(net, items.pixels, cfg.batch_size, device, progress, f"encoding {split}")
            encoded[split] = items, codes.numpy().astype(dtype)  # held as stored, not as int64
    (out / "meta.json").unlink(missing_ok=True)  # overwriting: the folder is incomplete until the end
    counts, shapes = {}, {}
    for split, (items, codes) in encoded.items():
        write_split(out, split, codes, items.names, items.captions, items.files)
        counts[split], shapes[split] = len(codes), list(codes.shape[1:])
        log.info("%s: %d items -> codes %s (%s)", split, len(codes), list(codes.shape), dtype.name)
    write_meta(out, {
        "vqvae_ckpt": str(Path(cfg.ckpt).resolve()), "vqvae_sha256": file_sha256(cfg.ckpt),
        "num_codes": net.config.num_codes, "image_size": datamodule.image_size, "dtype": dtype.name,
        "splits": counts, "item_shapes": shapes, "data": OmegaConf.to_container(data_cfg, resolve=True),
    })
    print(f"wrote codes of {', '.join(f'{n} {s}' for s, n in counts.items())} items to {out}")
    return out


main = hydra_command("tokenize_media", run)

if __name__ == "__main__":
    main()
