"""The a2a mixture's sources as VQ-VAE codes: every split of each source DataModule (shapes_images,
shapes_video, media_folder, ...) encoded once by the frozen stage-1 VQ-VAE and cached on disk.

Cache layout: `cache_dir/<source>-<key>/` in media codes' format (codes_<split>.npy, items_<split>.json with
each item's references too, meta.json written last), plus objects_<split>.json and, for val/test, pixels_<split>.npy (the truth of
video PSNR and grids). The key hashes the VQ-VAE's weights (the same VQ-VAE read from its .ckpt or from an
a2a checkpoint shares codes), the source's config less the options that only serve its items
(`serving_options`: loader workers and batch sizes are no other codes), its `items_version`, and what it
reads from disk (`inputs_stamp`: a folder whose files changed, were added or removed is encoded anew) with the
version of the decoder that read it (images.DECODE_VERSION). The
folder is built beside its final name and renamed into place: readers see all of it or nothing; the cache folder
is proven writable before any source is decoded, where some source's codes are not cached yet. One damaged
from outside (a file missing or cut short, as by a copy interrupted) is a miss: said in a warning, encoded
again and replaced. A source's own
caches (a photo source's decoded images) go to `cache_dir/<source>/` unless its config sets its cache_dir.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_object, instantiate

from supra.data.base import SPLITS
from supra.data.captions import clean_caption
from supra.data.images import DECODE_VERSION
from supra.data.local_paths import absolute_data_paths
from supra.data.media.codes import codes_dtype, encode_items, save_npy_atomic, write_meta, write_split
from supra.data.media.datamodule import MediaDataModule
from supra.utils.disk_room import room_to_write
from supra.utils.distributed import rank_and_world
from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import (
    atomic_dir,
    atomic_dir_leftovers,
    remove_leftovers,
    require_writable_dir,
    write_json_atomic,
)

log = logging.getLogger(__name__)

# a write refused for want of permission: a read-only mount (/kaggle/input), a folder not the user's
NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
CACHE_FORMAT = 2  # bump when the cache layout changes: old folders are then simply not found (2: item files)
ENCODE_BATCH = 256  # images per VQ-VAE call


@dataclass
class SourceSplit:
    """One split of one source, as codes: int64 [N, h, w] (images) or [N, T, h, w] (clips); per item the captions
    trained on and the references image2text is scored against (MediaItems.references; default: the captions)."""

    source: str
    codes: torch.Tensor
    names: list[str]
    captions: list[list[str]]
    objects: list[list[tuple[str, str]]] | None  # per item, when the source knows them (shapes scenes)
    pixels: torch.Tensor | None = None  # uint8 truth, val/test only
    files: list[str | None] | None = None  # each item's file relative to its source's root (None: generated)
    caption_ids: list[list[list[int]]] | None = None  # filled once the vocabulary exists
    references: list[list[str]] | None = None
    real_frames: list[int] | None = None  # clips: each one's real frames (MediaItems.real_frames); None: all

    def __post_init__(self) -> None:
        if self.references is None:
            self.references = self.captions

    @property
    def is_clips(self) -> bool:
        return self.codes.ndim == 4

    def __len__(self) -> int:
        return len(self.codes)


def key_digest(key_data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def codes_config(config: Mapping[str, Any], module: MediaDataModule) -> dict[str, Any]:
    """The part of a source's config its items, and so its codes, depend on: all but its serving options, its local
    paths absolute (a run records them so: evaluate.py of a run that read root=photos reads /data/photos, and
    re-encoded every item before they were keyed alike)."""
    absolute = absolute_data_paths(dict(config), os.getcwd())
    return {key: value for key, value in absolute.items() if key not in module.serving_options}


def weights_sha256(net: torch.nn.Module) -> str:
    """Hash of a module's weights and buffers (names, dtypes, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def may_give_images(sources: Mapping[str, Any] | None) -> bool:
    """Whether some source of data.sources (configs; one set to null is left out) may give images, the items
    image2text captions, judged from the configs alone, before any is read: a source of clips gives none."""
    return any(source_may_give_images(config) for config in (sources or {}).values() if config is not None)


