"""Release folders on the Hugging Face Hub, both ways, tested offline: a local Hugging Face cache laid out as
huggingface_hub lays it serves `ckpt=org/name`; pushing without a login is one line and keeps the folder;
the exported folder and its card are what huggingface_hub would upload and show; a network that never answers
or refuses (a local proxy here) gives up in bounded time and falls back to the cache."""

from __future__ import annotations

import hashlib
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, constants
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

from supra.artifacts.captioner_release import export_release
from supra.artifacts.hub import local_path
from supra.runner.evaluation import evaluate
from supra.utils.errors import SupraUserError
from tests.conftest import ROOT, compose_config, run_command

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: Path, repo_id: str, folder: Path, skip: tuple[str, ...] = ()) -> Path:
    """`folder`'s files as huggingface_hub caches a downloaded repo: blobs by hash, a snapshot of links to
    them under the commit, refs/main naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        if path.name in skip:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        (repo / "blobs" / digest).write_bytes(path.read_bytes())
        (snapshot / path.name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture(scope="module")
def release(trained_run, tmp_path_factory) -> Path:
    return export_release(trained_run / "checkpoints" / "best.ckpt", tmp_path_factory.mktemp("export") / "release")


def test_a_cached_hub_release_evaluates_like_the_folder_itself_offline(release, offline_cache, tmp_path):
    cache_repo(offline_cache, "supralabs/tiny-vl", release)
    assert local_path("supralabs/tiny-vl") == offline_cache / "models--supralabs--tiny-vl" / "snapshots" / COMMIT
    # no METEOR (a Java start-up in each process): equal predictions.json, the same captions of the same images,
    # give it equal as surely as they give the metrics scored here
    scoring = ["data=shapes", "data.num_test=12", "metrics=[Bleu,ROUGE_L,CIDEr]"]
    folder = evaluate(compose_config("eval", tmp_path / "folder", [f"ckpt={release}", *scoring]))
    env = {**os.environ, "HF_HUB_CACHE": str(offline_cache), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(  # evaluate.py ckpt=org/name, as a user types it
        [sys.executable, "evaluate.py", "ckpt=supralabs/tiny-vl", *scoring, f"hydra.run.dir={tmp_path / 'hub'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    from_hub = json.loads((tmp_path / "hub" / "metrics.json").read_text())
    assert from_hub.pop("ckpt") == "supralabs/tiny-vl" and folder.pop("ckpt") == str(release)  # each as scored
    assert from_hub == folder
    assert (tmp_path / "hub" / "predictions.json").read_text() == (tmp_path / "folder" / "predictions.json").read_text()


def test_a_revision_is_read_from_its_snapshot(release, offline_cache):
    cache_repo(offline_cache, "supralabs/tiny-vl", release)
    assert local_path(f"supralabs/tiny-vl@{COMMIT}").name == COMMIT


def test_a_repo_missing_from_the_cache_offline_is_one_line(offline_cache):
    with pytest.raises(SupraUserError) as err:
        local_path("supralabs/nowhere", "ckpt")
    assert "ckpt=supralabs/nowhere is neither a local path nor in the Hugging Face cache" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_a_cached_file_whose_blob_was_cleaned_away_is_named_as_a_broken_link(release, offline_cache, name):
    snapshot = cache_repo(offline_cache, f"supralabs/cleaned-{name[:-5]}", release)
    (snapshot / name).resolve().unlink()  # a partial cache clean: the snapshot's link is left, its blob gone
    with pytest.raises(SupraUserError) as err:
        local_path(f"supralabs/cleaned-{name[:-5]}", "ckpt")
    assert str(err.value) == (
        f"ckpt=supralabs/cleaned-{name[:-5]}: the Hugging Face cache's copy is damaged: {name} links to a file no "
        f"longer there (a partly cleaned cache): fetch the release again online (the missing files are downloaded "
        f"again), or delete {snapshot} from the cache")


def test_several_links_whose_blobs_were_cleaned_away_are_named_together(offline_cache, tmp_path):
    (tmp_path / "files").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "files" / name).write_text(name)
    snapshot = cache_repo(offline_cache, "supralabs/cleaned", tmp_path / "files")
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).resolve().unlink()
    with pytest.raises(SupraUserError, match="damaged: config.json, model.safetensors link to files no longer there "):
        local_path("supralabs/cleaned", "ckpt")


def test_a_revision_the_cache_lacks_of_a_cached_repo_names_the_revisions_it_holds(offline_cache, tmp_path):
    """It said the repo was "neither a local path nor in the Hugging Face cache", which it was, at main and v1."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "config.json").write_text("{}")
    repo = cache_repo(offline_cache, "supralabs/tiny-vl", tmp_path / "files").parent.parent
    (repo / "refs" / "v1").write_text(COMMIT)
    with pytest.raises(SupraUserError) as err:
        local_path("supralabs/tiny-vl@nosuchrev", "ckpt")
    assert str(err.value) == (
        "ckpt=supralabs/tiny-vl@nosuchrev: the Hugging Face cache holds supralabs/tiny-vl at main, v1 but not at "
        "nosuchrev, and the Hub is not asked (offline mode: HF_HUB_OFFLINE=1): give one of those "
        "(org/name@revision), or download it once online")


