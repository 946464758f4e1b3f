"""The local paths a run records (its data folders, shards, tokenizer files, model files) are absolute."""

from __future__ import annotations

import os

from supra.runner.run_paths import as_trained, with_absolute_paths
from supra.runner.training import recorded_run_config
from tests.conftest import compose_config


def test_a_run_records_its_relative_data_folder_absolute_as_its_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config("train", tmp_path / "run", ["experiment=vlm_caption_folder", "data.root=../data/my photos"])
    recorded = recorded_run_config(cfg)
    assert recorded["data"]["root"] == str(tmp_path.parent / "data" / "my photos")
    assert recorded["data"]["cache_dir"] == cfg.data.cache_dir  # absolute already: as it was


def test_every_local_path_of_data_and_model_files_is_made_absolute_and_urls_and_hub_ids_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vq.ckpt").write_bytes(b"")
    run_config = {
        "model": {"vqvae_ckpt": "vq.ckpt", "init_from": "someone/a2a-nano"},  # a Hub id: not a path here
        "data": {
            "train_shards": "shards/{00000..00003}.tar::s3://bucket/{0..9}.tar",
            "val_shards": ["./val/0.tar", "pipe:curl -s https://x/0.tar", "file:val/1.tar"],
            "test_shards": "/abs/test.tar", "tokenizer_path": "tok.json", "gpt2_tokenizer": None,
            "sources": {"media": {"root": "gifs/../media", "mode": "images"}, "photos": None},
        },
    }
    recorded = with_absolute_paths(run_config)
    here = str(tmp_path)
    assert recorded["model"] == {"vqvae_ckpt": f"{here}/vq.ckpt", "init_from": "someone/a2a-nano"}
    data = recorded["data"]
    assert data["train_shards"] == f"{here}/shards/{{00000..00003}}.tar::s3://bucket/{{0..9}}.tar"
    assert data["val_shards"] == [f"{here}/val/0.tar", "pipe:curl -s https://x/0.tar", "file:val/1.tar"]
    assert data["test_shards"] == "/abs/test.tar" and data["tokenizer_path"] == f"{here}/tok.json"
    assert data["sources"] == {"media": {"root": f"{here}/media", "mode": "images"}, "photos": None}
    assert run_config["data"]["tokenizer_path"] == "tok.json"  # the given config is left as it was


def test_a_link_followed_by_dotdot_is_kept_as_written_where_tidying_it_would_name_another_folder(tmp_path, monkeypatch):
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    os.symlink(tmp_path / "real" / "inner", tmp_path / "work" / "link")
    monkeypatch.chdir(tmp_path / "work")
    recorded = with_absolute_paths({"data": {"root": "link/../photos"}})
    assert recorded["data"]["root"] == f"{tmp_path / 'work'}/link/../photos"  # that is real/photos, not work/photos


def test_a_stored_relative_path_is_read_against_the_folder_its_run_trained_in(tmp_path):
    stored = {"paths": {"root_dir": str(tmp_path / "cwd")}, "data": {"root": "../photos"}}
    assert as_trained(stored)["data"]["root"] == str(tmp_path / "photos")
    assert as_trained({"data": {"root": "../photos"}}) == {"data": {"root": "../photos"}}  # no folder recorded
