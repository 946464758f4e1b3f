"""Release folder round trip: export -> import gives the same weights and captions, and the release's own
inference code (tests/release_reference.py) reads our export and captions like we do."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from supra.artifacts.captioner_release import RELEASE_KEYS, export_release, load_release
from supra.artifacts.checkpoints import artifact_kind, load_supra_checkpoint, net_state
from supra.data.captioning.shapes import ShapesDataModule
from supra.data.images import IMAGE_SUFFIXES, normalize_images
from supra.models.vlm_generation import beam_search
from supra.utils.errors import SupraUserError
from tests import release_reference
from tests.conftest import file_size_limit, killed_in_atomic_dir, run_command
from tests.media_fixtures import png_claiming
from tests.test_vlm_nano import release_state_dict_names


@pytest.fixture(scope="module")
def release(trained_run, tmp_path_factory):
    return export_release(trained_run / "checkpoints" / "best.ckpt", tmp_path_factory.mktemp("release") / "vlm")


@pytest.fixture(scope="module")
def release_test_images():
    return normalize_images(ShapesDataModule(num_test=12).load_split("test").images)


def test_release_folder_has_the_published_files_and_keys(release):
    assert {p.name for p in release.iterdir()} >= {"model.safetensors", "config.json", "tokenizer.json", "model.pt", "README.md"}
    config = json.loads((release / "config.json").read_text())
    assert set(config) == set(RELEASE_KEYS) | {"bos_token_id", "eos_token_id"}
    assert config["D_MODEL"] == 128 and (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
    tensors = load_file(release / "model.safetensors")
    assert set(tensors) == release_state_dict_names()
    assert torch.equal(tensors["lm_head.weight"], tensors["tok_emb.weight"])
    full = torch.load(release / "model.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler"} <= set(full) and full["optimizer"]["state"]
    assert "| CIDEr |" in (release / "README.md").read_text()


def test_export_then_import_gives_identical_weights_and_captions(release, trained_run, release_test_images):
    checkpoint = load_supra_checkpoint(trained_run / "checkpoints" / "best.ckpt")
    original = net_state(checkpoint)
    net, tokenizer, _ = load_release(release)
    assert net.lm_head.weight is net.tok_emb.weight
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    from supra.artifacts.captioner_release import load_captioner
    ours, _, _ = load_captioner(trained_run / "checkpoints" / "best.ckpt")
    assert beam_search(net, release_test_images, 1, 2) == beam_search(ours, release_test_images, 1, 2)


def test_release_inference_code_reads_our_export_and_gives_our_captions(release, release_test_images):
    reference, config = release_reference.load(release)
    net, _, _ = load_release(release)
    theirs = [release_reference.beam_caption(reference, image, config) for image in release_test_images]
    assert theirs == beam_search(net, release_test_images, 1, 2)
    assert any(theirs), "the trained model says something"


def test_release_with_mask_buffers_loads_and_wrong_shapes_are_named(release, tmp_path):
    import shutil

    from safetensors.torch import save_file
    folder = tmp_path / "with_mask"
    shutil.copytree(release, folder)
    tensors = load_file(folder / "model.safetensors")
    tensors["blocks.0.attn.mask"] = torch.tril(torch.ones(1, 1, 64, 64))
    save_file(tensors, folder / "model.safetensors")
    load_release(folder)  # the optional mask is accepted
    del tensors["lm_head.weight"]  # the head is tied to the embedding: the published loader re-ties it
    save_file(tensors, folder / "model.safetensors")
    net, _, _ = load_release(folder)
    assert net.lm_head.weight is net.tok_emb.weight and torch.equal(net.tok_emb.weight, tensors["tok_emb.weight"])
    tensors["pos_emb.weight"] = torch.zeros(10, 128)
    del tensors["ln_f.bias"]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(SupraUserError, match=r"missing \['ln_f.bias'\]; wrong shape \['pos_emb.weight' \(10, 128\) there, "
                                             r"\(64, 128\) here\]"):
        load_release(folder)


def test_a_release_without_batchnorm_counters_captions_as_the_full_release_does(release, tmp_path,
                                                                              release_test_images):
    folder = tmp_path / "floats_only"  # as a converter that keeps only float tensors writes it
    shutil.copytree(release, folder)
    tensors = load_file(folder / "model.safetensors")
    floats = {name: tensor for name, tensor in tensors.items() if tensor.is_floating_point()}
    assert sorted(set(tensors) - set(floats)) == [f"vis_enc.conv{i}.1.num_batches_tracked" for i in (1, 2, 3)]
    save_file(floats, folder / "model.safetensors")
    net, _, _ = load_release(folder)
    full, _, _ = load_release(release)
    assert beam_search(net, release_test_images, 1, 2) == beam_search(full, release_test_images, 1, 2)
    copied = tmp_path / "copied"
    run_command("export", f"ckpt={folder}", f"out={copied}")  # read whole, then copied as it is
    assert (copied / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()


def test_a_release_saved_with_its_tied_weights_de_duplicated_is_named_for_the_missing_embedding(release, tmp_path):
    from safetensors.torch import save_model

    folder = tmp_path / "save_model"
    shutil.copytree(release, folder)
    net, _, _ = load_release(release)
    save_model(net, str(folder / "model.safetensors"))  # keeps one name of the tied pair: lm_head.weight
    assert "tok_emb.weight" not in load_file(folder / "model.safetensors")
    with pytest.raises(SupraUserError) as refused:
        load_release(folder)
    message = str(refused.value)
    assert message.startswith(f"{folder / 'model.safetensors'} lacks tok_emb.weight, the token embedding that "
                              "lm_head.weight is tied to: it was saved with its tied weights de-duplicated")
    assert "config.json" not in message  # it describes the model well: the file lacks a tensor


def test_a_config_json_edited_to_a_huge_size_is_refused_from_the_weights_shapes_before_any_memory_is_taken(
        release, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(release, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "VOCAB_SIZE": 10**9}))  # 512 GB of embedding
    with pytest.raises(SupraUserError) as refused:
        load_release(folder)
    vocab, width = config["VOCAB_SIZE"], config["D_MODEL"]
    assert str(refused.value) == (
        f"{folder / 'model.safetensors'} does not fit the model {folder / 'config.json'} describes: wrong shape "
        f"['lm_head.weight' ({vocab}, {width}) there, (1000000000, {width}) here, 'tok_emb.weight' ({vocab}, {width}) "
        f"there, (1000000000, {width}) here]: config.json and model.safetensors are not of one model (one was edited or "
        "replaced): export the release again (python -m supra.export)")


def test_a_checkpoints_run_config_edited_to_a_huge_size_is_refused_before_any_memory_is_taken(trained_run, tmp_path):
    from supra.artifacts.captioner_release import load_captioner

    saved = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    net_config = saved["supra"]["run_config"]["model"]["net"]
    vocab, width = net_config["VOCAB_SIZE"], net_config["D_MODEL"]
    net_config["VOCAB_SIZE"] = 10**9
    torch.save(saved, tmp_path / "edited.ckpt")
    with pytest.raises(SupraUserError) as refused:
        load_captioner(tmp_path / "edited.ckpt")
    assert str(refused.value) == (
        f"ckpt={tmp_path / 'edited.ckpt'} does not fit this model: wrong shape ['lm_head.weight' ({vocab}, {width}) "
        f"there, (1000000000, {width}) here, 'tok_emb.weight' ({vocab}, {width}) there, (1000000000, {width}) here]")


def test_a_config_json_edited_away_from_its_weights_names_both_files_and_says_to_export_again(release, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(release, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "D_MODEL": 64}))
    with pytest.raises(SupraUserError) as refused:
        load_release(folder)
    message = str(refused.value)
    # the weights are whole; it is config.json that no longer describes them
    assert message.startswith(f"{folder / 'model.safetensors'} does not fit the model {folder / 'config.json'} describes: "
                              "wrong shape [")
    assert "'blocks.0.attn.proj.weight' (128, 128) there, (64, 64) here" in message  # the file's shape, the model's
    assert "missing" not in message and "unexpected" not in message  # no empty lists
    assert message.endswith(": config.json and model.safetensors are not of one model (one was edited or replaced): "
                            "export the release again (python -m supra.export)")


def test_export_cli_and_evaluate_accept_the_release(release, trained_run, tmp_path):
    from supra.runner.evaluation import evaluate
    from tests.conftest import compose_config

    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={release}", "data=shapes", "data.num_test=15",
                                                     "data.num_train=96", "data.num_val=24"])
    evaluate(cfg)
    from_release = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    from_run = json.loads((trained_run / "metrics.json").read_text())
    assert round(from_release["CIDEr"], 3) == round(from_run["CIDEr"], 3)
    # data=shapes' own eval_batch_size (250, the run's 8) gives the checkpoint's loss to all digits
    assert from_release["loss"] == from_run["loss"]
    assert from_release["ckpt"] == str(release) and from_release["step"] is None  # a release keeps no step


def test_the_card_shows_the_runs_test_metrics_only_for_the_checkpoint_that_was_tested(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    earlier = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    earlier["global_step"] -= 5  # another checkpoint of the run: its test never scored these weights
    torch.save(earlier, run / "checkpoints" / "step_earlier.ckpt")
    tested = export_release(run / "checkpoints" / "best.ckpt", tmp_path / "tested")
    other = export_release(run / "checkpoints" / "step_earlier.ckpt", tmp_path / "other")
    cider = f"{json.loads((run / 'metrics.json').read_text())['CIDEr']:.4f}"
    assert f"| CIDEr | {cider} |" in (tested / "README.md").read_text() and (tested / "samples.png").is_file()
    assert "CIDEr" not in (other / "README.md").read_text() and not (other / "samples.png").exists()
    (run / "metrics.json").unlink()  # as a run with test=false (a sweep trial): samples.png is a validation's
    untested = export_release(run / "checkpoints" / "best.ckpt", tmp_path / "untested")
    assert "## Samples" not in (untested / "README.md").read_text() and not (untested / "samples.png").exists()


def test_the_card_says_what_bounded_the_run_not_lightnings_minus_one(trained_run, tmp_path):
    from supra.artifacts.captioner_release import run_length

    card = (export_release(trained_run / "checkpoints" / "best.ckpt", tmp_path / "release") / "README.md").read_text()
    assert "-1" not in next(line for line in card.splitlines() if "precision" in line and "clipping" in line)
    assert run_length({"max_steps": 4, "max_epochs": -1}) == "4 steps"
    assert run_length({"max_steps": -1, "max_epochs": 15}) == "15 epochs"  # the Flickr8k recipe
    assert run_length({"max_steps": 2000, "max_epochs": 3}) == "2,000 steps or 3 epochs, whichever came first"
    assert run_length({"max_steps": -1, "max_epochs": None}) == "until stopped (no max_steps or max_epochs)"
    assert run_length({"max_steps": 1, "max_epochs": 1}) == "1 step or 1 epoch, whichever came first"  # not "1 steps"


def test_the_card_names_the_step_of_its_weights_beside_the_runs_bound(trained_run, tmp_path):
    from supra.artifacts.captioner_release import trained_length

    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["global_step"] = 15  # a best.ckpt of the first of the 30-step run's two validations
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(checkpoint, ckpt)
    card = (export_release(ckpt, tmp_path / "release") / "README.md").read_text()
    assert "- weights of step 15, of a run of 30 steps, precision" in card
    assert trained_length({"max_steps": -1, "max_epochs": None}, 7) == ("weights of step 7, of a run until stopped "
                                                                        "(no max_steps or max_epochs)")
    assert trained_length({"max_steps": 80, "max_epochs": -1}, None) == "80 steps"  # a checkpoint without its step


def test_the_card_names_the_optimizer_the_run_used_with_the_settings_it_has(trained_run, tmp_path):
    from supra.artifacts.captioner_release import describe_optimizer

    # model.optimizer._target_=torch.optim.SGD '~model.optimizer.betas' +model.optimizer.momentum=0.9
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["optimizer"] = {"_target_": "torch.optim.SGD", "_partial_": True,
                                                               "lr": 0.05, "momentum": 0.9}
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(checkpoint, ckpt)
    card = (export_release(ckpt, tmp_path / "release") / "README.md").read_text()
    assert "- optimizer: SGD lr 0.05, momentum 0.9, weight decay 0.01\n" in card
    assert describe_optimizer({"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-4, "betas": [0.9, 0.95]},
                              0.01) == "AdamW lr 0.0003, betas [0.9, 0.95], weight decay 0.01"  # the recipe's, as before


def test_the_card_names_the_schedule_the_run_used():
    from supra.artifacts.captioner_release import describe_schedule

    recipe = {"_target_": "supra.tasks.lr_schedules.warmup_cosine", "_partial_": True, "warmup_steps": 100, "min_lr": 3e-5}
    assert describe_schedule(recipe) == "warm-up 100 steps, cosine to 3e-05"  # as before
    assert describe_schedule(None) == "none (a constant learning rate)"  # model.scheduler=null, not "warm-up None"
    assert describe_schedule({"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True,
                              "step_size": 100}) == "StepLR step_size 100"


def test_a_release_whose_config_disagrees_with_its_tokenizer_or_writes_numbers_as_text_is_refused(release, tmp_path):
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(release, odd)
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "bos_token_id": 7, "eos_token_id": 5}))
    with pytest.raises(SupraUserError, match=r"config.json names bos_token_id=7, eos_token_id=5 but its tokenizer.json "
                                             r"has 1 and 2: the files do not belong together"):
        load_release(odd)
    (odd / "config.json").write_text(json.dumps({**config, "D_MODEL": "128"}))  # a number written as text
    with pytest.raises(SupraUserError, match=r"config.json: D_MODEL='128' must be a whole number"):
        load_release(odd)


@pytest.mark.parametrize(("config", "message"), [
    ({"D_MODEL": "128"}, "config.json: D_MODEL='128' must be a whole number"),
    # as some JSON writers give a size: "128.0 must be a whole number" alone read as self-contradictory
    ({"D_MODEL": 128.0}, "config.json: D_MODEL=128.0 (write 128, not 128.0) must be a whole number: fix the file"),
    # every setting is checked as the release keys are, named as the file spells it: these were tracebacks
    # (ZeroDivisionError, AttributeError, TypeError), a message naming neither file nor key, or true taken as 1
    ({"N_LAYERS": 0}, "config.json: N_LAYERS=0 must be >= 1: a decoder of no blocks never reads the image: fix the file"),
    ({"encoder": "vit", "vit": {"patch_size": 0}}, "config.json: vit.patch_size=0 must be >= 1: fix the file"),
    ({"encoder": "vit", "vit": {"patch_size": 15}}, "config.json: IMG_SIZE=112 must be a multiple of vit.patch_size=15: "
                                                    "e.g. vit.patch_size=14: fix the file"),
    ({"encoder": "vit", "vit": "abc"}, "config.json: vit='abc' must be a mapping of vit's settings (patch_size, "),
    ({"encoder": "vit", "vit": None}, "config.json: vit=None must be a mapping of vit's settings"),
    ({"encoder": "vit", "vit": {"layers": "2", "width": 128.0}}, "config.json: vit.layers='2', vit.width=128.0 (write "
                                                                 "128, not 128.0) must be whole numbers: fix the file"),
    ({"resampler_layers": "1"}, "config.json: resampler_layers='1' must be a whole number: fix the file"),
    ({"resampler_layers": True}, "config.json: resampler_layers=True must be a whole number: fix the file"),
    ({"N_HEADS": 3}, "config.json: D_MODEL=128 must be divisible by N_HEADS=3: e.g. N_HEADS=2, or D_MODEL=129: fix the "
                     "file, or export the release again"),
    ({"bos_token_id": 7}, "config.json names bos_token_id=7, eos_token_id=2 but its tokenizer.json has 1 and 2"),
    (None, "config.json holds null, not a model's settings (a JSON object): export the release again"),
    # a misspelt choice is refused, not dropped (the model would be built with the default: relu, not gelu)
    ({"encoder_activaton": "gelu"}, "config.json has the unknown key encoder_activaton (did you mean "
                                    "encoder_activation?): fix the file, or export the release again"),
    ({"FOO": 1}, "config.json has the unknown key FOO (its keys: D_MODEL, "),
])
def test_a_fine_tune_reads_a_release_folder_with_the_checks_caption_and_evaluate_apply(release, tmp_path, config, message):
    from omegaconf import OmegaConf

    from supra.artifacts.captioner_release import build_captioner, load_release_weights
    from supra.runner.components import tokenizer_to_reuse

    odd = tmp_path / "odd"
    shutil.copytree(release, odd)
    original = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps(None if config is None else {**original, **config}))
    net = build_captioner({k: original[k] for k in RELEASE_KEYS})
    model_cfg = OmegaConf.create({"model": {"init_from": str(odd)}})
    # model.init_from: the weights (the task) and the tokenizer (the data), as caption and evaluate (load_release)
    for read in (lambda: load_release_weights(net, odd), lambda: tokenizer_to_reuse(model_cfg), lambda: load_release(odd)):
        with pytest.raises(SupraUserError) as err:
            read()
        assert message in str(err.value) and str(odd / "config.json") in str(err.value) and "\n" not in str(err.value)


def test_a_tokenizer_with_other_special_tokens_is_named_for_them_not_called_missing(release, tmp_path):
    odd = tmp_path / "odd"
    shutil.copytree(release, odd)
    text = (odd / "tokenizer.json").read_text()
    for ours, theirs in (("<pad>", "[PAD]"), ("<bos>", "[BOS]"), ("<eos>", "[EOS]"), ("<unk>", "[UNK]")):
        text = text.replace(f'"{ours}"', f'"{theirs}"')
    (odd / "tokenizer.json").write_text(text)
    with pytest.raises(SupraUserError) as err:
        load_release(odd)
    assert str(err.value) == (f"{odd / 'tokenizer.json'} reads, but its ids 0-3 are [PAD] [BOS] [EOS] [UNK], and a Supra "
                              "captioner's are its special tokens <pad> <bos> <eos> <unk>: give the tokenizer.json the "
                              "model was trained with (a Supra export's)")


@pytest.mark.parametrize(("text", "message"), [
    ('{"decode": {"beam_widht": 5}}', "\"decode\" has unknown setting 'beam_widht' (known: strategy, beam_width,"),
    ('{"decode": [1]}', '"decode" is [1], not an object of decoding settings'),
    ('{"decode": {"beam_width": "3"}}', '"decode".beam_width="3" must be a whole number'),
    ('{"decode": {"strategy": "nope"}}', "\"decode\" does not work (decode='nope' is unknown"),
    # values that fit their type yet sample from no token at all (a traceback where the first caption is drawn)
    ('{"decode": {"strategy": "sample", "top_k": 0}}', '"decode" does not work (top_k=0 must be a whole number >= 1'),
    ('{"test_metrics": "CIDEr"}', '"test_metrics"="CIDEr" must be a list of metric names'),
    ('{"test_metrics": ["CIDEr", "SPICE"]}', '"test_metrics" names unknown metric SPICE (choose from Bleu, METEOR'),
    ('{"test_metrics": ["SPICE", "WER"]}', '"test_metrics" names unknown metrics SPICE, WER (choose from Bleu, METEOR'),
    ('{"generation": {"image_temprature": 1.0}}', "\"generation\" has unknown setting 'image_temprature'"),
    ('{"generation": {"image_temprature": 1.0, "top": 2}}', "\"generation\" has unknown settings 'image_temprature', 'top'"),
    ('{"generation": {"image_best_of": 2.5}}', '"generation".image_best_of=2.5 must be a whole number'),
    # an a2a model's sampling out of its range: the sampler's own rule, not a traceback two test batches in
    ('{"generation": {"max_caption_tokens": 0}}', '"generation".max_caption_tokens=0 must be >= 1'),
    ('{"generation": {"image_best_of": 0}}', '"generation".image_best_of=0 must be >= 1 (1 = off)'),
    ('{"generation": {"image_temperature": -0.5}}', '"generation".image_temperature=-0.5 must be a number >= 0 (0 = greedy)'),
    ('{"generation": {"text_temperature": NaN}}', '"generation".text_temperature=NaN must be a number >= 0 (0 = greedy)'),
    ('{"generation": {"image_guidance": -1}}', '"generation".image_guidance=-1 must be a number >= 0 (1 = off)'),
    ('{"generation": {"image_top_k": 0}}', '"generation".image_top_k=0 must be >= 1'),
    ('{"code_softmax": "yes"}', '"code_softmax"="yes" must be true or false'),
    ('{"decoding": {}}', "unknown field 'decoding' (it may hold decode, generation, code_softmax, test_metrics)"),
    ('{"decoding": {}, "metrics": []}', "unknown fields 'decoding', 'metrics' (it may hold decode, generation,"),
])
def test_a_hand_edited_scoring_json_is_one_line_naming_the_file_and_what_is_wrong(tmp_path, text, message):
    from supra.artifacts.a2a_release import scored_settings
    from supra.artifacts.captioner_release import scored_decoding

    (tmp_path / "scoring.json").write_text(text)
    for read in (lambda: scored_decoding(tmp_path, None), lambda: scored_settings(tmp_path, None)):  # caption/evaluate
        with pytest.raises(SupraUserError) as err:
            read()
        assert str(err.value).startswith(f"{tmp_path / 'scoring.json'}: {message}") and "\n" not in str(err.value)
        assert str(err.value).endswith(": fix it (or export the release again), or delete it to score with the defaults")


@pytest.mark.parametrize("name", ["config.json", "scoring.json"])
def test_a_release_json_nested_too_deeply_to_parse_is_one_line_naming_it(tmp_path, name):
    from supra.artifacts.kinds import release_kind
    from supra.artifacts.release_files import read_config_json, read_scoring

    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / name).write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    assert release_kind(tmp_path) is not None  # told apart by its files; reading it names what is wrong
    with pytest.raises(SupraUserError) as err:
        (read_config_json if name == "config.json" else read_scoring)(tmp_path)
    remedy = "" if name == "config.json" else ": export the release again, or delete it to score with the defaults"
    assert str(err.value) == (f"{tmp_path / name} is not readable JSON (nested too deeply to read: line 1 column 1 "
                              f"(char 0)){remedy}")


def test_the_scoring_settings_read_back_are_those_the_runs_use():
    """scoring.json's a2a generation keys are model.generation's (conf/model/a2a_nano.yaml): a setting added
    there is known here too, not refused in a release that records it."""
    from omegaconf import OmegaConf

    from supra.artifacts.release_files import GENERATION_KEYS
    from tests.conftest import CONF

    assert set(GENERATION_KEYS) == set(OmegaConf.load(CONF / "model" / "a2a_nano.yaml").generation)


def folder_of(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_caption_command_captions_a_folder_and_counts_unreadable_files_in_one_line(release, tmp_path, capsys,
                                                                                 pipes_never_opened):
    from PIL import Image

    images = tmp_path / "photos"
    (images / "nested").mkdir(parents=True)
    Image.new("RGB", (50, 40), (200, 30, 30)).save(images / "red.jpg")
    Image.new("L", (30, 30), 128).save(images / "nested" / "grey.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    (images / "._red.jpg").write_bytes(b"macOS metadata")  # hidden: no picture, not said either
    Image.new("RGB", (40, 40), (30, 30, 200)).save(folder_of(tmp_path / "elsewhere") / "blue.png")
    (images / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # followed
    (images / "nested" / "again").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # once
    (images / "moved.png").symlink_to(tmp_path / "gone.png")  # a broken link: listed, not passed over in silence
    # a float TIFF (no known range) and a picture too large: named with what to do (caption has no max_pixels=)
    Image.fromarray(np.linspace(0, 1, 1600, dtype=np.float32).reshape(40, 40), "F").save(images / "float.tif")
    (images / "huge.png").write_bytes(png_claiming(20_000, 20_000))
    os.mkfifo(images / "pipe.jpg")  # never opened: counted with its noun, one as one
    run_command("caption", f"ckpt={release}", f"images={images}", f"out={tmp_path / 'out'}", "decode=greedy")
    lines = [json.loads(line) for line in (tmp_path / "out" / "captions.jsonl").read_text().splitlines()]
    assert sorted(Path(r["file"]).name for r in lines) == ["blue.png", "grey.png", "red.jpg"]
    assert all(isinstance(r["caption"], str) for r in lines)
    assert (tmp_path / "out" / "captions.png").is_file()
    err = capsys.readouterr().err
    # one line for all of them, by reason, each with the file and what to do
    skipped = [line for line in err.splitlines() if "could not be read" in line]
    assert len(skipped) == 1 and skipped[0].startswith("skipped 5 of 8 images that could not be read: ")
    assert "1 not a picture file (e.g. broken.jpg)" in skipped[0]  # in the words explain and the demo use
    assert "1 not regular file (named pipes, sockets, devices) (e.g. pipe.jpg)" in skipped[0]
    assert f"1 broken link (e.g. moved.png: a link to {tmp_path / 'gone.png'}, which does not exist)" in skipped[0]
    # kinds in words, not Pillow's class names; the pixels counted as the limit beside them
    assert ("1 of no known pixel range (e.g. float.tif: float pixels (mode F), of no known range: "
            "convert the picture to 8 or 16-bit)") in skipped[0]
    assert ("1 too large (e.g. huge.png: 400,000,000 pixels, over the "
            "100,000,000 pixels read: resize the picture)") in err and "max_pixels" not in err
    assert "Error" not in skipped[0]


def test_caption_reads_every_photo_suffix_pillow_opens_and_names_the_files_it_passes_over(release, tmp_path, capsys):
    from PIL import Image

    photos = folder_of(tmp_path / "photos")
    red = Image.new("RGB", (50, 40), (200, 30, 30))
    for name in ("download.jfif", "camera.jpe", "scan.ppm", "icon.ico", "red.jpg"):  # .jfif: browsers' JPEGs
        red.save(photos / name)
    (photos / "notes.txt").write_text("where these were taken")
    (photos / "album.pdf").write_bytes(b"%PDF-1.4")
    for _ in range(2):  # out= inside images=: the second run does not name the first one's captions.jsonl
        captioned = run_command("caption", f"ckpt={release}", f"images={photos}", f"out={photos}", "decode=greedy")
        assert sorted(captioned) == ["camera.jpe", "download.jfif", "icon.ico", "red.jpg", "scan.ppm"]
        notes = [line for line in capsys.readouterr().err.splitlines() if "whose suffix" in line]
        assert notes == ["note: passed over 2 files whose suffix is no picture's (album.pdf, notes.txt); caption "
                         f"reads {', '.join(sorted(IMAGE_SUFFIXES))}"]
    assert {".jpg", ".jfif", ".jpe", ".png", ".webp", ".tif"} <= IMAGE_SUFFIXES and ".pdf" not in IMAGE_SUFFIXES


def test_caption_notes_a_gif_cut_short_as_explain_does_and_captions_its_first_frame(release, tmp_path, capsys):
    """caption read a GIF cut short for its first frame without a word, where explain and generate note it."""
    from PIL import Image

    photos = folder_of(tmp_path / "photos")
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    frames[0].save(photos / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (photos / "cut.gif").write_bytes((photos / "clip.gif").read_bytes()[:-10])  # cut inside the last frame
    where = r"is cut short \(the file is cut inside the block at byte \d+, after 2 frames\)"
    used = "its first frame, before the cut, is used"
    captioned = run_command("caption", f"ckpt={release}", f"images={photos}", f"out={tmp_path / 'out'}", "decode=greedy")
    assert sorted(captioned) == ["clip.gif", "cut.gif"]
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and re.fullmatch(rf"note: cut\.gif {where}: {used}", notes[0]), notes
    run_command("caption", f"ckpt={release}", f"images={photos / 'cut.gif'}", f"out={tmp_path / 'one'}", "decode=greedy")
    assert re.fullmatch(rf"note: images={re.escape(str(photos / 'cut.gif'))} {where}: {used}\n",
                        capsys.readouterr().err)


def test_captioning_into_an_earlier_runs_out_says_how_many_captions_it_replaced(release, tmp_path, capsys):
    from PIL import Image

    folder_of(tmp_path / "trip" / "day2")
    for name in ("a.jpg", "b.jpg", "day2/c.jpg"):
        Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "trip" / name)
    out = tmp_path / "captions"
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'trip'}", f"out={out}", "decode=greedy")
    assert "replaced" not in capsys.readouterr().err  # nothing there yet
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'trip' / 'day2'}", f"out={out}", "decode=greedy")
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"note: replaced the captions of 3 images an earlier caption run wrote into out={out}")
    assert [json.loads(line)["file"] for line in (out / "captions.jsonl").read_text().splitlines()] == ["c.jpg"]


def test_captions_jsonl_keeps_file_names_and_captions_readable_in_utf8(release, tmp_path):
    """`grep 猫 captions.jsonl` finds the picture: names are written as they are, not as \\u escapes."""
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "猫 cat.jpg")
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'out'}",
                "decode=greedy")
    line = (tmp_path / "out" / "captions.jsonl").read_text(encoding="utf-8")
    assert line.startswith('{"image_id": "猫 cat.jpg", "file": "猫 cat.jpg", "caption": ')


def test_a_caption_run_stopped_by_ctrl_c_or_sigterm_removes_the_out_folder_it_made(tmp_path):
    import signal

    from supra.caption import out_folder
    from supra.utils.cli import sigterm_as_ctrl_c

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a process started from a shell has it
    try:
        with sigterm_as_ctrl_c(), pytest.raises(KeyboardInterrupt), out_folder(tmp_path / "runs" / "out"):  # as every command
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # else the signal would end this process
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not (tmp_path / "runs").exists()  # nor the folders made for it
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "captions.jsonl").write_text("earlier\n")
    with pytest.raises(KeyboardInterrupt), out_folder(tmp_path / "kept"):
        raise KeyboardInterrupt
    assert (tmp_path / "kept" / "captions.jsonl").read_text() == "earlier\n"  # an earlier run's folder stays


def test_caption_says_why_one_picture_cannot_be_read_in_the_words_explain_uses(release, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "good.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "good.jpg").read_bytes()[:300])
    for name, why in (("empty.png", "empty file (0 bytes)"), ("cut.jpg", "damaged or cut short")):
        with pytest.raises(SystemExit):
            run_command("caption", f"ckpt={release}", f"images={tmp_path / name}", f"out={tmp_path / 'out'}")
        assert capsys.readouterr().err == (f"error: images={tmp_path / name} cannot be read as a picture: {why}; give "
                                           "a PNG, JPEG, ...\n")  # not "none of the 1 images under images="
    assert run_command("caption", f"ckpt={release}", f"images={tmp_path / 'good.jpg'}", f"out={tmp_path / 'out'}",
                       "decode=greedy")
    assert f"captioned 1 image -> {tmp_path / 'out' / 'captions.jsonl'}\n" in capsys.readouterr().out


def test_export_replaces_an_old_release_but_never_other_files_its_input_or_the_working_directory(
        release, trained_run, tmp_path, monkeypatch, capsys):
    ckpt = trained_run / "checkpoints" / "best.ckpt"

    def refused(out: Path, *more: str) -> str:
        with pytest.raises(SystemExit):
            run_command("export", f"ckpt={ckpt}", f"out={out}", *more)
        return capsys.readouterr().err

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a week of work")
    assert "holds other files (notes.txt)" in refused(mine) and (mine / "notes.txt").is_file()
    # a flag is true or false: Hydra passes `no` on as text, which would count as true
    assert "overwrite='no' must be true or false" in refused(mine, "overwrite=no") and (mine / "notes.txt").is_file()
    assert "holds" in refused(trained_run, "overwrite=true") and ckpt.is_file()
    with monkeypatch.context() as inside:
        inside.chdir(mine)
        assert "holds" in refused(Path("."), "overwrite=true") and (mine / "notes.txt").is_file()
    assert "is a file" in refused(mine / "notes.txt")

    run_command("export", f"ckpt={ckpt}", f"out={mine}", "overwrite=true")
    run_command("export", f"ckpt={ckpt}", f"out={mine}")  # an old release is replaced without asking
    assert not (mine / "notes.txt").exists()
    umask = os.umask(0)
    os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in mine.iterdir()} == {p.name: 0o666 & ~umask for p in mine.iterdir()}


def test_export_refuses_a_runs_metrics_json_or_sample_grid_it_cannot_read(trained_run, tmp_path, capsys):
    """The card's scores and the release's samples.png are the run's files: one cut short or edited is one line
    naming it, not a JSONDecodeError, nor a release whose samples.png cannot be read; moved away, the release
    is exported without it."""
    run, out = tmp_path / "run", tmp_path / "release"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = Path(shutil.copyfile(trained_run / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt"))
    scores, grid = (trained_run / "metrics.json").read_text(), (trained_run / "samples.png").read_bytes()

    def refused() -> str:
        with pytest.raises(SystemExit):
            run_command("export", f"ckpt={ckpt}", f"out={out}")
        said = capsys.readouterr().err
        assert said.count("\n") == 1 and not out.exists()
        return said

    again = f"(`python evaluate.py ckpt={ckpt}` writes them again in its own run folder)\n"
    for damaged, what in ((scores[:40], "is not readable JSON (Unterminated string"),
                          ("[1, 2]", "holds [1, 2], not the metrics a test writes (a JSON object)")):
        (run / "metrics.json").write_text(damaged)
        said = refused()
        assert said.startswith(f"error: {run / 'metrics.json'}, the test scores of the checkpoint's run, {what}")
        assert said.endswith(f": move it away to export without the run's test scores {again}")
    (run / "metrics.json").write_text(scores)
    (run / "samples.png").write_bytes(grid[:2000])
    assert refused() == (f"error: {run / 'samples.png'}, the sample grid of the checkpoint's run, cannot be read (image "
                         "file is truncated): it is damaged or cut short; move it away to export without it (`python "
                         f"evaluate.py ckpt={ckpt}` draws one again in its own run folder)\n")
    (run / "samples.png").unlink()
    run_command("export", f"ckpt={ckpt}", f"out={out}")
    assert not (out / "samples.png").exists() and "## Metrics (test split" in (out / "README.md").read_text()


def test_export_of_a_model_without_a_release_format_names_it_and_makes_no_folder(vqvae_ckpt, tmp_path, capsys):
    out = tmp_path / "new" / "deep" / "release"
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={vqvae_ckpt}", f"out={out}")
    assert capsys.readouterr().err == (f"error: ckpt={vqvae_ckpt} is a VQ-VAE checkpoint, which has no release format: "
                                       "give a captioner or an a2a_nano checkpoint written by train.py\n")
    assert not (tmp_path / "new").exists()  # out's parents are made only for a release to write
    torch.save({"state_dict": {}, "supra": {"kind": "supra.diffusion"}}, tmp_path / "later.ckpt")
    with pytest.raises(SystemExit):  # a kind this version does not know: pointed to the kinds export takes
        run_command("export", f"ckpt={tmp_path / 'later.ckpt'}", f"out={out}")
    assert capsys.readouterr().err.endswith("does not know: give a captioner checkpoint, an a2a_nano checkpoint\n")


def diverged_checkpoint(ckpt: Path, out: Path) -> tuple[Path, str]:
    """`ckpt` as a run that diverged leaves it: every weight NaN but the first tensor's; (its path, the count
    export names)."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    made_nan = [name for name in list(state)[1:] if state[name].is_floating_point()]
    for name in made_nan:
        state[name] = torch.full_like(state[name], float("nan"))
    torch.save(checkpoint, out)
    return out, f"{len(made_nan)} of its {len(state)} tensors"


