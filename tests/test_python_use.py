"""Supra used from Python, without train.py: a task and a DataModule built by hand meet at setup, where the data
must follow the model as the runner makes it do."""

import re
from functools import partial

import lightning as L
import pytest
import torch

from supra.data.captioning.shapes import ShapesDataModule
from supra.models.vlm_nano import VLMNano
from supra.tasks.captioning import CaptioningTask
from supra.utils.errors import SupraUserError

SMALL = {"num_train": 16, "num_val": 4, "num_test": 4, "batch_size": 8, "eval_batch_size": 4}


def small_task() -> CaptioningTask:
    net = VLMNano(IMG_SIZE=64, MAX_SEQ=24, VOCAB_SIZE=300, D_MODEL=32, N_HEADS=2, N_LAYERS=1, D_FF=64, VIS_CH=32)
    return CaptioningTask(net, partial(torch.optim.AdamW, lr=1e-3))


def fit(task: CaptioningTask, data: ShapesDataModule) -> None:
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
