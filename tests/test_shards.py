"""WebDataset shards as img2dataset writes them: reading with every trap, streaming every sample exactly
once per epoch across workers and DDP ranks, equal batches on every rank, resuming mid-epoch on the same
batches, and training through train.py."""

from __future__ import annotations

import itertools
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from supra.data.caption_sources.shards import (
    APART,
    WRITTEN_JSON_KEYS,
    Unusable,
    decoded_samples,
    expand_shards,
    raw_samples,
    read_whole,
    shard_sizes,
    unknown_sizes_reason,
    usable,
    usable_samples,
)
from supra.data.captioning.shard_stream import ShardLoader, ShardStream, batches_per_worker, worker_quotas
from supra.tokens.caption_bpe import CaptionTokenizer
from supra.utils.errors import SupraUserError
from tests.caption_source_fixtures import write_img2dataset_shards
from tests.conftest import compose_config, first_train_batches
from tests.shard_probe import read_keys


def read_all(spec: str | list[str], reader: str = "auto") -> tuple[list[str], Unusable]:
    tally = Unusable()
    samples = (s for raw in raw_samples(expand_shards(spec), tally, reader) if (s := usable(raw, tally)))
    return [s.key for s, _ in decoded_samples(samples, 32, tally)], tally


def test_every_trap_is_counted_and_a_truncated_tar_keeps_what_precedes_the_damage(tmp_path):
    shards = write_img2dataset_shards(tmp_path / "s", traps=True, truncate_last=True)
    keys, tally = read_all(shards["spec"], "libarchive")
    assert read_all(shards["spec"], "tarfile") == (keys, tally)  # the fallback reader reads alike
    assert set(shards["usable"]) <= set(keys) and len(keys) == len(set(keys))
    from_truncated = [k for k in keys if k.startswith("00003.tar/")]
    assert 0 < len(from_truncated) < 8
    assert dict(tally) == {"failed download": 1, "no caption": 1, "blank caption": 1, "unreadable image": 1,
                           "unreadable shard or damaged tar (read up to the damage)": 1}
    assert tally.describe() == ("1 blank caption, 1 failed download, 1 no caption, 1 unreadable image, "
                                "1 unreadable shard or damaged tar (read up to the damage)")  # one as one


@pytest.mark.parametrize(("reason", "two"), [
    ("blank caption", "2 blank captions"),
    ("failed download", "2 failed downloads"),
    ("no caption", "2 no captions"),
    ("no image", "2 no images"),
    ("unreadable image", "2 unreadable images"),
    ("unreadable shard or damaged tar (read up to the damage)",
     "2 unreadable shards or damaged tars (read up to the damage)"),
    ("image named with several dots (a sample's key ends at the first dot)",
     "2 images named with several dots (a sample's key ends at the first dot)"),
    ("part of a sample whose files are apart in the tar", "2 parts of samples whose files are apart in the tar"),
])
def test_the_unusable_samples_line_counts_two_of_a_reason_in_the_plural_and_one_in_the_singular(reason, two):
    assert Unusable({reason: 2}).describe() == two
    assert Unusable({reason: 1}).describe() == f"1 {reason}"


def test_a_samples_json_that_is_no_object_is_read_as_no_metadata_not_a_traceback_in_a_worker():
    from tests.caption_source_fixtures import jpeg_bytes

    for odd in (b"[1, 2]", b'"a string"', b"7", b"null"):
        tally = Unusable()
        sample = {"__key__": "k0", "__url__": "s/00000.tar", "jpg": jpeg_bytes(0), "txt": b"a red bus", "json": odd}
        kept = usable(sample, tally)
        assert kept is not None and kept.captions == ["a red bus"] and not tally, odd


def test_a_samples_json_nested_too_deeply_to_parse_is_invalid_metadata_as_other_invalid_json_is():
    from tests.caption_source_fixtures import jpeg_bytes

    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    tally = Unusable()
    sample = {"__key__": "k0", "__url__": "s/00000.tar", "jpg": jpeg_bytes(0), "txt": b"a red bus", "json": deep}
    kept = usable(sample, tally)
    assert kept is not None and kept.captions == ["a red bus"] and not tally


def test_a_tar_without_txt_files_takes_the_caption_img2dataset_keeps_in_the_json(tmp_path):
    import json

    import webdataset as wds

    from tests.caption_source_fixtures import jpeg_bytes

    with wds.TarWriter(str(tmp_path / "00000.tar")) as tar:
        for i in range(3):
            tar.write({"__key__": f"00000000{i}", "jpg": jpeg_bytes(i),
                       "json": json.dumps({"key": f"00000000{i}", "caption": f"a photo {i}", "status": "success"})})
    tally = Unusable()
    assert [s.captions for s in usable_samples([str(tmp_path / "00000.tar")], tally)] == [[f"a photo {i}"] for i in range(3)]
    assert not tally


def test_a_txt_caption_is_decoded_as_caption_files_are_and_one_not_in_utf8_is_said_once(tmp_path, caplog,
                                                                                          monkeypatch):
    import webdataset as wds

    import supra.data.caption_sources.shards as shards_module
    from tests.caption_source_fixtures import jpeg_bytes

    monkeypatch.setattr(shards_module, "_encoding_said", False)
    texts = ["a café by the sea".encode("cp1252"), "\ufeffa dog\ufeff runs".encode(),  # a mark inside: files joined
             "\ufeffa bird".encode("utf-16-le").join([b"\xff\xfe", b""]), "crème brûlée".encode("cp1252")]
    with wds.TarWriter(str(tmp_path / "00000.tar")) as tar:
        for i, text in enumerate(texts):
            tar.write({"__key__": f"00000000{i}", "jpg": jpeg_bytes(i), "txt": text})
    with caplog.at_level("WARNING"):
        samples = list(usable_samples([str(tmp_path / "00000.tar")], Unusable()))
    assert [s.captions for s in samples] == [["a café by the sea"], ["a dog runs"], ["a bird"], ["crème brûlée"]]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "00000.tar: the caption of sample '000000000' is not UTF-8 (byte 5): read as Windows-1252" \
        in said[0]


def test_a_tar_of_names_with_several_dots_is_counted_for_what_it_is(tmp_path):
    import webdataset as wds

    from tests.caption_source_fixtures import jpeg_bytes

    with wds.TarWriter(str(tmp_path / "dotted.tar")) as tar:  # photo.v0.jpg: key "photo", extension "v0.jpg"
        for i in range(2):
            tar.write({"__key__": f"photo.v{i}", "jpg": jpeg_bytes(i), "txt": f"a photo {i}"})
    tally = Unusable()
    assert not list(usable_samples([str(tmp_path / "dotted.tar")], tally))
    assert dict(tally) == {"image named with several dots (a sample's key ends at the first dot)": 1}


@pytest.mark.parametrize("reader", ["libarchive", "tarfile"])
def test_a_tar_whose_sample_files_are_apart_reads_each_part_by_itself_and_says_why_once(tmp_path, reader, caplog,
                                                                                        monkeypatch):
    import io
    import json
    import tarfile

    import supra.data.caption_sources.shards as shards_module
    from tests.caption_source_fixtures import jpeg_bytes

    def write_tar(name: str, files: list[tuple[str, bytes]]) -> str:
        with tarfile.open(tmp_path / name, "w") as tar:
            for member, data in files:
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return str(tmp_path / name)

    def read(url: str) -> tuple[list[str], Unusable]:
        tally = Unusable()
        return [s.key for raw in raw_samples([url], tally, reader) if (s := usable(raw, tally))], tally

    monkeypatch.setattr(shards_module, "_apart_said", False)
    jpgs = [(f"{i}.jpg", jpeg_bytes(i)) for i in range(2)]
    txts = [(f"{i}.txt", f"a photo {i}".encode()) for i in range(2)]
    with caplog.at_level("WARNING"):
        # as `tar cf apart.tar *.jpg *.txt` orders them: images without captions, then captions without images
        assert read(write_tar("apart.tar", jpgs + txts)) == ([], {"no caption": 2, APART: 2})
        read(write_tar("again.tar", jpgs + txts))
    said = [r.getMessage() for r in caplog.records if "not next to each other" in r.getMessage()]
    assert len(said) == 1 and "apart.tar" in said[0] and "'0'" in said[0]  # once, naming the first shard and key
    # the remedy keeps every caption of a photo.txt (a tar of the folder would read its lines as one caption)
    assert "python -m supra.write_shards source=folder root=DIR out=SHARDS" in said[0]
    # the json files added later (`tar rf`): the image-and-caption parts are whole samples and train
    jsons = [(f"{i}.json", json.dumps({"status": "success"}).encode()) for i in range(2)]
    interleaved = [f for pair in zip(jpgs, txts, strict=True) for f in pair]
    keys, tally = read(write_tar("json_first.tar", jsons + interleaved))
    assert keys == ["json_first.tar/0", "json_first.tar/1"] and tally == {"no image": 2}


def test_sixteen_bit_grey_is_scaled_and_a_bomb_is_refused_naming_the_limit_given(tmp_path):
    from PIL import Image

    from supra.data.images import UNREADABLE, load_rgb

    Image.fromarray(np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)).save(tmp_path / "grey16.png")
    pixels = np.asarray(load_rgb(tmp_path / "grey16.png"))
    assert pixels.shape == (64, 64, 3) and (pixels.min(), pixels.max()) == (0, 255) and 120 < pixels.mean() < 135
    Image.new("1", (1100, 1000)).save(tmp_path / "bomb.png")  # 1.1x a limit of 1M pixels: Pillow only warns
    with pytest.raises(UNREADABLE, match=r"1100x1000 = 1,100,000 pixels, over max_pixels=1000000"):
        load_rgb(tmp_path / "bomb.png", max_pixels=1_000_000)
    # over twice the limit Pillow refuses by itself, naming twice the limit: the same words as under it
    with pytest.raises(UNREADABLE, match=r"^1,100,000 pixels, over max_pixels=500000$"):
        load_rgb(tmp_path / "bomb.png", max_pixels=500_000)


def test_a_picture_too_large_says_to_resize_it_where_the_caller_gave_no_max_pixels(tmp_path):
    """caption, write_shards and the caches read up to 100M pixels with no max_pixels= option to raise: their
    refusal says what to do instead of naming one (generate's and a media folder's name theirs, above)."""
    from supra.data.images import UNREADABLE, load_rgb
    from tests.media_fixtures import Frame, gif_bytes, png_claiming, solid

    (tmp_path / "big.png").write_bytes(png_claiming(12_000, 10_000))  # Pillow's own refusal is over twice it
    (tmp_path / "huge.png").write_bytes(png_claiming(20_000, 20_000))
    # a GIF whose first frame, placed far off, grows its screen
    (tmp_path / "grown.gif").write_bytes(gif_bytes(8, 8, [Frame(solid(2, 2, 1), left=15_000, top=10_000)]))
    said = r"over the 100,000,000 pixels read: resize the picture$"
    for name, size in [("big.png", "12000x10000 = 120,000,000 pixels"), ("huge.png", "400,000,000 pixels"),
                       ("grown.gif", "15002x10002 = 150,050,004 pixels")]:
        with pytest.raises(UNREADABLE, match=f"^{size}, {said}"):
            load_rgb(tmp_path / name)


def test_float_pictures_and_32_bit_ones_beyond_16_bits_are_refused_not_clipped(tmp_path):
    """Their range is not known (0-1, 0-255, HDR): converted to RGB they were black or white without a word.
    Refused as unreadable, they are skipped and counted by the sources, or named in one line by a command."""
    from PIL import Image

    from supra.data.gif_frames import UNREADABLE as KIND_UNREADABLE
    from supra.data.gif_frames import MediaDecodeError
    from supra.data.images import load_rgb, load_still

    Image.fromarray(np.linspace(0, 1, 1600, dtype=np.float32).reshape(40, 40), "F").save(tmp_path / "float.tif")
    with pytest.raises(ValueError, match=r"^float pixels \(mode F\), of no known range: convert the picture to 8 or 16-bit$"):
        load_rgb(tmp_path / "float.tif")
    with pytest.raises(MediaDecodeError, match="^PixelRangeError: float pixels .* convert the picture to 8 or 16-bit$") as err:
        load_still(tmp_path / "float.tif", 10_000)
    assert err.value.kind == KIND_UNREADABLE
    wide = np.linspace(0, 1_000_000, 64 * 64).astype(np.int32).reshape(64, 64)
    Image.fromarray(wide, "I").save(tmp_path / "wide.tif")
    with pytest.raises(ValueError, match="32-bit pixels from 0 to 1000000, of no known range: convert"):
        load_rgb(tmp_path / "wide.tif")
    # 32-bit values within 16 bits are read as 16-bit grey is, to the same pixels
    sixteen = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(sixteen.astype(np.int32), "I").save(tmp_path / "fits.tif")
    Image.fromarray(sixteen).save(tmp_path / "grey16.tif")
    assert Image.open(tmp_path / "fits.tif").mode == "I" and Image.open(tmp_path / "grey16.tif").mode == "I;16"
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / "fits.tif")), np.asarray(load_rgb(tmp_path / "grey16.tif")))


