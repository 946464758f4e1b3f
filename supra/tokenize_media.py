"""`python -m supra.tokenize_media ckpt=VQVAE.ckpt out=DIR [data=media_folder data.root=DIR data.mode=clips]`:
every item of a media corpus encoded once to VQ-VAE codes, for your own code (the layout and its reader,
read_media_codes: data/media/codes.py); train.py's a2a mixture encodes and caches its sources itself.
Without data=..., the data the VQ-VAE was trained on is encoded. `--help` lists every option."""

from __future__ import annotations

import inspect
import json
import logging
import re
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from rich.progress import Progress

from supra.artifacts.checkpoints import load_vqvae
from supra.artifacts.loaded_configs import check_targets, instantiate_loaded
from supra.data.base import SPLITS
from supra.data.media.codes import KIND, META, codes_dtype, encode_items, file_sha256, write_meta, write_split
from supra.data.media.datamodule import MediaDataModule, MediaItems
from supra.runner.components import chosen_data_config
from supra.utils.cli import check_option_types, check_paths_given, hydra_command
from supra.utils.disk_room import room_to_write
from supra.utils.errors import SupraUserError
from supra.utils.files import (
    remove_earlier_outputs,
    remove_leftovers,
    require_local_folder,
    require_writable_dir,
    some_names,
    stale_temp_files,
    writing_alone,
)
from supra.utils.hardware import check_command_accelerator
from supra.utils.numbers import counted
from supra.utils.run_folders import refuse_model_folder

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Path:
    check_paths_given(cfg, {"out": "the folder to write the codes to"})
    out = Path(require_local_folder(str(cfg.out), "out"))  # before the work: a URL would become a folder `s3:`
    refuse_model_folder(out, "the codes")  # as caption, explain and generate refuse them
    check_option_types(cfg, whole=("batch_size",))
    if cfg.batch_size < 1:
        raise SupraUserError(f"batch_size={cfg.batch_size} must be >= 1")
    splits = [cfg.splits] if isinstance(cfg.splits, str) else list(cfg.splits)  # splits=train: that one
    if not splits or any(s not in SPLITS for s in splits):
        raise SupraUserError(f"splits={cfg.splits} must name some of train, val, test (e.g. splits=[train,val])")
    check_command_accelerator(str(cfg.accelerator))
    net, run_cfg = load_vqvae(cfg.ckpt)  # first: a bad checkpoint must not leave an empty out folder behind
    data_cfg = chosen_data_config(cfg.get("data"), run_cfg, f"ckpt={cfg.ckpt} holds no data config: choose one, "
                                  "e.g. data=media_folder data.root=DIR", cfg.paths.cache_dir)
    refuse_other_data(data_cfg, f"ckpt={cfg.ckpt}", cfg.get("data"))  # nor data this command cannot encode
    made = not out.exists()
    require_writable_dir(out, f"out={out}")  # before the work, not after
    # one run at a time, as write_shards: two writing here left one's meta.json beside the other's codes
    with writing_alone(out, f"out={out}") as alone:
        # a run killed mid-write left its temp file (a whole split's codes, maybe): not left there for good,
        # nor by a run refused below
        remove_leftovers(stale_temp_files(out, temp_files()), alone,
                         lambda names: f"out={out} holds temp files of a tokenize_media run that did not finish, or "
                                       f"of one at work now (this file system cannot tell): {names}; remove them "
                                       "once no run writes there",
                         f"that an interrupted earlier run left in {out}", "temp file")
        if (out / "meta.json").exists() and not cfg.overwrite:  # checked holding it: not one finishing meanwhile
            raise SupraUserError(f"out={out} already holds codes (meta.json): choose another folder or add "
                                 "overwrite=true")
        try:
            datamodule, encoded = encode_splits(cfg, net, data_cfg, splits)
        except BaseException:  # the data refused (data.root not there, too few files), Ctrl-C: no empty folder left
            if made and not any(out.iterdir()):
                out.rmdir()
            raise
        with room_to_write(f"out={out}", "free space there, or give another out= folder"):
            counts = write_codes(cfg, out, net, data_cfg, datamodule, encoded)
    # "5 train, 1 val items": the one noun after them all, singular where one split holds one item
    items = "item" if list(counts.values()) == [1] else "items"
    print(f"wrote codes of {', '.join(f'{n} {s}' for s, n in counts.items())} {items} to {out}")
    return out


def write_codes(cfg: DictConfig, out: Path, net: torch.nn.Module, data_cfg: DictConfig, datamodule: MediaDataModule,
                encoded: dict[str, tuple[MediaItems, np.ndarray]]) -> dict[str, int]:
    """The encoded splits written into `out`, then its meta.json (last: the folder is whole once it is there);
    returns each split's number of items."""
    dtype = codes_dtype(net.config.num_codes)
    earlier = earlier_split_files(out)
    unfinished = unfinished_split_files(out)
    (out / "meta.json").unlink(missing_ok=True)  # overwriting: the folder is incomplete until the end
    # the earlier run's splits this one does not write (splits=train after all three): removed, so the folder
    # never holds two runs' codes beside a meta.json that lists one of them
    remove_earlier_outputs(out, earlier, [name for split in encoded for name in split_files(split)])
    if unfinished:  # nor beside those of a run killed before its meta.json, which no meta.json names
        remove_earlier_outputs(out, unfinished, [])
        print(f"removed {counted(len(unfinished), 'file')} of an earlier run into {out} that did not finish (it "
              f"wrote no {META}): {some_names(unfinished)}")
    counts, shapes = {}, {}
    for split, (items, codes) in encoded.items():
        # with the references image2text scores each item against and each clip's real frames, as the a2a
        # mixture's code cache keeps them
        write_split(out, split, codes, items.names, items.captions, items.files, items.references, items.real_frames)
        counts[split], shapes[split] = len(codes), list(codes.shape[1:])
        log.info("%s: %s -> codes %s (%s)", split, counted(len(codes), "item"), list(codes.shape), dtype.name)
    write_meta(out, {
        "vqvae_ckpt": str(Path(cfg.ckpt).resolve()), "vqvae_sha256": file_sha256(cfg.ckpt),
        "num_codes": net.config.num_codes, "image_size": datamodule.image_size, "dtype": dtype.name,
        "splits": counts, "item_shapes": shapes, "data": OmegaConf.to_container(data_cfg, resolve=True),
    })
    return counts


