"""Fine-tuning a2a_nano from a release (`model.init_from=FOLDER` or a Hub id). A tiny a2a run is trained on the
built-in shapes and exported with the real commands; a new run on one's own folder of pictures and captions
starts from that release: its GPT weights, its VQ-VAE (model.vqvae_ckpt left unset) and its vocabulary. What
must match the release (the GPT's settings but dropout, the VQ-VAE, the code count, the text tokenizer), and
what is no a2a release, is refused in one line."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import DictConfig
from safetensors.torch import load_file

from supra.runner.training import train
from supra.tokens.a2a_vocab import A2AVocab
from tests.conftest import compose_config, run_command, write_vqvae_checkpoint
from tests.media_fixtures import write_media_folder
from tests.test_a2a_training import _user_error, a2a_run
from tests.test_hub import cache_repo

QUICK = ["+trainer.limit_val_batches=0", "test=false", "callbacks.a2a_samples=null"]  # training steps only


class StartProbe(L.Callback):
    """Test probe: saves the GPT's and the VQ-VAE's state as training starts and ends (start.pt, end.pt)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def _save(self, pl_module: L.LightningModule, name: str) -> None:
        states = {part: {k: v.detach().clone() for k, v in getattr(pl_module, part).state_dict().items()}
                  for part in ("net", "vqvae")}
        torch.save(states, self.out_dir / name)

    def on_train_start(self, trainer, pl_module) -> None:
        self._save(pl_module, "start.pt")

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(pl_module, "end.pt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, vqvae_ckpt) -> Path:
    """A tiny a2a run (experiment=a2a_shapes, a small GPT): its run directory."""
    root = tmp_path_factory.mktemp("a2a")
    train(compose_config("train", root / "run", [*a2a_run(vqvae_ckpt, root / "cache"), *QUICK]))
    return root / "run"


@pytest.fixture(scope="module")
def release(trained, tmp_path_factory) -> Path:
    """`python -m supra.export` of that run: GPT + VQ-VAE + tokenizer."""
    out = tmp_path_factory.mktemp("release") / "a2a"
    run_command("export", f"ckpt={trained / 'checkpoints' / 'last.ckpt'}", f"out={out}")
    return out


@pytest.fixture(scope="module")
def own_media(tmp_path_factory) -> Path:
    """One's own data: a folder of stills, GIFs and captions (data=media_folder's kind)."""
    root = tmp_path_factory.mktemp("own") / "media"
    write_media_folder(root)
    return root


@pytest.fixture
def fine_tune(own_media, tmp_path):
    """fine_tune(init_from, *overrides, run="run") -> the config of the tiny run again, from `init_from` without
    model.vqvae_ckpt, on the own media folder (its pictures and GIF frames with their captions) instead of the
    shapes, writing into tmp_path/run."""

    def make(init_from: str | Path, *overrides: str, run: str = "run") -> DictConfig:
        tiny = [o for o in a2a_run(Path("unused"), tmp_path / "cache") if not o.startswith(("model.vqvae_ckpt=", "data.sources."))]
        # seed 2: captioned frames in val and test too (with seed 0 val had none: a fit is refused then)
        own = ["~data.sources.shapes", "~data.sources.shapes_video", "data.tasks.video=0", "data.tasks.text2video=0",
               f"+data.sources.mine={{_target_:supra.data.media.folder.MediaFolderDataModule,root:{own_media},"
               "mode:frames,image_size:64,val_fraction:0.3,test_fraction:0.3,seed:2,show_progress:false}"]
        return compose_config("train", tmp_path / run, [*tiny, *own, f"model.init_from={init_from}", *overrides])

    return make


def probed(out: Path) -> list[str]:
    return ["+callbacks.probe._target_=tests.test_a2a_fine_tuning.StartProbe", f"+callbacks.probe.out_dir={out}"]


@pytest.mark.parametrize("given_as", ["folder", "hub id"])
def test_fine_tuning_starts_from_the_releases_gpt_vqvae_and_vocabulary(release, given_as, offline_cache, fine_tune, tmp_path,
                                                                       caplog):
    caplog.set_level(logging.INFO, logger="supra.runner.components")
    init_from = release
    if given_as == "hub id":  # read from the Hugging Face cache, offline: nothing is downloaded
        cache_repo(offline_cache, "supralabs/tiny-a2a", release)
        init_from = "supralabs/tiny-a2a"
    out = tmp_path / "run"
    # one batch of training, validation and test (fast_dev_run): captions generated at the release's vocabulary
    _, metrics = train(fine_tune(init_from, "debug=fast_dev_run", "callbacks.a2a_samples=null", *probed(out)))
    start, end = torch.load(out / "start.pt"), torch.load(out / "end.pt")
    for part, file in (("net", "model.safetensors"), ("vqvae", "vqvae.safetensors")):
        published = load_file(release / file)
        assert start[part].keys() == published.keys(), part
        for name, value in published.items():
            assert torch.equal(start[part][name], value), f"{part}.{name}"
    assert any(not torch.equal(start["net"][k], end["net"][k]) for k in start["net"])  # and then it trains
    vocab = A2AVocab.from_json((out / "a2a_vocab.json").read_text())  # the run's vocabulary: the release's
    assert json.loads(vocab.hf.to_str()) == json.loads((release / "tokenizer.json").read_text())
    assert vocab.layout.num_codes == json.loads((release / "config.json").read_text())["vocab"]["num_codes"]
    assert metrics["train/loss_text2image"] > 0 and metrics["test/loss"] > 0
    # and the log says so where the run starts: the run trains no vocabulary of its own to say instead
    assert [r.getMessage() for r in caplog.records if "model.init_from" in r.getMessage()] == [
        f"model.init_from={init_from}: the run starts from that a2a release's GPT weights and vocabulary "
        f"({vocab.layout.text_size} text ids, {vocab.layout.num_codes} visual codes), over its VQ-VAE"]


def test_a_fine_tuned_run_exports_a_release_again_and_resumes_without_it(release, fine_tune, tmp_path, caplog):
    out, downloaded = tmp_path / "run", shutil.copytree(release, tmp_path / "downloaded")
    train(fine_tune(downloaded, "trainer.max_steps=2", *QUICK))
    run_command("export", f"ckpt={out / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'again'}")
    theirs, ours = (json.loads((folder / "config.json").read_text()) for folder in (release, tmp_path / "again"))
    assert ours == theirs  # the release's settings and vocabulary
    assert (tmp_path / "again" / "tokenizer.json").read_text() == (release / "tokenizer.json").read_text()
    published, again = (load_file(folder / "vqvae.safetensors") for folder in (release, tmp_path / "again"))
    assert all(torch.equal(published[k], again[k]) for k in published)  # frozen: the release's VQ-VAE, unchanged
    # the same command line with ckpt_path goes on from the checkpoint, which holds the GPT, the VQ-VAE it was
    # trained over and the vocabulary: the release it started from need not be there any more
    shutil.rmtree(downloaded)
    caplog.set_level(logging.INFO, logger="supra.runner.components")
    caplog.clear()
    train(fine_tune(downloaded, "trainer.max_steps=3", *QUICK, f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}",
                    run="resumed"))
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 3
    assert "the run starts from that a2a release" not in caplog.text  # the checkpoint's weights go on
    assert all(torch.equal(published[k], resumed["state_dict"][f"vqvae.{k}"]) for k in published)