@pytest.mark.parametrize("reader", ["libarchive", "tarfile"])
def test_shards_read_alike_from_a_path_a_pipe_and_an_fsspec_url(tmp_path, reader):
    import fsspec

    shards = write_img2dataset_shards(tmp_path / "s", shards=2, per_shard=4)
    paths = [str(tmp_path / "s" / f"0000{i}.tar") for i in range(2)]
    for path in paths:
        with fsspec.open(f"memory://shards/{Path(path).name}", "wb") as f:
            f.write(Path(path).read_bytes())
    from_paths = read_all(paths, reader)
    assert from_paths[0] == shards["usable"] and not from_paths[1]
    assert read_all([f"pipe:cat {p}" for p in paths], reader) == from_paths
    assert read_all([f"memory://shards/0000{i}.tar" for i in range(2)], reader) == from_paths
    # an unreachable one, a command that fails, and one that fails after sending the tar are each counted
    # (a failing stream once crashed libarchive's reader), the others read
    damaged = {"unreadable shard or damaged tar (read up to the damage)": 1}
    for broken in ("memory://shards/missing.tar", "pipe:false"):
        assert read_all([broken, paths[0]], reader) == (shards["usable"][:4], damaged)
    keys, tally = read_all([f"pipe:cat {paths[1]}; exit 3", paths[0]], reader)
    piped = [k.rsplit("/", 1)[1] for k in keys[:-4]]  # as much of shard 1 as came before the exit was seen
    assert piped == [k.rsplit("/", 1)[1] for k in shards["usable"][4:4 + len(piped)]]
    assert keys[-4:] == shards["usable"][:4] and tally == damaged


@pytest.mark.parametrize("reader", ["libarchive", "tarfile"])
def test_a_tar_cut_in_its_first_sample_is_warned_of_in_words_and_scoring_it_names_why_it_holds_no_image(
        tmp_path, caplog, reader):
    from supra.data.captioning.shards import ShardCaptionsDataModule

    write_img2dataset_shards(tmp_path / "s", shards=1, per_shard=4)
    cut = tmp_path / "cut.tar"
    cut.write_bytes((tmp_path / "s" / "00000.tar").read_bytes()[:700])  # within the first member's data
    with caplog.at_level(logging.WARNING):
        keys, tally = read_all(str(cut), reader)
    assert not keys and tally == {"unreadable shard or damaged tar (read up to the damage)": 1}
    # libarchive has no words of its own for this cut (its error's message is None): ours alone
    said = {"libarchive": "damaged or cut-short tar", "tarfile": "damaged or cut-short tar (tarfile: empty header)"}
    assert [r.getMessage() for r in caplog.records] == [f"shard {cut}: {said[reader]}"]
    data = ShardCaptionsDataModule(str(tmp_path / "s" / "00000.tar"), str(cut), str(cut), batch_size=2)
    with pytest.raises(SupraUserError) as err:
        data.setup("test")
    assert str(err.value) == (f"the test shards data.test_shards='{cut}' hold no usable image: 1 unreadable shard or "
                              "damaged tar (read up to the damage); the warnings above name each shard and why")


def test_http_shards_are_read_and_an_unreachable_one_is_counted_soon_saying_why_in_words(tmp_path, monkeypatch,
                                                                                          caplog):
    """webdataset's own curl command retried 30 times 2 s apart (a host it could not resolve too): ~60 s an
    unreachable shard before it was counted, its warning curl's argument list and exit status."""
    import http.server
    import socket
    import threading
    import time

    import supra.data.caption_sources.shards as shards_module

    shards = write_img2dataset_shards(tmp_path / "s", shards=1, per_shard=4)
    asked = []

    class Server(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            asked.append(self.path)
            if self.path == "/00000.tar":
                data = (tmp_path / "s" / "00000.tar").read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self.send_error(404 if self.path == "/gone.tar" else 503)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there: refused at once
    monkeypatch.setattr(shards_module, "HTTP_RETRIES", 1)
    site = f"http://127.0.0.1:{server.server_port}"
    try:
        assert read_all(f"{site}/00000.tar") == (shards["usable"], Unusable())
        began = time.monotonic()
        with caplog.at_level(logging.WARNING):
            keys, tally = read_all([f"http://127.0.0.1:{closed_port}/00000.tar", f"{site}/gone.tar", f"{site}/busy.tar"])
        assert time.monotonic() - began < 5 and not keys
    finally:
        server.shutdown()
    assert tally == {"unreadable shard or damaged tar (read up to the damage)": 3}
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [f"shard http://127.0.0.1:{closed_port}/00000.tar: could not connect to 127.0.0.1:{closed_port} "
                    "(curl exit 7)", f"shard {site}/gone.tar: HTTP error 404 from 127.0.0.1:{server.server_port} "
                    "(curl exit 22)", f"shard {site}/busy.tar: HTTP error 503 from 127.0.0.1:{server.server_port} "
                    "(curl exit 22)"]
    # a missing file is not asked for again; a busy server is, HTTP_RETRIES times
    assert asked.count("/gone.tar") == 1 and asked.count("/busy.tar") == 2


def test_without_the_systems_libarchive_shards_are_read_by_tarfile_and_it_says_so_once(tmp_path, monkeypatch, caplog):
    from supra.data.caption_sources import tar_reading

    shards = write_img2dataset_shards(tmp_path / "s", shards=2, per_shard=4)
    monkeypatch.setitem(sys.modules, "libarchive", None)  # as when the binding cannot load the library
    tar_reading.libarchive_or_none.cache_clear()
    try:
        assert read_all(shards["spec"]) == (shards["usable"], Unusable())
        assert read_all(shards["spec"])[0] == shards["usable"]
    finally:
        tar_reading.libarchive_or_none.cache_clear()
    said = [r.message for r in caplog.records if "libarchive could not be loaded" in r.message]
    assert len(said) == 1 and "apt-get install libarchive13" in said[0]


def test_loading_the_systems_libarchive_says_nothing_of_what_it_lacks_that_shards_never_use(monkeypatch, caplog):
    """Its binding logs at import, at INFO, that an older library "doesn't support reading entry digests": a
    line in every run's set-up that sounds like a problem and is none."""
    from supra.data.caption_sources import tar_reading

    for name in [name for name in sys.modules if name == "libarchive" or name.startswith("libarchive.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, as by a new run; put back afterwards
    monkeypatch.setattr(logging.getLogger("libarchive"), "level", logging.NOTSET)
    tar_reading.libarchive_or_none.cache_clear()
    try:
        with caplog.at_level(logging.INFO):
            assert tar_reading.libarchive_or_none() is not None
    finally:
        tar_reading.libarchive_or_none.cache_clear()
    assert [r.getMessage() for r in caplog.records if r.name == "libarchive"] == []


def test_brace_expansion_and_the_stats_files_give_shards_and_their_sizes(tmp_path):
    shards = write_img2dataset_shards(tmp_path / "s", shards=3, per_shard=5)
    urls = expand_shards(shards["spec"])
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["00000.tar", "00001.tar", "00002.tar"]
    assert shard_sizes(urls) == [5, 5, 5]
    # a pipe: command's output has no _stats.json beside it, whatever the files it reads have
    piped = [f"pipe:cat {u}" for u in urls]
    assert shard_sizes(piped) is None and unknown_sizes_reason(piped).startswith(
        "the sizes of pipe: shards cannot be read (no _stats.json is opened beside a command's output: pipe:cat ")
    (tmp_path / "s" / "00001_stats.json").unlink()
    assert shard_sizes(urls) is None
    assert unknown_sizes_reason(urls) == f"{tmp_path / 's' / '00001_stats.json'} cannot be read (img2dataset writes " \
        "one beside each tar, with its successes)"
    with pytest.raises(SupraUserError, match=r"^data.val_shards=\[\] names no shard"):
        expand_shards([], "data.val_shards")


def test_a_shard_listed_twice_is_read_once_and_said_once(tmp_path, caplog):
    """As other sources keep an image listed twice once: webdataset's expansion keeps repeats, which trained
    the shard's samples twice an epoch and scored its images twice."""
    write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)
    spec = f"{tmp_path}/s/{{00000..00002}}.tar::{tmp_path}/s/{{00002..00003}}.tar::file:{tmp_path}/s/./00000.tar"
    with caplog.at_level(logging.WARNING):
        urls = expand_shards(spec)
        assert expand_shards(spec) == urls  # expanded again (each split at set-up and after): said once
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["00000.tar", "00001.tar", "00002.tar", "00003.tar"]
    said = [r.message for r in caplog.records if "listed again" in r.message]
    assert len(said) == 1 and f"2 shards listed again (e.g. {tmp_path}/s/00002.tar): each shard is read once" in said[0]
    streamed = [k for b in stream(spec, 0) for k in b["keys"]]
    assert len(streamed) == len(set(streamed)) == 32
    assert len(read_whole(spec, 32).keys) == 32
    one = f"{tmp_path}/s/00001.tar::{tmp_path}/s/00001.tar"
    with caplog.at_level(logging.WARNING):
        expand_shards(one, "data.val_shards")
    assert caplog.records[-1].message == (f"data.val_shards={one!r}: 1 shard listed again (e.g. {tmp_path}/s/00001.tar): "
                                          "each shard is read once")


def test_ddp_refuses_pipe_shards_saying_their_sizes_cannot_be_read(tmp_path, monkeypatch):
    import supra.data.captioning.shards as datamodule_module

    monkeypatch.setattr(datamodule_module, "rank_and_world", lambda: (0, 2))
    # not "no _stats.json beside them": the files a pipe reads may well have theirs
    data = datamodule_module.ShardCaptionsDataModule(f"pipe:cat {tmp_path}/{{00000..00001}}.tar", "v.tar", "t.tar")
    with pytest.raises(SupraUserError) as refused:
        data._stream()
    assert str(refused.value).startswith("DDP needs the train shards' sample counts to give every rank the same "
                                         "batches, but the sizes of pipe: shards cannot be read")


@pytest.mark.parametrize("count", [-3, 4.5, "8", None])
def test_a_stats_file_whose_successes_is_no_count_leaves_the_sizes_unknown_and_says_which(tmp_path, monkeypatch,
                                                                                         caplog, count):
    """As a damaged _stats.json does, said in a warning naming it: a negative count was a traceback from
    len() at set-up, a fractional one cut the epoch silently."""
    import json

    import supra.data.captioning.shards as datamodule_module

    shards = write_img2dataset_shards(tmp_path / "s", shards=2, per_shard=8)
    stats = tmp_path / "s" / "00001_stats.json"
    stats.write_text(json.dumps({**json.loads(stats.read_text()), "successes": count}))
    urls = expand_shards(shards["spec"])
    with caplog.at_level(logging.WARNING):
        assert shard_sizes(urls) is None
    assert f"{stats} holds successes={count!r}, not a count of samples: the shards' sizes are unknown" in caplog.text
    monkeypatch.setattr(datamodule_module, "rank_and_world", lambda: (0, 2))
    with pytest.raises(SupraUserError, match=f"but {stats} holds successes=.*, not a count of samples: fix it"):
        datamodule_module.ShardCaptionsDataModule(shards["spec"], "v.tar", "t.tar")._stream()


def test_every_rank_gets_the_same_number_of_batches_from_uneven_shards():
    quotas = worker_quotas([[16, 8], [8, 0]], batch_size=4)  # 3 shards of 8 over 2 ranks, 2 workers each
    assert [sum(q) for q in quotas] == [2, 2] and quotas[0] == [1, 1]
    # the DataLoader takes a batch from each worker in turn, passing over an exhausted one
    # (and after a resume, which worker's batch is due next)
    assert batches_per_worker(5, [1, 4])[0] == [1, 4] and batches_per_worker(3, [2, 2]) == ([2, 1], 1)
    assert batches_per_worker(2, [1, 4]) == ([1, 1], 1)


def stream(spec: str, workers: int, batch_size: int = 4, epoch: int = 0) -> ShardStream:
    urls = expand_shards(spec)
    tokenizer = CaptionTokenizer.train([f"photo {i} of a red bus" for i in range(50)], 300)
    s = ShardStream(urls, shard_sizes(urls), batch_size, 32, tokenizer, 16, seed=0, shuffle_buffer=8, workers=workers)
    s.epoch = epoch
    return s


@pytest.mark.parametrize("workers", [0, 2])
def test_one_epoch_reads_every_sample_once_whatever_the_workers(tmp_path, workers):
    shards = write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)
    loader = DataLoader(stream(shards["spec"], workers), batch_size=None, num_workers=workers)
    batches = list(loader)
    keys = [k for b in batches for k in b["keys"]]
    assert sorted(keys) == sorted(shards["usable"]) and len(batches) == len(loader.dataset) == 8
    assert batches[0]["images"].shape == (4, 3, 32, 32) and batches[0]["images"].dtype == torch.uint8


def test_a_worker_whose_shards_hold_nothing_usable_still_gives_the_rank_its_batches(tmp_path, caplog):
    """Its batches are the rank's last one again: a rank short of batches left the other DDP ranks waiting in
    their collectives for ever (its stream has no batch of its own to repeat)."""
    shards = write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)
    loader = ShardLoader(stream(shards["spec"], 2), lambda: (0, 0), num_workers=2)
    for shard in loader.dataset.assignment(1, 2)[0][1]:  # worker 1's shards: garbage
        Path(loader.dataset.shards[shard]).write_bytes(b"garbage, not a tar" * 100)
    with caplog.at_level(logging.WARNING):
        batches = list(loader)
    assert len(batches) == len(loader.dataset) == 8  # worker 0's 4, and the last of them 4 times more
    assert [b["keys"] for b in batches[3:]] == [batches[3]["keys"]] * 5
    assert ("shards, epoch 0: 4 batches of a worker with no usable sample are this rank's last batch again, so that "
            "every rank runs the same number") in caplog.text