def test_a_hub_release_of_the_wrong_kind_is_named_as_typed_not_by_its_cache_folder(release, offline_cache):
    from supra.artifacts.a2a_release import load_a2a

    cache_repo(offline_cache, "org/vlm", release)
    with pytest.raises(SupraUserError) as err:
        load_a2a("org/vlm")  # python -m supra.generate ckpt=org/vlm
    assert str(err.value).startswith("ckpt=org/vlm is a SupraVL-Nano captioner release, not an a2a_nano one")


def test_a_repo_without_config_json_is_not_a_release_in_one_line(release, offline_cache):
    cache_repo(offline_cache, "someone/not-supra", release, skip=("config.json",))
    with pytest.raises(SupraUserError, match=r"someone/not-supra is not a Supra or SupraVL release: it lacks config.json"):
        local_path("someone/not-supra", "ckpt")


def test_a_path_that_exists_is_never_taken_for_a_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert local_path("org/name") == Path("org/name")


def test_push_without_a_login_is_one_line_and_leaves_the_folder(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    with pytest.raises(SystemExit) as exit_info:
        run_command("export", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'release'}",
                    "push_to=me/my-captioner")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "huggingface-cli login" in err and "HF_TOKEN" in err
    assert (tmp_path / "release" / "model.safetensors").is_file() and (tmp_path / "release" / "README.md").is_file()


def test_a_push_that_cannot_reach_the_hub_is_one_line_and_a_bad_repo_id_is_refused_before_the_work(
        trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # a Hub nothing listens for: as no network
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'release'}",
                    "push_to=me/my-captioner")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "push_to=me/my-captioner: the upload failed (" in err
    assert f"the release folder is written at {tmp_path / 'release'}" in err
    assert (tmp_path / "release" / "model.safetensors").is_file()
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'other'}",
                    "push_to=me/my-captioner@main")
    assert "push_to='me/my-captioner@main' is not a Hub repo id" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_a_push_under_offline_mode_is_refused_before_the_work_saying_to_unset_it(trained_run, tmp_path, monkeypatch,
                                                                                 capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 sets it
    with pytest.raises(SystemExit) as exit_info:
        run_command("export", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'release'}",
                    "push_to=me/my-captioner")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: push_to=me/my-captioner: HF_HUB_OFFLINE is set, which keeps huggingface_hub "
                                       "off the Hub: unset HF_HUB_OFFLINE to push, or leave push_to out to write the "
                                       "release folder alone\n")
    assert not (tmp_path / "release").exists()  # refused before the work: an offline choice is known at once


def test_the_upload_plan_and_the_card_are_what_the_hub_expects(trained_run, tmp_path):
    run_command("export", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'release'}",
                "license=apache-2.0")
    folder = tmp_path / "release"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    planned = sorted(filter_repo_objects(files, ignore_patterns=DEFAULT_IGNORE_PATTERNS))  # upload_folder's filter
    assert planned == ["README.md", "config.json", "model.pt", "model.safetensors", "samples.png", "scoring.json",
                       "tokenizer.json"]
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "supra" and card.data.license == "apache-2.0"
    assert card.data.pipeline_tag == "image-to-text" and "image-captioning" in card.data.tags
    assert card.data.datasets == ["shapes"]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    shown = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert shown["CIDEr"] == metrics["CIDEr"] and shown["attr_acc"] == metrics["attr_acc"]
    assert card.text.lstrip().startswith("# SupraVL-Nano-900k")


def test_fine_tuning_starts_from_a_hub_release_with_its_tokenizer(release, offline_cache, train_config):
    from supra.runner.training import train

    cache_repo(offline_cache, "supralabs/tiny-vl", release)
    cfg = train_config("model.init_from=supralabs/tiny-vl", "train=false", run="from_hub")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "tokenizer.json").read_text() == (release / "tokenizer.json").read_text()
    assert (run / "metrics.json").is_file()


