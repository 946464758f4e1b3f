"""Release folders on the Hugging Face Hub, both ways, through huggingface_hub.

- Reading: wherever Supra takes a checkpoint or a release folder, a Hub repo id works too
  (`org/name`, or `org/name@revision`). It is fetched into huggingface_hub's usual cache when online and
  read from that cache offline (HF_HUB_OFFLINE=1), when a proxy refuses, and when the Hub does not answer
  within HF_HUB_ETAG_TIMEOUT seconds (10 by default); nothing ever prompts or waits forever.
- Writing: `push_folder` uploads an exported release folder when the user is logged in
  (`huggingface-cli login`, or HF_TOKEN).
- The model card's front matter follows the Hub's conventions (huggingface_hub's ModelCardData), so the
  Hub shows its license, library, tags, datasets and test metrics.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

from supra.artifacts.kinds import release_kind
from supra.utils.errors import SupraUserError, first_line

# org/name with the Hub's characters, optionally @revision (a branch, tag or commit)
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
RELEASE_FILES = ("config.json", "model.safetensors", "vqvae.safetensors", "tokenizer.json", "model.pt",
                 "README.md", "samples.png", "scoring.json")
LOGIN_HINT = "log in with `huggingface-cli login` (`hf auth login` in newer releases) or set HF_TOKEN"


FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors", ".json")  # a missing file of these is no repo id


def is_repo_id(spec: str) -> bool:
    """org/name[@revision] that is not a local path (nor a missing checkpoint file's name)."""
    return bool(REPO_ID.match(spec)) and not Path(spec).exists() and not spec.lower().endswith(FILE_SUFFIXES)


def local_path(spec: str | Path, what: str = "ckpt", whole_repo: bool = False) -> Path:
    """`spec` as a local path: itself when it exists (or is no repo id), else the Hub release it names,
    downloaded or read from the cache (its release files; with `whole_repo` every file of the repo, as
    export copies it)."""
    if not isinstance(spec, str | Path):  # None from Python: is_repo_id's TypeError named neither
        raise SupraUserError(f"{what}={spec!r} is not a path: give a checkpoint file, a release folder or a Hub id "
                             "(org/name)")
    if isinstance(spec, Path) or not is_repo_id(spec):
        return Path(spec)
    return hub_release(spec, what, whole_repo)


def hub_cache() -> Path:
    """The folder huggingface_hub caches downloaded repos in (HF_HUB_CACHE, by default under HF_HOME)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def network_errors() -> tuple[type[Exception], ...]:
    """The transport errors (a proxy that refuses, a connection reset, a timeout) of the httpx that
    huggingface_hub sends with (httpx2 from 2.x, httpx in 1.x): no HfHubHTTPError, and no OSError either (under
    0.x's requests they are OSErrors)."""
    errors = []
    for name in ("httpx2", "httpx"):
        with suppress(ImportError, AttributeError):
            errors.append(importlib.import_module(name).TransportError)
    return tuple(errors)


@contextmanager
def bounded_hub_requests() -> Iterator[None]:
    """While inside, huggingface_hub's requests that it sends with no timeout at all (repo_info, the file list:
    a network or proxy that takes the connection and never answers would hang them forever) give up after
    HF_HUB_ETAG_TIMEOUT seconds, its timeout for metadata requests (10 by default); the timeouts it does set
    (file downloads: HF_HUB_DOWNLOAD_TIMEOUT) are kept. Through the event hooks of its shared client (public
    httpx API); a client without them (0.x's requests) is left as it is."""
    from huggingface_hub import constants, get_session

    session = get_session()
    hooks = getattr(session, "event_hooks", None)
    if not isinstance(hooks, dict):
        yield
        return

    def bound(request: Any) -> None:
        limits = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {kind: constants.HF_HUB_ETAG_TIMEOUT if seconds is None else seconds
                                         for kind, seconds in limits.items()}

    session.event_hooks = {**hooks, "request": [*hooks.get("request", []), bound]}
    try:
        yield
    finally:
        hooks = session.event_hooks
        session.event_hooks = {**hooks, "request": [hook for hook in hooks["request"] if hook is not bound]}


def snapshot(repo_id: str, revision: str, allow_patterns: list[str] | None) -> Path:
    """The snapshot folder of `repo_id` at `revision`, downloaded (bounded in time) or, when the network fails
    in a way huggingface_hub lets through (a proxy that refuses the connection), read from the cache; the
    network's error when the cache lacks it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    kwargs = {"revision": revision or None, "library_name": "supra", "allow_patterns": allow_patterns}
    try:
        with bounded_hub_requests():
            return Path(snapshot_download(repo_id, **kwargs))
    except network_errors() as err:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True, **kwargs))
        except LocalEntryNotFoundError:
            raise err from None


def cached_revisions(repo_id: str) -> list[str]:
    """The revisions of `repo_id` the Hugging Face cache holds: its refs (main, v1) and the commits of its
    snapshots that no ref names; none for a repo it lacks."""
    repo = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    refs = {path.relative_to(repo / "refs").as_posix(): path.read_text().strip()
            for path in sorted((repo / "refs").rglob("*")) if path.is_file()}
    commits = sorted(path.name for path in (repo / "snapshots").glob("*") if path.is_dir())
    return [*refs, *(commit for commit in commits if commit not in refs.values())]


@lru_cache(maxsize=16)
def hub_release(spec: str, what: str = "ckpt", whole_repo: bool = False) -> Path:
    """The snapshot folder of the release at Hub repo `spec` ("org/name[@revision]"); one-line errors for a
    repo that cannot be reached or is not a Supra release."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, _, revision = spec.partition("@")
    try:
        folder = snapshot(repo_id, revision, None if whole_repo else list(RELEASE_FILES))
    except RepositoryNotFoundError:
        raise SupraUserError(f"{what}={spec}: no such model repo on the Hugging Face Hub (or it is private: "
                             f"{LOGIN_HINT}), and no such local path") from None
    except RevisionNotFoundError:
        raise SupraUserError(f"{what}={spec}: the repo has no revision {revision!r}") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        # offline by choice (HF_HUB_OFFLINE=1), or online with no answer from the Hub (no network, or none
        # within HF_HUB_ETAG_TIMEOUT seconds)
        why = ("is not asked (offline mode: HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else
               "could not be reached")
        cached = cached_revisions(repo_id)
        if cached and (revision or "main") not in cached:  # the repo is there at others: say which
            raise SupraUserError(f"{what}={spec}: the Hugging Face cache holds {repo_id} at {', '.join(cached)} but not "
                                 f"at {revision or 'main'}, and the Hub {why}: give one of those (org/name@revision), "
                                 "or download it once online") from None
        raise SupraUserError(f"{what}={spec} is neither a local path nor in the Hugging Face cache, and the Hub "
                             f"{why}: download it once online, or give a local folder") from None
    except (HfHubHTTPError, OSError, *network_errors()) as err:
        # "403 Forbidden" says whose it is; a network library's error needs its type's name to say so
        reason = first_line(err, 160, with_type=not isinstance(err, (HfHubHTTPError, OSError)))
        raise SupraUserError(f"{what}={spec}: the Hugging Face Hub could not be read ({reason})") from None
    # a link whose blob is gone (a partly cleaned cache): the file is there by name, yet reads as missing
    broken = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink() and not p.exists())
    if broken:
        links = f"{broken[0]} links to a file" if len(broken) == 1 else f"{', '.join(broken)} link to files"
        raise SupraUserError(f"{what}={spec}: the Hugging Face cache's copy is damaged: {links} no longer there "
                             "(a partly cleaned cache): fetch the release again online (the missing files are downloaded "
                             f"again), or delete {folder} from the cache")
    if release_kind(folder) is None:
        present = sorted(p.name for p in folder.iterdir())
        missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
        raise SupraUserError(f"{what}={spec} is not a Supra or SupraVL release: it lacks {' and '.join(missing)} "
                             f"(it has {', '.join(present) or 'no release files'})")
    return folder


# -- writing ------------------------------------------------------------------------------------------


def card_front_matter(pipeline_tag: str, model_name: str, tags: list[str], datasets: list[str],
                      metrics: dict[str, Any] | None, license: str = "other") -> str:
    """The YAML front matter of a model card (between --- lines), as the Hub reads it: license, library,
    tags, datasets, and the test metrics of metrics.json as a model-index."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    if metrics:
        split = metrics.get("split", "test")
        # an a2a mixture's scores are over every source's test items (shapes and shapes_video, coco and shards):
        # named by all of them, not by the first alone
        scored = " + ".join(datasets) if datasets else "its data"
        results = [EvalResult(task_type=pipeline_tag, dataset_type=datasets[0] if len(datasets) == 1 else "custom",
                              dataset_name=f"{scored} ({split} split)",
                              dataset_split=split, metric_type=name.lower(), metric_name=name, metric_value=value)
                   for name, value in metrics.items() if isinstance(value, float)]
    data = ModelCardData(license=license, library_name="supra", pipeline_tag=pipeline_tag, tags=tags,
                         datasets=datasets or None, model_name=model_name, eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---\n"


def logged_in() -> bool:
    """Whether huggingface_hub has a token (HF_TOKEN, or a `huggingface-cli login`): never asks."""
    from huggingface_hub import get_token

    return get_token() is not None


def check_repo_id(repo_id: str) -> None:
    """`push_to` as org/name, checked before an export does its work."""
    if not REPO_ID.match(repo_id) or "@" in repo_id:
        raise SupraUserError(f"push_to={repo_id!r} is not a Hub repo id: give org/name")


def check_push_to(repo_id: str) -> None:
    """`push_to` checked before an export does its work: a Hub repo id (check_repo_id), and a Hub that offline
    mode (HF_HUB_OFFLINE=1) does not shut off: a choice known at once, where the upload could only fail after the
    work. A missing login is told after it (the folder is worth writing, and logging in then pushes it)."""
    from huggingface_hub import constants

    check_repo_id(repo_id)
    if constants.HF_HUB_OFFLINE:
        # huggingface_hub reads TRANSFORMERS_OFFLINE too: the line names the variable that is set
        switch = next((name for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(name)),
                      "HF_HUB_OFFLINE")
        raise SupraUserError(f"push_to={repo_id}: {switch} is set, which keeps huggingface_hub off the Hub: "
                             f"unset {switch} to push, or leave push_to out to write the release folder alone")


def push_folder(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload a release folder to Hub repo `repo_id` (created if needed); returns its URL. Under offline mode
    (check_push_to), without a login, or when the upload fails (no network, refused), a one-line
    SupraUserError saying what to do (the folder is left as it is)."""
    check_push_to(repo_id)
    if not logged_in():
        raise SupraUserError(f"push_to={repo_id}: not logged in to the Hugging Face Hub: {LOGIN_HINT}, then run "
                             f"the export again; the release folder is written at {folder}")
    from huggingface_hub import HfApi

    api = HfApi(library_name="supra")
    # a release's files that this folder lacks are deleted from the repo by the same commit: left from an
    # earlier push (another kind's vqvae.safetensors, an old samples.png) they would make it another release
    stale = [name for name in RELEASE_FILES if not (folder / name).exists()]
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if private and not api.repo_info(repo_id).private:  # create_repo leaves an existing repo's visibility
            raise SupraUserError(f"push_to={repo_id} exists and is public, and private=true does not change that: "
                                 "make it private in its settings on the Hub, or leave private out; nothing was "
                                 f"uploaded, the release folder is written at {folder}")
        api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Upload a Supra release",
                          delete_patterns=stale or None)
    except SupraUserError:
        raise
    except Exception as err:  # whatever the network, the offline mode or the Hub answers: the folder is safe
        raise SupraUserError(f"push_to={repo_id}: the upload failed ({first_line(err, with_type=True)}); the release "
                             f"folder is written at {folder}: run the export again once the Hub can be reached") from None
    return str(url)