def test_stats_files_that_count_fewer_samples_than_the_shards_hold_are_said_in_the_epochs_line(tmp_path, caplog):
    """An epoch's batches are reckoned from the _stats.json counts: ones that count too few left samples out
    of every epoch without a word. The batches stay those the counts give; the epoch's line says so."""
    import json

    shards = write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)
    with caplog.at_level(logging.INFO, logger="supra.data.captioning.shard_stream"):
        assert len(list(stream(shards["spec"], 0))) == 8
    assert [r.levelname for r in caplog.records] == ["INFO"] and "left out" not in caplog.text  # counts that are right
    caplog.clear()
    for stats in (tmp_path / "s").glob("*_stats.json"):
        stats.write_text(json.dumps({**json.loads(stats.read_text()), "successes": 4}))
    with caplog.at_level(logging.INFO, logger="supra.data.captioning.shard_stream"):
        assert len(list(stream(shards["spec"], 0))) == 4
    said = [r for r in caplog.records if r.message.startswith("shards, epoch 0, rank 0 worker 0: 4 batches of 4")]
    assert len(said) == 1 and said[0].levelname == "WARNING" and said[0].message.endswith(
        "; samples left out: the _stats.json files of 4 shards (e.g. " + str(tmp_path / "s") + "/00002_stats.json) "
        "count fewer samples than the shards hold (at least 16 more), and an epoch's batches are reckoned from them: "
        "fix or delete them")


@pytest.mark.parametrize(("shards", "said"), [(1, "1 batch of 4 (0 repeated, 0 skipped as trained)"),
                                             (2, "2 batches of 4 (0 repeated, 0 skipped as trained)")])
def test_the_epochs_line_counts_one_batch_and_one_shard_in_the_singular_and_two_in_the_plural(tmp_path, caplog,
                                                                                             shards, said):
    shard_files = write_img2dataset_shards(tmp_path / "s", shards=shards, per_shard=8)
    for stats in (tmp_path / "s").glob("*_stats.json"):  # 4 of each shard's 8 samples counted: a batch a shard
        stats.write_text(json.dumps({**json.loads(stats.read_text()), "successes": 4}))
    with caplog.at_level(logging.INFO, logger="supra.data.captioning.shard_stream"):
        assert len(list(stream(shard_files["spec"], 0))) == shards
    counted_shards = "1 shard" if shards == 1 else "2 shards"
    assert [r.message for r in caplog.records] == [
        f"shards, epoch 0, rank 0 worker 0: {said}; unusable: nothing; samples left out: the _stats.json files of "
        f"{counted_shards} (e.g. {tmp_path / 's'}/00000_stats.json) count fewer samples than the shards hold (at least "
        f"{4 * shards} more), and an epoch's batches are reckoned from them: fix or delete them"]


def test_each_epoch_has_its_own_order_and_the_same_epoch_the_same(tmp_path):
    shards = write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)
    order = {e: [k for b in stream(shards["spec"], 0, epoch=e) for k in b["keys"]] for e in (0, 1)}
    assert order[0] != order[1] and sorted(order[0]) == sorted(order[1])
    assert order[0] == [k for b in stream(shards["spec"], 0, epoch=0) for k in b["keys"]]


def test_workers_that_persist_across_epochs_stream_each_epoch_as_new_workers_would(tmp_path):
    """The loader's workers live from epoch to epoch; each epoch (one cut short, one resumed after 3
    batches) gives the batches a loader started for that epoch alone gives."""
    shards = write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)

    def keys(batches) -> list[str]:
        return [k for b in batches for k in b["keys"]]

    def alone(epoch: int, done: int = 0) -> list[str]:
        return keys(ShardLoader(stream(shards["spec"], 2), lambda: (epoch, done), num_workers=2))

    plan = iter([(0, 0), (1, 0), (2, 3)])
    loader = ShardLoader(stream(shards["spec"], 2), lambda: next(plan), num_workers=2)
    assert loader.persistent_workers
    first, cut, resumed = keys(loader), keys(itertools.islice(loader, 1)), keys(loader)
    assert first == alone(0) and cut == alone(1)[:4] and first != alone(1)
    assert resumed == alone(2, 3) == alone(2)[3 * 4:]


def test_debug_overfit_trains_every_epoch_on_the_same_batch_of_the_shards(tmp_path, monkeypatch):
    """Lightning turns off a sampler's shuffle under trainer.overfit_batches, but the shards are shuffled per epoch
    by the stream itself: debug=overfit (an epoch of one batch) trained on a new batch at every step."""
    from supra.data.captioning.shards import ShardCaptionsDataModule

    spec = write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)["spec"]
    data = ShardCaptionsDataModule(spec, spec, spec)
    data.stream = stream(spec, 0)

    for overfit, same in ((1, True), (0, False)):
        first, second = (batch["keys"] for batch in first_train_batches(data, overfit, monkeypatch))
        assert (first == second) is same


@pytest.mark.parametrize("workers_now", [0, 3])
def test_an_epoch_resumed_with_other_workers_is_finished_on_the_batches_its_own_workers_would_have_made(
        tmp_path, workers_now):
    """Which samples an epoch's batches hold depends on the worker count it began with (5 uneven shares
    here: one worker makes 6 batches, the other 4); resumed after 3 batches with another count, the
    epoch is finished on the batches the first count would have made, and keeps its length."""
    shards = write_img2dataset_shards(tmp_path / "s", shards=5, per_shard=8)
    begun = [k for b in ShardLoader(stream(shards["spec"], 2), lambda: (1, 0), num_workers=2) for k in b["keys"]]
    resumed = stream(shards["spec"], workers_now)
    resumed.layout = resumed.resumed_layout = 2  # as the datamodule sets them from the checkpoint
    assert len(resumed) == len(stream(shards["spec"], 2)) == 10
    loader = ShardLoader(resumed, iter([(1, 3), (2, 0)]).__next__, num_workers=workers_now)
    assert [k for b in loader for k in b["keys"]] == begun[3 * 4:]
    # the next epoch is the workers' own
    now = [k for b in ShardLoader(stream(shards["spec"], workers_now), lambda: (2, 0), num_workers=workers_now)
           for k in b["keys"]]
    assert [k for b in loader for k in b["keys"]] == now


def shard_run(tmp_path, shards: dict, run: str, *overrides: str):
    return compose_config("train", tmp_path / run, [
        "experiment=vlm_shards", "trainer=cpu", f"data.train_shards='{shards['spec']}'",
        f"data.val_shards='{shards['val']}'", f"data.test_shards='{shards['val']}'", "data.batch_size=4",
        "data.eval_batch_size=4", "data.num_workers=0", "data.shuffle_buffer=8", "trainer.max_epochs=1",
        "callbacks.progress_bar=null", "model.test_metrics=[Bleu]", "test=false", "trainer.val_check_interval=1.0",
        "+callbacks.keys._target_=tests.shard_probe.TrainedKeys", f"+callbacks.keys.out_dir={tmp_path / run / 'keys'}",
        *overrides,
    ])


@pytest.fixture
def shard_data(tmp_path):
    shards = write_img2dataset_shards(tmp_path / "train", shards=4, per_shard=8)
    shards["val"] = write_img2dataset_shards(tmp_path / "val", shards=1, per_shard=4)["spec"]
    return shards


def test_a_run_resumed_mid_epoch_trains_on_the_batches_an_uninterrupted_run_does(tmp_path, shard_data):
    from supra.runner.training import train

    train(shard_run(tmp_path, shard_data, "whole", "data.num_workers=2"))
    # a run that writes a checkpoint at step 3 and is stopped after step 4 (as if killed: step 4 is lost)
    mid = tmp_path / "mid"
    train(shard_run(tmp_path, shard_data, "first", "data.num_workers=2", "trainer.max_steps=4",
                    "+callbacks.mid._target_=lightning.pytorch.callbacks.ModelCheckpoint", f"+callbacks.mid.dirpath={mid}",
                    "+callbacks.mid.every_n_train_steps=3", "+callbacks.mid.save_top_k=-1",
                    "+callbacks.mid.filename=step3"))
    train(shard_run(tmp_path, shard_data, "resumed", "data.num_workers=2", f"ckpt_path={mid / 'step3.ckpt'}"))
    whole, first, resumed = (read_keys(tmp_path / run / "keys")[0] for run in ("whole", "first", "resumed"))
    assert len(whole) == 8 and first == whole[:4] and resumed == whole[3:]


def test_a_run_resumed_mid_epoch_with_other_workers_finishes_the_epoch_on_the_batches_it_began(tmp_path, shard_data):
    from supra.runner.training import train

    # the uninterrupted run's batches are the stream's, as its 2 workers make them
    epoch = [b["keys"] for b in ShardLoader(stream(shard_data["spec"], 2), lambda: (0, 0), num_workers=2)]
    mid = tmp_path / "mid"
    train(shard_run(tmp_path, shard_data, "first", "data.num_workers=2", "trainer.max_steps=3",
                    "+callbacks.mid._target_=lightning.pytorch.callbacks.ModelCheckpoint", f"+callbacks.mid.dirpath={mid}",
                    "+callbacks.mid.every_n_train_steps=3", "+callbacks.mid.filename=step3"))
    # the checkpoint keeps the worker count the epoch began with: without workers now, the epoch is finished alike
    train(shard_run(tmp_path, shard_data, "fewer", "data.num_workers=0", f"ckpt_path={mid / 'step3.ckpt'}"))
    first, fewer = (read_keys(tmp_path / run / "keys")[0] for run in ("first", "fewer"))
    assert len(epoch) == 8 and first == epoch[:3] and fewer == epoch[3:]


@pytest.mark.ddp
def test_ddp_on_two_processes_reads_every_sample_once_with_equal_batches(tmp_path, shard_data):
    from supra.runner.training import train

    # no validation and no pictures: what is under test is the training stream (ddp_spawn's start-up is the cost)
    train(shard_run(tmp_path, shard_data, "ddp", "trainer=ddp_sim", "data.num_workers=2", "+trainer.limit_val_batches=0",
                    "callbacks.caption_grid=null", "callbacks.attention_maps=null", "callbacks.model_summary=null"))
    ranks = read_keys(tmp_path / "ddp" / "keys")
    assert set(ranks) == {0, 1} and len(ranks[0]) == len(ranks[1]) == 4
    keys = [k for batches in ranks.values() for batch in batches for k in batch]
    assert sorted(keys) == sorted(shard_data["usable"])  # every sample once across ranks and workers


def test_write_shards_turns_a_source_into_shards_that_read_back_whole(tmp_path, capsys):
    import json

    import pyarrow.parquet as pq

    from supra.data.caption_sources.sources import read_caption_source
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    cut = tmp_path / "coco" / "val2014" / "COCO_val2014_000000000203.jpg"
    cut.write_bytes(cut.read_bytes()[:200])  # a copy cut short: no shard may carry it
    run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={tmp_path / 'shards'}",
                "samples_per_shard=8", "show_progress=false", "layout=2014", run_dir=tmp_path)  # 2014: Hydra's int
    printed = capsys.readouterr().out.splitlines()
    summary = printed[0]
    # the command it prints runs as printed: a shell passes Hydra each shard range whole, quotes included
    command = shlex.split(printed[2])  # trainer=cpu where there is no GPU: the recipe's trainer=gpu is refused
    assert command[:4] == ["python", "train.py", "experiment=vlm_shards", "trainer=cpu" if not torch.cuda.is_available()
                           else command[3]]
    data = compose_config("train", tmp_path / "run", command[2:]).data
    last = len(list((tmp_path / "shards" / "train").glob("*.tar"))) - 1
    assert data.train_shards == f"{(tmp_path / 'shards' / 'train').resolve()}/{{00000..{last:05d}}}.tar"
    assert summary.startswith("coco (2014 layout): train ") and "1 unreadable image (e.g. val2014/COCO_val2014_000000000203.jpg)" in summary
    assert "1 no image file (e.g. train2014/COCO_train2014_000000000102.jpg)" in summary  # annotated, not on disk
    index = read_caption_source("coco", tmp_path / "coco")
    held = {split: sum(json.loads(p.read_text())["successes"] for p in (tmp_path / "shards" / split).glob("*_stats.json"))
            for split in ("train", "val", "test")}
    assert all(f"{split} {n} images" in summary for split, n in held.items())  # the cut one counted once, as skipped
    for split, keys in index.splits.items():
        keys = [k for k in keys if not k.endswith(cut.name)]
        tally = Unusable()
        urls = sorted(str(p) for p in (tmp_path / "shards" / split).glob("*.tar"))
        samples = list(usable_samples(urls, tally))
        assert len(samples) == len(keys) == sum(shard_sizes(urls)) and not tally
        assert sorted(c for s in samples for c in s.captions) == sorted(c for k in keys for c in index.captions[k])
        assert len(pq.read_table(urls[0].replace(".tar", ".parquet"))) == shard_sizes(urls)[0]
    first = json.loads(next(raw_samples([str(tmp_path / "shards" / "test" / "00000.tar")], Unusable()))["json"])
    assert isinstance(first["id"], int) and len(first["captions"]) == 5  # COCO's id and every caption
    assert first.keys() == WRITTEN_JSON_KEYS  # what tells its id from one img2dataset copied from a parquet
    with pytest.raises(SystemExit):
        run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={tmp_path / 'shards'}",
                    run_dir=tmp_path)
    with pytest.raises(SystemExit):
        run_command("write_shards", "source=cc3m", f"root={tmp_path}", f"out={tmp_path / 'more'}", run_dir=tmp_path)
    assert "source='cc3m' is not a source this reads: choose one of coco, flickr30k, flickr8k, folder, hf_disk" in capsys.readouterr().err
    # the sources' messages name the options as this command takes them: root=, layout=, not data.root=
    with pytest.raises(SystemExit):
        run_command("write_shards", "source=coco", f"root={tmp_path / 'nowhere'}", f"out={tmp_path / 'more'}",
                    run_dir=tmp_path)
    assert f"error: root={tmp_path / 'nowhere'} does not exist: point it at your COCO folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", "layout=karpathy",
                    f"out={tmp_path / 'more'}", run_dir=tmp_path)
    assert "has no dataset_coco.json (layout=karpathy)" in capsys.readouterr().err