class RecordedHub:
    """Stands in for the Hub service (no network here): an existing repo, public or private, that records
    what push_folder asks of it."""

    def __init__(self, private: bool) -> None:
        self.private, self.uploads = private, []

    def __call__(self, **_: object) -> RecordedHub:  # HfApi(library_name=...)
        return self

    def create_repo(self, repo_id: str, **_: object) -> str:
        return f"https://huggingface.co/{repo_id}"

    def repo_info(self, repo_id: str) -> object:
        return type("RepoInfo", (), {"private": self.private})()

    def upload_folder(self, **kwargs: object) -> None:
        self.uploads.append(kwargs)


def test_a_push_deletes_the_release_files_the_folder_lacks_and_never_makes_a_public_repo_look_private(
        trained_run, tmp_path, monkeypatch):
    import huggingface_hub

    from supra.artifacts.hub import push_folder

    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    folder = export_release(str(trained_run / "checkpoints" / "best.ckpt"), str(tmp_path / "release"))
    hub = RecordedHub(private=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", hub)
    push_folder(folder, "me/model")
    # an a2a release pushed there before left vqvae.safetensors: deleted by the same commit, not left behind
    assert hub.uploads[-1]["delete_patterns"] == ["vqvae.safetensors"]
    with pytest.raises(SupraUserError, match=r"^push_to=me/model exists and is public, and private=true does not change"):
        push_folder(folder, "me/model", private=True)
    assert len(hub.uploads) == 1


def test_export_never_replaces_the_hugging_face_cache_it_reads_from(release, offline_cache, tmp_path, capsys):
    snapshot = cache_repo(offline_cache, "me/vl", release)
    repo = offline_cache / "models--me--vl"
    cached = sorted(p.relative_to(offline_cache) for p in offline_cache.rglob("*"))
    # the cache itself, a folder holding it, and folders in it: refused in one line, overwrite=true or not
    for out, ckpt in ((offline_cache, "me/vl"), (offline_cache.parent, "me/vl"), (repo / "blobs", "me/vl"),
                      (repo / "refs", "me/vl"), (repo / "blobs", str(snapshot))):  # the snapshot as a path: its links
        with pytest.raises(SystemExit):
            run_command("export", f"ckpt={ckpt}", f"out={out}", "overwrite=true")
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("Hugging Face cache" in err or "/blobs/" in err), err
    assert sorted(p.relative_to(offline_cache) for p in offline_cache.rglob("*")) == cached
    copy = run_command("export", "ckpt=me/vl", f"out={tmp_path / 'copy'}")
    assert (copy / "model.safetensors").read_bytes() == (release / "model.safetensors").read_bytes()


def test_export_of_a_hub_id_fetches_the_whole_repo_and_other_commands_its_release_files(
        release, offline_cache, monkeypatch):
    import huggingface_hub

    from supra.artifacts.hub import RELEASE_FILES, hub_release

    snapshot = cache_repo(offline_cache, "me/vl", release)
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kwargs: asked.append(kwargs["allow_patterns"]) or str(snapshot))
    local_path("me/vl")  # caption, evaluate, a fine-tune: the release's files only
    local_path("me/vl", whole_repo=True)  # export copies the repo as it is (its LICENSE ...)
    assert asked == [list(RELEASE_FILES), None]
    hub_release.cache_clear()


def test_a_hub_that_does_not_answer_online_is_not_called_offline_mode(offline_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def no_network(*_: object, **__: object) -> str:
        raise LocalEntryNotFoundError("cannot find the requested files in the cache and outgoing traffic is disabled")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(SupraUserError, match=r"and the Hub is not asked \(offline mode: HF_HUB_OFFLINE=1\)"):
        local_path("nobody/nothing", "ckpt")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(SupraUserError) as err:
        local_path("nobody/nothing", "ckpt")
    assert "and the Hub could not be reached: download it once online" in str(err.value)
    assert "offline" not in str(err.value).replace("once online", "")


@pytest.fixture
def online_through_proxy(offline_cache, tmp_path, monkeypatch) -> Iterator[Callable[[bytes | None], None]]:
    """Online, through a local HTTPS proxy (a thread) that answers every CONNECT with the given reply, or (None)
    takes the connection and says nothing (for 5 s at most: a regression fails, it never hangs the suite);
    HF_HUB_ETAG_TIMEOUT=0.5, so giving up takes half a second."""
    from huggingface_hub import close_session

    stop = threading.Event()

    def start(reply: bytes | None) -> None:
        class Proxy(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.rfile.readline()
                if reply is None:
                    stop.wait(5)
                else:
                    self.wfile.write(reply)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Proxy)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        for name in ("https_proxy", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        close_session()  # huggingface_hub's shared client reads the proxy when it is made

    servers: list[socketserver.ThreadingTCPServer] = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 0.5)
    # huggingface_hub's list of AI agents, fetched once a day (3 s timeout) for its user agent: known already
    registry = tmp_path / "agent_harnesses.json"
    registry.write_text(json.dumps({"standardEnvVars": [], "harnesses": {}}))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(registry))
    yield start
    stop.set()
    for server in servers:
        server.shutdown()
        server.server_close()
    close_session()  # the next client is made without the proxy


