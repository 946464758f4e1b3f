"""`python -m supra.export ckpt=CKPT out=DIR [push_to=org/name]`: a checkpoint as a release folder
(conf/export.yaml): a captioner's as SupraVL-Nano-900k, an a2a_nano's as the Supra-A2A-Nano pair (GPT +
VQ-VAE + tokenizer); with push_to, uploaded to the Hugging Face Hub too (the folder is written first)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig

from supra.artifacts.a2a_release import export_a2a_release, load_a2a_release
from supra.artifacts.captioner_release import RELEASE_KEYS, export_release, load_release
from supra.artifacts.checkpoints import artifact_kind, load_supra_checkpoint, objects_refusal
from supra.artifacts.hub import RELEASE_FILES, check_push_to, hub_cache, is_repo_id, local_path, push_folder
from supra.artifacts.kinds import (
    A2A_CHECKPOINT,
    A2A_MODEL_TYPE,
    A2A_RELEASE,
    CAPTIONER_CHECKPOINT,
    CAPTIONER_RELEASE,
    KIND_NAMES,
    release_kind,
)
from supra.artifacts.release_files import load_weights, read_picture, read_scoring
from supra.utils.cli import changed_options, hydra_command
from supra.utils.disk_room import room_to_write
from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import (
    atomic_dir,
    atomic_dir_leftovers,
    check_replaceable_dir,
    flock_had,
    is_mount_point,
    remove_leftovers,
    require_writable_dir,
    some_names,
)
from supra.utils.state_dicts import non_finite_tensors

log = logging.getLogger(__name__)


def release_contents(folder: str | Path, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """(the files a release copy carries, as paths within `folder`; what it leaves out, folders ending in `/`):
    every file, in subfolders too (onnx/model.onnx), but those in hidden folders (version control's and
    caches' own: a clone's .git, huggingface_hub's .cache; no part of the model) or linked ones, links to files
    outside the folder (a downloaded release's README.md -> ~/.aws/credentials would be copied and pushed), and
    the `out_dir` being written."""
    folder, out = Path(folder), Path(out_dir).resolve()
    inside = (folder.resolve(), *own_hub_blobs(folder))
    files, left_out = [], []
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        for name in list(dirs):
            if (here / name).resolve() == out:  # out inside the release folder: not copied into itself
                dirs.remove(name)
            elif name.startswith(".") or (here / name).is_symlink():
                dirs.remove(name)
                left_out.append((here / name).relative_to(folder).as_posix() + "/")
        for name in names:
            path = here / name
            if not path.is_file():
                continue
            if path.is_symlink() and not any(path.resolve().is_relative_to(place) for place in inside):
                left_out.append(path.relative_to(folder).as_posix())
            else:
                files.append(path.relative_to(folder))
    return sorted(files), sorted(left_out)


def own_hub_blobs(folder: Path) -> tuple[Path, ...]:
    """The blobs folder of the Hub repo whose snapshot `folder` is, in huggingface_hub's cache (a snapshot's
    files are links to it); none for a folder elsewhere."""
    snapshot, cache = folder.resolve(), hub_cache().resolve()
    if snapshot.parent.name != "snapshots" or snapshot.parents[2] != cache:
        return ()
    return (snapshot.parents[1] / "blobs",)


def copy_release(folder: str, out_dir: str, license: str = "other") -> Path:
    """A release folder (a local one, or one fetched from the Hub) is already in the release format: its
    files are copied as they are (its card keeps its license), e.g. to push it to another repo: the release's
    own and any others it holds (a LICENSE, onnx/model.onnx), but hidden folders (release_contents)."""
    files, _ = release_contents(folder, out_dir)
    with atomic_dir(out_dir) as tmp:
        for name in files:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder) / name, tmp / name)
    return Path(out_dir)


EXPORTERS = {CAPTIONER_CHECKPOINT: export_release, A2A_CHECKPOINT: export_a2a_release,
             CAPTIONER_RELEASE: copy_release, A2A_RELEASE: copy_release}
# a release folder is read whole before it is copied: one that cannot be read (a file missing or cut
# short) is refused in one line, not exported and pushed as it is
RELEASE_READERS = {CAPTIONER_RELEASE: load_release, A2A_RELEASE: load_a2a_release}


# Besides the release's own files, what a Hub download or upload leaves in a release folder.
REPLACEABLE = (*RELEASE_FILES, ".gitattributes", ".cache", ".huggingface")


def is_earlier_release(folder: Path) -> bool:
    """Whether `folder` holds a release export writes: config.json + model.safetensors, config.json a
    captioner's (the release's keys) or an a2a_nano's (its model_type). Only such a folder is replaced without
    overwrite=true: files that merely bear a release's names (notes in a README.md, another library's
    config.json) are someone's own."""
    if release_kind(folder) is None:
        return False
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a config.json cut short: no telling what the folder was
        return False
    return isinstance(config, dict) and (config.get("model_type") == A2A_MODEL_TYPE
                                         or all(key in config for key in RELEASE_KEYS))