@pytest.mark.parametrize(("options", "error"), [
    # in the one wording of every count option (a model's, train.py's, each command's)
    (["samples_per_shard=2.5"], "samples_per_shard=2.5 must be a whole number >= 1 (images per tar)\n"),
    (["samples_per_shard=abc"], "samples_per_shard='abc' must be a whole number >= 1 (images per tar)\n"),
    (["samples_per_shard=true"], "samples_per_shard=True must be a whole number >= 1 (images per tar)\n"),
    (["samples_per_shard=0"], "samples_per_shard=0 must be a whole number >= 1 (images per tar)\n"),
    # Hydra reads 1e3 as the float 1000.0, which the message once quoted ("1000.0 must be a whole number"): quoted
    # as typed, with the number to give
    (["samples_per_shard=1e3"], "samples_per_shard=1e3 (write 1000, not 1e3) must be a whole number >= 1 (images "
                                "per tar)\n"),
    (["split_seed=abc"], "split_seed='abc' must be a whole number"),
    # options of another source than the one chosen would be ignored without a word
    (["source=hf_disk", "layout=karpathy"], "layout=karpathy: source=hf_disk does not read it (it reads root, "
                                            "image_column, caption_column, id_column, split_seed, cache_dir); leave it out"),
    (["source=folder", "caption_column=text", "id_column=myid"],
     "caption_column=text id_column=myid: source=folder does not read them (it reads root, layout, split_seed, "
     "val_fraction, test_fraction); leave them out"),
    # a folder's held-out shares, as data=caption_folder takes them
    (["test_fraction=0.2"], "test_fraction=0.2: source=coco does not read it (it reads root, layout, split_seed); "
                            "leave it out"),
    (["source=folder", "val_fraction=0.6", "test_fraction=0.5"],
     "val_fraction=0.6 and test_fraction=0.5 must each be above 0 and below 1, and leave some files for train"),
])
def test_write_shards_refuses_options_it_cannot_use_in_one_line_before_any_work(tmp_path, capsys, options, error):
    from tests.conftest import run_command

    options = options if any(o.startswith("source=") for o in options) else ["source=coco", *options]
    with pytest.raises(SystemExit):
        run_command("write_shards", *options, f"root={tmp_path / 'nowhere'}", f"out={tmp_path / 'shards'}",
                    run_dir=tmp_path)
    said = capsys.readouterr().err
    assert said.startswith(f"error: {error}") and said.count("\n") == 1
    assert not (tmp_path / "shards").exists()


def test_write_shards_over_an_earlier_run_leaves_only_its_own_shards_and_the_users_files(tmp_path, capsys):
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import killed_in_atomic_dir, run_command

    write_coco_official(tmp_path / "coco")
    out = tmp_path / "shards"

    def write_shards(per_shard: int, *more: str) -> None:
        run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={out}", "layout=2014",
                    f"samples_per_shard={per_shard}", "show_progress=false", *more, run_dir=tmp_path)

    write_shards(4)  # train: 22 images in 6 shards
    (out / "notes.txt").write_text("the user's")
    (out / ".train.notes").write_text("the user's, named much like a temp folder")
    (out / ".val.20240101").mkdir()  # and a folder of the user's, named as one
    # runs killed (SIGKILL) while filling train/'s temp folder and val/'s
    killed = sorted(killed_in_atomic_dir(out / split, "00000.tar").name for split in ("train", "val"))
    capsys.readouterr()
    write_shards(8, "overwrite=true")  # 3: the earlier 00003..00005 would be read by train/*.tar
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        f"{n:05d}{suffix}" for n in range(3) for suffix in (".parquet", ".tar", "_stats.json")]
    assert sorted(p.name for p in out.iterdir()) == [".train.notes", ".val.20240101", "notes.txt", "test", "train",
                                                     "val"]  # no temp folder left
    assert f"removed 2 temp folders that an interrupted earlier run left in {out}: {', '.join(killed)}\n" \
        in capsys.readouterr().out
    (out / "val" / "README").write_text("the user's too")  # replacing val/ whole would delete it: refused
    with pytest.raises(SystemExit):
        write_shards(8, "overwrite=true")
    assert f"out={out}: val/ holds files that are not shards (README), which writing its shards anew would delete" \
        in capsys.readouterr().err
    assert (out / "val" / "README").exists() and (out / "val" / "00000.tar").exists()
    (out / "val" / "README").unlink()
    (out / "train" / ".notes").write_text("hidden, and the user's all the same")
    with pytest.raises(SystemExit):
        write_shards(8, "overwrite=true")
    assert f"out={out}: train/ holds files that are not shards (.notes)" in capsys.readouterr().err
    assert (out / "train" / ".notes").exists()


def test_write_shards_refuses_shards_another_run_finished_in_out_while_it_read_its_source(tmp_path, capsys,
                                                                                         monkeypatch):
    import supra.write_shards as write_shards
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    out = tmp_path / "shards"
    options = ["source=coco", f"root={tmp_path / 'coco'}", f"out={out}", "layout=2014", "show_progress=false"]
    read = write_shards.read_caption_source

    def another_run_finishes_meanwhile(*args, **kwargs):  # out= was empty when this run looked, before reading
        monkeypatch.setattr(write_shards, "read_caption_source", read)
        run_command("write_shards", *options, "samples_per_shard=4", run_dir=tmp_path)
        return read(*args, **kwargs)

    monkeypatch.setattr(write_shards, "read_caption_source", another_run_finishes_meanwhile)
    with pytest.raises(SystemExit):
        run_command("write_shards", *options, "samples_per_shard=8", run_dir=tmp_path)
    assert capsys.readouterr().err.splitlines()[-1] == (f"error: out={out} already holds shards: choose another "
                                                        "folder or add overwrite=true")
    assert len(list((out / "train").glob("*.tar"))) == 6  # the other run's 22 images, 4 a shard: kept whole


def test_write_shards_refused_for_want_of_overwrite_still_removes_the_temp_folders_a_killed_run_left(tmp_path,
                                                                                                    capsys):
    """A run killed mid-write left a split's worth of shards in a hidden temp folder; a rerun refused (no
    overwrite=true) kept it there without a word, for good once the user chose another out=."""
    from supra.utils.files import ATOMIC_DIR_CLAIM
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    out = tmp_path / "shards"
    options = ["source=coco", f"root={tmp_path / 'coco'}", f"out={out}", "layout=2014", "show_progress=false"]
    run_command("write_shards", *options, run_dir=tmp_path)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    # what atomic_dir leaves of train/ when its process is killed: its work folder, its claim no longer locked
    (out / ".train.k1lled00" / "new").mkdir(parents=True)
    (out / ".train.k1lled00" / "new" / "00000.tar").write_bytes(b"half a shard")
    (out / ".train.k1lled00" / ATOMIC_DIR_CLAIM).touch()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_command("write_shards", *options, run_dir=tmp_path)
    said = capsys.readouterr()
    assert said.out == f"removed 1 temp folder that an interrupted earlier run left in {out}: .train.k1lled00\n"
    assert said.err == f"error: out={out} already holds shards: choose another folder or add overwrite=true\n"
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before


def test_write_shards_of_the_same_source_twice_writes_the_same_bytes(tmp_path, capsys):
    """Tars and parquets alike, those of a source holding unreadable images too: each is a parquet row whose
    error names its file in words (Pillow's own text named its in-memory copy by an address that changes from
    run to run)."""
    import pyarrow.parquet as pq

    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    (tmp_path / "coco" / "train2014" / "COCO_train2014_000000000103.jpg").write_bytes(b"hello")
    (tmp_path / "coco" / "train2014" / "COCO_train2014_000000000104.jpg").write_bytes(b"")
    out = tmp_path / "shards"

    def written() -> dict[str, bytes]:
        run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={out}", "layout=2014",
                    "samples_per_shard=8", "show_progress=false", "overwrite=true", run_dir=tmp_path)
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    first = written()
    failed = [row for shard in sorted((out / "train").glob("*.parquet")) for row in pq.read_table(shard).to_pylist()
              if row["status"] == "failed_to_read"]
    assert sorted(row["error_message"] for row in failed) == [
        "train2014/COCO_train2014_000000000103.jpg: not a picture file",
        "train2014/COCO_train2014_000000000104.jpg: empty file (0 bytes)"]
    time.sleep(1.1)  # tar dates members in whole seconds
    assert written() == first and any(name.endswith(".tar") for name in first)


def test_ctrl_c_in_write_shards_is_one_line_exit_130_and_leaves_the_earlier_shards_as_they_were(
        tmp_path, capsys, monkeypatch, root_logging):
    import supra.write_shards as write_shards
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    out = tmp_path / "shards"
    options = ["source=coco", f"root={tmp_path / 'coco'}", f"out={out}", "layout=2014", "samples_per_shard=8",
               "show_progress=false", "overwrite=true"]
    run_command("write_shards", *options, run_dir=tmp_path)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    read = write_shards.image_bytes

    def ctrl_c_at_the_tenth_image(index, key):  # as the user's Ctrl-C reaches the command, mid-write
        ctrl_c_at_the_tenth_image.calls += 1
        if ctrl_c_at_the_tenth_image.calls == 10:
            raise KeyboardInterrupt
        return read(index, key)

    ctrl_c_at_the_tenth_image.calls = 0
    monkeypatch.setattr(write_shards, "image_bytes", ctrl_c_at_the_tenth_image)
    monkeypatch.setattr(sys, "argv", ["write_shards", *options])
    capsys.readouterr()
    with pytest.raises(SystemExit) as end:
        write_shards.main()
    assert end.value.code == 130
    assert capsys.readouterr().err == (f"interrupted: out={out} left as it was (a run's shards replace the earlier "
                                       "ones only once all are written)\n")
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == ["test", "train", "val"]  # no temp folder left


def test_write_shards_to_a_url_uploads_the_shards_through_fsspec_and_prints_a_train_command_reading_them(
        tmp_path, capsys, monkeypatch):
    import fsspec

    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    store, url = fsspec.filesystem("memory"), f"memory://{tmp_path.name}/shards"  # fsspec's own in-memory store
    monkeypatch.chdir(tmp_path)  # where Path(url) once wrote a folder named `memory:`

    def write_shards(per_shard: int, *more: str) -> list[str]:
        run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={url}", "layout=2014",
                    f"samples_per_shard={per_shard}", "show_progress=false", *more, run_dir=tmp_path)
        return capsys.readouterr().out.splitlines()

    try:
        write_shards(4)
        printed = write_shards(8, "overwrite=true")  # fewer shards: the earlier run's extra ones are removed
        assert printed[1].startswith(f"wrote 3 train shards, 1 val shard, 1 test shard to {url}; train on them")
        data = compose_config("train", tmp_path / "run", shlex.split(printed[2])[2:]).data
        assert data.train_shards == f"{url}/train/{{00000..00002}}.tar"
        assert sorted(p.rsplit("/", 1)[1] for p in store.ls(f"/{tmp_path.name}/shards/train", detail=False)) == [
            f"{n:05d}{suffix}" for n in range(3) for suffix in (".parquet", ".tar", "_stats.json")]
        urls = expand_shards(data.train_shards)
        tally = Unusable()
        assert len(list(usable_samples(urls, tally))) == sum(shard_sizes(urls)) == 22 and not tally
        assert sorted(p.name for p in tmp_path.iterdir()) == ["coco"]  # nothing written locally
        with pytest.raises(SystemExit):
            write_shards(8)
        assert f"error: out={url} already holds shards: choose another folder or add overwrite=true" in \
            capsys.readouterr().err
    finally:
        store.rm(f"/{tmp_path.name}", recursive=True)