def test_a_network_that_takes_the_connection_and_never_answers_gives_up_and_reads_the_cache(
        release, offline_cache, online_through_proxy):
    online_through_proxy(None)
    started = time.monotonic()
    with pytest.raises(SupraUserError) as err:
        local_path("nobody/nothing", "ckpt")
    assert time.monotonic() - started < 4  # HF_HUB_ETAG_TIMEOUT=0.5 here, 10 s by default
    assert "ckpt=nobody/nothing is neither a local path nor in the Hugging Face cache, and the Hub could not be " \
           "reached: download it once online" in str(err.value)
    snapshot = cache_repo(offline_cache, "supralabs/tiny-vl", release)
    assert local_path("supralabs/tiny-vl") == snapshot


def test_a_proxy_that_refuses_is_one_line_and_a_cached_release_is_read_all_the_same(
        release, offline_cache, online_through_proxy):
    online_through_proxy(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(SupraUserError) as err:
        local_path("nobody/nothing", "ckpt")
    assert str(err.value) == "ckpt=nobody/nothing: the Hugging Face Hub could not be read (ProxyError: 403 Forbidden)"
    snapshot = cache_repo(offline_cache, "supralabs/tiny-vl", release)
    assert local_path("supralabs/tiny-vl") == snapshot


def test_a_mixtures_card_names_every_source_its_test_scores_are_over(tmp_path):
    """An a2a mixture scores its sources' test items together: its card named the first source alone."""
    from supra.artifacts.hub import card_front_matter

    def shown(datasets: list[str]) -> tuple[str, str]:
        (tmp_path / "README.md").write_text(card_front_matter("any-to-any", "m", [], datasets, {"CIDEr": 0.5}))
        [result] = ModelCard.load(tmp_path / "README.md").data.eval_results
        return result.dataset_name, result.dataset_type

    assert shown(["coco", "folder", "webdataset"]) == ("coco + folder + webdataset (test split)", "custom")
    assert shown(["shapes"]) == ("shapes (test split)", "shapes")


def test_a_stage1_vqvae_option_takes_a_hub_release_as_ckpt_does(offline_cache, tmp_path):
    """model.vqvae_ckpt (and generate's vqvae=) read a Hub id through the same cache as ckpt= and model.init_from:
    they were refused as a missing file; another model's release there is named as typed."""
    from supra.artifacts.a2a_release import load_stage1_vqvae, save_a2a_release
    from supra.models.a2a_nano import A2AConfig, A2ANano
    from supra.models.vqvae import VQVAE
    from supra.tokens.a2a_vocab import A2AVocab
    from supra.utils.state_dicts import same_state

    torch.manual_seed(0)
    vqvae = VQVAE(num_codes=32, code_dim=8, hidden=(8, 8)).eval()
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=300, num_codes=32)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=48, n_layers=1, d_model=32, n_heads=2,
                            d_mlp=64))
    cache_repo(offline_cache, "org/a2a", save_a2a_release(tmp_path / "a2a", net, vqvae, vocab))
    read, run_config = load_stage1_vqvae("org/a2a", what="model.vqvae_ckpt")
    assert same_state(read.state_dict(), vqvae.state_dict()) and run_config is None
    (tmp_path / "vlm").mkdir()
    (tmp_path / "vlm" / "config.json").write_text("{}")
    (tmp_path / "vlm" / "model.safetensors").write_bytes(b"")
    cache_repo(offline_cache, "org/vlm", tmp_path / "vlm")
    with pytest.raises(SupraUserError, match=r"^vqvae=org/vlm is a SupraVL-Nano captioner release, not a VQ-VAE: give "
                                             r"a VQ-VAE checkpoint"):
        load_stage1_vqvae("org/vlm", what="vqvae")