def refuse_replacing_no_release(out: str, overwrite: bool) -> None:
    """An out folder that holds files but no earlier release (is_earlier_release): refused unless overwrite,
    naming its files, since replacing it would delete them, whatever their names."""
    folder = Path(out)
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if held and not overwrite and not is_earlier_release(folder):
        raise SupraUserError(f"out={out} holds {some_names(held)} but no earlier release (a captioner's or an "
                             "a2a_nano's config.json + model.safetensors), which replacing the folder would delete: "
                             "choose a new folder, or add overwrite=true")


def read_release_whole(folder: Path, kind: str) -> None:
    """Every release file a copy carries, read: the model's with its reader (config, weights, tokenizer),
    and the rest each as what it is (model.pt a PyTorch file, samples.png a picture, scoring.json its
    settings, README.md text); one line naming the first that cannot be read."""
    RELEASE_READERS[kind](folder)
    read_scoring(folder)
    for name, read in (("model.pt", _read_torch), ("samples.png", read_picture), ("README.md", _read_text)):
        path = folder / name
        if path.is_file():
            try:
                read(path)
            except Exception as err:  # whatever torch, PIL or the codec raise for a damaged file
                if (refusal := objects_refusal(str(path), err, "releases")) is not None:
                    raise SupraUserError(refusal) from None
                raise SupraUserError(f"{path} cannot be read ({first_line(err, 120, sentence=True)}): it is damaged or cut short; copy "
                                     "the release again (or export it again from its checkpoint)") from None


def _read_torch(path: Path) -> None:
    torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # no code runs; its tensors mapped, not read


def _read_text(path: Path) -> None:
    path.read_text(encoding="utf-8")


def model_tensors(path: Path, kind: str) -> dict[str, torch.Tensor]:
    """Every tensor of the model(s) export would release from `path`: a checkpoint's state dict (an a2a_nano's
    GPT and VQ-VAE both), or each weights file of a release folder."""
    if kind in RELEASE_READERS:
        return {f"{file.name}:{name}": tensor for file in sorted(path.glob("*.safetensors"))
                for name, tensor in load_weights(file).items()}
    return load_supra_checkpoint(path, kind=kind)["state_dict"]


def refuse_diverged(spec: str, path: Path, kind: str) -> None:
    """A model whose weights hold NaN or inf (its run diverged) cannot caption or generate: refused in one
    line before anything is written or pushed, not released as if it could."""
    state = model_tensors(path, kind)
    not_finite = non_finite_tensors(state)
    if not_finite:
        raise SupraUserError(f"ckpt={spec} holds weights that are not finite (NaN or inf) in {len(not_finite)} of its "
                             f"{len(state)} tensors: its run diverged; export an earlier checkpoint of that run, or "
                             "train again with a lower model.optimizer.lr")


def export_inputs(spec: str, folder: Path) -> list[Path]:
    """What replacing `out` must not delete: the input as given and as found (a Hub id's snapshot folder),
    and, for a folder, the files its links point to (a Hub snapshot's blobs in the cache)."""
    found = [Path(spec), folder]
    if folder.is_dir():
        found += [Path(os.path.realpath(path)) for path in folder.rglob("*") if path.is_symlink()]
    return found


def refuse_out_in_hub_cache(out: str, spec: str) -> None:
    """For a Hub id `spec`: an out folder that holds, or lies in, the Hugging Face cache the release is read
    from (HF_HUB_CACHE): replacing it would delete the cache (the input with it), overwrite=true or not."""
    cache, folder = hub_cache().resolve(), Path(out).resolve()
    if folder == cache or folder in cache.parents:
        raise SupraUserError(f"out={out} holds the Hugging Face cache {cache} that ckpt={spec} is read from: replacing "
                             "out would delete it, overwrite=true or not; choose a folder outside the cache")
    if cache in folder.parents:
        raise SupraUserError(f"out={out} is inside the Hugging Face cache {cache} that ckpt={spec} is read from: "
                             "replacing it there could delete the cached release, overwrite=true or not; choose a "
                             "folder outside the cache")


@contextmanager
def writing_beside(out: Path, what: str) -> Iterator[None]:
    """While an export writes `out` (atomic_dir: a temp folder beside it, `.{name}.XXXXXXXX`): a shared lock
    (flock on the folder it lies in, no lock file left) that every export writing there holds, so that none
    takes another's temp folder at work for a leftover. Once `out` is written, the temp folders of an earlier
    export to it that was killed before it finished are removed, and said, when no export holds the folder
    now (an exclusive lock is had); else only named, as they may be one's at work. `what` names `out` in
    what is said (e.g. "out=DIR")."""
    try:
        import fcntl
    except ImportError:  # off POSIX: no lock to tell a leftover from a temp folder at work
        yield
        remove_export_leftovers(out, what, alone=False)
        return
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # another export removing its leftovers (a moment), or a run holding it whole
            print(f"waiting for another run that holds {out.parent} to finish ...", flush=True)
            flock_had(fd, fcntl.LOCK_SH)
        except OSError:  # a file system without locks: the leftovers are only named below
            pass
        yield
        remove_export_leftovers(out, what, alone=flock_had(fd, fcntl.LOCK_EX | fcntl.LOCK_NB))
    finally:
        os.close(fd)  # the lock goes with it