def test_write_shards_of_a_source_with_no_usable_image_is_one_line_and_writes_nothing(tmp_path, capsys):
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    for image in (tmp_path / "coco").glob("*2014/*.jpg"):
        image.unlink()
    with pytest.raises(SystemExit):
        run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={tmp_path / 'shards'}",
                    "show_progress=false", run_dir=tmp_path)
    error = capsys.readouterr().err
    assert f"error: source=coco root={tmp_path / 'coco'}: no image to write (skipped: " in error
    assert "28 no image files (e.g. train2014/COCO_train2014_000000000101.jpg" in error and error.count("\n") == 1
    assert not (tmp_path / "shards").exists()


def test_write_shards_on_a_full_disk_is_one_line_naming_out_and_keeps_nothing_half_written(tmp_path, capsys):
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import file_size_limit, run_command

    write_coco_official(tmp_path / "coco")
    out = tmp_path / "shards"
    with file_size_limit(2048), pytest.raises(SystemExit):  # ulimit -f: as a full disk, the first tar finds no room
        run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={out}", "layout=2014",
                    "show_progress=false", run_dir=tmp_path)
    assert capsys.readouterr().err == f"error: cannot write to out={out} (File too large): free space there, or give " \
                                      "another out= folder\n"
    assert list(out.iterdir()) == []


def test_a_full_disk_as_write_shards_copies_a_parquet_dataset_into_arrow_files_is_one_line_naming_cache_dir(
        tmp_path, capsys):
    from tests.caption_source_fixtures import write_hf_dataset
    from tests.conftest import file_size_limit, run_command

    write_hf_dataset(tmp_path / "hf", "parquet")
    capsys.readouterr()  # datasets' progress bars as the fixture writes the parquet files
    arrow = tmp_path / "cache" / "hf_dataset" / "hf_datasets"
    with file_size_limit(4096), pytest.raises(SystemExit):  # ulimit -f: as a full disk, the Arrow copy finds no room
        run_command("write_shards", "source=hf_disk", f"root={tmp_path / 'hf'}", f"out={tmp_path / 'shards'}",
                    f"paths.cache_dir={tmp_path / 'cache'}", "show_progress=false", run_dir=tmp_path)
    assert capsys.readouterr().err == (f"error: cannot write to the Arrow copy of {tmp_path / 'hf'}'s parquet files in "
                                       f"{arrow} (File too large): free space there, or set cache_dir to a folder "
                                       "with room\n")


def test_write_shards_of_a_source_too_small_for_val_and_test_writes_no_empty_folders_and_says_what_to_give(
        tmp_path, capsys):
    from supra.write_shards import next_step
    from tests.caption_source_fixtures import jpeg_bytes
    from tests.conftest import run_command

    root, out = tmp_path / "f30k", tmp_path / "shards"
    (root / "flickr30k_images").mkdir(parents=True)
    for i in range(2):  # two images: too few to set val and test apart
        (root / "flickr30k_images" / f"{i}.jpg").write_bytes(jpeg_bytes(i))
    (root / "results_20130124.token").write_text("".join(f"{i}.jpg#0\ta photo {i} .\n" for i in range(2)))
    (out / "val").mkdir(parents=True)
    (out / "val" / "00000.tar").write_bytes(b"an earlier run's shard, of other images")
    run_command("write_shards", "source=flickr30k", f"root={root}", f"out={out}", "overwrite=true",
                "show_progress=false", run_dir=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["train"]  # no empty val/ or test/, nor the earlier val/
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == (f"wrote 1 train shard to {out}; the source gave no val or test images (too few to set them "
                          "apart, or no such split), so there is no val/, no test/: train on them with shards of other "
                          "images for data.val_shards and data.test_shards (their 2 train samples make no full batch of "
                          "the recipe's data.batch_size=64 for any of its 2 workers, each batching its own shards: "
                          "data.batch_size=2 added):")
    assert printed[2].endswith("/train/{00000..00000}.tar'\" data.val_shards=... data.test_shards=...")
    # a dataset with a test split alone: scored, not trained on
    assert next_step(str(out.resolve()), {"train": 0, "val": 0, "test": 1})[1:] == [
        f"  python evaluate.py ckpt=<captioner> data=shards \"data.test_shards='{out.resolve()}/test/{{00000..00000}}.tar'\""]


def test_write_shards_of_a_split_whose_every_image_is_unreadable_writes_no_shard_of_it_and_says_why(
        tmp_path, capsys, caplog):
    """By the hash of its name, zero.jpg (0 bytes) is the test split of this folder. Its shard once held nothing,
    and the printed command trained on it, to fail at the test after the training. The one-image warning
    counts the images that decode: ok5.jpg is 1 of 12, not of 13."""
    from tests.caption_source_fixtures import jpeg_bytes
    from tests.conftest import run_command

    root, out = tmp_path / "photos", tmp_path / "shards"
    root.mkdir()
    for i in range(12):
        (root / f"ok{i}.jpg").write_bytes(jpeg_bytes(i))
        (root / f"ok{i}.txt").write_text(f"a photo {i}")
    (root / "zero.jpg").write_bytes(b"")
    (root / "zero.txt").write_text("a photo that was never saved")
    with caplog.at_level(logging.WARNING, logger="supra.write_shards"):
        run_command("write_shards", "source=folder", f"root={root}", f"out={out}", "show_progress=false",
                    run_dir=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["train", "val"]  # no empty test/
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith(f"wrote 1 train shard, 1 val shard to {out}; the only image of the test split could "
                                 "not be read (zero.jpg: empty file (0 bytes)), so there is no test/: train on them with "
                                 "shards of other images for data.test_shards")
    assert printed[2].endswith(" data.test_shards=...")
    warned = [r.getMessage() for r in caplog.records if "holds 1 of its" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"the val split of root={root} holds 1 of its 12 images")


def test_shards_of_a_split_that_hold_no_image_are_refused_as_the_fit_sets_up_naming_them(tmp_path, shard_data):
    """Not only at the test, after the training: the _stats.json files count the test split's images written.
    Shards without them are refused as they are read, naming them and why."""
    from supra.data.captioning.shards import ShardCaptionsDataModule

    empty = write_img2dataset_shards(tmp_path / "test", shards=1, per_shard=0)["spec"]
    with pytest.raises(SupraUserError, match=r"^the test shards data.test_shards='.*test/\{00000..00000\}.tar' hold no "
                                             r"image: their _stats.json files count 0 successes"):
        ShardCaptionsDataModule(shard_data["spec"], shard_data["val"], empty).setup("fit")
    (tmp_path / "test" / "00000_stats.json").unlink()
    with pytest.raises(SupraUserError, match=r"^the test shards data.test_shards=.* hold no usable image: their tars "
                                             r"hold no sample$"):
        ShardCaptionsDataModule(shard_data["spec"], shard_data["val"], empty).load_split("test")


def test_the_note_on_a_lowered_batch_counts_one_sample_and_one_worker_in_the_singular(monkeypatch):
    """The note beside the printed train command says "1 train sample makes", "its 1 worker", never "(s)"."""
    from omegaconf import OmegaConf

    import supra.write_shards as write_shards

    def note(samples: int, num_workers: int) -> str:
        data = OmegaConf.create({"data": {"batch_size": 64, "num_workers": num_workers, "seed": 0}})
        monkeypatch.setattr(write_shards, "compose_conf", lambda *_: data)
        monkeypatch.setattr(write_shards, "expand_shards", lambda spec: [spec])
        monkeypatch.setattr(write_shards, "shard_sizes", lambda _: [samples])
        return write_shards.fitting_batch("train.tar")[1]

    assert note(1, 1) == (" (their 1 train sample makes no full batch of the recipe's data.batch_size=64 for its "
                          "1 worker, each batching its own shards: data.batch_size=1 added)")
    assert note(2, 2) == (" (their 2 train samples make no full batch of the recipe's data.batch_size=64 for any of "
                          "its 2 workers, each batching its own shards: data.batch_size=2 added)")


def test_the_train_command_write_shards_prints_runs_on_the_shards_of_a_small_source(tmp_path, capsys):
    """22 train samples in one shard make no full batch of the recipe's 64 for either of its 2 workers,
    which data=shards refuses: the printed command lowers the batch to what the shards hold, and says so."""
    from supra.data.captioning.shards import ShardCaptionsDataModule
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    write_coco_official(tmp_path / "coco")
    run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={tmp_path / 'shards'}",
                "show_progress=false", run_dir=tmp_path)
    said, command = capsys.readouterr().out.splitlines()[-2:]
    assert said.endswith("train on them with (their 22 train samples make no full batch of the recipe's "
                         "data.batch_size=64 for any of its 2 workers, each batching its own shards: "
                         "data.batch_size=22 added):")
    overrides = shlex.split(command)[2:]  # after `python train.py`
    assert "data.batch_size=22" in overrides

    def set_up(overrides: list[str]) -> None:
        data = compose_config("train", tmp_path, overrides).data
        ShardCaptionsDataModule(data.train_shards, data.val_shards, data.test_shards, batch_size=data.batch_size,
                                num_workers=data.num_workers, seed=data.seed,
                                cache_dir=str(tmp_path / "cache")).setup("fit")

    set_up(overrides)  # the printed command's data passes data=shards' checks
    with pytest.raises(SupraUserError, match="not one full batch of data.batch_size=64"):
        set_up([o for o in overrides if o != "data.batch_size=22"])  # as the recipe alone would be refused


def test_write_shards_keeps_the_recipes_batch_where_fewer_workers_fill_it_and_all_of_it_where_it_fits(tmp_path):
    from supra.write_shards import fitting_batch

    two = write_img2dataset_shards(tmp_path / "two", shards=2, per_shard=40)["spec"]  # 40 per worker, 80 for one
    assert fitting_batch(two)[0] == ["data.num_workers=1"]
    more = write_img2dataset_shards(tmp_path / "more", shards=2, per_shard=64)["spec"]
    assert fitting_batch(more) == ([], "")


def test_write_shards_keeps_jpeg_png_and_webp_as_stored_and_writes_other_formats_as_lossless_png(tmp_path, capsys):
    import io
    import json

    from PIL import Image

    from supra.data.caption_sources.index import CaptionIndex
    from supra.data.images import load_rgb
    from supra.write_shards import image_bytes
    from tests.conftest import run_command

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    root.mkdir()

    def picture(mode: str = "RGB") -> Image.Image:  # noise: a lossy re-encoding could not keep it
        return Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).convert(mode)

    picture().save(root / "paint.bmp")
    picture("P").save(root / "clip.gif", save_all=True, append_images=[picture("P")])
    for name, format_ in (("photo.jpg", "JPEG"), ("shot.png", "PNG"), ("web.webp", "WEBP")):
        picture().save(root / name, format=format_)
    files = sorted(p.name for p in root.iterdir())
    for name in files:
        (root / f"{Path(name).stem}.txt").write_text(f"a picture named {name}")
    run_command("write_shards", "source=folder", f"root={root}", f"out={tmp_path / 'shards'}", "show_progress=false",
                run_dir=tmp_path)
    capsys.readouterr()
    tars = sorted(str(p) for p in (tmp_path / "shards").glob("*/*.tar"))
    written = {json.loads(s["json"])["url"]: s for s in raw_samples(tars, Unusable())}
    assert sorted(written) == files
    tally = Unusable()
    assert len(list(usable_samples(tars, tally))) == len(files) and not tally  # data=shards reads them all
    # TIFFs (a COCO or Flickr copy may hold them; a folder lists none), one turned by its EXIF orientation, one CMYK
    rotated = Image.Exif()
    rotated[0x0112] = 6  # a quarter turn, which load_rgb applies: read back from the shard turned once, not twice
    picture().save(root / "scan.tif", exif=rotated)
    picture("CMYK").save(root / "print.tif", icc_profile=b"a CMYK profile")  # not one for the RGB PNG
    index = CaptionIndex("files", root, {}, {})
    images = {name: [(ext, data) for ext, data in sample.items() if ext in ("jpg", "png", "webp")]
              for name, sample in written.items()}
    images.update({name: [image_bytes(index, name)[::-1]] for name in ("scan.tif", "print.tif")})
    for name, [(kind, data)] in images.items():
        if name.endswith((".jpg", ".png", ".webp")):  # copied byte for byte, under their own extension
            assert (kind, data) == (Path(name).suffix[1:], (root / name).read_bytes())
            continue
        # BMP, TIFF, GIF (its first frame): the pixels training reads from the file, to the last bit, as a PNG
        assert kind == "png" and "icc_profile" not in Image.open(io.BytesIO(data)).info
        assert np.array_equal(np.array(load_rgb(io.BytesIO(data))), np.array(load_rgb(root / name)))