def diverged_release(release: Path, out: Path) -> tuple[Path, str]:
    """A copy of `release` whose weights hold one inf, as an export made before diverged runs were refused."""
    shutil.copytree(release, out)
    state = load_file(out / "model.safetensors")
    next(t for t in state.values() if t.is_floating_point()).view(-1)[0] = float("inf")
    save_file(state, out / "model.safetensors")
    return out, f"1 of its {len(state)} tensors"


@pytest.mark.parametrize("diverged", [
    lambda run, release, tmp: diverged_checkpoint(run / "checkpoints" / "best.ckpt", tmp / "diverged.ckpt"),
    lambda run, release, tmp: diverged_release(release, tmp / "diverged"),
], ids=["checkpoint", "release_folder"])
def test_export_refuses_a_diverged_models_weights_in_one_line_before_writing_anything(
        trained_run, release, tmp_path, capsys, diverged):
    (ckpt, count), out = diverged(trained_run, release, tmp_path), tmp_path / "new" / "release"
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={ckpt}", f"out={out}", "push_to=someone/diverged")
    assert capsys.readouterr().err == (f"error: ckpt={ckpt} holds weights that are not finite (NaN or inf) in {count}: "
                                       "its run diverged; export an earlier checkpoint of that run, or train again "
                                       "with a lower model.optimizer.lr\n")
    assert not (tmp_path / "new").exists()  # nothing written, nothing pushed