def remove_export_leftovers(out: Path, what: str, alone: bool) -> None:
    """The temp folders atomic_dir left beside `out` for an export killed before it finished (up to a release
    in size each): removed where `alone`, else named in a warning."""
    remove_leftovers(atomic_dir_leftovers(out), alone,
                     lambda names: f"{out.parent} holds temp folders of an export to {what} that did not finish, or "
                                   "of one at work now (another export writes there, or this file system has no locks "
                                   f"to tell): {names}; remove them once no export writes there",
                     f"that an interrupted earlier export left beside {what}")


def run(cfg: DictConfig) -> Path:
    if not str(cfg.license).strip():  # the card would declare `license: ''` to the Hub
        raise SupraUserError("license= is empty: give the license the model card declares (an id such as apache-2.0, "
                             "mit, cc-by-4.0), or leave it out (other)")
    # The folder is replaced whole: refuse before any work where that would delete the input, the working
    # directory or the Hugging Face cache (overwrite=true or not); the rest once the input is found.
    hub_id = is_repo_id(str(cfg.ckpt))
    if hub_id:
        refuse_out_in_hub_cache(str(cfg.out), str(cfg.ckpt))
    check_replaceable_dir(cfg.out, f"out={cfg.out}", REPLACEABLE, inputs=[cfg.ckpt], overwrite=True)
    if is_mount_point(cfg.out):  # out is replaced by a rename, which a mount point refuses (EBUSY) at the very end
        raise SupraUserError(f"out={cfg.out} is a mount point, which export cannot replace (it writes the release "
                             f"beside out, then renames it into place): give a folder inside it, e.g. "
                             f"out={Path(cfg.out) / 'release'}")
    # out's missing parents are made only once there is a release to write: a refused export leaves none behind
    parent = Path(cfg.out).resolve().parent
    require_writable_dir(next(p for p in (parent, *parent.parents) if p.exists()), f"out={cfg.out}", create=False)
    if cfg.push_to:
        check_push_to(cfg.push_to)  # before the work, not after it
    elif cfg.private is not False:  # the Hub repo's visibility: without push_to there is none to set
        raise SupraUserError(f"private={json.dumps(cfg.private)}: export without push_to=org/name does not read it; "
                             "leave it out")
    kind = artifact_kind(cfg.ckpt, accepts=EXPORTERS)
    if kind not in EXPORTERS:
        raise SupraUserError(f"ckpt={cfg.ckpt} is {KIND_NAMES[kind]}, which has no release format: give a captioner or "
                             "an a2a_nano checkpoint written by train.py")
    release = kind in (CAPTIONER_RELEASE, A2A_RELEASE)
    if release and changed_options(cfg, "export", ["license"]):
        raise SupraUserError(f"license={cfg.license}: ckpt={cfg.ckpt} is a release folder, copied as it is (its card "
                             "keeps its own license); license= is for exporting a checkpoint")
    # a Hub id -> its folder in the local cache; a release copied from the Hub is copied whole (its LICENSE ...)
    ckpt = local_path(cfg.ckpt, "ckpt", whole_repo=release)
    copied, left_out = release_contents(ckpt, cfg.out) if release else ([], [])
    # an earlier copy of this release (its LICENSE, onnx/ ...) in out is replaced as an old release is
    check_replaceable_dir(cfg.out, f"out={cfg.out}", (*REPLACEABLE, *(p.parts[0] for p in copied)),
                          inputs=export_inputs(str(cfg.ckpt), ckpt), overwrite=bool(cfg.overwrite))
    refuse_replacing_no_release(str(cfg.out), bool(cfg.overwrite))
    if release:
        read_release_whole(ckpt, kind)
    refuse_diverged(str(cfg.ckpt), Path(ckpt), kind)
    parent.mkdir(parents=True, exist_ok=True)
    with writing_beside(Path(cfg.out).resolve(), f"out={cfg.out}"), \
            room_to_write(f"out={cfg.out}", "free space there, or give another out= folder"):  # a full disk: one line
        out = EXPORTERS[kind](str(ckpt), str(cfg.out), license=cfg.license)
    print(f"wrote {out}: " + ", ".join(sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())))
    if folders := [name for name in left_out if name.endswith("/")]:
        print(f"not copied: {', '.join(folders)} (hidden or linked folders: version control's or a cache's, "
              "no part of the release)")
    if links := [name for name in left_out if not name.endswith("/")]:
        print(f"not copied: {', '.join(links)} (links to files outside {ckpt}: copy the files in if they belong to "
              "the release)")
    if cfg.push_to:
        url = push_folder(out, cfg.push_to, private=bool(cfg.private))
        print(f"pushed {out} to {url}")
    return out


main = hydra_command("export", run)

if __name__ == "__main__":
    main()