def test_write_shards_summary_names_the_options_as_write_shards_takes_them(tmp_path, capsys):
    """A row-per-caption dataset's note points at the id column: write_shards' own `id_column=`, not training's
    `data.id_column`, which this command does not take."""
    from tests.caption_source_fixtures import write_row_per_caption_parquet
    from tests.conftest import run_command

    write_row_per_caption_parquet(tmp_path / "hf", [i for _ in range(2) for i in range(4)])
    run_command("write_shards", "source=hf_disk", f"root={tmp_path / 'hf'}", f"out={tmp_path / 'shards'}",
                f"cache_dir={tmp_path / 'cache'}", "show_progress=false", run_dir=tmp_path)
    summary = capsys.readouterr().out.splitlines()[0]
    assert summary.endswith("joined to it as one image with all their captions (id_column names them by the "
                            "dataset's ids)")


def test_write_shards_keeps_the_arrow_copy_of_a_parquet_dataset_in_the_cache_not_in_the_dataset(tmp_path):
    import json

    from tests.caption_source_fixtures import write_hf_dataset
    from tests.conftest import run_command

    write_hf_dataset(tmp_path / "hf", "parquet")
    run_command("write_shards", "source=hf_disk", f"root={tmp_path / 'hf'}", f"out={tmp_path / 'shards'}",
                f"paths.cache_dir={tmp_path / 'cache'}", "show_progress=false", run_dir=tmp_path)
    # the dataset folder may be read-only, and is the user's: nothing is written there
    assert not (tmp_path / "hf" / ".supra_cache").exists() and any((tmp_path / "cache" / "hf_dataset").iterdir())
    # its images are inside the dataset's files, not files of their own: no file, as data=hf_disk names none
    first = json.loads(next(raw_samples([str(tmp_path / "shards" / "test" / "00000.tar")], Unusable()))["json"])
    assert first["url"] is None and first["id"] == "test/0"


def test_coco_written_as_shards_is_scored_under_cocos_own_image_ids_and_files(tmp_path):
    from supra.data.captioning.shards import ShardCaptionsDataModule
    from tests.caption_source_fixtures import write_coco_official
    from tests.conftest import run_command

    coco = write_coco_official(tmp_path / "coco")
    run_command("write_shards", "source=coco", f"root={tmp_path / 'coco'}", f"out={tmp_path / 'shards'}",
                "show_progress=false", "layout=2014", run_dir=tmp_path)
    spec = {split: str(tmp_path / "shards" / split / "00000.tar") for split in ("train", "val", "test")}
    records = ShardCaptionsDataModule(spec["train"], spec["val"], spec["test"]).image_records("test")
    # predictions.json in COCO's results format: {"image_id": 216, ...}, as data=coco writes it
    assert len(records) == 2 and all(r == {"image_id": coco["ids"][r["file"]], "file": r["file"]} for r in records)


def test_flickr30k_written_as_shards_is_scored_under_the_files_data_flickr30k_names(tmp_path):
    from supra.data.caption_sources.decoded import DecodedPhotos
    from tests.caption_source_fixtures import write_flickr30k
    from tests.conftest import run_command

    write_flickr30k(tmp_path / "f30k", "csv")  # Kaggle's copy nests the pictures: flickr30k_images/flickr30k_images/
    run_command("write_shards", "source=flickr30k", f"root={tmp_path / 'f30k'}", f"out={tmp_path / 'shards'}",
                "show_progress=false", run_dir=tmp_path)
    photos = DecodedPhotos("flickr30k", tmp_path / "f30k", 32, cache_dir=tmp_path / "cache")
    photos.load(show_progress=False)
    read = photos.split("test")  # what data=flickr30k writes in predictions.json
    whole = read_whole(str(tmp_path / "shards" / "test" / "00000.tar"), 32)
    assert whole.files == read.files and whole.ids == read.ids
    assert whole.files[0] == f"flickr30k_images/flickr30k_images/{whole.ids[0]}"


def test_shards_of_two_folders_named_alike_give_every_image_its_own_id(tmp_path):
    write_img2dataset_shards(tmp_path / "val", shards=1, per_shard=3)
    write_img2dataset_shards(tmp_path / "test", shards=1, per_shard=3)  # the same keys, other pictures
    whole = read_whole(f"{tmp_path}/val/00000.tar::{tmp_path}/test/00000.tar", 32)
    assert whole.keys[0] == "val/00000.tar/000000000" and whole.keys[3] == "test/00000.tar/000000000"
    # img2dataset's json names no id: the key is one, and the URL it downloaded is the image's file
    assert whole.ids == whole.keys and whole.files[0] == "https://example.com/000000000.jpg"
    assert read_whole(f"{tmp_path}/val/00000.tar", 32).keys[0] == "00000.tar/000000000"  # one folder: as before


def test_an_id_img2dataset_copied_from_the_users_parquet_names_no_image_so_none_is_merged_or_dropped(tmp_path):
    """A parquet with a row per caption gives its samples ids 0, 0, 1, 1, 2, 2: taken as the images' ids, the
    captioner scored names that said two pictures were one, and the a2a scorer kept one of each pair."""
    from supra.data.captioning.shards import ShardCaptionsDataModule

    write_img2dataset_shards(tmp_path, shards=1, per_shard=6, repeated_ids=True)
    spec = str(tmp_path / "00000.tar")
    whole = read_whole(spec, 32)
    assert whole.ids == whole.keys == [f"00000.tar/00000{i:04d}" for i in range(6)]
    records = ShardCaptionsDataModule(spec, spec, spec).image_records("test")  # predictions.json's
    assert [r["image_id"] for r in records] == whole.keys


def test_ids_write_shards_kept_that_repeat_across_its_runs_read_together_leave_every_sample_its_key(tmp_path, caplog):
    import json

    import webdataset as wds

    from tests.caption_source_fixtures import jpeg_bytes

    runs = {"coco2014": (9, 25), "coco2017": (9, 25), "other": (9, 30)}  # COCO's 2014 and 2017 files share ids
    for run, image_ids in runs.items():
        (tmp_path / run).mkdir()
        with wds.TarWriter(str(tmp_path / run / "00000.tar")) as tar:
            for number, image_id in enumerate(image_ids):
                meta = {"url": f"val2014/{image_id}.jpg", "caption": "a cat", "captions": ["a cat"],
                        "key": f"0000{number:05d}", "status": "success", "error_message": None, "id": image_id}
                assert meta.keys() == WRITTEN_JSON_KEYS  # as write_shards writes it
                tar.write({"__key__": meta["key"], "jpg": jpeg_bytes(number), "txt": "a cat", "json": json.dumps(meta)})
    assert read_whole(str(tmp_path / "coco2014" / "00000.tar"), 32).ids == [9, 25]  # one run's: COCO's own ids
    with caplog.at_level("WARNING"):
        whole = read_whole(f"{tmp_path}/coco2014/00000.tar::{tmp_path}/coco2017/00000.tar", 32)
    assert whole.ids == whole.keys and len(set(whole.ids)) == 4
    spec = f"{tmp_path}/coco2014/00000.tar::{tmp_path}/coco2017/00000.tar"
    assert caplog.messages == [f"shards {spec}: 2 ids are each the id of several samples (e.g. 9): every sample is "
                               "named by its key (<shard>/<key>) instead, so each is scored as an image of its own"]
    caplog.clear()
    spec = f"{tmp_path}/coco2014/00000.tar::{tmp_path}/other/00000.tar"
    with caplog.at_level("WARNING"):
        read_whole(spec, 32)
    assert caplog.messages == [f"shards {spec}: 1 id is the id of several samples (e.g. 9): every sample is named by "
                               "its key (<shard>/<key>) instead, so each is scored as an image of its own"]


@pytest.mark.parametrize("path", ["/plain/{00000..00009}.tar", "/data/a b/{0..1}.tar", "/data/o'brien/{0..1}.tar",
                                  "/data/$HOME/{0..1}.tar", "/data/back\\slash/{0..1}.tar"])