def encode_splits(cfg: DictConfig, net: torch.nn.Module, data_cfg: DictConfig,
                  splits: list[str]) -> tuple[MediaDataModule, dict[str, tuple[MediaItems, np.ndarray]]]:
    """The data built and every split encoded, before the folder is touched: codes it holds stay whole if the
    data fails."""
    device = torch.device("cuda" if cfg.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu")
    net.to(device)
    factory = instantiate_loaded(data_cfg, f"ckpt={cfg.ckpt}", "run_config.data", cfg.get("data"),
                                 _partial_=True)  # partly from it
    # a source with caches of its own (a photo source's decoded images) and no cache_dir set keeps them under
    # paths.cache_dir, as the a2a mixture's do, not beside the data set (a read-only one, /kaggle/input, refused them)
    own = {}
    if "cache_dir" not in data_cfg and "cache_dir" in inspect.signature(factory.func).parameters:
        own["cache_dir"] = str(Path(cfg.paths.cache_dir) / "tokenize_media")
    datamodule = factory(**own)
    if not isinstance(datamodule, MediaDataModule):
        raise SupraUserError(not_media_data(data_cfg))
    dtype = codes_dtype(net.config.num_codes)
    encoded = {}
    with Progress(disable=not cfg.show_progress, transient=True) as progress:
        for split in splits:
            items = datamodule.items(split)
            codes = encode_items(net, items.pixels, cfg.batch_size, device, progress, f"encoding {split}")
            encoded[split] = items, codes.numpy().astype(dtype)  # held as stored, not as int64
    return datamodule, encoded


def refuse_other_data(data_cfg: DictConfig, source: str, given: DictConfig | None = None) -> None:
    """Data that is no image/clip DataModule, told by its class before it is built: one line naming the data
    this command takes, not what that DataModule's own checks ask for (data=a2a_mixture's model.vqvae_ckpt,
    which tokenize_media has no option for)."""
    check_targets(data_cfg, source, "run_config.data", given)  # before importing what a checkpoint's config names
    try:
        data_class = get_class(str(data_cfg.get("_target_")))
    except (ImportError, ValueError):  # not a class: building it says what is wrong
        return
    if not issubclass(data_class, MediaDataModule):
        raise SupraUserError(not_media_data(data_cfg))


def not_media_data(data_cfg: DictConfig) -> str:
    return (f"data {data_cfg.get('_target_')} is not an image/clip DataModule: use data=shapes_images, "
            "data=shapes_video or data=media_folder; photos with captions (COCO, Flickr, a caption folder, a Hugging "
            "Face dataset) as +data={_target_:supra.data.media.photo_captions.PhotoCaptionsMediaDataModule,"
            "source:coco,root:DIR}, shards as supra.data.media.shard_images.ShardImagesMediaDataModule")


def split_files(split: str) -> list[str]:
    """The files write_split writes for one split."""
    return [f"codes_{split}.npy", f"items_{split}.json"]


def temp_files() -> str:
    """The names atomic_path gives the temp files of what this command writes (`.codes_train.x8x8x8x8.npy`), as a
    regular expression: those a killed run left are told by it (stale_temp_files)."""
    names = [*(name for split in SPLITS for name in split_files(split)), META]
    return "|".join(rf"\.{re.escape(Path(n).stem)}\.[a-z0-9_]{{8}}{re.escape(Path(n).suffix)}" for n in names)


def earlier_split_files(out: Path) -> list[str]:
    """The split files an earlier tokenize_media run into `out` wrote, by the splits its meta.json lists
    (none when there is none, or it is no code directory's): only the train, val and test this command writes."""
    try:
        meta = json.loads((out / META).read_text())
    except (OSError, ValueError):
        return []
    splits = meta.get("splits") if isinstance(meta, dict) and meta.get("kind") == KIND else None
    return [name for split in SPLITS if isinstance(splits, dict) and split in splits for name in split_files(split)]


def unfinished_split_files(out: Path) -> list[str]:
    """The split files in `out` of an earlier run that did not finish (stopped or killed before its meta.json, written
    last): those present where there is no meta.json."""
    if (out / META).exists():
        return []
    return [name for split in SPLITS for name in split_files(split) if (out / name).is_file()]


def codes_left(cfg: DictConfig) -> str:
    """What a tokenize_media run stopped by Ctrl-C leaves: nothing, if it stopped before writing (run removes the
    out folder it made); else meta.json, written last, marks whole codes."""
    out = Path(str(cfg.out))
    if not out.is_dir() or not any(out.iterdir()):
        return f"nothing written to out={cfg.out}: run it again to write the codes"
    return (f"out={cfg.out} holds whole codes only if its meta.json is there (written last): run it again to "
            "write them")


# the image/clip DataModules refuse_other_data lets through: its --help lists these alone
main = hydra_command("tokenize_media", run, interrupted=codes_left)  # its data sets: cli.COMMAND_DATA_SETS

if __name__ == "__main__":
    main()