def test_what_is_not_an_a2a_release_is_named_in_one_line(release, trained, fine_tune, tmp_path):
    captioner = tmp_path / "captioner"  # a SupraVL-Nano release's files, as release_kind tells them apart
    captioner.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (captioner / name).write_text("{}")
    checkpoint = trained / "checkpoints" / "last.ckpt"
    for init_from, message in (
            (captioner, "is a SupraVL-Nano (captioner) release: it takes an a2a_nano release"),
            (checkpoint, "is a file: it takes a release folder (python -m supra.export ckpt=FILE out=DIR writes one; "
                         "ckpt_path=FILE resumes a run instead)"),
            (trained, "is not a release folder (config.json + model.safetensors)"),
            (tmp_path / "nowhere", "does not exist")):
        assert _user_error(fine_tune(init_from)) == f"model.init_from={init_from} {message}"
    incomplete = shutil.copytree(release, tmp_path / "incomplete")
    (incomplete / "tokenizer.json").unlink()
    assert _user_error(fine_tune(incomplete)) == f"{incomplete} is not a complete a2a release folder: tokenizer.json missing"


def test_a_gpt_of_other_settings_is_told_which_to_add(release, fine_tune):
    cfg = fine_tune(release, "model.net.d_model=64", "model.net.tie_head=true", "model.net.dropout=0.1")
    assert _user_error(cfg) == (f"{release} holds an a2a GPT of other settings (d_model=32 there, 64 here, tie_head=false "
                                "there, true here): add model.net.d_model=32 model.net.tie_head=false, or choose a release "
                                "of this model's settings")  # dropout may differ: it only regularises training
    assert "(context=384 there, 256 here): add model.net.context=384" in _user_error(fine_tune(release, "model.net.context=256"))


def test_another_vqvae_than_the_releases_is_refused(release, vqvae_ckpt, fine_tune, tmp_path):
    other = write_vqvae_checkpoint(tmp_path / "other.ckpt", seed=1)  # same shapes, other weights: other codes
    assert _user_error(fine_tune(release, f"model.vqvae_ckpt={other}")) == (
        f"model.vqvae_ckpt={other} is another VQ-VAE than the one of model.init_from={release} (its codes mean other "
        "pictures than those the release's GPT learnt): leave model.vqvae_ckpt unset, and the release's "
        "vqvae.safetensors is used")
    # the very one it was trained over is welcome: the release's GPT starts over the same codes
    train(fine_tune(release, f"model.vqvae_ckpt={vqvae_ckpt}", "debug=fast_dev_run", *QUICK, run="same"))


def test_data_settings_that_would_lay_out_other_ids_are_refused(release, fine_tune, tmp_path):
    assert _user_error(fine_tune(release, "data.num_codes=64")) == (
        f"data.num_codes=64 but model.init_from={release} has 256 visual codes (its VQ-VAE's codebook): set "
        "data.num_codes=256")
    other = tmp_path / "other_tokenizer.json"
    A2AVocab.train(["a tokenizer of other captions", "with other ids"], vocab_size=280).hf.save(str(other))
    other_size = A2AVocab.from_gpt2(other).layout.text_size
    text_size = json.loads((release / "config.json").read_text())["vocab"]["text_size"]
    assert _user_error(fine_tune(release, f"data.text_tokenizer={other}")) == (
        f"data.text_tokenizer={other} ({other_size} text ids) is not the tokenizer of model.init_from={release} "
        f"({text_size} text ids, trained): leave data.text_tokenizer unset, the release's tokenizer.json is used")
    # its own tokenizer named again lays out the same ids: welcome
    from supra.runner.components import release_vocabulary

    vocab = release_vocabulary(str(release), {"text_tokenizer": str(release / "tokenizer.json"), "num_codes": 256})
    assert vocab.layout.text_size == text_size
