"""A Hugging Face dataset on disk (data=hf_disk) in the layouts the Hub and `datasets` write, and the ways a real
copy goes wrong: each is read as README says, or refused in one line saying what to do."""

from __future__ import annotations

import os

from supra.data.caption_sources.sources import read_caption_source
from tests.caption_source_fixtures import hf_split


def test_a_parquet_file_rewritten_with_its_time_kept_is_read_again_not_from_its_old_arrow_copy(tmp_path):
    """cp -p, rsync -a and tar x keep a file's mtime: the Arrow copy, keyed by path and mtime alone, gave the
    old rows while the image cache's key said the file had changed."""
    (tmp_path / "hf").mkdir()
    parquet = tmp_path / "hf" / "train.parquet"
    hf_split("train", 8).to_parquet(str(parquet))
    before = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert before.captions["train/0"] == ["a train picture 0"]
    kept = os.stat(parquet)
    hf_split("edited", 8).to_parquet(str(parquet))
    os.utime(parquet, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    after = read_caption_source("hf_disk", tmp_path / "hf", cache_dir=tmp_path / "c")
    assert after.captions["train/0"] == ["a edited picture 0"]
