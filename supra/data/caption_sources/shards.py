"""WebDataset tar shards exactly as img2dataset writes them, read with the `webdataset` library (its brace
expansion, its `gopen` for local paths and `pipe:`, its Pipe running curl for http(s) with a timeout and a few
retries, its rule for grouping files by key; fsspec for any other URL scheme such as s3:// or gs://) and
libarchive (each tar's files: tar_reading.py). No tar parsing here.

A shard `00000.tar` holds per sample `{key}.jpg` (or .png / .webp), `{key}.txt` (the caption) and
`{key}.json` (url, caption, status, sizes, ...); beside it img2dataset writes `00000_stats.json` (with
`successes`, the samples in the tar) and `00000.parquet` (one row per URL tried, failures included).

Samples that cannot be used are counted by reason, never raised from inside a DataLoader worker: a
corrupt or missing image, a download that failed (`status` other than success), a missing or blank
caption, a truncated tar (the samples before the damage are kept, not the one it cut short). A caption
`.txt` is read as other sources read caption files: one not in UTF-8 as Windows-1252, said once.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supra.data.caption_sources.index import PLURALS
from supra.data.caption_sources.tar_reading import tar_samples
from supra.data.captions import clean_caption, decode_caption_bytes, training_captions
from supra.data.images import UNREADABLE, jpeg_draft_pixels, load_rgb, squashed
from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import local_path_of, parse_json
from supra.utils.numbers import counted, is_whole

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
SHARD_ERRORS = (OSError, ValueError, EOFError)  # what reading a damaged or unreachable shard raises
# a sample's files apart in the tar: webdataset's rule reads each part as a sample of its own, and a part
# without an image or a caption is unusable; counted under this reason (its earlier part, if unusable too,
# under "no image" or "no caption": it was read before the split showed)
APART = "part of a sample whose files are apart in the tar"
# The json of a sample `python -m supra.write_shards` wrote holds these keys and no others: its `id` is the
# image's id in its source. img2dataset's json always adds width, height and more, and holds an `id` only
# as a column of the user's parquet, which may repeat it (a row per caption): not an id of one image.
WRITTEN_JSON_KEYS = frozenset({"url", "caption", "captions", "key", "status", "error_message", "id"})


_repeats_said: set[str] = set()  # each spec's repeated shards said once, not at every expansion of it


def expand_shards(spec: str | list[str], option: str = "data shards") -> list[str]:
    """Shard URLs from a spec with brace expansion (`shards/{00000..00999}.tar`), `::`-joined lists, or a
    list; one line, naming the config key the spec was given as (`option`: data.train_shards, or
    data.sources.<name>.train_shards in the a2a mixture), when nothing is named or a brace is left open. A
    shard listed twice is kept once (webdataset's expansion keeps repeats, which would read its samples twice
    an epoch), said in a warning, as other sources keep an image listed twice once."""
    import webdataset as wds

    try:
        listed = [u for s in ([spec] if isinstance(spec, str) else spec) for u in wds.shardlists.expand_urls(s) if u.strip()]
    except ValueError as err:  # braceexpand's UnbalancedBracesError
        raise SupraUserError(f"{option}={spec!r}: {err}: close each brace, as in shards/{{00000..00009}}.tar") from None
    if not listed:
        raise SupraUserError(f"{option}={spec!r} names no shard: give e.g. shards/{{00000..00009}}.tar")
    urls, again, seen = [], [], set()
    for url in listed:
        path = local_shard_file(url)  # a local file is one shard however it is spelled (./a.tar, file:a.tar)
        shard = os.path.realpath(path) if path is not None else url
        (again if shard in seen else urls).append(url)
        seen.add(shard)
    if again and repr(spec) not in _repeats_said:
        _repeats_said.add(repr(spec))
        log.warning("%s=%r: %s listed again (e.g. %s): each shard is read once", option, spec,
                    counted(len(again), "shard"), again[0])
    return urls


def local_shard_file(url: str) -> str | None:
    """The file a local shard URL names (a path, file:///path or file:/path), None for a remote one or pipe:."""
    return None if url.startswith("pipe:") else local_path_of(url)


def check_local_shards(urls: list[str], key: str) -> None:
    """One line naming local shards that are not there (remote ones are counted when read, not checked)."""
    local = [path for u in urls if (path := local_shard_file(u)) is not None]
    missing = [u for u in local if not Path(u).is_file()]
    if missing:
        raise SupraUserError(f"{key}: {len(missing)} of {len(urls)} shards are not there (e.g. {', '.join(missing[:2])}): "
                             "check the path and the brace range")


def warn_scored_shards_trained_on(urls: dict[str, list[str]], options: str = "data") -> None:
    """A warning where the train shards share shards with the val or test ones: those scores are of images the
    fit trained on (no error: a quick look at a fit, or a copy too small to split, may want it so); and where
    the test shards share some with val, on which best.ckpt is chosen. `options`:
    how the shard options are named (data, or data.sources.<name> for a source of the a2a mixture)."""
    trained = {_shard_identity(url) for url in urls["train"]}
    for split in ("val", "test"):
        shared = [url for url in urls[split] if _shard_identity(url) in trained]
        if shared:
            log.warning("%s.%s_shards shares %d of its %s with %s.train_shards (e.g. %s): its scores are "
                        "of images the fit trains on; name shards the train list leaves out to score unseen images",
                        options, split, len(shared), counted(len(urls[split]), "shard"), options, shared[0])
    validated = {_shard_identity(url) for url in urls["val"]}
    shared = [url for url in urls["test"] if _shard_identity(url) in validated]
    if shared:  # the test score would not be independent of the checkpoint val chose
        log.warning("%s.test_shards shares %d of its %s with %s.val_shards (e.g. %s): its scores are of "
                    "images best.ckpt was chosen on; name shards the val list leaves out to test on unseen images",
                    options, len(shared), counted(len(urls["test"]), "shard"), options, shared[0])


def _shard_identity(url: str) -> str:
    """What names one shard however it is spelled: a local one's real path (`a.tar`, `./a.tar`, its absolute
    path, `file://` URL or a link to it are one file), a remote one's URL."""
    local = local_shard_file(url)
    return os.path.realpath(local) if local is not None else url


def _is_fsspec_url(url: str) -> bool:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return bool(scheme) and scheme not in ("file", "http", "https", "pipe")


def open_url(url: str) -> Any:
    """A binary stream of `url`: webdataset's gopen for local paths and pipe:, curl through webdataset's Pipe
    for http(s) (open_http), fsspec otherwise."""
    if _is_fsspec_url(url):
        import fsspec

        return fsspec.open(url, "rb").open()
    if url.startswith(("http://", "https://")):
        return open_http(url)
    import webdataset as wds

    return wds.gopen(local_shard_file(url) or url, "rb")


# http(s) is read by curl as webdataset's gopen reads it, but with bounded patience: gopen's command retries 30
# times 2 s apart, a host that cannot be resolved included, so each unreachable shard cost ~60 s before it was
# counted (hours for a long list). Transient failures (a timeout, an unresolved host, HTTP 408/429/5xx) are
# retried HTTP_RETRIES times HTTP_RETRY_DELAY_S apart, none begun after HTTP_RETRY_WINDOW_S.
HTTP_CONNECT_TIMEOUT_S = 10
HTTP_RETRIES = 2
HTTP_RETRY_DELAY_S = 1
HTTP_RETRY_WINDOW_S = 20
# curl's exit codes (man curl) in words, for the warning that counts the shard
CURL_FAILURES = {6: "could not resolve host {host}", 7: "could not connect to {host}", 22: "HTTP error{code} from {host}",
                 28: "timed out reaching {host} ({timeout} s to connect)", 35: "the TLS handshake with {host} failed",
                 56: "the connection to {host} broke", 60: "the certificate of {host} could not be verified"}


def open_http(url: str) -> Any:
    """A binary stream of an http(s) `url`, read by curl with a timeout and a few retries; its failure an
    OSError saying why in words ("could not resolve host example.com (curl exit 6)")."""
    import subprocess
    from urllib.parse import urlsplit

    from webdataset.gopen import Pipe

    class CurlPipe(Pipe):
        """webdataset's Pipe, failing with curl's reason rather than its argument list."""

        failure: str | None = None

        def wait_for_child(self) -> None:
            try:
                super().wait_for_child()
            except OSError:
                if self.failure is None:  # asked again by each later read or close: curl's stderr is read once
                    said = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                    line = said[-1].split(") ", 1)[-1] if said else ""  # "curl: (22) The requested URL ..."
                    code = line.rsplit(" ", 1)[-1] if self.status == 22 and line[-3:].isdigit() else ""
                    words = CURL_FAILURES[self.status].format(
                        host=urlsplit(url).netloc, code=f" {code}" if code else "", timeout=HTTP_CONNECT_TIMEOUT_S
                    ) if self.status in CURL_FAILURES else line or "curl failed"
                    self.failure = f"{words} (curl exit {self.status})"
                raise OSError(self.failure) from None

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.proc.stderr.close()

    command = ["curl", "--connect-timeout", str(HTTP_CONNECT_TIMEOUT_S), "--retry", str(HTTP_RETRIES),
               "--retry-delay", str(HTTP_RETRY_DELAY_S), "--retry-max-time", str(HTTP_RETRY_WINDOW_S),
               "-f", "-s", "-S", "-L", url]
    # status 141 (SIGPIPE) and 23 (write error): a stream closed before its end, as gopen ignores them
    return CurlPipe(command, mode="rb", bufsize=8192, ignore_status=[141, 23], stderr=subprocess.PIPE)


def stats_url(shard: str) -> str:
    """img2dataset's `00000_stats.json` beside `00000.tar`."""
    return shard[: -len(".tar")] + "_stats.json" if shard.endswith(".tar") else shard + "_stats.json"


class NoCount(ValueError):
    """A _stats.json whose `successes` is no count of samples (negative, fractional, not a number)."""


def _successes(shard: str) -> int:
    """The `successes` of the shard's _stats.json (NoCount where it is no count of samples)."""
    with open_url(stats_url(shard)) as stream:
        count = json.load(stream)["successes"]
    if not is_whole(count, 0):
        raise NoCount(f"{stats_url(shard)} holds successes={count!r}, not a count of samples")
    return count


def shard_sizes(shards: list[str]) -> list[int] | None:
    """Samples per shard from img2dataset's `_stats.json` files (`successes`), or None when any is missing
    or damaged; one whose count is no count of samples is taken as damaged, said in a warning."""
    sizes = []
    for shard in shards:
        if shard.startswith("pipe:"):
            return None
        try:
            sizes.append(_successes(shard))
        except NoCount as exn:  # an epoch cut to a wrong length, or a traceback where it is used, otherwise
            log.warning("%s: the shards' sizes are unknown, as without their _stats.json files; fix it", exn)
            return None
        except (*SHARD_ERRORS, KeyError, TypeError, ImportError):
            return None
    return sizes


def unknown_sizes_reason(shards: list[str]) -> str:
    """Why shard_sizes has no sizes for `shards`, and what to do, for a message that needs them ("DDP needs
    the shards' sample counts ..., but <this>"): a `pipe:` command's output has no _stats.json beside it to
    read, whether or not the files it reads have one; otherwise the first _stats.json that cannot be read."""
    piped = next((s for s in shards if s.startswith("pipe:")), None)
    if piped is not None:
        shown = piped if len(piped) <= 60 else piped[:57] + "..."
        return (f"the sizes of pipe: shards cannot be read (no _stats.json is opened beside a command's output: "
                f"{shown}): name the shards by their path or URL instead (s3://, gs://, https://), whose "
                "_stats.json is read")
    for shard in shards:
        try:
            _successes(shard)
        except NoCount as exn:
            return f"{exn}: fix it (img2dataset writes one beside each tar, with its successes)"
        except (*SHARD_ERRORS, KeyError, TypeError, ImportError):
            return f"{stats_url(shard)} cannot be read (img2dataset writes one beside each tar, with its successes)"
    return "their _stats.json files could not be read"  # read meanwhile: a store that failed once


def shard_names(urls: Sequence[str]) -> dict[str, str]:
    """Each shard's name in its samples' keys: its path below the folder all of `urls` share, so
    `00000.tar` for the shards of one folder, but `val/00000.tar` and `test/00000.tar` when both are read
    (img2dataset and write_shards number every folder's samples from the same key)."""
    shared = os.path.commonprefix(list(urls))
    cut = shared.rfind("/") + 1
    return {url: url[cut:] for url in urls}


@dataclass
class ShardSample:
    """One usable sample: its key (`<shard name>/<key>`, unique among the shards read together),
    captions and encoded image, and who the image is for predictions.json: `image_id`, the source's own id
    that write_shards kept in its json (COCO's integers), else the key; `file`, its json's `url`
    (the source's file, or the URL img2dataset downloaded). img2dataset's samples have one caption
    (`.txt`), trained on and scored as written; those of `python -m supra.write_shards` list all of an image's
    references, as the source publishes them, in the json's `captions`: `references`, scored against, and
    `captions` trained on as the source's are (training_captions)."""

    key: str
    captions: list[str]
    image: bytes
    image_id: int | str | None = None  # None: the key
    file: str | None = None
    references: list[str] = field(default_factory=list)  # empty: the captions

    def __post_init__(self) -> None:
        if self.image_id is None:
            self.image_id = self.key
        if not self.references:
            self.references = self.captions


# each reason a sample is unusable for, as said of more than one ("1 failed download", "2 failed downloads")
UNUSABLE_PLURALS = {
    **PLURALS,  # a caption source's words: "no caption", "blank caption", "unreadable image"
    "failed download": "failed downloads",
    "no image": "no images",
    "image named with several dots (a sample's key ends at the first dot)":
        "images named with several dots (a sample's key ends at the first dot)",
    "unreadable shard or damaged tar (read up to the damage)": "unreadable shards or damaged tars (read up to the damage)",
    APART: "parts of samples whose files are apart in the tar",
}


class Unusable(Counter):
    """Unusable samples by reason, for one summary line (per worker and epoch for the stream)."""

    def describe(self) -> str:
        return ", ".join(f"{n} {reason if n == 1 else UNUSABLE_PLURALS.get(reason, reason)}"
                         for reason, n in sorted(self.items())) or "nothing"


def raw_samples(shards: Iterable[str], tally: Unusable, reader: str = "auto") -> Iterator[dict[str, Any]]:
    """Each tar sample ({"__key__", "__url__", "jpg": bytes, "txt": bytes, ...}), shard after shard.
    `reader`: which tar reader (tar_reading.py; "auto" unless a test compares them).

    An unreachable shard, or the damaged end of a truncated one, is counted and passed over.
    """
    for url in shards:
        try:
            stream = open_url(url)
        except Exception as exn:  # whatever a store, a pipe or fsspec raises: counted, not raised in a worker
            _count_damaged(url, exn, tally)
            continue
        try:
            yield from tar_samples(url, stream, reader)
            stream.close()  # a `pipe:` command that failed may say so only here
        except Exception as exn:  # a damaged tar, as libarchive, tarfile or the stream reports it
            _count_damaged(url, exn, tally)
        finally:
            with contextlib.suppress(Exception):  # a stream left early (or already counted) closes quietly
                stream.close()


def _count_damaged(url: str, exn: Exception, tally: Unusable) -> None:
    tally["unreadable shard or damaged tar (read up to the damage)"] += 1
    log.warning("shard %s: %s", url, first_line(exn))


def usable(sample: dict[str, Any], tally: Unusable, names: Mapping[str, str] | None = None) -> ShardSample | None:
    """The sample's key, caption and image bytes, or None (counted) when it cannot be trained on.
    `names`: each shard's name in keys (shard_names of the shards read together; default its file name)."""
    meta: dict[str, Any] = {}
    if "json" in sample:
        try:
            meta = parse_json(sample["json"])
        except ValueError:
            meta = {}
        if not isinstance(meta, dict):  # a list, a string, a number: no metadata, as invalid JSON is none
            meta = {}
    if meta.get("status", "success") != "success":
        tally["failed download"] += 1
        return None
    image = next((sample[ext] for ext in IMAGE_EXTENSIONS if ext in sample), None)
    if not image:
        # a.b.jpg is key "a", extension "b.jpg" to webdataset: say so rather than "no image"
        dotted = any(name.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS for name in sample if "." in name)
        tally[_apart(sample) or ("image named with several dots (a sample's key ends at the first dot)"
                                 if dotted else "no image")] += 1
        return None
    text = _caption_text(sample)
    listed = meta.get("captions") if isinstance(meta.get("captions"), list) else []
    # img2dataset also keeps the caption in the json: read there when a tar lacks the .txt
    fallback = meta.get("caption") if "txt" not in sample and isinstance(meta.get("caption"), str) else text
    listed = [t for t in listed if isinstance(t, str)]
    references = [c for c in (clean_caption(t) for t in listed or [fallback]) if c]
    # write_shards's list is the source's references, trained on as the source's are; any other caption as written
    captions = training_captions(references) if listed and meta.keys() == WRITTEN_JSON_KEYS else references
    if not captions:
        # a caption given but blank is told apart from none at all, as the other sources count them
        given = "txt" in sample or any(isinstance(t, str) for t in listed) or isinstance(meta.get("caption"), str)
        tally[_apart(sample) or ("blank caption" if given else "no caption")] += 1
        return None
    url = str(sample.get("__url__", ""))
    key = f"{(names or {}).get(url) or url.rsplit('/', 1)[-1]}/{sample['__key__']}"
    file = meta.get("url") if isinstance(meta.get("url"), str) else None
    return ShardSample(key, captions, image, _own_id(meta), file, references)


def _own_id(meta: dict[str, Any]) -> int | str | None:
    """The image's id in its source, as write_shards keeps it in the json; None where there is none: a
    json other than write_shards' (WRITTEN_JSON_KEYS), img2dataset's `id` column included."""
    if meta.keys() != WRITTEN_JSON_KEYS:
        return None
    image_id = meta.get("id")
    return image_id if isinstance(image_id, str | int) and not isinstance(image_id, bool) and image_id != "" else None


_apart_said = False  # once per process: a stream reads every shard again each epoch, in each worker
_encoding_said = False


def _caption_text(sample: dict[str, Any]) -> str:
    """The sample's .txt as the caption files of other sources are read (decode_caption_bytes: UTF-8, or
    what a byte-order mark names, else Windows-1252), said once per process where its bytes were not all
    in that encoding. A mark left inside the text (files joined by cat) is dropped: it is no character of
    the caption, and would be one of its tokens."""
    global _encoding_said
    data = sample.get("txt", b"")
    if not isinstance(data, bytes):
        return ""
    text, marked, bad_byte = decode_caption_bytes(data)
    if bad_byte is not None and not _encoding_said:
        _encoding_said = True
        log.warning("shard %s: the caption of sample %r is %s (byte %d): read %s, as is any other like it, said "
                    "only this once: write captions as UTF-8", sample.get("__url__"), sample.get("__key__"),
                    f"not all {marked} as its byte-order mark says" if marked else "not UTF-8", bad_byte,
                    "with replacement characters" if marked else "as Windows-1252")
    return text.replace("\ufeff", "")


def _apart(sample: dict[str, Any]) -> str | None:
    """APART for an unusable part of a sample whose files are apart in the tar (said once, with the remedy)."""
    global _apart_said
    if not sample.get("__apart__"):
        return None
    if not _apart_said:
        _apart_said = True
        log.warning("shard %s: the files of sample %r are not next to each other in the tar (as `tar cf x.tar *.jpg "
                    "*.txt` leaves them): a sample is the run of adjacent files sharing a key, so its parts are read as "
                    "samples of their own, without an image or a caption; write each sample's files together: python -m "
                    "supra.write_shards source=folder root=DIR out=SHARDS does for a folder of photos and captions, each "
                    "line of a photo.txt a caption of its own (a tar of the folder, tar cf x.tar --sort=name -C DIR ., "
                    "keeps the files together but reads a photo.txt as one caption)",
                    sample.get("__url__"), sample["__key__"])
    return APART


def usable_samples(shards: Iterable[str], tally: Unusable, names: Mapping[str, str] | None = None,
                   read: Counter | None = None) -> Iterator[ShardSample]:
    """The samples of `shards` that can be trained on, in order; the others counted in `tally`. `names`:
    shard_names of every shard the keys must tell apart (default: of `shards`); `read`, if given, counts
    the samples yielded by shard URL."""
    if names is None:
        shards = list(shards)
        names = shard_names(shards)
    for raw in raw_samples(shards, tally):
        sample = usable(raw, tally, names)
        if sample is not None:
            if read is not None:
                read[raw["__url__"]] += 1
            yield sample


def decode_pixels(data: bytes, size: int, draft: bool = True) -> np.ndarray:
    """Encoded bytes -> uint8 RGB [H, W, 3], not yet resized. With `draft`, a JPEG is decoded at the
    smallest DCT scale (1/2, 1/4, 1/8) still at least `size` on each side: faster for photos larger than
    the model's input (benchmarks/shard_pipeline.py measures it and its difference from a full decode), by
    libjpeg-turbo directly where it can (jpeg_draft_pixels), else by PIL."""
    pixels = jpeg_draft_pixels(data, size) if draft else None
    if pixels is None:
        pixels = np.array(load_rgb(io.BytesIO(data), draft=size if draft else None), dtype=np.uint8)
    return pixels


def decode_image(data: bytes, size: int, draft: bool = True) -> torch.Tensor:
    """Encoded bytes -> uint8 [3, size, size], squashed like the release (decode_pixels, then the resize)."""
    return squashed(decode_pixels(data, size, draft), size)


# Samples go through each step a run at a time: read, then decoded, then resized. The JPEG decoder run back
# to back keeps its code and branch history warm in the CPU, which interleaving it with tar reading and
# torch's resize sample by sample does not: ~10% less time a streamed sample, in one process and through two
# DataLoader workers alike (benchmarks/shard_pipeline.py, Intel Xeon, 2 cores); runs of 64 did best of 8-256.
# Decoded pictures held at once are bounded too: large ones (a full decode, a big PNG) are resized early.
DECODE_RUN = 64
DECODED_BYTES = 32 << 20


def decoded_samples(samples: Iterable[ShardSample], size: int, tally: Unusable, draft: bool = True
                    ) -> Iterator[tuple[ShardSample, torch.Tensor]]:
    """Each sample with its decoded image, in order; a corrupt image is counted and passed over."""
    samples = iter(samples)
    while run := list(itertools.islice(samples, DECODE_RUN)):
        decoded, held = [], 0
        for sample in run:
            try:
                pixels = decode_pixels(sample.image, size, draft)
            except UNREADABLE:
                tally["unreadable image"] += 1
                continue
            decoded.append((sample, pixels))
            held += pixels.nbytes
            if held >= DECODED_BYTES:
                yield from ((s, squashed(p, size)) for s, p in decoded)
                decoded, held = [], 0
        yield from ((s, squashed(p, size)) for s, p in decoded)


@dataclass
class WholeShards:
    """Every usable sample of some shards, decoded: images uint8 [N, 3, S, S], captions, keys, and each
    image's own id, file and references (ShardSample's image_id, file and references)."""

    images: torch.Tensor
    captions: list[list[str]]
    keys: list[str]
    tally: Unusable
    ids: list[int | str]
    files: list[str | None]
    references: list[list[str]]


def read_whole(spec: str | list[str], size: int, draft: bool = True) -> WholeShards:
    """Read and decode every sample of the shards (val / test, or a corpus small enough to hold)."""
    tally = Unusable()
    pairs = list(decoded_samples(usable_samples(expand_shards(spec), tally), size, tally, draft))
    images = torch.stack([image for _, image in pairs]) if pairs else torch.zeros(0, 3, size, size, dtype=torch.uint8)
    samples = [s for s, _ in pairs]
    keys, ids = [s.key for s in samples], [s.image_id for s in samples]
    repeated = [image_id for image_id, n in Counter(ids).items() if n > 1]
    if repeated:  # write_shards runs read together (COCO 2014's and 2017's share ids): no image in another's place
        log.warning("shards %s: %s %s the id of several samples (e.g. %r): every sample is named by its "
                    "key (<shard>/<key>) instead, so each is scored as an image of its own", spec,
                    counted(len(repeated), "id"), "is" if len(repeated) == 1 else "are each", repeated[0])
        ids = list(keys)
    return WholeShards(images, [s.captions for s in samples], keys, tally, ids, [s.file for s in samples],
                       [s.references for s in samples])