@pytest.mark.parametrize(("room", "reason"), [
    (4096, "File too large"),  # model.safetensors (2.8 MB) cut short: safetensors' error
    (4_000_000, "the write was cut short: the disk full, or a file size limit"),  # model.pt: torch's zip writer's
])
def test_export_on_a_full_disk_is_one_line_naming_out_and_leaves_nothing_beside_it(trained_run, tmp_path, capsys,
                                                                                    room, reason):
    ckpt, out = trained_run / "checkpoints" / "best.ckpt", tmp_path / "release"
    with file_size_limit(room), pytest.raises(SystemExit):  # ulimit -f: as a full disk, the write finds no room
        run_command("export", f"ckpt={ckpt}", f"out={out}")
    assert capsys.readouterr().err == f"error: cannot write to out={out} ({reason}): free space there, or give " \
                                      "another out= folder\n"
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_mount_point_is_refused_before_any_work(trained_run, tmp_path, monkeypatch, capsys):
    """out is replaced by renaming a folder written beside it into place, which a mount point refuses (EBUSY):
    a folder inside it is what to give."""
    ckpt, mount = trained_run / "checkpoints" / "best.ckpt", tmp_path / "disk"
    mount.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path).resolve() == mount)  # no mount without root
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={ckpt}", f"out={mount}")
    assert capsys.readouterr().err == (f"error: out={mount} is a mount point, which export cannot replace (it writes "
                                       "the release beside out, then renames it into place): give a folder inside "
                                       f"it, e.g. out={mount / 'release'}\n")
    assert list(tmp_path.iterdir()) == [mount] and not any(mount.iterdir())