def media_source_class(config: Mapping[str, Any]) -> type[MediaDataModule] | None:
    """The MediaDataModule class a source's config names, or None for one unknown here (its own error is said as
    it is built)."""
    try:
        source_class = get_object(str(config.get("_target_")))
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    return source_class if inspect.isclass(source_class) and issubclass(source_class, MediaDataModule) else None


def source_may_give_images(config: Mapping[str, Any]) -> bool:
    """False only for a source sure to give clips: one whose class is unknown here may give images."""
    source_class = media_source_class(config)
    return source_class is None or not source_class.gives_clips(config)


def source_pictures(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """(image side in pixels, frames per clip: 0 for images) that a source of this config gives, from the config
    alone (an option left out: its class's default), before anything is read; None for a class unknown here."""
    source_class = media_source_class(config)
    if source_class is None:
        return None
    clips = source_class.gives_clips(config)
    return _option(source_class, config, "image_size"), _option(source_class, config, "frames") if clips else 0


def _option(source_class: type, config: Mapping[str, Any], key: str) -> Any:
    """`key` of a source's config, else the default of the first __init__ up its classes that names it (a
    subclass passes image_size on to MediaDataModule's)."""
    if key in config:
        return config[key]
    for cls in source_class.__mro__:
        parameter = inspect.signature(cls.__init__).parameters.get(key) if "__init__" in vars(cls) else None
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return None


def check_one_picture_size(modules: dict[str, MediaDataModule]) -> None:
    """Every source's pictures at one size, before any is encoded: batches mix them (a mismatch trained,
    then failed at the first evaluation batch that stacked two sources)."""
    sizes = {name: module.image_size for name, module in modules.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} {size} px" for name, size in sizes.items())
        raise SupraUserError(f"data.sources give pictures of different sizes: {listed}; give every source the same "
                             "image_size (data.sources.<name>.image_size)")


def warn_of_repeated_sources(configs: dict[str, dict[str, Any]], modules: dict[str, MediaDataModule]) -> None:
    """Two sources of one config read the same items: trained on twice as often and scored twice. Said, not
    refused: listing a source twice is a way to weight it (task weights are per task, not per source)."""
    seen: dict[str, str] = {}
    for name, module in modules.items():
        digest = key_digest(codes_config(configs[name], module))
        if digest in seen:
            log.warning("data.sources.%s and data.sources.%s are one source (the same config): its items are "
                        "trained on twice as often and its val and test items scored twice; remove one unless "
                        "that is what you want", seen[digest], name)
        seen.setdefault(digest, name)


TRAINED_SIZE = "trained_image_size"  # set on a VQ-VAE loaded from its train.py checkpoint (runner.stage1_vqvae)


def warn_of_another_picture_size(vqvae: torch.nn.Module, size: int) -> None:
    """A VQ-VAE works on pictures of any multiple of 8, but codes pictures of another size than it was
    trained on far worse (a 64 px VQ-VAE at 32 px: 20.4 dB, the mean colour's, against 24.9): said, not
    refused, as a choice someone may make on purpose."""
    trained = getattr(vqvae, TRAINED_SIZE, None)
    if trained is not None and trained != size:
        log.warning("the VQ-VAE (model.vqvae_ckpt) was trained on %d px pictures but data.sources give %d px: its "
                    "codes of them reconstruct worse; give the sources image_size=%d, or a VQ-VAE trained at %d",
                    trained, size, trained, size)


@contextmanager
def options_of_source(name: str) -> Iterator[None]:
    """A source's own one-line errors name its options as a DataModule of its own has them (data.root=...);
    in the mixture they are data.sources.<name>.root=...: said so."""
    try:
        yield
    except SupraUserError as err:
        raise SupraUserError(re.sub(r"\bdata\.(?!sources\.)", f"data.sources.{name}.", str(err))) from None


def remove_killed_builds(cache_dir: Path) -> None:
    """The temp folders of code caches whose build was killed (atomic_dir's `.<source>-<key>.XXXXXXXX`, a
    source's codes and pixels each), of any source and key: removed. Only those whose claim no process holds
    (atomic_dir_leftovers): a build at work now, another run's, keeps its own."""
    if not cache_dir.is_dir():
        return
    names = sorted({m[1] for p in cache_dir.iterdir() if (m := re.fullmatch(r"\.(.+)\.[a-z0-9_]{8}", p.name))})
    leftovers = [p for name in names for p in atomic_dir_leftovers(cache_dir / name)]
    # alone: a claim unlocked is a killed build's, whatever else runs (no lock to tell by: none is found)
    remove_leftovers(leftovers, True, lambda names: "", f"that killed a2a code-cache builds left in {cache_dir}")


@contextmanager
def cache_writes(cache_dir: Path | None) -> Iterator[None]:
    """A write to the a2a codes cache that fails for want of room, or of permission in the cache (a folder made
    read-only after the check before encoding), as one line naming data.cache_dir, as the image cache's, not a
    traceback. A permission error elsewhere (a source's file it could not read) stays as it is."""
    what = f"the a2a codes cache {cache_dir}"
    with room_to_write(what, "free space there, or set data.cache_dir to a folder with room"):
        try:
            yield
        except OSError as err:
            if cache_dir is None or err.errno not in NOT_WRITABLE or not _inside(err.filename, cache_dir):
                raise
            raise SupraUserError(f"cannot write to {what} ({err.strerror or err}): set data.cache_dir to a writable "
                                 "folder") from None


def _inside(filename: Any, folder: Path) -> bool:
    """Whether an error's file (None where it names none) lies in `folder`, symbolic links followed."""
    return isinstance(filename, str | os.PathLike) and Path(filename).resolve().is_relative_to(folder.resolve())


class SourceCodes:
    """{split: SourceSplit} of every source, from the cache when it holds them, else encoded (and cached).

    sources: {name: DataModule config with _target_}; `num_codes` sets the cached codes' integer type.
    """

    def __init__(self, sources: dict[str, dict[str, Any]], vqvae: torch.nn.Module, num_codes: int,
                 cache_dir: Path | None) -> None:
        self.sources, self.vqvae, self.num_codes, self.cache_dir = sources, vqvae, num_codes, cache_dir
        self.builds = 0  # how many sources this object encoded (tests: 0 on a cache hit)
        self.modules: dict[str, MediaDataModule] = {}  # the sources' DataModules, once all() built them
        self._stamps: dict[str, str] = {}

    def folder(self, name: str, vqvae_hash: str, module: MediaDataModule) -> Path | None:
        """The cache folder of source `name`'s codes: keyed by the VQ-VAE, the source's config less its
        serving options, its items_version (when raised) and what it reads from disk (`inputs_stamp`: a
        folder whose files changed, were added or removed is encoded anew) with the decoder's version. A
        procedural source reads nothing: its key is the config's alone, as before stamps."""
        if self.cache_dir is None:
            return None
        if name not in self._stamps:  # once per process: a large folder is walked once, not per hook
            self._stamps[name] = module.inputs_stamp()
        key_data = {"format": CACHE_FORMAT, "vqvae_sha256": vqvae_hash, "data": codes_config(self.sources[name], module)}
        if module.items_version != 1:
            key_data["items_version"] = module.items_version
        if self._stamps[name]:  # a source of files: its pixels are also the decoder's
            key_data["inputs"] = self._stamps[name]
            key_data["decode"] = DECODE_VERSION
        folder = self.cache_dir / f"{name}-{key_digest(key_data)}"
        if not (folder / "meta.json").is_file():
            folder = self._cached_before(name, vqvae_hash, module) or folder
        return folder

    def _cached_before(self, name: str, vqvae_hash: str, module: MediaDataModule) -> Path | None:
        """The same codes cached under an older key, read rather than encoded again: a procedural source's
        under the key of its whole config (serving options too, as before they were left out);
        and for a media folder that is not there (scoring on a machine that holds only the codes), which
        stamps nothing, the latest codes cached for its config and VQ-VAE whatever its files were then."""
        config, stamp = self.sources[name], self._stamps[name]
        # a source of files (stamped) cached under that key was decoded before DECODE_VERSION 2: not read
        if module.items_version == 1 and not stamp and set(config) & module.serving_options:
            whole = {"format": CACHE_FORMAT, "vqvae_sha256": vqvae_hash, "data": config}
            folder = self.cache_dir / f"{name}-{key_digest(whole)}"
            if (folder / "meta.json").is_file():
                return folder
        if stamp:
            return None
        as_read = json.loads(json.dumps(codes_config(config, module), default=str))  # as meta.json holds it
        wanted = (CACHE_FORMAT, vqvae_hash, module.items_version, as_read)
        found = []
        for meta_path in self.cache_dir.glob(f"{name}-*/meta.json"):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            data = meta.get("data")
            if isinstance(data, dict) and (meta.get("format"), meta.get("vqvae_sha256"), meta.get("items_version", 1),
                                           codes_config(data, module)) == wanted:
                found.append(meta_path)
        return max(found, key=lambda p: p.stat().st_mtime_ns).parent if found else None

    def all(self) -> dict[str, dict[str, SourceSplit]]:
        vqvae_hash = weights_sha256(self.vqvae)
        first = not self.modules  # prepare_data and setup both ask for the codes: where they came from, said once
        modules = {}
        for name in self.sources:
            with options_of_source(name):
                modules[name] = self._module(name)
        check_one_picture_size(modules)
        for name, module in modules.items():  # every source's inputs before any is decoded
            module.check_inputs(f"data.sources.{name}", warn=not self.modules)
        # said once: prepare_data and setup both ask for the codes; every DDP rank builds them alike: by rank 0 alone
        if not self.modules and rank_and_world()[0] == 0:
            warn_of_repeated_sources(self.sources, modules)
            warn_of_another_picture_size(self.vqvae, next(iter(modules.values())).image_size)
        self.modules = modules
        if self.cache_dir is not None:
            remove_killed_builds(self.cache_dir)
            self._check_writable(modules, vqvae_hash)
        result = {}
        for name, module in modules.items():
            # a write that fails: one line, naming the mixture's data.cache_dir (outside options_of_source, which
            # would name the source's own)
            with cache_writes(self.cache_dir), options_of_source(name):
                result[name] = self._codes(name, module, vqvae_hash, say_read=first)
        return result

    def _check_writable(self, modules: dict[str, MediaDataModule], vqvae_hash: str) -> None:
        """Where some source's codes are not cached yet, the cache folder proven writable before any source is
        decoded and encoded (minutes for a large folder), not after; a read-only one holding them all is read."""
        for name, module in modules.items():
            with options_of_source(name):
                cached = (self.folder(name, vqvae_hash, module) / "meta.json").is_file()
            if not cached:
                require_writable_dir(self.cache_dir, f"the a2a codes cache {self.cache_dir}",
                                     "set data.cache_dir to a writable folder")
                return

    def _codes(self, name: str, module: MediaDataModule, vqvae_hash: str,
               say_read: bool = True) -> dict[str, SourceSplit]:
        folder = self.folder(name, vqvae_hash, module)
        damaged = False
        if folder is not None and (folder / "meta.json").is_file():
            try:
                codes = self._read(folder, name)
            except DamagedCache as err:  # a cache copied in part, or a disk error: a miss, as the image cache's
                log.warning("the a2a codes cache %s is damaged (%s): the codes of %s are encoded again and replace it",
                            folder, err, name)
                damaged = True
            else:
                if say_read:
                    log.info("a2a codes of %s read from the cache %s", name, folder)
                return codes
        codes = self._encode(name, module)
        if folder is not None:
            self._write(folder, name, codes, vqvae_hash, module.items_version, replace=damaged)
            log.info("a2a codes of %s cached in %s", name, folder)
        return codes

    def _module(self, name: str) -> MediaDataModule:
        factory = instantiate(self.sources[name], _partial_=True)
        # a source with caches of its own (a photo source's decoded images) and no cache_dir set keeps them in
        # cache_dir/<name>/, as the captioner's data keeps its own in paths.cache_dir, not beside the data set
        # (a read-only one, /kaggle/input, refused them); given here, not in its config, so its codes' key stays
        own = {}
        if (self.cache_dir is not None and "cache_dir" not in self.sources[name]
                and "cache_dir" in inspect.signature(factory.func).parameters):
            own["cache_dir"] = str(self.cache_dir / name)
        module = factory(**own)
        if not isinstance(module, MediaDataModule):
            raise SupraUserError(f"data.sources.{name} ({self.sources[name]['_target_']}) is not an image/clip "
                                 "DataModule: use shapes_images, shapes_video or media_folder")
        return module

    def _encode(self, name: str, module: MediaDataModule) -> dict[str, SourceSplit]:
        """Every split of source `name`, encoded by the VQ-VAE (the expensive part, done once)."""
        device = next(self.vqvae.parameters()).device
        out = {}
        for split in SPLITS:
            items = module.split_items(split)  # a media folder's val or test may be off (its fraction 0)
            codes = encode_items(self.vqvae, items.pixels, ENCODE_BATCH, device)
            out[split] = SourceSplit(name, codes, list(items.names), [list(c) for c in items.captions],
                                     items.objects, items.pixels if split != "train" else None, list(items.files),
                                     references=[list(r) for r in items.references], real_frames=items.real_frames)
        self.builds += 1
        log.info("a2a codes of %s: %s", name, ", ".join(f"{len(p)} {s}" for s, p in out.items()))
        return out

    def _write(self, folder: Path, name: str, parts: dict[str, SourceSplit], vqvae_hash: str,
               items_version: int, replace: bool = False) -> None:
        # replace=False: if another process renamed its copy in first, theirs is as good (replace: a damaged one)
        with atomic_dir(folder, replace=replace) as tmp:
            dtype = codes_dtype(self.num_codes)
            for split, part in parts.items():
                write_split(tmp, split, part.codes.numpy().astype(dtype), part.names, part.captions, part.files,
                            part.references, part.real_frames)
                write_json_atomic(tmp / f"objects_{split}.json", part.objects)
                if part.pixels is not None:
                    save_npy_atomic(tmp / f"pixels_{split}.npy", part.pixels.numpy())
            write_meta(tmp, {"format": CACHE_FORMAT, "vqvae_sha256": vqvae_hash, "items_version": items_version,
                             "num_codes": self.num_codes, "splits": {s: len(p) for s, p in parts.items()},
                             "data": self.sources[name]})

    @staticmethod
    def _read(folder: Path, name: str) -> dict[str, SourceSplit]:
        return {split: read_cached_split(folder, name, split) for split in SPLITS}


class DamagedCache(Exception):
    """A file of an a2a codes cache that cannot be read as written: the cache is a miss, encoded again. (Its
    folder is written whole and renamed into place: only damage from outside, a copy cut short, does this.)"""


def read_cached(path: Path) -> Any:
    """A cache file's content, its .npy array or its JSON; DamagedCache naming it where it is missing or cut short."""
    try:
        return np.load(path) if path.suffix == ".npy" else json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: a .npy cut short, or not JSON
        raise DamagedCache(f"{path.name}: {first_line(err)}") from err


def read_cached_split(folder: Path, name: str, split: str) -> SourceSplit:
    """One split of the codes cached in `folder`; DamagedCache where a file of it is missing, cut short, or
    disagrees with the others on the number of items."""
    items, objects = read_cached(folder / f"items_{split}.json"), read_cached(folder / f"objects_{split}.json")
    pixels_path = folder / f"pixels_{split}.npy"  # val and test only
    pixels = torch.from_numpy(read_cached(pixels_path)) if pixels_path.exists() else None
    codes = torch.from_numpy(read_cached(folder / f"codes_{split}.npy").astype(np.int64))
    try:
        # read as captions are now (NFC): a cache written before holds them in the form their files had
        names, captions = items["names"], [[clean_caption(c) for c in item] for item in items["captions"]]
        files = items.get("files") or [None] * len(names)
        # none in a cache written before references were: its source's references are its captions (a source whose
        # references differ raised its items_version with them, so such a cache of it is never read)
        references = [[clean_caption(c) for c in item] for item in items["references"]] if items.get("references") else captions
        real_frames = items.get("real_frames")  # none: every frame real (a source that pads raised its items_version)
        objects = [[tuple(o) for o in item] for item in objects] if objects is not None else None
    except (KeyError, TypeError, AttributeError) as err:
        raise DamagedCache(f"items_{split}.json or objects_{split}.json: not as written ({err!r})") from err
    per_item = [codes, names, captions, files, references] + [x for x in (pixels, objects, real_frames) if x is not None]
    if len({len(x) for x in per_item}) != 1:
        raise DamagedCache(f"the {split} split's files hold different numbers of items")
    return SourceSplit(name, codes, names, captions, objects, pixels, files, references=references,
                       real_frames=real_frames)
