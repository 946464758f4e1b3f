"""Supra used from Python, without train.py: README's "Use from Python" snippet runs as written, and a task and a
DataModule built by hand meet at setup, where the data must follow the model as the runner makes it do."""

import copy
import re
from functools import partial

import lightning as L
import pytest
import torch

from supra.artifacts.a2a_release import load_a2a, save_a2a_release
from supra.artifacts.captioner_release import load_captioner
from supra.data.a2a.mixture import A2AMixtureDataModule
from supra.data.captioning.shapes import ShapesDataModule
from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.models.vlm_nano import VLMNano
from supra.models.vqvae import VQVAE
from supra.tasks.a2a import A2ATask
from supra.tasks.captioning import CaptioningTask
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.errors import SupraUserError
from tests.conftest import ROOT

SMALL = {"num_train": 16, "num_val": 4, "num_test": 4, "batch_size": 8, "eval_batch_size": 4}


def small_task() -> CaptioningTask:
    net = VLMNano(IMG_SIZE=64, MAX_SEQ=24, VOCAB_SIZE=300, D_MODEL=32, N_HEADS=2, N_LAYERS=1, D_FF=64, VIS_CH=32)
    return CaptioningTask(net, partial(torch.optim.AdamW, lr=1e-3))


def fit(task: L.LightningModule, data: L.LightningDataModule) -> None:
    L.Trainer(max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, accelerator="cpu").fit(task, data)


@pytest.mark.parametrize("data_settings, refused", [
    ({}, "the data's image_size is 112 but the model's is 64 (model.net.IMG_SIZE"),
    ({"max_caption_tokens": 24, "vocab_size": 300}, "the data's image_size is 112 but the model's is 64"),
    ({"image_size": 64}, "the data's max_caption_tokens is 48 but the model's is 24 (model.net.MAX_SEQ)"),
])
def test_a_datamodule_built_by_hand_for_another_model_is_refused_at_setup_naming_both_values(
        tmp_path, data_settings, refused):
    # before: the defaults failed in torch's embedding (IndexError), and a matched vocabulary trained a 64 px
    # model on 112 px images without a word
    data = ShapesDataModule(**SMALL, **data_settings, tokenizer_path=str(tmp_path / "tokenizer.json"))
    with pytest.raises(SupraUserError, match=rf"^{re.escape(refused)}.*build the DataModule with \*\*task\.data_settings\(\)"):
        fit(small_task(), data)


def test_a_datamodule_built_with_the_tasks_data_settings_trains(tmp_path):
    task = small_task()
    data = ShapesDataModule(**SMALL, **task.data_settings(), tokenizer_path=str(tmp_path / "tokenizer.json"))
    fit(task, data)
    assert task.tokenizer is data.tokenizer and task.global_step == 1