def test_export_never_deletes_files_that_merely_bear_a_release_files_names(release, trained_run, tmp_path, capsys):
    ckpt = trained_run / "checkpoints" / "best.ckpt"

    def refused(out: Path) -> str:
        with pytest.raises(SystemExit):
            run_command("export", f"ckpt={ckpt}", f"out={out}")
        return capsys.readouterr().err

    notes = tmp_path / "notes"  # someone's README.md and config.json: no earlier release
    notes.mkdir()
    (notes / "README.md").write_text("my notes")
    (notes / "config.json").write_text('{"lr": 0.1}')
    assert refused(notes) == (f"error: out={notes} holds README.md, config.json but no earlier release (a captioner's "
                              "or an a2a_nano's config.json + model.safetensors), which replacing the folder would "
                              "delete: choose a new folder, or add overwrite=true\n")
    assert (notes / "README.md").read_text() == "my notes"
    # another library's model of the same file names is no earlier release either
    (notes / "model.safetensors").write_bytes((release / "model.safetensors").read_bytes())
    assert "but no earlier release" in refused(notes) and (notes / "config.json").read_text() == '{"lr": 0.1}'
    # export writes no metrics.json: one beside an earlier release is the user's, not the release's
    mine = tmp_path / "release"
    shutil.copytree(release, mine)
    (mine / "metrics.json").write_text('{"my": "results"}')
    assert "already holds other files (metrics.json)" in refused(mine) and (mine / "metrics.json").is_file()
    (mine / "metrics.json").unlink()
    run_command("export", f"ckpt={ckpt}", f"out={mine}")  # the earlier release alone is replaced without asking