def test_the_printed_shard_override_reaches_hydra_as_the_path_whatever_it_holds(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from supra.write_shards import shell_override

    (argument,) = shlex.split(shell_override("data.train_shards", path))  # as a POSIX shell splits it
    assert OverridesParser.create().parse_override(argument).value() == path


def test_resampled_epochs_have_the_length_asked_and_draw_shards_anew_each_epoch(tmp_path):
    shards = write_img2dataset_shards(tmp_path / "s", shards=4, per_shard=8)
    urls = expand_shards(shards["spec"])
    tokenizer = CaptionTokenizer.train([f"photo {i} of a red bus" for i in range(50)], 300)

    def epoch(e: int) -> list[list[str]]:
        s = ShardStream(urls, shard_sizes(urls), 4, 32, tokenizer, 16, shuffle_buffer=8, workers=2,
                        samples_per_epoch=48)
        s.epoch = e
        return [b["keys"] for b in DataLoader(s, batch_size=None, num_workers=2)]

    first, second = epoch(0), epoch(1)
    assert len(first) == len(second) == 12  # 48 samples = 2 workers x 6 batches of 4
    assert set(k for b in first for k in b) <= set(shards["usable"]) and first != second


@pytest.mark.parametrize(("setting", "message"), [
    ({"samples_per_epoch": 48}, r"data.samples_per_epoch=48 is the length of a resampled epoch: add data.resampled=true"),
    ({"samples_per_epoch": -100, "resampled": True}, r"data.samples_per_epoch=-100 must be >= 1"),
    ({"samples_per_epoch": 0, "resampled": True}, r"data.samples_per_epoch=0 must be >= 1"),
    ({"tokenizer_sample": 0}, r"data.tokenizer_sample=0 must be >= 1"),
    ({"shuffle_buffer": -5}, r"data.shuffle_buffer=-5 must be >= 0"),
])
def test_stream_settings_that_would_train_on_something_else_silently_are_one_line(setting, message):
    from supra.data.captioning.shards import ShardCaptionsDataModule

    with pytest.raises(SupraUserError, match=message) as err:
        ShardCaptionsDataModule("t.tar", "v.tar", "v.tar", **setting)
    assert "\n" not in str(err.value)


def test_the_set_up_line_says_the_length_of_the_epochs_to_come_and_a_resume_that_of_the_one_it_finishes(tmp_path,
                                                                                                            caplog):
    """5 shards of 5 in batches of 4: 6 batches for one worker (25 samples), 5 for two (15 + 10)."""
    import logging

    from supra.data.captioning.shards import ShardCaptionsDataModule

    train = write_img2dataset_shards(tmp_path / "train", shards=5, per_shard=5)["spec"]
    val = write_img2dataset_shards(tmp_path / "val", shards=1, per_shard=4)["spec"]
    caplog.set_level(logging.INFO, logger="supra.data.captioning.shards")
    data = ShardCaptionsDataModule(train, val, val, batch_size=4, num_workers=2)
    data.setup("fit")
    assert "shards train: 5 shards, 25 samples, 5 batches of 4 per rank per epoch" in caplog.text
    data.load_state_dict({"shard_layout": 1})  # a checkpoint of a run without workers, as Lightning restores it
    assert ("finished as the 1 worker it was begun with would have (each worker reading all their shards), "
            "6 batches per rank; later epochs are split over 2, 5 batches per rank") in caplog.text
    resampled = ShardCaptionsDataModule(train, val, val, batch_size=4, resampled=True, samples_per_epoch=48)
    resampled.setup("fit")
    assert "shards train: 5 shards, 48 samples drawn with replacement, 12 batches of 4 per rank" in caplog.text
    caplog.clear()
    one = write_img2dataset_shards(tmp_path / "one", shards=1, per_shard=5)["spec"]
    ShardCaptionsDataModule(one, val, val, batch_size=4).setup("fit")
    assert "shards train: 1 shard, 5 samples, 1 batch of 4 per rank per epoch" in caplog.text


def test_shards_of_unknown_length_refuse_a_share_of_an_epoch_as_the_validation_interval(shard_data):
    """Without _stats.json (or through pipe:) an epoch's length is unknown until it ends."""
    from types import SimpleNamespace

    from supra.data.captioning.shards import ShardCaptionsDataModule

    piped = f"pipe:cat {shard_data['spec']}"
    data = ShardCaptionsDataModule(piped, shard_data["val"], shard_data["val"], batch_size=4)
    data.trainer = SimpleNamespace(val_check_interval=0.5)  # what Lightning's Trainer holds for it
    with pytest.raises(SupraUserError, match=r"trainer.val_check_interval=0.5 is a share of an epoch, whose length is "
                                             r"unknown without the train shards' _stats.json: .* every N steps"):
        data.setup("fit")
    data.trainer = SimpleNamespace(val_check_interval=1.0)  # each epoch's end: known when it comes
    data.setup("fit")


def test_the_tokenizer_is_trained_on_a_bounded_seeded_sample_of_the_stream(tmp_path, shard_data):
    from supra.data.captioning.shards import ShardCaptionsDataModule

    def sample(seed: int) -> list[str]:
        return ShardCaptionsDataModule(shard_data["spec"], shard_data["val"], shard_data["val"], tokenizer_sample=5,
                                       seed=seed).tokenizer_captions()

    assert len(sample(0)) == 5 and sample(0) == sample(0) and sample(0) != sample(3)
    with pytest.raises(SupraUserError, match="data.val_shards and data.test_shards are needed"):
        ShardCaptionsDataModule(shard_data["spec"], "", "")


def test_a_tokenizer_cache_or_path_that_cannot_be_written_is_one_line_naming_it(tmp_path, shard_data):
    from supra.data.captioning.shards import ShardCaptionsDataModule

    (tmp_path / "afile").touch()
    shards = (shard_data["spec"], shard_data["val"], shard_data["val"])
    with pytest.raises(SupraUserError) as err:
        ShardCaptionsDataModule(*shards, batch_size=4, cache_dir=str(tmp_path / "afile" / "c")).setup("fit")
    assert str(err.value) == (f"cannot write to the tokenizer cache {tmp_path / 'afile' / 'c'} ({tmp_path / 'afile'} is a "
                              "file, not a folder): set data.cache_dir to a writable folder")
    with pytest.raises(SupraUserError, match=r"cannot write to data.tokenizer_path=.*afile/tok.json \(.*afile is a "
                                             r"file, not a folder\): point data.tokenizer_path at a file in a writable"):
        ShardCaptionsDataModule(*shards, batch_size=4, tokenizer_path=str(tmp_path / "afile" / "tok.json")).setup("fit")


def test_shards_that_are_not_there_or_hold_nothing_usable_are_one_line(tmp_path, shard_data):
    from supra.data.captioning.shard_stream import ShardLoader
    from supra.data.captioning.shards import ShardCaptionsDataModule

    missing = str(tmp_path / "train" / "{00000..00009}.tar")  # 4 of 10 exist
    with pytest.raises(SupraUserError, match="6 of 10 shards are not there"):
        ShardCaptionsDataModule(missing, shard_data["val"], shard_data["val"]).shards("train")
    typo = shard_data["val"].replace("val", "vla")
    with pytest.raises(SupraUserError, match=r"data.test_shards=.*vla.* 1 of 1 shards are not there"):
        ShardCaptionsDataModule(shard_data["spec"], shard_data["val"], typo).setup("fit")  # before training, not after
    with pytest.raises(SupraUserError, match=r"the train shards hold \d+ samples: not one full batch of "
                                             r"data.batch_size=64 for each of 1 rank x 1 worker"):
        ShardCaptionsDataModule(shard_data["spec"], shard_data["val"], shard_data["val"], batch_size=64).setup("fit")
    for url in (f"file://{shard_data['val']}", f"file:{shard_data['val']}"):  # RFC 8089's two spellings
        assert len(ShardCaptionsDataModule(url, url, url).load_split("val")) == 4
    for tar in (tmp_path / "train").glob("*.tar"):
        tar.write_bytes(b"this is not a tar file at all" * 40)
    urls = expand_shards(shard_data["spec"])
    tokenizer = CaptionTokenizer.train(["a red bus"], 300)
    loader = ShardLoader(ShardStream(urls, shard_sizes(urls), 4, 32, tokenizer, 16, workers=2), num_workers=2)
    with pytest.raises(SupraUserError, match="gave no usable sample in epoch 0"):
        list(loader)


def test_a_ddp_rank_whose_own_shards_hold_nothing_usable_is_one_line_naming_the_rank_and_its_shards(tmp_path,
                                                                                                  monkeypatch):
    """It said "the train shards (<the first>, ...) gave no usable sample": false where the first was fine and
    only this rank's share was broken (a one-process run trains on them)."""
    import supra.data.captioning.shard_stream as stream_module
    import supra.data.epoch_loader as loader_module

    shards = write_img2dataset_shards(tmp_path / "s", shards=2, per_shard=8)
    broken = stream(shards["spec"], 0)
    (mine,) = (broken.shards[i] for i in broken.assignment(2, 1)[1][0])  # rank 1's one shard of two
    Path(mine).write_bytes(b"garbage, not a tar" * 100)
    for module in (stream_module, loader_module):
        monkeypatch.setattr(module, "rank_and_world", lambda: (1, 2))
    with pytest.raises(SupraUserError) as refused:
        list(ShardLoader(stream(shards["spec"], 0), num_workers=0))
    assert str(refused.value).startswith(f"rank 1 of 2: its share of the train shards in epoch 0 ({mine}) gave no "
                                         "usable sample, so it has no batch to train on while the other ranks do")
    assert str(refused.value).endswith("train on fewer ranks, or set data.resampled=true (every rank then draws "
                                       "from all of them)")
    for module in (stream_module, loader_module):  # rank 0's shard is fine: it has its batches
        monkeypatch.setattr(module, "rank_and_world", lambda: (0, 2))
    assert len(list(ShardLoader(stream(shards["spec"], 0), num_workers=0))) == 2


def test_scoring_the_streamed_train_shards_is_one_line_saying_what_to_score_instead(shard_data):
    """evaluate.py ckpt=<shards-trained run> data.split=train sets the datamodule up for a test of train."""
    from supra.data.captioning.shards import ShardCaptionsDataModule

    with pytest.raises(SupraUserError, match=r"data.split=train: the train shards are streamed, never read whole .*"
                                             r"name a few train shards as data.test_shards="):
        ShardCaptionsDataModule(shard_data["spec"], shard_data["val"], shard_data["val"], split="train",
                                batch_size=4).setup("test")


def test_shard_images_decode_like_every_other_source(tmp_path):
    """Transparency over white and EXIF orientation, as data/images.py's load_rgb does for files."""
    import io

    from PIL import Image

    from supra.data.caption_sources.shards import decode_image

    buffer = io.BytesIO()
    Image.new("RGBA", (40, 20), (255, 0, 0, 0)).save(buffer, format="PNG")
    assert decode_image(buffer.getvalue(), 16).min() == 255  # all transparent: white, not black


def _jpeg(height: int, width: int, mode: str = "RGB", orientation: int | None = None, comments: int = 0,
          **options) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(height * width)
    coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((width, height))
    pixels = np.clip(np.asarray(coarse, dtype=np.int16) + rng.integers(-20, 20, (height, width, 3)), 0, 255)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).convert(mode).save(buffer, "JPEG", exif=exif.tobytes(), **options)
    data = buffer.getvalue()
    comment = b"\xff\xfe" + (65535).to_bytes(2, "big") + b"c" * 65533  # comment segments before all else
    return data[:2] + comment * comments + data[2:]


@pytest.mark.parametrize("jpeg, fast", [
    ({"height": 375, "width": 500}, True),  # Flickr's typical photo: DCT scale 1/2
    ({"height": 1000, "width": 1500}, True),  # 1/8
    ({"height": 447, "width": 600, "subsampling": 0}, True),  # 4:4:4
    ({"height": 375, "width": 500, "subsampling": 1, "progressive": True}, True),  # 4:2:2, progressive
    ({"height": 375, "width": 500, "mode": "L"}, True),  # grey
    ({"height": 90, "width": 100}, True),  # smaller than the model's input: no DCT scaling
    ({"height": 375, "width": 500, "orientation": 1}, True),  # EXIF that asks for no turn
    ({"height": 375, "width": 500, "orientation": 6}, False),  # EXIF rotation: PIL turns it
    ({"height": 375, "width": 500, "orientation": 3, "comments": 2}, False),  # EXIF 128 KB into the file
    ({"height": 375, "width": 500, "mode": "CMYK"}, False),  # PIL inverts Adobe's CMYK
])
def test_jpegs_decode_by_libjpeg_turbo_to_the_pixels_pil_draft_mode_gives(jpeg, fast):
    """Streamed shards decode JPEGs through simplejpeg where it applies, and fall back to PIL where it
    does not: either way the image is the one load_rgb's draft mode gives, to the pixel."""
    import io

    from supra.data.caption_sources.shards import decode_image
    from supra.data.images import image_to_uint8, jpeg_draft_pixels, load_rgb

    data = _jpeg(**jpeg)
    assert (jpeg_draft_pixels(data, 112) is not None) == fast
    expected = image_to_uint8(load_rgb(io.BytesIO(data), draft=112), 112)
    assert torch.equal(decode_image(data, 112), expected)


@pytest.mark.parametrize("height, width", [(375, 500), (188, 250), (50, 70), (112, 112), (113, 111), (33, 1000), (1, 1)])
def test_squashing_channels_last_pixels_in_place_gives_the_pixels_of_a_channels_first_copy(height, width):
    """squashed() lets the resize read a decoder's [H, W, 3] pixels in place (twice as fast) instead of
    copying them to [3, H, W] first: the same pixels, smaller, larger or the model's size already."""
    from supra.data.images import channels_first, resize_uint8, squashed

    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = squashed(pixels, 112)
    assert out.is_contiguous() and out.shape == (3, 112, 112)
    assert torch.equal(out, resize_uint8(channels_first(pixels), 112))