def readme_python_snippet(which: int = 0) -> str:
    """A code block of README's "Use from Python" section (the first: loading and generating; the second: conf/
    composed for training), as a user copies it."""
    section = (ROOT / "README.md").read_text().split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n")[which + 1].split("```", 1)[0]


def test_the_readmes_python_snippet_runs_as_written_on_a_captioner_and_an_a2a_model(trained_run, tmp_path, capsys):
    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red circle", "a blue square"], vocab_size=270, num_codes=16)
    gpt = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=100, n_layers=1, d_model=16, n_heads=2,
                            d_mlp=32))
    a2a = save_a2a_release(tmp_path / "a2a", gpt, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)
    snippet = readme_python_snippet()
    # the one thing a user edits: where their model files are
    snippet, n = re.subn(r'^captioner_path = "[^"]*"', f'captioner_path = "{trained_run / "checkpoints" / "best.ckpt"}"',
                         snippet, flags=re.M)
    snippet, m = re.subn(r'^a2a_path = "[^"]*"', f'a2a_path = "{a2a}"', snippet, flags=re.M)
    assert n == m == 1
    names: dict = {}
    exec(compile(snippet, "README.md", "exec"), names)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and names["codes"].shape == (1, 8, 8) and names["rgb"].shape == (1, 3, 64, 64)
    assert printed[0] == names["tokenizer"].decode(names["ids"][0])


def test_the_readmes_recipe_composes_conf_outside_a_run_and_trains_writing_under_its_output_dir(tmp_path,
                                                                                                  monkeypatch):
    """Hydra's compose API alone left paths.output_dir unresolvable ("HydraConfig was not set")."""
    snippet = readme_python_snippet(1)
    # kept as written but for size: a small model, data and run, so the recipe runs here in seconds
    small = ["model.net.IMG_SIZE=64", "model.net.D_MODEL=32", "model.net.N_LAYERS=1", "data.num_train=16",
             "data.batch_size=8"]
    snippet, n = re.subn(r'compose_conf\("train", \[', f'compose_conf("train", {small} + [', snippet)
    snippet, m = re.subn(r"L\.Trainer\(max_steps=3, ", "L.Trainer(max_steps=1, limit_val_batches=0, logger=False, "
                         "enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, ", snippet)
    assert n == m == 1
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(snippet, "README.md", "exec"), names)
    assert names["task"].global_step == 1
    assert (tmp_path / "logs" / "notebook" / "tokenizer.json").is_file()  # data.tokenizer_path, under paths.output_dir


def small_vqvae(seed: int) -> VQVAE:
    torch.manual_seed(seed)
    return VQVAE(num_codes=16, code_dim=4, hidden=(4, 4))


def small_a2a_task(vqvae: VQVAE) -> A2ATask:
    gpt = partial(A2ANano.from_kwargs, context=128, n_layers=1, d_model=16, n_heads=2, d_mlp=32)
    return A2ATask(gpt, partial(torch.optim.AdamW, lr=1e-3), vqvae=vqvae)


def small_mixture(**settings) -> A2AMixtureDataModule:
    shapes = {"_target_": "supra.data.media.shapes_images.ShapesImagesDataModule", "num_train": 8, "num_val": 2,
              "num_test": 2, "image_size": 32}
    return A2AMixtureDataModule(sources={"shapes": shapes}, tasks={"text": 1}, num_codes=16, text_vocab_size=256,
                                batch_size=4, eval_batch_size=2, **settings)


@pytest.mark.parametrize("data_settings, refused", [
    ({"context": 384}, "the data's context is 384 but the model's is 128 (model.net.context)"),
    ({"vqvae": small_vqvae(seed=1)}, "the data's vqvae is another VQVAE than the model's (model.vqvae_ckpt)"),
])
def test_an_a2a_datamodule_built_by_hand_for_another_model_is_refused_at_setup(data_settings, refused):
    """The task's data settings, but one: another GPT's context (384, the default), another VQ-VAE of as many codes."""
    # before: data of 384 tokens was refused only as longer than the GPT, and codes of another VQ-VAE of as many
    # codes trained the GPT on pictures its own VQ-VAE decodes otherwise, without a word
    task = small_a2a_task(small_vqvae(seed=0))
    with pytest.raises(SupraUserError, match=rf"^{re.escape(refused)}: build the DataModule with \*\*task\.data_settings\(\)$"):
        fit(task, small_mixture(**{**task.data_settings(), **data_settings}))


def test_an_a2a_datamodule_given_the_tasks_vqvae_loaded_again_trains():
    task = small_a2a_task(small_vqvae(seed=0))
    same_weights = copy.deepcopy(task.vqvae)  # the one checkpoint loaded twice: its codes mean the same pictures
    fit(task, small_mixture(**{**task.data_settings(), "vqvae": same_weights}))
    assert task.vocab is task.trainer.datamodule.vocab and task.global_step == 1


def test_a_loader_given_the_other_models_file_names_the_python_loader_and_the_commands_that_read_it(tmp_path):
    """Said to a notebook user as to the command line: not only commands they are not running."""
    torch.save({"state_dict": {}, "supra": {"kind": "supra.captioning"}}, tmp_path / "captioner.ckpt")
    torch.save({"state_dict": {}, "supra": {"kind": "supra.a2a"}}, tmp_path / "a2a.ckpt")
    with pytest.raises(SupraUserError) as refused:
        load_a2a(tmp_path / "captioner.ckpt")
    assert str(refused.value) == (f"ckpt={tmp_path / 'captioner.ckpt'} is a captioner checkpoint, not an a2a_nano one: "
                                  "load_captioner reads it in Python, python -m supra.caption and evaluate.py on the "
                                  "command line")
    with pytest.raises(SupraUserError) as refused:
        load_captioner(tmp_path / "a2a.ckpt")
    assert str(refused.value) == (f"ckpt={tmp_path / 'a2a.ckpt'} is an a2a_nano checkpoint (GPT + VQ-VAE), not a "
                                  f"captioner: load_a2a reads it in Python; caption a picture with it by python -m "
                                  f"supra.generate ckpt={tmp_path / 'a2a.ckpt'} mode=image2text image=PICTURE")