def test_export_removes_the_temp_folders_an_export_killed_before_it_finished_left_beside_out(
        trained_run, tmp_path, capsys, caplog):
    import fcntl

    ckpt, out = trained_run / "checkpoints" / "best.ckpt", tmp_path / "release"
    killed = killed_in_atomic_dir(out, "model.safetensors")  # an export killed (SIGKILL) while filling its temp folder
    (tmp_path / ".other.k3_x9q2z").mkdir()  # another out's, and the user's own named much like one
    (tmp_path / ".release.notes").write_text("the user's")
    (tmp_path / ".release.20240101").mkdir()
    (tmp_path / ".release.20240101" / "NOTES.txt").write_text("the user's")
    # while another export writes beside out (holding the folder as each export does), a temp folder may be
    # its own at work: named, not removed
    held = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_SH)
        run_command("export", f"ckpt={ckpt}", f"out={out}")
    finally:
        os.close(held)
    assert (f"holds temp folders of an export to out={out} that did not finish, or of one at work now" in caplog.text
            and f": {killed.name}; remove them once" in caplog.text)
    assert killed.is_dir()
    capsys.readouterr()
    run_command("export", f"ckpt={ckpt}", f"out={out}")
    assert (f"removed 1 temp folder that an interrupted earlier export left beside out={out}: {killed.name}\n"
            in capsys.readouterr().out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.k3_x9q2z", ".release.20240101", ".release.notes",
                                                          "release"]
    assert (tmp_path / ".release.20240101" / "NOTES.txt").read_text() == "the user's"


@pytest.mark.parametrize("license", ["", "' '"])
def test_an_empty_license_is_refused_not_written_into_the_card(license, tmp_path, capsys):
    with pytest.raises(SystemExit):  # the card declared `license: ''` to the Hub
        run_command("export", "ckpt=best.ckpt", f"out={tmp_path / 'release'}", f"license={license}")
    assert capsys.readouterr().err == ("error: license= is empty: give the license the model card declares (an id "
                                       "such as apache-2.0, mit, cc-by-4.0), or leave it out (other)\n")
    assert not (tmp_path / "release").exists()


def test_export_of_a_release_folder_copies_it_as_it_is(release, tmp_path, capsys):
    copy = run_command("export", f"ckpt={release}", f"out={tmp_path / 'copy'}")
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in release.iterdir())
    assert (copy / "model.safetensors").read_bytes() == (release / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit):  # its card keeps its license: another one asked for would be ignored
        run_command("export", f"ckpt={release}", f"out={tmp_path / 'relicensed'}", "license=mit")
    assert "license=mit: ckpt=" in capsys.readouterr().err and not (tmp_path / "relicensed").exists()
    with pytest.raises(SystemExit):  # the visibility of a Hub repo, and nothing is pushed
        run_command("export", f"ckpt={release}", f"out={tmp_path / 'private'}", "private=true")
    assert capsys.readouterr().err == ("error: private=true: export without push_to=org/name does not read it; "
                                       "leave it out\n") and not (tmp_path / "private").exists()
    # a folder that cannot be read is not copied (and pushed) as a release
    shutil.copytree(release, tmp_path / "broken")
    (tmp_path / "broken" / "tokenizer.json").unlink()
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={tmp_path / 'broken'}", f"out={tmp_path / 'copy2'}")
    assert "tokenizer.json is missing" in capsys.readouterr().err and not (tmp_path / "copy2").exists()


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("model.pt", lambda path: path.write_bytes(path.read_bytes()[:100_000]), "model.pt cannot be read ("),
    ("samples.png", lambda path: path.write_bytes(path.read_bytes()[:500]), "samples.png cannot be read (image file is truncated)"),
    ("scoring.json", lambda path: path.write_text('{"decode": [1]}'), 'scoring.json: "decode" is [1], not an object'),
    ("model.safetensors", lambda path: path.write_bytes(path.read_bytes()[:10_000]), "model.safetensors is not a readable"),
])
def test_export_reads_every_file_of_a_release_folder_before_copying_it(release, tmp_path, capsys, name, damage, message):
    shutil.copytree(release, tmp_path / "damaged")
    damage(tmp_path / "damaged" / name)
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={tmp_path / 'damaged'}", f"out={tmp_path / 'copy'}")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'damaged'}/{message}" in err, err
    assert not (tmp_path / "copy").exists()


