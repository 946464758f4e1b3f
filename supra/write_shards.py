"""`python -m supra.write_shards source=coco root=DIR out=DIR`: any caption source (flickr8k, flickr30k,
coco, folder, hf_disk) written as WebDataset tar shards in img2dataset's layout, one folder per split
(`out/train/00000.tar` with `00000_stats.json` and `00000.parquet` beside it), so it can be put in object
storage once (out=s3://..., gs://...: uploaded through fsspec) and streamed by many nodes with
`data=shards`. `--help` lists every option."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shlex
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from omegaconf import DictConfig
from rich.progress import Progress

from supra.data.caption_sources.folder import (
    CIDER_OF_ONE_IMAGE,
    check_split_fractions,
    one_image_split_warnings,
)
from supra.data.caption_sources.index import CaptionIndex, skipped_reasons, summary_line
from supra.data.caption_sources.shards import expand_shards, shard_sizes
from supra.data.caption_sources.sources import SOURCES, read_caption_source
from supra.data.captioning.shard_stream import epoch_quotas
from supra.data.image_cache import StoredImage
from supra.data.image_cache import unreadable_reason as image_reason
from supra.data.images import UNREADABLE, load_rgb
from supra.utils.cli import (
    check_option_types,
    check_paths_given,
    count_as_typed,
    hydra_command,
    refuse_unread_options,
)
from supra.utils.disk_room import room_to_write
from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import (
    atomic_dir,
    atomic_dir_leftovers,
    atomic_path,
    local_path_of,
    readable_json,
    remove_leftovers,
    require_writable_dir,
    write_json_atomic,
    writing_alone,
)
from supra.utils.numbers import counted, is_whole
from supra.utils.overrides import compose_conf

log = logging.getLogger(__name__)

PARQUET_COLUMNS = ("url", "caption", "key", "status", "error_message")
SPLITS = ("train", "val", "test")
SHARD_MTIME = 0  # the tar members' time (the epoch)
SHARD_FILE = re.compile(r"\d{5}(\.tar|_stats\.json|\.parquet)")  # what write_split writes in a split's folder
# the data options this command takes bare (root=, not data.root=), as the sources' messages name them
HF_COLUMNS = ("image_column", "caption_column", "id_column")  # hf_disk's alone
FOLDER_FRACTIONS = ("val_fraction", "test_fraction")  # a folder's alone
BARE_OPTION = re.compile(r"\bdata\.(root|layout|split_seed|image_column|caption_column|id_column|cache_dir|"
                         r"val_fraction|test_fraction)\b")


def image_bytes(index: CaptionIndex, key: str) -> tuple[bytes, str]:
    """The image's encoded bytes and their extension (jpg, png or webp, from the content). A JPEG, PNG or
    WebP is copied as stored, once a decode has proven it readable (a JPEG at its smallest DCT scale: a cut
    or corrupt file fails there too), so no shard carries a picture its readers would skip. Another format
    (BMP, TIFF, GIF), which shard readers do not take, is written as a PNG of the pixels load_rgb gives
    (a GIF's first frame, EXIF orientation applied): lossless, so data=shards trains on the pixels the
    source's own data= does."""
    stored = index.stored.get(key)
    data = stored.read() if isinstance(stored, StoredImage) else (index.image_dir / key).read_bytes()
    kind = {b"\xff\xd8": "jpg", b"\x89P": "png", b"RI": "webp"}.get(data[:2])
    if kind is not None:
        load_rgb(io.BytesIO(data), draft=8)
    else:
        pixels = load_rgb(io.BytesIO(data))
        # the pixels alone: the source's ICC profile (a CMYK TIFF's describes CMYK) would mislabel an RGB PNG
        pixels.info.clear()
        buffer = io.BytesIO()
        pixels.save(buffer, format="PNG")
        data, kind = buffer.getvalue(), "png"
    return data, kind


def unreadable_reason(index: CaptionIndex, key: str, err: BaseException) -> str:
    """Why the image of `key` could not be read, the same each run (image_cache.unreadable_reason): Pillow's own
    text names the in-memory copy by its address, so the same source would not give the same parquet."""
    stored = index.stored.get(key)
    return image_reason(stored if isinstance(stored, StoredImage) else index.image_dir / key, err)


def write_split(index: CaptionIndex, root: Path, split: str, out: Path, per_shard: int, progress: Progress,
                unreadable: dict[str, str]) -> int:
    """The split's images as shards in out/; returns how many shards. Each sample's json keeps the image's
    id and file as the source names them (`url`: its file relative to `root`, the source's folder, None for
    one inside a dataset's files), so it is scored alike read from the source or from the shards. Images
    that cannot be read are rows of the parquet with status failed_to_read (as img2dataset's failed
    downloads), not tar members, and are added to `unreadable` (key -> reason). A split none of whose images
    could be read gets no shard at all (0): an empty one would be read as a split to train or score on."""
    import webdataset as wds

    keys = index.splits[split]
    files = dict(zip(keys, index.files(root, keys), strict=True))
    task = progress.add_task(f"writing {split}", total=len(keys))
    shards = 0
    for shard, start in enumerate(range(0, len(keys), per_shard)):
        rows = []
        # every member dated SHARD_MTIME, not the moment it was written: the same source gives the same bytes, so a
        # sync by checksum or a cache keyed by content sees unchanged shards as unchanged
        with atomic_path(out / f"{shard:05d}.tar") as tmp, wds.TarWriter(str(tmp), mtime=SHARD_MTIME) as tar:
            for number, key in enumerate(keys[start:start + per_shard]):
                sample_key = f"{shard:05d}{number:04d}"  # img2dataset's keys
                captions = index.references[key]  # as the source publishes them: read back, scored alike
                # these keys exactly (shards.py's WRITTEN_JSON_KEYS): readers take the id of such a json alone
                # as the image's own
                meta = {"url": files[key], "caption": captions[0], "captions": captions, "key": sample_key,
                        "status": "success", "error_message": None, "id": index.ids.get(key, key)}
                try:
                    data, kind = image_bytes(index, key)
                except UNREADABLE as err:
                    meta.update(status="failed_to_read", error_message=f"{files[key] or key}: "
                                                                      f"{unreadable_reason(index, key, err)}")
                    unreadable[key] = meta["error_message"]
                    rows.append(meta)
                    progress.advance(task)
                    continue
                tar.write({"__key__": sample_key, kind: data, "txt": captions[0], "json": readable_json(meta)})
                rows.append(meta)
                progress.advance(task)
        successes = sum(r["status"] == "success" for r in rows)
        write_json_atomic(out / f"{shard:05d}_stats.json", {
            "count": len(rows), "successes": successes, "failed_to_download": len(rows) - successes,
            "failed_to_resize": 0, "status_dict": {"success": successes}})
        with atomic_path(out / f"{shard:05d}.parquet") as tmp:
            pq.write_table(pa.table({c: [r.get(c) for r in rows] for c in PARQUET_COLUMNS}), tmp)
        shards += 1
    if not any(key not in unreadable for key in keys):
        for path in out.iterdir():  # this split's own temp folder (atomic_dir): only what it wrote above
            path.unlink()
        return 0
    return shards


def run(cfg: DictConfig) -> Path | str:
    check_options(cfg)
    local = local_path_of(str(cfg.out))  # file:// as its path; None for a URL of an object store
    store = None if local is not None else object_store(str(cfg.out))
    if store is None:
        remove_shard_leftovers(Path(local))  # first: a run refused below leaves them no more than one that writes
        check_out(Path(local), bool(cfg.overwrite))
    else:
        check_store_out(str(cfg.out), *store, bool(cfg.overwrite))
    columns = {k: cfg.get(k) for k in HF_COLUMNS} if cfg.source == "hf_disk" else None
    fractions = {k: cfg.get(k) for k in FOLDER_FRACTIONS} if cfg.source == "folder" else None
    try:
        # cache_dir: parquet's Arrow copy goes where training keeps it, never into the (maybe read-only) dataset
        index = read_caption_source(cfg.source, cfg.root, cfg.layout, cfg.split_seed, columns, cfg.cache_dir,
                                    fractions, cfg.show_progress)
    except SupraUserError as err:  # the sources name the options as training takes them: data.root=...
        raise SupraUserError(bare_options(str(err))) from None
    check_something_to_write(cfg, index, {})
    if store is None:
        out: Path | str = Path(local)
        written, unreadable = write_all_splits(cfg, index, out)
        where = str(out.resolve())
    else:
        # written whole in a local temp folder first (TMPDIR), then uploaded: the same shards as a local out=
        with tempfile.TemporaryDirectory(prefix="write_shards.") as staging:
            written, unreadable = write_all_splits(cfg, index, Path(staging))
            upload_shards(Path(staging), str(cfg.out), *store, written)
        out = where = str(cfg.out).rstrip("/")
    unread = {split: [unreadable[k] for k in keys] for split, keys in index.splits.items() if keys and not written[split]}
    for split, keys in index.splits.items():  # the summary counts what the shards hold: unreadable ones once
        index.splits[split] = [k for k in keys if k not in unreadable]
    if fractions:  # the shards' val and test are what training on them scores: their images that decode
        for line in one_image_split_warnings(index.splits, cfg.root, fractions, "", CIDER_OF_ONE_IMAGE):
            log.warning(line)
    # what was read, and what was skipped and why; its notes name the options as this command takes them
    print(bare_options(summary_line(cfg.source, index, unreadable)))
    print("\n".join(next_step(where, written, unread)))
    return out


def write_all_splits(cfg: DictConfig, index: CaptionIndex, out: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Every split's shards into out/train, out/val, out/test; returns the shards of each split and the
    images that could not be read (key -> reason)."""
    require_writable_dir(out, f"out={out}")
    written: dict[str, int] = {}
    unreadable: dict[str, str] = {}
    # Every split is written to a temp folder and swapped in only once all are: an old run's shards never
    # mix with this one's (its extra train shards would hold images now in val or test), nor does a failure
    # leave half of each.
    with writing_alone(out, f"out={out}"):
        # again, holding it: another run may have finished its shards there since run checked it, before the source
        # was read
        check_out(out, bool(cfg.overwrite))
        # a full disk: one line (what was written of this run is removed with its temp folders, as on any error)
        with room_to_write(f"out={out}", "free space there, or give another out= folder"), \
                Progress(disable=not cfg.show_progress, transient=True) as progress, contextlib.ExitStack() as swaps:
            for split in SPLITS:
                folder = swaps.enter_context(atomic_dir(out / split))
                written[split] = write_split(index, Path(cfg.root), split, folder, cfg.samples_per_shard, progress,
                                             unreadable)
            check_something_to_write(cfg, index, unreadable)
        for split in SPLITS:  # a split the source gave no image: no folder (an earlier run's went with the swap)
            if not written[split]:
                (out / split).rmdir()
    return written, unreadable


def object_store(url: str) -> tuple[Any, str]:
    """fsspec's file system for `url` (s3://, gs://, memory://, ...) and the path in it; one line where fsspec
    has none for its scheme (s3fs or gcsfs not installed, an unknown scheme)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise SupraUserError(f"out={url}: {first_line(err)}") from None


def check_store_out(url: str, store: Any, root: str, overwrite: bool) -> None:
    """check_out for shards in an object store, read through fsspec (one line where it cannot be reached)."""
    for split in SPLITS:
        try:
            names = stored_names(store, f"{root}/{split}")
        except Exception as err:  # whatever the store raises: no credentials, no bucket, no network
            raise SupraUserError(f"cannot read out={url} ({first_line(err)}): check the URL and your access to "
                                 "it") from None
        refuse_replacing(url, split, names, overwrite)


def stored_names(store: Any, folder: str) -> list[str]:
    """The names of the objects directly in `folder` of the store (none where there is no such folder)."""
    if not store.isdir(folder):
        return []
    return sorted(PurePosixPath(path).name for path in store.ls(folder, detail=False))


def upload_shards(staging: Path, url: str, store: Any, root: str, written: dict[str, int]) -> None:
    """The shards written in `staging` uploaded to `url`, split by split, then the earlier run's shards of
    each split that this run did not write again removed (train/*.tar must not read an old 00007.tar).
    Atomic per object alone: the store shows each file whole or not at all, but a failure midway leaves some
    of this run's shards beside the earlier run's, said in its one line (run it again to put it right)."""
    url = url.rstrip("/")
    for split in SPLITS:
        names = sorted(p.name for p in (staging / split).iterdir()) if written[split] else []
        try:
            for name in names:
                store.put_file(str(staging / split / name), f"{root}/{split}/{name}")
            stale = [n for n in stored_names(store, f"{root}/{split}") if SHARD_FILE.fullmatch(n) and n not in names]
            for name in stale:
                store.rm_file(f"{root}/{split}/{name}")
        except Exception as err:  # whatever the store raises: no credentials, no bucket, no network, no room
            raise SupraUserError(f"cannot upload to {url}/{split}/ ({first_line(err)}): it may hold some of this "
                                 "run's shards beside earlier ones: fix the cause and run again with "
                                 "overwrite=true") from None


def next_step(where: str, written: dict[str, int], unread: dict[str, list[str]] | None = None) -> list[str]:
    """What was written to `where` (a folder's absolute path, or the URL of the shards in an object store,
    which data=shards reads through fsspec), and the command that uses it, as printed at the end: training
    on the shards, where a split the source gave no image for (too few to set val and test apart, or a
    dataset without that split) or none that could be read (`unread`: split -> why each of its images could
    not be, "file: reason") has no folder and its option is left for the user to give other shards;
    only scoring where there is no train split. The train command lowers the recipe's batch where the train
    shards hold too few samples for it (fitting_batch)."""
    specs = {s: f"{where}/{s}/{{00000..{n - 1:05d}}}.tar" for s, n in written.items() if n}
    wrote = f"wrote {', '.join(counted(n, f'{s} shard') for s, n in written.items() if n)} to {where}"
    options = {s: shell_override(f"data.{s}_shards", p) for s, p in specs.items()}
    lacking = [s for s in SPLITS if s not in specs]
    # the recipe trains on a GPU (trainer=gpu): on a machine without one, the command it refuses would be no answer
    train = "  python train.py experiment=vlm_shards " + ("" if torch.cuda.is_available() else "trainer=cpu ")
    lowered, why = fitting_batch(specs["train"]) if "train" in specs else ([], "")
    train += "".join(f"{o} " for o in lowered)
    if not lacking:
        return [f"{wrote}; train on them with{why}:", train + " ".join(options.values())]
    wrote += f"; {why_lacking(lacking, unread or {})}, so there is no {', no '.join(f'{s}/' for s in lacking)}"
    if "train" in specs:
        return [f"{wrote}: train on them with shards of other images for {' and '.join(f'data.{s}_shards' for s in lacking)}{why}:",
                train + " ".join(options.get(s, f"data.{s}_shards=...") for s in SPLITS)]
    scored = "test" if "test" in specs else "val"
    return [f"{wrote}: score a captioner on the {scored} shards with:",
            f"  python evaluate.py ckpt=<captioner> data=shards {options[scored]}"
            + (" data.split=val" if scored == "val" else "")]


def why_lacking(lacking: list[str], unread: dict[str, list[str]]) -> str:
    """Why the splits `lacking` have no shard: the source gave them no image, or none that could be read
    (`unread`: split -> "file: reason" of each of its images, up to two named)."""
    given_none = [s for s in lacking if s not in unread]
    reasons = [f"the source gave no {' or '.join(given_none)} images (too few to set them apart, or no such split)"
               ] if given_none else []
    for split in (s for s in lacking if s in unread):
        failed = unread[split]
        shown = "; ".join(failed[:2]) + (f"; and {len(failed) - 2} more" if len(failed) > 2 else "")
        reasons.append(f"the only image of the {split} split could not be read ({shown})" if len(failed) == 1 else
                       f"none of the {len(failed)} images of the {split} split could be read ({shown})")
    return "; ".join(reasons)


def fitting_batch(train_spec: str) -> tuple[list[str], str]:
    """The overrides that let the printed train command run on the train shards `train_spec`, and a note
    saying why, or none where the recipe's batch fits: data.batch_size, then data.num_workers, lowered
    from the recipe's until a worker of its one rank holds a full batch, by the rule data=shards refuses
    by (epoch_quotas, in the first epoch)."""
    data = compose_conf("train", ["experiment=vlm_shards"]).data
    sizes = shard_sizes(expand_shards(train_spec))
    layout = max(data.num_workers, 1)  # num_workers=0 batches in the main process, as one worker
    if sizes is None or sum(epoch_quotas(sizes, data.batch_size, 1, layout, data.seed)[0]):
        return [], ""
    # a batch as near the recipe's as fits first (its learning rate was set for it), then the most workers
    fits = ((b, w) for b in range(data.batch_size, 0, -1) for w in range(layout, 0, -1)
            if sum(epoch_quotas(sizes, b, 1, w, data.seed)[0]))
    batch_size, workers = next(fits, (data.batch_size, layout))  # no usable sample at all: training says so
    lowered = [f"data.batch_size={batch_size}"] if batch_size != data.batch_size else []
    lowered += [f"data.num_workers={workers}"] if workers != layout else []
    if not lowered:
        return [], ""
    samples = sum(sizes)
    return lowered, (f" (their {counted(samples, 'train sample')} make{'s' * (samples == 1)} no full batch of the "
                     f"recipe's data.batch_size={data.batch_size} for {'its' if layout == 1 else 'any of its'} "
                     f"{counted(layout, 'worker')}, each batching its own shards: {' and '.join(lowered)} added)")


def check_options(cfg: DictConfig) -> None:
    """Before any work, one line for an option this run could not use as given: Hydra passes
    samples_per_shard=2.5, 1e3, abc or true on as they are, and the options of other sources than the one
    chosen (a folder's caption_column=, a Hugging Face dataset's layout=, always detected) would be
    ignored without a word."""
    check_paths_given(cfg, {"root": "the source's folder", "out": "the folder to write the shards to"})
    per_shard = cfg.samples_per_shard
    if not is_whole(per_shard, 1):  # 1e3 is a float to Hydra: said as typed, with the count to write, as every count
        raise SupraUserError(f"{count_as_typed('samples_per_shard', per_shard)} must be a whole number >= 1 (images "
                             "per tar)")
    check_option_types(cfg, whole=["split_seed"])
    if cfg.source in SOURCES:  # an unknown one is named by read_caption_source
        reads = {"hf_disk": ["root", *HF_COLUMNS, "split_seed", "cache_dir"],
                 "folder": ["root", "layout", "split_seed", *FOLDER_FRACTIONS]}.get(cfg.source, ["root", "layout", "split_seed"])
        unread = [option for option in ("layout", *HF_COLUMNS, *FOLDER_FRACTIONS) if option not in reads]
        refuse_unread_options(cfg, "write_shards", unread, f"source={cfg.source}", reads)
    if cfg.source == "folder":
        try:  # before any work, as training checks them
            check_split_fractions(cfg.val_fraction, cfg.test_fraction)
        except SupraUserError as err:
            raise SupraUserError(bare_options(str(err))) from None


def check_out(out: Path, overwrite: bool) -> None:
    """Before any work: each split folder of `out` is replaced whole, so refuse one holding anything but
    shards (someone else's files, hidden ones too: this command writes none there), and shards unless
    `overwrite`."""
    for split in SPLITS:
        folder = out / split
        if folder.exists() and not folder.is_dir():
            raise SupraUserError(f"out={out}: {split} is a file, not a folder: choose another folder")
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        refuse_replacing(str(out), split, names, overwrite)


def refuse_replacing(out: str, split: str, names: list[str], overwrite: bool) -> None:
    """One line where the split's folder holds `names` this run must not replace: files that are not shards
    (someone else's), or shards unless `overwrite`."""
    others = [n for n in names if not SHARD_FILE.fullmatch(n)]
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise SupraUserError(f"out={out}: {split}/ holds files that are not shards ({shown}), which writing its "
                             "shards anew would delete: move them, or choose another folder")
    if names and not overwrite:
        raise SupraUserError(f"out={out} already holds shards: choose another folder or add overwrite=true")


def remove_shard_leftovers(out: Path) -> None:
    """The temp folders of an earlier run into `out` that was killed before it finished (atomic_dir's, up to
    a split's worth of shards each): removed while this run holds `out` alone (writing_alone)."""
    leftovers = [p for split in SPLITS for p in atomic_dir_leftovers(out / split)]
    if not leftovers:  # nothing to hold `out` for
        return
    with writing_alone(out, f"out={out}") as alone:
        remove_leftovers(leftovers, alone,
                         lambda names: f"out={out} holds temp folders of a write_shards run that did not finish, or "
                                       f"of one at work now (this file system cannot tell): {names}; remove them "
                                       "once no run writes there",
                         f"that an interrupted earlier run left in {out}")


def check_something_to_write(cfg: DictConfig, index: CaptionIndex, unreadable: dict[str, str]) -> None:
    """One line, rather than empty shards and a train command without any, when no split has an image."""
    if not any(k not in unreadable for keys in index.splits.values() for k in keys):
        raise SupraUserError(f"source={cfg.source} root={cfg.root}: no image to write (skipped: "
                             f"{skipped_reasons(index, unreadable)}): check root= and layout=")


def bare_options(text: str) -> str:
    """`text` of a caption source (an error, the summary line) with the options named as this command takes them
    (`id_column=`), not as training does (`data.id_column=`)."""
    return BARE_OPTION.sub(r"\1", text)


def shell_override(key: str, value: str) -> str:
    """key='value' as a shell passes it to Hydra whole: Hydra needs the quotes around a brace range, and a
    shell would strip bare ones."""
    quoted = value.replace("'", "\\'")  # a quote in the path is \' inside Hydra's quotes
    override = f"{key}='{quoted}'"
    return f'"{override}"' if not set(override) & set('"$`\\!') else shlex.quote(override)


def left_as_it_was(cfg: DictConfig) -> str:
    """What a write_shards run stopped by Ctrl-C leaves: its temp folders are removed on the way out, but an
    upload to an object store is undone by nothing."""
    if local_path_of(str(cfg.out)) is None:
        return (f"out={cfg.out} may hold some of this run's shards beside earlier ones, if the upload had begun: "
                "run it again with overwrite=true")
    return f"out={cfg.out} left as it was (a run's shards replace the earlier ones only once all are written)"


main = hydra_command("write_shards", run, interrupted=left_as_it_was)

if __name__ == "__main__":
    main()