@pytest.mark.parametrize("resize", ["crop", "pad"])
@pytest.mark.parametrize("height, width", [(375, 500), (500, 375), (50, 70), (64, 64), (65, 63), (33, 1000), (1, 1)])
def test_cropped_or_padded_pictures_are_resized_through_the_same_route_to_the_same_pixels(height, width, resize):
    """fit() (media folders, GIF frames, the demo, explain) squares a picture in numpy, a crop as a view,
    then resizes it as squashed() does: the pixels of a [3, H, W] copy of the square."""
    from supra.data.images import channels_first, fit, resize_uint8, to_square

    pixels = np.random.default_rng(height + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = fit(pixels, 64, resize)
    assert out.is_contiguous() and out.shape == (3, 64, 64)
    assert torch.equal(out, resize_uint8(channels_first(to_square(pixels, resize)), 64))


def test_a_truncated_jpeg_is_named_unreadable_not_grey_filled():
    """libjpeg-turbo would fill the missing rows with grey; the fast path refuses and PIL raises."""
    from supra.data.caption_sources.shards import decode_image
    from supra.data.images import UNREADABLE, jpeg_draft_pixels

    data = _jpeg(375, 500)[:9000]
    assert jpeg_draft_pixels(data, 112) is None
    with pytest.raises(UNREADABLE):
        decode_image(data, 112)


def test_images_decoded_in_runs_stay_with_their_own_samples_when_some_are_corrupt():
    """Samples are decoded a run at a time (DECODE_RUN), then resized: over several runs, with corrupt
    images among them, each usable sample comes out once, in order, with its own image."""
    from supra.data.caption_sources.shards import DECODE_RUN, ShardSample, decode_image

    pictures = [_jpeg(30 + i % 7, 40 + i % 11, quality=50 + i % 40) for i in range(2 * DECODE_RUN + 9)]
    corrupt = {3, DECODE_RUN - 1, DECODE_RUN, 2 * DECODE_RUN + 4}
    samples = [ShardSample(f"s/{i}", [f"caption {i}"], b"\xff\xd8 not a jpeg" if i in corrupt else data)
               for i, data in enumerate(pictures)]
    tally = Unusable()
    decoded = list(decoded_samples(samples, 16, tally))
    assert [s.key for s, _ in decoded] == [f"s/{i}" for i in range(len(pictures)) if i not in corrupt]
    assert all(torch.equal(image, decode_image(sample.image, 16)) for sample, image in decoded)
    assert len({np.asarray(image).tobytes() for _, image in decoded}) == len(decoded)  # all different pictures
    assert dict(tally) == {"unreadable image": len(corrupt)}


def test_large_pictures_are_resized_and_handed_on_before_the_rest_of_their_run_is_decoded():
    """A run's decoded pictures are bounded in bytes (DECODED_BYTES), not only in number: full-size
    photos are handed on once they fill it, before the samples after them are decoded."""
    from supra.data.caption_sources.shards import DECODED_BYTES, ShardSample

    big = _jpeg(1500, 2000, quality=30)  # 9 MB decoded
    count = -(-DECODED_BYTES // (1500 * 2000 * 3))
    samples = [ShardSample(f"s/{i}", ["a caption"], big) for i in range(count)]
    samples.append(ShardSample("s/corrupt", ["a caption"], b"\xff\xd8 not a jpeg"))
    tally = Unusable()
    stream = decoded_samples(samples, 16, tally, draft=False)
    first, image = next(stream)
    assert first.key == "s/0" and image.shape == (3, 16, 16)
    assert not tally  # the sample after them not decoded yet
    assert [s.key for s, _ in stream] == [f"s/{i}" for i in range(1, count)]
    assert dict(tally) == {"unreadable image": 1}


def test_each_epoch_says_what_was_unusable_even_without_workers_and_read_as_lightning_reads(tmp_path, caplog):
    import itertools
    import logging

    from supra.data.captioning.shard_stream import ShardLoader

    shards = write_img2dataset_shards(tmp_path / "s", shards=2, per_shard=8)
    urls = expand_shards(shards["spec"])
    stream = ShardStream(urls, shard_sizes(urls), 4, 32, CaptionTokenizer.train(["a red bus"], 300), 16, workers=1)
    with caplog.at_level(logging.INFO, logger="supra.data.captioning.shard_stream"):
        batches = list(itertools.islice(ShardLoader(stream, num_workers=0), len(stream)))  # no more than len()
    said = [r.message for r in caplog.records if r.message.startswith("shards, epoch 0, rank 0 worker 0:")]
    assert len(batches) == len(stream) and len(said) == 1 and f"{len(stream)} batches of 4" in said[0]


def test_val_or_test_shards_the_fit_trains_on_are_said_in_a_warning(tmp_path, caplog):
    """Scores of shards the train list holds too are of images the fit trained on: said, not refused (a quick look
    at a fit may want it so); a val or test list of its own is not."""
    import logging

    from supra.data.captioning.shards import ShardCaptionsDataModule

    train = write_img2dataset_shards(tmp_path / "train", shards=3, per_shard=4)
    val = write_img2dataset_shards(tmp_path / "val", shards=1, per_shard=4)["spec"]
    test = write_img2dataset_shards(tmp_path / "test", shards=1, per_shard=4)["spec"]
    caplog.set_level(logging.WARNING, logger="supra.data.caption_sources.shards")
    ShardCaptionsDataModule(train["spec"], val, test, batch_size=4).setup("fit")
    assert "shares" not in caplog.text
    trained = str(tmp_path / "train" / "00001.tar")
    ShardCaptionsDataModule(train["spec"], val, trained, batch_size=4).setup("fit")
    assert (f"data.test_shards shares 1 of its 1 shard with data.train_shards (e.g. {trained}): its scores are of "
            "images the fit trains on") in caplog.text
    assert "data.val_shards shares" not in caplog.text


def test_test_shards_that_val_holds_too_are_said_in_a_warning(tmp_path, caplog):
    """best.ckpt is chosen on val: a test score of val's images is not independent of that choice."""
    import logging

    from supra.data.caption_sources.shards import warn_scored_shards_trained_on

    runs = [str(tmp_path / run / "00000.tar") for run in ("runA", "runB", "train")]
    caplog.set_level(logging.WARNING, logger="supra.data.caption_sources.shards")
    warn_scored_shards_trained_on({"train": runs[2:], "val": runs[:2], "test": runs[1:2]})
    assert (f"data.test_shards shares 1 of its 1 shard with data.val_shards (e.g. {runs[1]}): its scores are of "
            "images best.ckpt was chosen on") in caplog.text
    assert "with data.train_shards" not in caplog.text


@pytest.mark.parametrize(("tested", "its"), [(1, "its 1 shard"), (2, "its 2 shards")])
def test_the_shared_shards_warning_counts_a_list_of_one_in_the_singular_and_of_two_in_the_plural(tmp_path, caplog,
                                                                                                tested, its):
    import logging

    from supra.data.caption_sources.shards import warn_scored_shards_trained_on

    runs = [str(tmp_path / f"{shard:05d}.tar") for shard in range(3)]
    caplog.set_level(logging.WARNING, logger="supra.data.caption_sources.shards")
    warn_scored_shards_trained_on({"train": runs[:1], "val": runs[2:], "test": runs[:tested]})
    assert [r.message for r in caplog.records] == [
        f"data.test_shards shares 1 of {its} with data.train_shards (e.g. {runs[0]}): its scores are of images the "
        "fit trains on; name shards the train list leaves out to score unseen images"]


@pytest.mark.parametrize("spelling", ["relative", "./relative", "file:// URL", "a link to it"])
def test_a_trained_shard_is_noticed_in_the_test_list_however_its_path_is_spelled(tmp_path, monkeypatch, caplog,
                                                                                 spelling):
    import logging

    from supra.data.caption_sources.shards import warn_scored_shards_trained_on

    write_img2dataset_shards(tmp_path / "train", shards=1, per_shard=4)
    (tmp_path / "link.tar").symlink_to(tmp_path / "train" / "00000.tar")
    monkeypatch.chdir(tmp_path)
    test = {"relative": "train/00000.tar", "./relative": "./train/00000.tar",
            "file:// URL": f"file://{tmp_path}/train/00000.tar", "a link to it": "link.tar"}[spelling]
    caplog.set_level(logging.WARNING, logger="supra.data.caption_sources.shards")
    warn_scored_shards_trained_on({"train": [str(tmp_path / "train" / "00000.tar")], "val": [], "test": [test]})
    assert f"data.test_shards shares 1 of its 1 shard with data.train_shards (e.g. {test})" in caplog.text


def test_write_shards_splits_a_folder_by_the_shares_training_takes_and_warns_of_a_one_image_split(tmp_path, capsys,
                                                                                                  caplog):
    """write_shards source=folder split 10% / 10% whatever data.val_fraction a run on the folder was given:
    val_fraction= and test_fraction= now size its shards' splits as they size training's, and a split of one
    image, whose CIDEr a run on the shards scores as 0, is warned of with the option as this command takes it."""
    from supra.data.caption_sources.sources import read_caption_source
    from tests.conftest import run_command
    from tests.flickr8k_fixtures import write_images

    root = tmp_path / "photos"
    names = [f"IMG_{i:04d}.jpg" for i in range(20)]
    write_images(root, names)
    for name in names:
        (root / f"{name[:-4]}.txt").write_text(f"a photo called {name}\n")
    run_command("write_shards", "source=folder", f"root={root}", f"out={tmp_path / 'wide'}", "val_fraction=0.25",
                "test_fraction=0.25", "show_progress=false", run_dir=tmp_path)
    wide = read_caption_source("folder", root, split_fractions={"val_fraction": 0.25, "test_fraction": 0.25})
    for split, keys in wide.splits.items():
        urls = sorted(str(p) for p in (tmp_path / "wide" / split).glob("*.tar"))
        assert sorted(s.captions[0] for s in usable_samples(urls, Unusable())) == sorted(
            wide.captions[k][0] for k in keys)
    assert len(wide.splits["val"]) > 1
    with caplog.at_level("WARNING", logger="supra.write_shards"):
        run_command("write_shards", "source=folder", f"root={root}", f"out={tmp_path / 'default'}",
                    "show_progress=false", run_dir=tmp_path)
    assert f"the val split of root={root} holds 1 of its 20 images (val_fraction=0.1): CIDEr over one image is 0 " \
           "at every validation, so best.ckpt (chosen by val/CIDEr) stays the first validation's and a sweep's trials " \
           "all tie; set val_fraction=0.25 (about 5 images)" in [r.getMessage() for r in caplog.records]


def test_a_split_written_as_shards_scores_exactly_as_the_folder_it_was_written_from(tmp_path, capsys):
    """data=shards draft-decoded its val and test JPEGs (each DCT-scaled before the resize): the same photos
    scored as a folder and as its shards gave other losses. Draft mode is the train stream's alone now."""
    import lightning as L
    from PIL import Image

    from supra.runner.components import build_datamodule, build_task
    from tests.conftest import run_command

    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # 320x240: draft mode would decode them at half size, before the resize to 112
        smooth = np.kron(rng.integers(0, 256, (30, 40, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        Image.fromarray(smooth).save(root / f"photo{i:02d}.jpg", quality=90)
        (root / f"photo{i:02d}.txt").write_text(f"a photo of {['red', 'blue', 'green'][i % 3]} squares number {i}")
    run_command("write_shards", "source=folder", f"root={root}", f"out={tmp_path / 'shards'}", "show_progress=false",
                f"paths.cache_dir={tmp_path / 'cache'}", run_dir=tmp_path)
    capsys.readouterr()
    torch.manual_seed(0)
    run = ["model.test_metrics=[Bleu]", f"paths.cache_dir={tmp_path / 'cache'}", "data.num_workers=0"]
    task = build_task(compose_config("train", tmp_path / "task", run).model, None)
    tokenizer = CaptionTokenizer.train([p.read_text() for p in root.glob("*.txt")], 300)
    shards = {f"data.{split}_shards": str(tmp_path / "shards" / split / "00000.tar") for split in ("val", "test")}
    losses = {}
    for data, options in (("caption_folder", [f"data.root={root}"]),
                          ("shards", [f"{key}={value}" for key, value in shards.items()])):
        cfg = compose_config("train", tmp_path / data, [*run, f"data={data}", *options])
        datamodule = build_datamodule(cfg.data, task, tokenizer=tokenizer)
        trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)
        [scores] = trainer.test(task, datamodule=datamodule, verbose=False)
        losses[data] = scores["test/loss"]
    assert losses["shards"] == losses["caption_folder"]
    # the a2a mixture's and the VQ-VAE's shards too: val and test decoded in full, train in draft mode (if on)
    from supra.data.media.shard_images import ShardImagesMediaDataModule

    media = ShardImagesMediaDataModule(**{key.removeprefix("data."): value for key, value in shards.items()},
                                       train_shards=str(tmp_path / "shards" / "train" / "00000.tar"), image_size=64)
    for split in ("train", "test"):
        expected = read_whole(str(tmp_path / "shards" / split / "00000.tar"), 64, draft=split == "train")
        assert torch.equal(media.load_split(split).pixels, expected.images)


def png_header(width: int, height: int) -> bytes:
    """A PNG of width x height with no pixel data: a picture that loaders refuse by its header, never decoding it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"") + chunk(b"IEND", b""))


def folder_with_a_bomb_and_a_broken_picture(root: Path) -> Path:
    """A caption folder with odd/bomb.png (a header of 400M pixels, over the 100M read) and odd/broken.png (cut
    short), each with its caption."""
    from tests.caption_source_fixtures import write_caption_folder

    write_caption_folder(root)
    (root / "odd").mkdir()
    (root / "odd" / "bomb.png").write_bytes(png_header(20_000, 20_000))
    (root / "odd" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    for name in ("bomb", "broken"):
        (root / "odd" / f"{name}.txt").write_text(f"a picture called {name}\n")
    return root


def test_a_picture_too_large_is_counted_as_too_large_alike_by_the_folders_set_up_and_write_shards(tmp_path, capsys):
    """A decompression bomb was one more "unreadable image" in the summaries, where caption says it is too large
    (resize it); the set-up line and write_shards now count it apart, naming the same examples."""
    from supra.data.captioning.photos import PhotoCaptionsDataModule
    from tests.conftest import run_command

    root = folder_with_a_bomb_and_a_broken_picture(tmp_path / "photos")
    counted = "1 unreadable image (e.g. odd/broken.png), 1 too large (resize them) (e.g. odd/bomb.png)"
    photos = PhotoCaptionsDataModule(source="folder", root=str(root), cache_dir=str(tmp_path / "cache"),
                                     show_progress=False, batch_size=4, eval_batch_size=4)
    photos.setup("fit")
    assert counted in photos.summary
    run_command("write_shards", "source=folder", f"root={root}", f"out={tmp_path / 'shards'}", "show_progress=false",
                f"paths.cache_dir={tmp_path / 'cache'}", run_dir=tmp_path)
    assert counted in capsys.readouterr().out


@pytest.mark.parametrize("recorded_before", ["{reason}", "DecompressionBombError: {reason}"])
def test_a_picture_too_large_recorded_by_an_older_image_cache_is_still_counted_as_too_large(recorded_before, tmp_path):
    """Image caches built before "too large: ..." was recorded hold the loader's reason alone, or after Pillow's class
    name: they are read as they are (not rebuilt), and the set-up line counted such a picture as unreadable."""
    from supra.data.captioning.photos import PhotoCaptionsDataModule
    from supra.data.images import TOO_LARGE_PREFIX

    root, cache = folder_with_a_bomb_and_a_broken_picture(tmp_path / "photos"), tmp_path / "cache"

    def summary() -> str:
        photos = PhotoCaptionsDataModule(source="folder", root=str(root), cache_dir=str(cache), show_progress=False,
                                         batch_size=4, eval_batch_size=4)
        photos.setup("fit")
        return photos.summary

    counted = "1 unreadable image (e.g. odd/broken.png), 1 too large (resize them) (e.g. odd/bomb.png)"
    assert counted in summary()
    [meta_path] = cache.rglob("images_*.json")
    meta = json.loads(meta_path.read_text())
    reason = meta["failed"]["odd/bomb.png"].removeprefix(TOO_LARGE_PREFIX)
    meta["failed"]["odd/bomb.png"] = recorded_before.format(reason=reason)
    meta_path.write_text(json.dumps(meta))
    assert counted in summary()


def test_write_shards_keeps_a_samples_captions_and_file_readable_in_its_json(tmp_path):
    """As img2dataset writes its own: UTF-8 text, so `tar -xf` then grep finds a caption in any script."""
    from rich.progress import Progress

    from supra.data.caption_sources.index import CaptionIndex
    from supra.write_shards import write_split
    from tests.flickr8k_fixtures import write_images

    write_images(tmp_path / "photos", ["猫.jpg"])
    captions = {"猫.jpg": ["一只猫坐在垫子上", "a cat"]}
    index = CaptionIndex("folder", tmp_path / "photos", {"train": ["猫.jpg"]}, captions, references=captions)
    assert write_split(index, tmp_path / "photos", "train", tmp_path / "out", 8, Progress(disable=True), {}) == 1
    sample = next(raw_samples([str(tmp_path / "out" / "00000.tar")], Unusable()))
    assert '"url": "猫.jpg", "caption": "一只猫坐在垫子上"'.encode() in sample["json"]