def test_export_of_a_release_folder_copies_its_other_files_too_and_names_the_hidden_folders_it_leaves(
        release, tmp_path, capsys):
    folder = tmp_path / "published"
    shutil.copytree(release, folder)
    (folder / "LICENSE").write_text("MIT License\n")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"onnx bytes")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    copy = run_command("export", f"ckpt={folder}", f"out={tmp_path / 'copy'}")
    copied = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert copied == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and ".git/" not in
                            p.relative_to(folder).as_posix())
    assert "onnx/model.onnx" in copied and "LICENSE" in copied and ".gitattributes" in copied
    assert (copy / "onnx" / "model.onnx").read_bytes() == b"onnx bytes"
    assert "not copied: .git/ (hidden or linked folders" in capsys.readouterr().out
    run_command("export", f"ckpt={folder}", f"out={copy}")  # its earlier copy is replaced as an old release is
    # an out folder inside the release is not copied into itself
    inside = run_command("export", f"ckpt={folder}", f"out={folder / 'again'}")
    assert not (inside / "again").exists() and (inside / "LICENSE").is_file()


def test_caption_with_out_inside_images_never_captions_its_own_grid(release, tmp_path):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "red.jpg")
    for _ in range(2):  # the second run finds the first one's captions.png among the photos
        captioned = run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos'}",
                                f"out={tmp_path / 'photos'}", "decode=greedy")
    assert list(captioned) == ["red.jpg"]


def test_caption_refuses_an_unwritable_out_before_the_work_and_fails_when_nothing_could_be_read(release, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "red.jpg")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit):
        run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'a_file'}")
    assert "error: cannot write to out=" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "cut.jpg").write_bytes(b"\xff\xd8\xff not really")
    with pytest.raises(SystemExit):
        run_command("caption", f"ckpt={release}", f"images={tmp_path / 'broken'}", f"out={tmp_path / 'out' / 'run'}")
    assert f"error: the one image under images={tmp_path / 'broken'} could not be read (" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nor the folders made for it


def test_a_refused_caption_run_names_the_option_and_leaves_no_out_folder(release, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "red.jpg")
    (tmp_path / "empty").mkdir()
    photos = f"images={tmp_path / 'photos'}"
    cases = [
        ([f"images={tmp_path / 'missing'}"], f"images={tmp_path / 'missing'} does not exist"),
        ([f"images={tmp_path / 'empty'}"], f"images={tmp_path / 'empty'} holds no image files"),
        ([photos, "batch_size=abc"], "batch_size='abc' must be a whole number"),
        ([photos, "batch_size=2.7"], "batch_size=2.7 must be a whole number"),  # not cut to 2
        ([photos, "grid_images=-3"], "grid_images=-3 must be >= 0 (0: no captions.png)"),
    ]
    for overrides, message in cases:
        with pytest.raises(SystemExit):
            run_command("caption", f"ckpt={release}", f"out={tmp_path / 'out'}", *overrides)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (overrides, err)
        assert not (tmp_path / "out").exists(), overrides


def test_captions_png_names_each_file_and_is_as_wide_as_the_images_it_shows(release, tmp_path):
    """It matched tiles to files only by order, and one image was one tile beside three blank ones."""
    from PIL import Image, ImageDraw

    from supra.pictures.grids import LINE_HEIGHT, NAME_COLOUR, TILE, font

    folder_of(tmp_path / "one")
    Image.new("RGB", (400, 60), (200, 30, 30)).save(tmp_path / "one" / "red strip.png")
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'one'}", f"out={tmp_path / 'out'}", "decode=greedy")
    grid = Image.open(tmp_path / "out" / "captions.png").convert("RGB")
    assert grid.width == TILE  # one tile, no blank ones beside it
    name_line = Image.new("RGB", (TILE, LINE_HEIGHT), "white")
    ImageDraw.Draw(name_line).text((4, 0), "red strip.png", fill=NAME_COLOUR, font=font())
    assert np.array_equal(np.asarray(grid.crop((0, TILE, TILE, TILE + LINE_HEIGHT))), np.asarray(name_line))


def test_caption_without_a_grid_removes_the_earlier_grid_of_other_images(release, tmp_path):
    from PIL import Image

    (tmp_path / "photos" / "sub").mkdir(parents=True)
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "red.jpg")
    Image.new("RGB", (50, 40), (30, 30, 200)).save(tmp_path / "photos" / "sub" / "blue.jpg")
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'out'}", "decode=greedy")
    assert (tmp_path / "out" / "captions.png").is_file()
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos' / 'sub'}", f"out={tmp_path / 'out'}",
                "decode=greedy", "grid_images=0")
    records = [json.loads(line) for line in (tmp_path / "out" / "captions.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == ["blue.jpg"]
    assert not (tmp_path / "out" / "captions.png").exists()  # it showed red.jpg, captioned no more


def test_caption_on_a_full_disk_is_one_line_and_keeps_the_earlier_captions_with_their_grid(release, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "red.jpg")
    Image.new("RGB", (50, 40), (30, 30, 200)).save(tmp_path / "blue.jpg")
    out = tmp_path / "out"
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos'}", f"out={out}", "decode=greedy")
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    room = (len(earlier["captions.jsonl"]) + len(earlier["captions.png"])) // 2  # for the captions, not the grid
    assert len(earlier["captions.jsonl"]) < room < len(earlier["captions.png"])
    capsys.readouterr()
    with file_size_limit(room), pytest.raises(SystemExit):  # ulimit -f: as a full disk
        run_command("caption", f"ckpt={release}", f"images={tmp_path / 'blue.jpg'}", f"out={out}", "decode=greedy")
    assert capsys.readouterr().err.endswith(f"error: cannot write to out={out} (File too large): free space there, "
                                            "or give another out= folder\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # no new captions beside the earlier grid


def test_caption_passes_over_the_grids_earlier_caption_runs_left_under_images(release, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "red.jpg")
    Image.new("RGB", (50, 40), (30, 30, 200)).save(tmp_path / "photos" / "captions.png")  # no captions.jsonl: a photo
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'photos' / 'runA'}",
                "decode=greedy")
    capsys.readouterr()
    captioned = run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos'}",
                            f"out={tmp_path / 'photos' / 'runB'}", "decode=greedy")
    assert sorted(captioned) == ["captions.png", "red.jpg"]  # runA/captions.png is runA's output, not a photo
    assert (f"note: passed over 1 grid of earlier caption runs: {tmp_path / 'photos' / 'runA' / 'captions.png'}"
            in capsys.readouterr().err)
    # given as the file itself, it is the user's choice
    captioned = run_command("caption", f"ckpt={release}", f"images={tmp_path / 'photos' / 'runA' / 'captions.png'}",
                            f"out={tmp_path / 'out'}", "decode=greedy")
    assert list(captioned) == ["captions.png"]


def test_the_note_on_grids_passed_over_counts_one_grid_and_two_grids(tmp_path, capsys, monkeypatch):
    """"passed over 1 grid", "passed over 2 grids", never "grid(s)"."""
    import supra.caption as caption

    monkeypatch.setattr(caption, "is_earlier_output", lambda path: path.name == "captions.png")  # runs' grids
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "red.jpg").write_bytes(b"")  # found by its suffix; not read here
    grids = [tmp_path / "photos" / run / "captions.png" for run in ("runA", "runB")]
    for count, grid in enumerate(grids, 1):
        grid.parent.mkdir()
        grid.write_bytes(b"")
        caption.images_to_caption(tmp_path / "photos", tmp_path / "out")
        shown = ", ".join(map(str, grids[:count]))
        noun = "1 grid" if count == 1 else "2 grids"
        assert capsys.readouterr().err.splitlines() == [f"note: passed over {noun} of earlier caption runs: {shown}"]


def test_caption_never_writes_over_the_users_own_captions_or_a_photo_called_captions_png(release, tmp_path, capsys):
    from PIL import Image

    ground_truth = '{"file": "red.jpg", "caption": "a red card on a table"}\n'  # the caption-folder format
    (tmp_path / "cf").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "cf" / "red.jpg")
    (tmp_path / "cf" / "captions.jsonl").write_text(ground_truth)
    (tmp_path / "ph2").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "ph2" / "red.jpg")
    Image.new("RGB", (50, 40), (30, 30, 200)).save(tmp_path / "ph2" / "captions.png")  # a photo, no grid
    photo = (tmp_path / "ph2" / "captions.png").read_bytes()
    for folder, name, more in (("cf", "captions.jsonl", []), ("ph2", "captions.png", []),
                               ("ph2", "captions.png", ["grid_images=0"])):  # which removed an earlier grid
        out = tmp_path / folder
        with pytest.raises(SystemExit):
            run_command("caption", f"ckpt={release}", f"images={out}", f"out={out}", "decode=greedy", *more)
        assert capsys.readouterr().err == (
            f"error: out={out} already holds {name}, which this run would write over and no earlier caption run "
            'wrote (its captions.jsonl has one {"image_id", "file", "caption"} per image): choose a new out= folder, '
            "or move them away\n")
    assert (tmp_path / "cf" / "captions.jsonl").read_text() == ground_truth
    assert not (tmp_path / "cf" / "captions.png").exists()
    assert (tmp_path / "ph2" / "captions.png").read_bytes() == photo
    # elsewhere, the photo called captions.png is captioned like any other, not passed over as a grid
    captioned = run_command("caption", f"ckpt={release}", f"images={tmp_path / 'ph2'}", f"out={tmp_path / 'out'}",
                            "decode=greedy")
    assert sorted(captioned) == ["captions.png", "red.jpg"]
    # an earlier caption run's outputs are its own: replaced, not refused; but not when given as the input
    run_command("caption", f"ckpt={release}", f"images={tmp_path / 'ph2' / 'red.jpg'}", f"out={tmp_path / 'out'}",
                "decode=greedy")
    with pytest.raises(SystemExit):
        run_command("caption", f"ckpt={release}", f"images={tmp_path / 'out' / 'captions.png'}",
                    f"out={tmp_path / 'out'}")
    assert "is captions.png in out=" in capsys.readouterr().err


def test_caption_refuses_a_folder_where_an_output_file_goes_before_any_work(release, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "red.jpg")
    (tmp_path / "ca" / "captions.png").mkdir(parents=True)
    with pytest.raises(SystemExit):
        run_command("caption", f"ckpt={release}", f"images={tmp_path / 'red.jpg'}", f"out={tmp_path / 'ca'}")
    assert capsys.readouterr().err == (f"error: out={tmp_path / 'ca'} holds a folder captions.png where this run writes "
                                       "its file captions.png: move the folder away or give another out= folder\n")
    assert [p.name for p in (tmp_path / "ca").iterdir()] == ["captions.png"]  # no captions.jsonl without its grid


def test_caption_refuses_out_a_release_or_a_run_folder_whose_files_it_would_join(release, trained_run, tmp_path,
                                                                                 capsys):
    from PIL import Image

    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "red.jpg")
    for out, why in ((release, "is a release folder (config.json + model.safetensors), whose copies and pushes "
                               "would carry the captions"),
                     (trained_run, "holds a run's records (checkpoints/best.ckpt)")):
        with pytest.raises(SystemExit):
            run_command("caption", f"ckpt={release}", f"images={tmp_path / 'red.jpg'}", f"out={out}")
        assert capsys.readouterr().err == f"error: out={out} {why}: choose another out= folder\n"
        assert not (out / "captions.jsonl").exists() and not (out / "captions.png").exists()


def test_a_release_is_scored_with_the_decoding_its_card_was_measured_with(trained_run, tmp_path):
    from PIL import Image

    from supra.runner.evaluation import LOADERS
    from tests.conftest import compose_config

    # a run that decoded with its own settings (train.py model.decode.max_new_tokens=3 ... records them so)
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["decode"] |= {"length_penalty": 1.0, "max_new_tokens": 3}
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(checkpoint, ckpt)
    release = export_release(ckpt, tmp_path / "release")
    decoding = {}
    for name, path in (("run", ckpt), ("release", release)):
        kind = artifact_kind(path)
        task, *_ = LOADERS[kind](compose_config("eval", tmp_path / name, [f"ckpt={path}"]), kind)
        decoding[name] = task.decode
    assert decoding["release"] == decoding["run"] and decoding["run"].max_new_tokens == 3
    # the caption command decodes so too, from the checkpoint or the release (its strategy its own option)
    Image.new("RGB", (60, 50), (200, 30, 30)).save(tmp_path / "red.png")
    for model in (ckpt, release):
        captioned = run_command("caption", f"ckpt={model}", f"images={tmp_path / 'red.png'}", f"out={tmp_path / 'out'}",
                                "decode=greedy")
        assert len(captioned["red.png"].split()) <= 3, captioned
    (release / "scoring.json").write_text("{not json")
    with pytest.raises(SupraUserError, match=r"scoring.json is not readable JSON .*: export the release again"):
        LOADERS[kind](compose_config("eval", tmp_path / "broken", [f"ckpt={release}"]), kind)


def test_a_resumed_runs_carried_best_checkpoint_is_released_with_the_decoding_its_test_used(trained_run, tmp_path):
    # A resumed run (model.decode.beam_width=1 given now) that kept the best.ckpt of the run it resumed: a copy,
    # that run's decoding (beam width 3) inside; its test, metrics.json, decoded with width 1.
    run = tmp_path / "resumed"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = Path(shutil.copyfile(trained_run / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt"))
    shutil.copyfile(trained_run / "metrics.json", run / "metrics.json")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(
        "paths:\n  output_dir: ${hydra:runtime.output_dir}\n"
        "model:\n  decode:\n    strategy: beam\n    beam_width: 1\n    length_penalty: 0.0\n"
        "  test_metrics: [Bleu, '${paths.output_dir}']\n")  # what cannot be read outside Hydra is passed over
    assert load_supra_checkpoint(ckpt)["supra"]["run_config"]["model"]["decode"]["beam_width"] == 3
    release = export_release(ckpt, tmp_path / "release")
    # the card prints that test's scores, so the release is scored (evaluate.py, caption) with its decoding
    assert "| CIDEr |" in (release / "README.md").read_text()
    assert json.loads((release / "scoring.json").read_text())["decode"]["beam_width"] == 1


def test_fine_tuning_from_a_release_of_other_sizes_names_the_settings_to_change(release, tmp_path):
    from supra.runner.training import train
    from tests.conftest import compose_config

    with pytest.raises(SupraUserError, match=re.escape(f"{release} holds a captioner of other sizes (D_MODEL=128 there, "
                                                       "64 here): add model.net.D_MODEL=128, or choose a folder")):
        train(compose_config("train", tmp_path / "run", [f"model.init_from={release}", "model.net.D_MODEL=64"]))


def test_a_model_of_the_wrong_kind_is_named_for_what_it_is(trained_run, tmp_path):
    from omegaconf import OmegaConf

    from supra.artifacts.a2a_release import load_a2a
    from supra.runner.components import tokenizer_to_reuse

    a2a_like, captioner_like = tmp_path / "a2a", tmp_path / "captioner"
    for folder, names in ((a2a_like, ("config.json", "model.safetensors", "vqvae.safetensors")),
                          (captioner_like, ("config.json", "model.safetensors"))):
        folder.mkdir()
        for name in names:
            (folder / name).write_text("{}")
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    for init_from, message in ((ckpt, "is a file: it takes a release folder (python -m supra.export"),
                               (tmp_path / "nowhere", "does not exist"),
                               (a2a_like, "is an a2a_nano release: it takes a SupraVL-Nano (captioner) release")):
        with pytest.raises(SupraUserError, match=re.escape(f"model.init_from={init_from} {message}")):
            tokenizer_to_reuse(OmegaConf.create({"model": {"init_from": str(init_from)}}))
    # as train.py meets it: the task loads the weights before the data asks for the tokenizer
    from supra.runner.training import train
    from tests.conftest import compose_config

    with pytest.raises(SupraUserError, match=re.escape(f"model.init_from={trained_run} is not a release folder")):
        train(compose_config("train", tmp_path / "run", [f"model.init_from={trained_run}"]))
    with pytest.raises(SupraUserError, match="is a SupraVL-Nano captioner release, not an a2a_nano one"):
        load_a2a(captioner_like)
    weightless = tmp_path / "weightless"  # a release folder whose weights were not copied along
    weightless.mkdir()
    (weightless / "config.json").write_text("{}")
    with pytest.raises(SupraUserError, match=re.escape(f"ckpt={weightless} is a release folder without model.safetensors "
                                                       "(it holds config.json): copy model.safetensors again")):
        artifact_kind(weightless)
    lost_vqvae = tmp_path / "a2a_without_vqvae"  # an a2a release whose VQ-VAE file was not copied along
    lost_vqvae.mkdir()
    (lost_vqvae / "config.json").write_text(json.dumps({"model_type": "supra_a2a_nano"}))
    (lost_vqvae / "model.safetensors").write_text("{}")
    with pytest.raises(SupraUserError, match="is not a complete a2a release folder: vqvae.safetensors"):
        load_a2a(lost_vqvae)


@pytest.mark.parametrize("lost", ["config.json", "model.safetensors"])
def test_a_release_folder_that_lost_its_config_or_weights_names_the_file_to_copy_again(release, tmp_path, capsys, lost):
    folder = tmp_path / "copied"  # a copy that left one file behind
    shutil.copytree(release, folder)
    (folder / lost).unlink()
    held = ", ".join(name for name in ("config.json", "model.safetensors", "tokenizer.json", "model.pt", "README.md",
                                       "samples.png", "scoring.json") if (folder / name).is_file())
    images = tmp_path / "images"
    images.mkdir()
    shutil.copyfile(release / "samples.png", images / "samples.png")
    with pytest.raises(SystemExit):
        run_command("caption", f"ckpt={folder}", f"images={images}", f"out={tmp_path / 'captions'}")
    assert capsys.readouterr().err == (f"error: ckpt={folder} is a release folder without {lost} (it holds {held}): "
                                       f"copy {lost} again from where the release came from, or export the release "
                                       "again (python -m supra.export)\n")
    empty = tmp_path / "empty"  # no file of a release at all: what ckpt takes
    empty.mkdir()
    with pytest.raises(SupraUserError, match=re.escape(f"ckpt={empty} is a folder without config.json and "
                                                       "model.safetensors: give a release folder or a .ckpt file")):
        artifact_kind(empty)


def test_a_folder_with_a_vqvae_file_but_no_a2a_config_is_named_for_what_it_holds(release, tmp_path, capsys):
    from supra.artifacts.a2a_release import load_a2a

    folder = tmp_path / "stray"  # a captioner release that a VQ-VAE file was copied into
    shutil.copytree(release, folder)
    (folder / "vqvae.safetensors").write_bytes(b"{}")
    with pytest.raises(SystemExit):
        run_command("export", f"ckpt={folder}", f"out={tmp_path / 'copy'}")
    assert capsys.readouterr().err == (
        f"error: {folder} holds a SupraVL-Nano captioner release (its config.json) and a vqvae.safetensors, which no "
        "captioner release has: remove vqvae.safetensors to use it as a captioner release, or give an a2a release "
        "folder or checkpoint\n")
    for config, message in (({"model_type": "bert"}, f'{folder} holds a "bert" model (its config.json\'s model_type), '
                                                     "not an a2a_nano one"),
                            ({"D_MODEL": 128}, f'{folder / "config.json"} names no model_type (an a2a_nano '
                                               'release\'s says "supra_a2a_nano")')):
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(SupraUserError, match=re.escape(message)):
            load_a2a(folder)


def test_a_release_folder_or_one_of_its_files_given_where_it_does_not_go_says_where_it_does(tmp_path):
    from supra.runner.run_checks import check_run_config
    from tests.conftest import TINY_RUN, compose_config

    release = tmp_path / "release"
    release.mkdir()
    for name in ("config.json", "model.safetensors", "model.pt"):
        (release / name).write_text("{}")
    # the commands that score or copy a model take the folder: its files are not checkpoints, damaged or not
    for name in ("model.safetensors", "model.pt", "config.json"):
        with pytest.raises(SupraUserError, match=re.escape(f"ckpt={release / name} is the {name} of the release folder "
                                                           f"{release}: give the folder, ckpt={release}")):
            artifact_kind(release / name)
    with pytest.raises(SupraUserError, match=re.escape(f"vqvae={release / 'model.pt'} is the model.pt of the release "
                                                       f"folder {release}, not a .ckpt written by train.py")):
        load_supra_checkpoint(release / "model.pt", what="vqvae")
    # train.py resumes runs: a release is fine-tuned from instead (or scored by evaluate.py)
    for given, what, train, use in (
            (release, "a release folder", "true", f"fine-tune from the release with model.init_from={release}"),
            (release / "model.pt", "the model.pt of a release folder", "false",
             f"score the release with python evaluate.py ckpt={release}")):
        cfg = compose_config("train", tmp_path / "run", [*TINY_RUN, f"ckpt_path={given}", f"train={train}"])
        with pytest.raises(SupraUserError, match=re.escape(f"ckpt_path={given} is {what}, which holds no run: {use} "
                                                           "(ckpt_path= takes a last.ckpt or best.ckpt of a run)")):
            check_run_config(cfg)


def test_caption_lists_a_named_pipe_and_a_looping_link_among_the_files_it_skips_never_opening_the_pipe(tmp_path, pipes_never_opened):
    """A pipe inside images= is kept to be named as skipped (reading it would wait forever); given as images=
    itself it is one line saying what it is, as is a link that loops."""
    from supra.caption import find_images, unreadable_reason
    from supra.utils.folder_walk import not_regular

    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "loopy.png").symlink_to(tmp_path / "loopy.png")
    assert find_images(tmp_path) == [tmp_path / "loopy.png", tmp_path / "pipe.jpg"]
    assert not_regular(tmp_path / "pipe.jpg")
    assert unreadable_reason(tmp_path / "loopy.png", OSError()) == f"a link to {tmp_path / 'loopy.png'}, which loops back to itself"
    for name, what in (("pipe.jpg", "is not a regular file"), ("loopy.png", "is a link that loops to itself")):
        with pytest.raises(SupraUserError, match=f"^images={re.escape(str(tmp_path / name))} {what}"):
            find_images(tmp_path / name)


def test_a_mistyped_model_folder_is_answered_with_everything_ckpt_takes(tmp_path, capsys):
    """caption and explain take a checkpoint, a release folder or a Hub id: a missing folder (typed with its
    trailing slash) was answered "give a .ckpt file written by train.py" alone."""
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "red.png")
    missing = tmp_path / "rel_vlmx"
    for command, *overrides in (("caption", f"images={tmp_path / 'red.png'}"), ("explain", f"image={tmp_path / 'red.png'}"),
                                ("generate", "mode=text2image", "prompt=a red square"), ("export",)):
        with pytest.raises(SystemExit):
            run_command(command, f"ckpt={missing}/", *overrides, f"out={tmp_path / 'out'}")
        assert capsys.readouterr().err == (f"error: ckpt={missing}/ does not exist: give a .ckpt file written by "
                                           "train.py, a release folder or a Hugging Face Hub repo id (org/name)\n")
    assert not (tmp_path / "out").exists()


def test_bare_weights_given_as_a_checkpoint_are_named_as_such_with_what_to_give(tmp_path):
    """A safetensors file or a torch.save'd state dict is no checkpoint: it was 'not a Lightning checkpoint (no
    state_dict)', which a state dict's owner reads as nonsense; now what it is, and the checkpoint or the release
    folder to give instead."""
    weights = {"tok_emb.weight": torch.zeros(3, 2)}
    save_file(weights, tmp_path / "w.safetensors")
    torch.save(weights, tmp_path / "plain_sd.pt")
    for name, described in (("w.safetensors", "a safetensors file"),
                            ("plain_sd.pt", "a state dict of 1 tensor, torch.save'd")):
        with pytest.raises(SupraUserError, match=re.escape(
                f"ckpt={tmp_path / name} holds bare weights ({described}), not a .ckpt written by train.py: give "
                "that, or a release folder (the weights as model.safetensors beside their config.json and "
                "tokenizer.json; docs/releases.md)")):
            load_supra_checkpoint(tmp_path / name)


def test_a_checkpoint_given_to_a_release_loader_says_which_loader_reads_it(tmp_path):
    from supra.artifacts.a2a_release import load_a2a_release

    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"a checkpoint")  # its kind is never read: a file is no release folder
    # before: "best.ckpt/config.json is not readable JSON ([Errno 20] Not a directory)"
    for load, loader in ((load_release, "load_captioner"), (load_a2a_release, "load_a2a")):
        with pytest.raises(SupraUserError, match=rf"^{re.escape(str(ckpt))} is a file, not a release folder: call "
                                                 rf"{loader}\('{re.escape(str(ckpt))}'\), which reads checkpoints"):
            load(ckpt)


def test_no_path_given_to_a_loader_is_one_line_not_a_type_error():
    from supra.artifacts.a2a_release import load_a2a, load_a2a_release
    from supra.artifacts.captioner_release import load_captioner

    for load in (load_captioner, load_a2a, load_release):
        with pytest.raises(SupraUserError, match=r"^ckpt=None is not a path: give a checkpoint file, a release folder"):
            load(None)
    with pytest.raises(SupraUserError, match=r"^None is not a path: give a release folder \(or any model file to "
                                             r"load_a2a\)$"):
        load_a2a_release(None)


def test_export_of_a_release_folder_leaves_out_and_names_links_to_files_outside_it(release, tmp_path, capsys):
    folder = tmp_path / "downloaded"
    shutil.copytree(release, folder)
    (tmp_path / "secret.txt").write_text("SECRET=hunter2\n")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(tmp_path / "secret.txt")
    (folder / "notes.txt").symlink_to(Path("..") / "secret.txt")
    (folder / "LICENSE").write_text("MIT License\n")
    (folder / "COPYING").symlink_to("LICENSE")  # a link within the folder is part of it
    copy = run_command("export", f"ckpt={folder}", f"out={tmp_path / 'copy'}")
    assert not (copy / "README.md").exists() and not (copy / "notes.txt").exists()
    assert (copy / "COPYING").read_text() == "MIT License\n"
    assert f"not copied: README.md, notes.txt (links to files outside {folder}: copy the files in if they belong to " \
           "the release)\n" in capsys.readouterr().out


def test_export_of_a_hub_snapshot_copies_the_files_its_links_find_in_the_cache(release, tmp_path, monkeypatch):
    # huggingface_hub keeps a repo's files once, in blobs/, and links each snapshot's names to them
    repo = tmp_path / "hub" / "models--org--captioner"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for index, file in enumerate(sorted(release.iterdir())):
        shutil.copyfile(file, repo / "blobs" / f"blob{index}")
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / f"blob{index}")
    monkeypatch.setattr("supra.export.hub_cache", lambda: tmp_path / "hub")
    copy = run_command("export", f"ckpt={snapshot}", f"out={tmp_path / 'copy'}")
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in release.iterdir())
