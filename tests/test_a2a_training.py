"""a2a_nano end to end: `train.py experiment=a2a_shapes` through the real entry points, per-task losses,
generation metrics, the frozen VQ-VAE, the checkpoint format, sample pictures, evaluate.py on the
checkpoint, and one-line errors for a missing or mismatched VQ-VAE."""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import re
from datetime import datetime
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image

from supra.artifacts.a2a_release import load_a2a
from supra.artifacts.checkpoints import artifact_kind, load_supra_checkpoint
from supra.artifacts.kinds import A2A_CHECKPOINT
from supra.models.a2a_nano import A2ANano
from supra.pictures.grids import LINE_HEIGHT
from supra.runner.evaluation import evaluate
from supra.runner.training import train
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.errors import SupraUserError, user_error_in
from tests.conftest import compose_config, run_command, write_vqvae_checkpoint
from tests.picture_lines import drawn_at, titled

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("text", "text2image", "image2text", "video", "text2video")


def a2a_run(vqvae_ckpt: Path, cache_dir: Path) -> list[str]:
    """experiment=a2a_shapes on a few shapes images and clips, with a small GPT: seconds on 2 CPU cores."""
    return [
        "experiment=a2a_shapes", f"model.vqvae_ckpt={vqvae_ckpt}", f"paths.cache_dir={cache_dir}",
        "data.sources.shapes.num_train=32", "data.sources.shapes.num_val=4", "data.sources.shapes.num_test=4",
        "data.sources.shapes_video.num_train=8", "data.sources.shapes_video.num_val=2",
        "data.sources.shapes_video.num_test=2", "data.sources.shapes_video.frames=2",
        "data.batch_size=8", "data.eval_batch_size=4", "data.val_items=4", "data.text_vocab_size=300",
        "model.net.d_model=32", "model.net.n_layers=1", "model.net.d_mlp=64", "model.net.n_heads=2",
        "model.scheduler.warmup_steps=1", "model.generation.max_caption_tokens=8",
        "trainer.max_steps=4", "trainer.val_check_interval=4", "trainer.log_every_n_steps=1",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "callbacks.a2a_samples.num_samples=1",
        "trainer.num_sanity_val_steps=0",
        "model.test_metrics=[Bleu,ROUGE_L,CIDEr]",  # METEOR's Java start-up: tested with the caption scores
    ]


class FrozenProbe(L.Callback):
    """Test probe: records, at every training batch, whether the VQ-VAE is in train mode and what the
    optimizer holds (and which of it Muon steps), into probe.json in the run directory."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir, self.seen = Path(out_dir), {"vqvae_training": [], "vqvae_params_in_optimizer": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        in_optimizer = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
        self.seen["vqvae_training"].append(any(m.training for m in pl_module.vqvae.modules()))
        self.seen["vqvae_params_in_optimizer"].append(sum(id(p) in in_optimizer for p in pl_module.vqvae.parameters()))
        self.seen["net_params_in_optimizer"] = sum(id(p) in in_optimizer for p in pl_module.net.parameters())
        self.seen["net_params"] = len(list(pl_module.net.parameters()))
        optimizer = trainer.optimizers[0]
        muon = {id(p) for group in optimizer.param_groups if "ns_steps" in group for p in group["params"]}
        self.seen["optimizer"] = type(optimizer).__name__
        self.seen["muon_takes_the_hidden_matrices"] = muon == {id(p) for p in pl_module.net.hidden_matrices()}

    def on_train_end(self, trainer, pl_module) -> None:
        (self.out_dir / "probe.json").write_text(json.dumps(self.seen))


class TrainedRows(L.Callback):
    """Test probe: appends the token rows of every training batch to rows.jsonl in out_dir."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "rows.jsonl", "a") as f:
            f.write(json.dumps(batch["ids"].tolist()) + "\n")


class StopAfter(L.Callback):
    """Test probe: stops the fit after training step `step`, its max_steps (and so its schedule) unchanged."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def trained_rows(run: Path) -> list[list[list[int]]]:
    return [json.loads(line) for line in (run / "rows" / "rows.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def a2a_trained(tmp_path_factory, vqvae_ckpt) -> Path:
    root = tmp_path_factory.mktemp("a2a")
    out = root / "run"
    equal_weights = [f"data.tasks.{task}=1" for task in TASKS]  # every task in every mixed batch, whatever the recipe's weights
    cfg = compose_config("train", out, [*a2a_run(vqvae_ckpt, root / "cache"), "data.batching=mixed", *equal_weights,
                                        "+callbacks.probe._target_=tests.test_a2a_training.FrozenProbe",
                                        f"+callbacks.probe.out_dir={out}"])
    train(cfg)
    return out


def test_training_reports_the_loss_of_every_task_and_the_generation_metrics(a2a_trained):
    metrics = json.loads((a2a_trained / "metrics.json").read_text())  # the run's own test report
    for task in TASKS:
        assert metrics[f"loss_{task}"] > 0, task
    for name in ("CIDEr", "Bleu_4", "ROUGE_L", "text2image_fidelity", "text2image_fidelity_ceiling",
                 "video_psnr", "video_psnr_copy_baseline"):
        assert name in metrics, name
    assert 0 <= metrics["text2image_fidelity"] <= 1 and metrics["video_psnr"] > 0 and metrics["split"] == "test"
    predictions = json.loads((a2a_trained / "predictions.json").read_text())
    assert len(predictions) == 4  # every test image captioned, named by its source and item
    assert {p["image_id"] for p in predictions} == {f"shapes/test_{i:05d}" for i in range(4)}
    assert all(p["file"] is None for p in predictions)  # generated pictures have no file
    with open(next(a2a_trained.glob("csv/**/metrics.csv"))) as f:
        columns = next(csv.reader(f))
    assert "val/CIDEr" in columns and "val/text2image_fidelity" in columns
    for task in TASKS:  # mixed batches: every task's loss at every step
        assert f"train/loss_{task}" in columns


def documented_names(text: str) -> list[str]:
    """The names a document gives, as fnmatch patterns: loss_<task> any task's loss, Bleu_1..4 each of the four."""
    names = []
    for name in re.findall(r"[\w<>.*]+", text):
        if span := re.fullmatch(r"(\w+_)(\d)\.\.(\d)", name):
            names += [f"{span[1]}{i}" for i in range(int(span[2]), int(span[3]) + 1)]
        else:
            names.append(re.sub(r"<\w+>", "*", name))
    return names


def test_the_docs_name_every_key_of_an_a2a_runs_metrics_json_and_when_each_comes(a2a_trained):
    """n_captions was in no document, and the Metrics section listed text2image_fidelity with no word that only
    the shapes sources' objects give it: each key is named in docs/a2a_nano.md's Metrics section and the README's
    Outputs table, and each named one that a shapes run with every task and no METEOR writes is written."""
    metrics = json.loads((a2a_trained / "metrics.json").read_text())
    docs = (ROOT / "docs" / "a2a_nano.md").read_text()
    paragraph = docs[docs.index("The test's `metrics.json` holds"):].split("\n\n")[0]
    readme = (ROOT / "README.md").read_text()
    outputs_row = readme[readme.index("\nmetrics.json "):readme.index("\npredictions.json ")]
    for where, text in (("docs/a2a_nano.md", paragraph), ("README.md", outputs_row)):
        patterns = documented_names(text)
        unnamed = [key for key in metrics if not any(fnmatch.fnmatchcase(key, p) for p in patterns)]
        assert not unnamed, (where, unnamed)
    assert "only where the test holds items of the built-in shapes sources" in paragraph
    named = set(re.findall(r"`(\w+)`", paragraph)) - {"METEOR", "shapes", "shapes_video"}  # METEOR: not in this run
    assert sorted(named - set(metrics)) == []


def test_every_metric_an_a2a_run_logs_is_one_its_task_names_for_callbacks_to_monitor(a2a_trained, vqvae_ckpt):
    from supra.artifacts.checkpoints import load_vqvae
    from supra.tasks.a2a import A2ATask

    with open(next(a2a_trained.glob("csv/**/metrics.csv"))) as f:
        logged = {name for name in next(csv.reader(f)) if name.startswith(("train/", "val/"))}
    task = A2ATask(net=torch.nn.Identity(), optimizer=None, vqvae=load_vqvae(vqvae_ckpt)[0])
    assert "val/text2image_fidelity" in logged and logged <= set(task.metric_names())


def test_image2text_references_the_scorer_tokenizes_to_nothing_are_one_line_naming_the_split_and_sources(vqvae_ckpt):
    """A photo source whose captions are all emoji (PTB tokenization drops them) ended in CIDEr's traceback."""
    from types import SimpleNamespace

    from supra.artifacts.checkpoints import load_vqvae
    from supra.tasks.a2a import A2ATask

    task = A2ATask(net=torch.nn.Identity(), optimizer=None, vqvae=load_vqvae(vqvae_ckpt)[0])
    task.trainer = SimpleNamespace(is_global_zero=True, datamodule=SimpleNamespace(split="test", test_items=None))
    task._captions, task._references = {"web/0": "a red square", "web/1": "a cat"}, {"web/0": ["\U0001F600"],
                                                                                   "web/1": ["\U0001F600 \U0001F600"]}
    with pytest.raises(SupraUserError, match=r"^the image2text references of the test split \(data.sources.web\): every "
                                             r"reference caption is empty after the scorer's PTB tokenization, .* or "
                                             r"score other data$"):
        task._score_epoch("test", ["Bleu", "CIDEr"])


def test_image2text_captions_holding_cut_characters_are_counted_once_as_the_captioners_are(vqvae_ckpt, caplog):
    """The a2a GPT's image2text captions are byte-level BPE too: half of "è" decodes to U+FFFD, which its
    predictions.json held without a word while the captioner's test warned. The same warning now names how many."""
    from types import SimpleNamespace

    from supra.artifacts.checkpoints import load_vqvae
    from supra.tasks.a2a import A2ATask

    task = A2ATask(net=torch.nn.Identity(), optimizer=None, vqvae=load_vqvae(vqvae_ckpt)[0], test_metrics=[])
    task.trainer = SimpleNamespace(is_global_zero=True, datamodule=SimpleNamespace(split="test", test_items=None))
    task.on_test_epoch_start()
    task._captions = {"web/0": "a red square", "web/1": "caf\ufffd", "web/2": "crème brûlée"}
    task._references = {key: ["a red square"] for key in task._captions}
    with caplog.at_level("WARNING", logger="supra.tasks.base"):
        task.on_test_epoch_end()
    assert [r.getMessage() for r in caplog.records if "U+FFFD" in r.getMessage()] == [
        "test: 1 of 3 generated captions hold U+FFFD where the model emitted bytes that make no whole UTF-8 "
        "character; predictions.json keeps them so"]
    assert [p["caption"] for p in task.test_results["predictions"]] == ["a red square", "caf\ufffd", "crème brûlée"]


def test_the_exported_release_card_shows_the_runs_test_metrics(a2a_trained, tmp_path):
    metrics = json.loads((a2a_trained / "metrics.json").read_text())
    run_command("export", f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'release'}")
    card = (tmp_path / "release" / "README.md").read_text()
    assert "## Metrics (test split)" in card
    assert f"| text2image_fidelity | {metrics['text2image_fidelity']:.4f} |" in card
    assert f"| CIDEr | {metrics['CIDEr']:.4f} |" in card
    # the release is scored as its run scored those numbers: the recipe's sampling and code-only softmax
    from supra.runner.evaluation import LOADERS

    scored = {}
    for name, ckpt in (("run", a2a_trained / "checkpoints" / "best.ckpt"), ("release", tmp_path / "release")):
        kind = artifact_kind(ckpt)
        task, *_ = LOADERS[kind](compose_config("eval", tmp_path / name, [f"ckpt={ckpt}"]), kind)
        scored[name] = (task.hparams.code_softmax, task.generation, task.hparams.test_metrics)
    assert scored["release"] == scored["run"] and scored["run"][0] is True


def test_the_vqvae_stays_frozen_in_eval_mode_and_out_of_the_optimizer(a2a_trained, vqvae_ckpt):
    probe = json.loads((a2a_trained / "probe.json").read_text())
    assert probe["vqvae_training"] == [False] * 4
    assert probe["vqvae_params_in_optimizer"] == [0] * 4
    assert probe["net_params_in_optimizer"] == probe["net_params"]
    saved = load_supra_checkpoint(a2a_trained / "checkpoints" / "last.ckpt")["state_dict"]
    original = torch.load(vqvae_ckpt)["state_dict"]
    for name, value in original.items():  # weights and EMA buffers unchanged after training
        assert torch.equal(saved["vqvae." + name.removeprefix("net.")], value), name


def test_the_recipe_trains_the_gpts_hidden_matrices_with_muon_and_the_rest_with_adamw(a2a_trained):
    probe = json.loads((a2a_trained / "probe.json").read_text())
    assert probe["optimizer"] == "MuonWithAdamW" and probe["muon_takes_the_hidden_matrices"]
    state = load_supra_checkpoint(a2a_trained / "checkpoints" / "last.ckpt")["optimizer_states"][0]
    assert len(state["param_groups"]) == 3  # AdamW: decayed (the head), not decayed; Muon: the matrices
    assert "momentum_buffer" in state["state"][len(state["state"]) - 1]  # Muon's, saved for a resume


def test_the_checkpoint_holds_the_gpt_the_vqvae_and_the_vocabulary(a2a_trained):
    ckpt = a2a_trained / "checkpoints" / "best.ckpt"
    meta = load_supra_checkpoint(ckpt, kind="supra.a2a")["supra"]
    vocab = A2AVocab.from_json(meta["a2a_vocab"])
    assert meta["vqvae_config"]["num_codes"] == 256 and meta["net_config"]["vocab_size"] == vocab.layout.vocab_size
    assert meta["run_config"]["model"]["vqvae_ckpt"]
    net, vqvae, loaded_vocab = load_a2a(ckpt)  # helper-7a's loader reads this format back
    assert net.config.d_model == 32 and loaded_vocab.layout == vocab.layout and not vqvae.training


def test_training_writes_sample_pictures_of_each_task(a2a_trained):
    for name in ("a2a_text2image.png", "a2a_image2text.png", "a2a_video.png", "a2a_video.gif", "a2a_text2video.gif",
                 "attention_maps.png"):
        assert (a2a_trained / name).is_file(), name
    written = sorted(p.name for p in (a2a_trained / "a2a_samples").iterdir())
    assert "val_step_000004_text2image.png" in written and "test_step_000004_image2text.png" in written
    # the clips' pictures are titled, and say which strip is the true clip and which the model's
    label_top = LINE_HEIGHT + 8 + 4
    assert titled(Image.open(a2a_trained / "a2a_video.png"), "video, test, step 4")
    assert drawn_at(Image.open(a2a_trained / "a2a_video.png"), label_top, "true clip", (20, 20, 20))
    assert titled(Image.open(a2a_trained / "a2a_text2video.png"), "text2video, test, step 4")


def test_evaluate_py_scores_an_a2a_checkpoint(a2a_trained, tmp_path):
    cfg = compose_config("eval", tmp_path, [f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}", "num_grid_images=1"])
    evaluate(cfg)  # what evaluate.py runs
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("CIDEr", "text2image_fidelity", "video_psnr", "loss_image2text"):
        assert name in metrics, name
    assert metrics["split"] == "test" and (tmp_path / "a2a_text2image.png").is_file()
    assert len(json.loads((tmp_path / "predictions.json").read_text())) == 4  # every test image captioned
    # the same test split scored as the run scored it: its losses (with the recipe's code softmax) and metrics
    run = json.loads((a2a_trained / "metrics.json").read_text())
    assert {k: round(v, 5) for k, v in metrics.items() if isinstance(v, float)} == \
        {k: round(v, 5) for k, v in run.items() if isinstance(v, float)}
    # a captioner's decoding, which the a2a model does not read: refused, not ignored
    ignored = compose_config("eval", tmp_path / "sampled", [f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}",
                                                            "decode=sample", "beam_width=7"])
    with pytest.raises(SupraUserError, match=r"^decode=sample beam_width=7: ckpt=.* is an a2a_nano checkpoint, whose scoring "
                                             r"does not read them; leave them out$"):
        evaluate(ignored)


def test_metrics_json_says_how_many_items_each_score_was_scored_over(a2a_trained, tmp_path):
    """metrics.json gave n_captions alone: a fidelity over 1 prompt could not be told from one over 500. It gives
    test_items (each task's items scored, null for all), the pictures behind the fidelities, all and per object
    count, and the clips behind video_psnr."""
    run = json.loads((a2a_trained / "metrics.json").read_text())  # the whole test split: 4 images, 2 clips
    assert (run["test_items"], run["n_captions"], run["n_text2image"], run["n_video_clips"]) == (None, 4, 4, 2)
    for objects in ("one_object", "two_objects"):  # each count where its fidelities are given
        assert (f"n_{objects}" in run) == (f"text2image_fidelity_{objects}" in run)
    assert run.get("n_one_object", 0) + run.get("n_two_objects", 0) == 4
    cfg = compose_config("eval", tmp_path, [f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}", "+data.test_items=1"])
    evaluate(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["test_items"], metrics["n_captions"], metrics["n_text2image"], metrics["n_video_clips"]) == (1, 1, 1, 1)
    assert metrics.get("n_one_object", 0) + metrics.get("n_two_objects", 0) == 1


def test_fast_dev_run_of_the_experiment(vqvae_ckpt, tmp_path, recwarn):
    cfg = compose_config("train", tmp_path / "run", [*a2a_run(vqvae_ckpt, tmp_path / "cache"), "debug=fast_dev_run",
                                                        "callbacks.a2a_samples=null"])
    _, metrics = train(cfg)  # what train.py runs
    assert "train/loss" in metrics and "test/loss" in metrics
    # the frozen VQ-VAE stays in eval mode on purpose: Lightning's "may lead to unexpected behavior" is not said
    assert not [w for w in recwarn if "in eval mode at the start of training" in str(w.message)]
    assert not [w for w in recwarn if "collapsed" in str(w.message)]  # a random VQ-VAE uses many codes


def test_training_over_a_vqvae_collapsed_to_one_code_is_warned_of_once_naming_it(vqvae_ckpt, tmp_path, recwarn):
    """A VQ-VAE trained a few steps can give every picture the same code: the GPT then trained on images that were
    all one token, without a word. Set-up says so once, naming the checkpoint and what to do."""
    checkpoint = torch.load(vqvae_ckpt, weights_only=False)
    codebook = checkpoint["state_dict"]["net.quantizer.codebook"]
    checkpoint["state_dict"]["net.quantizer.codebook"] = torch.zeros_like(codebook)  # every code alike: code 0 wins
    collapsed = tmp_path / "collapsed.ckpt"
    torch.save(checkpoint, collapsed)
    cfg = compose_config("train", tmp_path / "run", [*a2a_run(collapsed, tmp_path / "cache"), "debug=fast_dev_run",
                                                        "callbacks.a2a_samples=null", "test=false"])
    train(cfg)
    said = [str(w.message) for w in recwarn if "collapsed" in str(w.message)]
    assert said == [f"the VQ-VAE (model.vqvae_ckpt={collapsed}) gives every train picture the one code 0: it has "
                    "collapsed (too few training steps?), so the GPT learns nothing of the pictures; train the VQ-VAE "
                    "longer (python train.py experiment=vqvae_shapes) and give its checkpoint"]


class EvalModeSlip(L.Callback):
    """Test probe: leaves one of the GPT's modules in eval mode at the start of training, by mistake."""

    def on_fit_start(self, trainer, pl_module) -> None:  # callbacks' hooks run before the task's
        pl_module.net.lm_head.eval()


def test_a_module_left_in_eval_mode_by_mistake_is_still_warned_of(vqvae_ckpt, tmp_path, recwarn):
    cfg = compose_config("train", tmp_path / "run", [*a2a_run(vqvae_ckpt, tmp_path / "cache"), "debug=fast_dev_run",
                                                        "callbacks.a2a_samples=null", "test=false",
                                                        "+callbacks.slip._target_=tests.test_a2a_training.EvalModeSlip"])
    train(cfg)
    assert [w for w in recwarn if "in eval mode at the start of training" in str(w.message)]


def _user_error(cfg) -> str:
    with pytest.raises(Exception) as err:
        train(cfg)
    user_error = user_error_in(err.value)  # what train.py prints as `error: ...` (Hydra may wrap it)
    assert isinstance(user_error, SupraUserError), err.value
    assert "\n" not in str(user_error)
    return str(user_error)


def test_a_missing_vqvae_checkpoint_is_named_in_one_line(tmp_path):
    run = [o for o in a2a_run(Path("x"), tmp_path / "cache") if not o.startswith("model.vqvae_ckpt")]
    assert "model.vqvae_ckpt is not set" in _user_error(compose_config("train", tmp_path / "a", run))
    missing = compose_config("train", tmp_path / "b", [*run, f"model.vqvae_ckpt={tmp_path / 'nope.ckpt'}"])
    assert "nope.ckpt does not exist" in _user_error(missing)


def test_a_vqvae_whose_codebook_disagrees_with_the_vocabulary_is_refused(tmp_path):
    small = write_vqvae_checkpoint(tmp_path / "vq64.ckpt", num_codes=64)
    message = _user_error(compose_config("train", tmp_path / "run", a2a_run(small, tmp_path / "cache")))
    assert "codebook of 64 codes but the GPT's vocabulary has 256 visual codes" in message


def test_a_media_folder_whose_captions_are_all_in_train_is_refused_before_training_and_the_advice_runs(
        vqvae_ckpt, tmp_path):
    """It validated and tested on nothing, exited 0 and wrote no metrics.json: now one line before the first
    step, and what it says (no validation, no test) trains."""
    from tests.test_a2a_data import train_only_captions

    source = train_only_captions(tmp_path / "media")
    own = [o for o in a2a_run(vqvae_ckpt, tmp_path / "cache") if not o.startswith("data.sources.")]
    own += ["~data.sources.shapes", "~data.sources.shapes_video", "data.tasks.video=0", "data.tasks.text2video=0",
            f"+data.sources.mine={{_target_:{source['_target_']},root:{source['root']},image_size:64,"
            "show_progress:false}", "trainer.max_steps=1", "callbacks.a2a_samples=null"]
    message = _user_error(compose_config("train", tmp_path / "refused", own))
    assert message.startswith("the val split has nothing to score for data.tasks text, text2image, image2text")
    assert not (tmp_path / "refused" / "checkpoints").exists()  # before any training
    advised = ["+trainer.limit_val_batches=0", "test=false", "data.test_items=0"]
    _, metrics = train(compose_config("train", tmp_path / "advised", [*own, *advised]))
    assert metrics["train/loss"] > 0 and (tmp_path / "advised" / "checkpoints" / "last.ckpt").is_file()


def test_a_run_resumes_over_its_own_vqvae_and_is_refused_over_another(a2a_trained, vqvae_ckpt, tmp_path):
    last = a2a_trained / "checkpoints" / "last.ckpt"
    cache = a2a_trained.parent / "cache"
    resume = ["data.batching=mixed", *(f"data.tasks.{task}=1" for task in TASKS), f"ckpt_path={last}", "test=false"]
    other = write_vqvae_checkpoint(tmp_path / "other.ckpt", seed=1)  # same shape, other weights: other codes
    message = _user_error(compose_config("train", tmp_path / "over_other", [*a2a_run(other, cache), *resume]))
    assert message == (f"ckpt_path={last} was trained over another VQ-VAE than model.vqvae_ckpt={other} (its codes "
                       "mean other pictures): leave model.vqvae_ckpt unset, and the checkpoint's own is used (it was "
                       f"model.vqvae_ckpt={vqvae_ckpt})")
    train(compose_config("train", tmp_path / "over_own", [*a2a_run(vqvae_ckpt, cache), *resume, "trainer.max_steps=5"]))
    assert torch.load(tmp_path / "over_own" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 5
    # without model.vqvae_ckpt, the checkpoint's own VQ-VAE: its file may be gone since
    unset = [o for o in a2a_run(vqvae_ckpt, cache) if not o.startswith("model.vqvae_ckpt=")]
    train(compose_config("train", tmp_path / "from_ckpt", [*unset, *resume, "trainer.max_steps=6"]))
    resumed = torch.load(tmp_path / "from_ckpt" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 6 and resumed["hyper_parameters"]["vqvae_ckpt"] is None


def test_a_run_resumed_mid_epoch_trains_on_the_batches_and_ends_with_the_weights_of_an_uninterrupted_run(vqvae_ckpt,
                                                                                                      tmp_path):
    def run(name: str, *overrides: str) -> Path:
        train(compose_config("train", tmp_path / name, [
            *a2a_run(vqvae_ckpt, tmp_path / "cache"), "data.batches_per_epoch=4", "trainer.max_steps=8", "test=false",
            "+callbacks.rows._target_=tests.test_a2a_training.TrainedRows", f"+callbacks.rows.out_dir={tmp_path / name / 'rows'}",
            *overrides]))
        return tmp_path / name

    whole = run("whole")
    # a run that writes a checkpoint at step 5 (one batch into the second epoch) and stops after step 6 (as if
    # killed: step 6 is lost), resumed from it with loader workers this time
    first = run("first", "+callbacks.stop._target_=tests.test_a2a_training.StopAfter", "+callbacks.stop.step=6",
                "+callbacks.mid._target_=lightning.pytorch.callbacks.ModelCheckpoint", f"+callbacks.mid.dirpath={tmp_path / 'mid'}",
                "+callbacks.mid.every_n_train_steps=5", "+callbacks.mid.filename=step5")
    resumed = run("resumed", f"ckpt_path={tmp_path / 'mid' / 'step5.ckpt'}", "data.num_workers=2")
    batches = [trained_rows(r) for r in (whole, first, resumed)]
    assert len(batches[0]) == 8 and batches[0][4] != batches[0][0]  # the second epoch draws other batches
    assert batches[1] == batches[0][:6] and batches[2] == batches[0][5:]
    weights = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"] for r in (whole, resumed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_run_resumed_with_gpt_settings_of_the_same_shapes_is_refused(a2a_trained, vqvae_ckpt, tmp_path):
    """n_heads, activation and tie_head leave the weights' shapes as they are: the run trained another GPT."""
    last = a2a_trained / "checkpoints" / "last.ckpt"
    resume = [*a2a_run(vqvae_ckpt, a2a_trained.parent / "cache"), f"ckpt_path={last}", "test=false", "trainer.max_steps=5"]
    message = _user_error(compose_config("train", tmp_path / "run", [*resume, "model.net.n_heads=4", "model.net.activation=relu"]))
    assert message == (f"ckpt_path={last} was trained with model.net.n_heads=2 model.net.activation=gelu, this run sets "
                       "model.net.n_heads=4 model.net.activation=relu: a resumed run goes on with its checkpoint's model, "
                       "so resume with its settings (drop the overrides)")


@pytest.mark.parametrize(("settings", "message"), [
    ({"code_softmax": "no"}, "model.code_softmax='no' must be true or false"),  # "no" would train with it
    ({"net": partial(A2ANano.from_kwargs, tie_head="no")}, "model.net.tie_head='no' must be true or false"),
    ({"net": partial(A2ANano.from_kwargs, bias="off")}, "model.net.bias='off' must be true or false"),
])
def test_a_switch_given_anything_but_true_or_false_is_refused_when_the_task_is_built(settings, message):
    from supra.models.vqvae import VQVAE
    from supra.tasks.a2a import A2ATask

    with pytest.raises(SupraUserError, match="^" + re.escape(message) + "$"):
        A2ATask(**{"net": torch.nn.Identity(), **settings}, optimizer=None, vqvae=VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)))


def test_the_code_softmax_normalises_over_the_codes_where_a_code_comes_next():
    from supra.models.a2a_nano import A2AConfig, A2ANano
    from supra.models.vqvae import VQVAE
    from supra.tasks.a2a import A2ATask

    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    layout = vocab.layout
    net = A2ANano(A2AConfig(vocab_size=layout.vocab_size, context=32, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    task = A2ATask(net=net, optimizer=None, vqvae=VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), code_softmax=True)
    task.vocab = vocab
    ids = vocab.encode([("text", "a red square"), ("image", torch.arange(4).view(2, 2))])
    ids = torch.tensor([ids, ids])
    inputs, targets = ids[:, :-1], ids[:, 1:].clone()
    targets[1, -3:] = -100  # padding
    losses = task._token_losses(inputs, targets)
    logits, _ = net(inputs)
    is_code = targets >= layout.code_offset
    code_logp = logits[..., layout.code_offset:].log_softmax(-1)
    full_logp = logits.log_softmax(-1)
    for b, t in zip(*torch.where(targets != -100), strict=True):
        target = int(targets[b, t])
        expected = -(code_logp[b, t, target - layout.code_offset] if is_code[b, t] else full_logp[b, t, target])
        assert torch.isclose(losses[b, t], expected, atol=1e-5), (b, t)
    assert is_code.sum() == 4 + 2 and losses[1, -3:].eq(0).all()  # row 1: two codes and </IMAGE> padded away
    task.hparams.code_softmax = False  # the release's loss: every id competes
    plain = task._token_losses(inputs, targets)
    assert torch.allclose(plain[~is_code], losses[~is_code], atol=1e-5) and (plain[is_code] > losses[is_code]).all()


def test_evaluate_leaves_one_of_the_checkpoints_sources_out_as_train_py_does(a2a_trained, tmp_path):
    """~data.sources.X (how docs/a2a_nano.md drops a source for train.py) was Hydra's "Could not delete from
    config": evaluate.py's config holds no sources to delete from. It is passed on as the source set to null."""
    from supra.runner.evaluation import data_for_release

    argv = data_for_release([f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}", "~data.sources.shapes_video",
                             "data.tasks.video=0", "data.tasks.text2video=0", "num_grid_images=0"])
    assert "+data.sources.shapes_video=null" in argv
    evaluate(compose_config("eval", tmp_path, argv))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "CIDEr" in metrics and "video_psnr" not in metrics and "loss_video" not in metrics  # no clips left


def test_evaluate_says_where_its_scores_went_and_where_each_sources_codes_came_from_once(a2a_trained, tmp_path,
                                                                                          capsys, caplog):
    cfg = compose_config("eval", tmp_path, [f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}", "num_grid_images=0"])
    with caplog.at_level(logging.INFO):
        evaluate(cfg)
    assert capsys.readouterr().out.endswith(f"wrote {tmp_path}: metrics.json, predictions.json\n")
    # prepare_data and setup both ask for the codes: encoded and cached, or read from the cache, said once a source
    origins = [m for m in caplog.messages if re.match(r"a2a codes of \w+ (cached in|read from the cache) ", m)]
    assert len(origins) == 2, origins  # shapes and shapes_video


def test_a_refused_evaluate_leaves_no_dated_run_folder_but_keeps_one_it_was_given(a2a_trained, tmp_path):
    """The refusal comes once the data is read, after the run folder holds its config, log and vocabulary."""
    from supra.runner.evaluation import data_for_release, no_folder_left_if_refused

    no_clips = data_for_release([f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}", "data.sources.shapes_video=null"])
    # a dated folder, as evaluate.py's default (logs/eval/runs/<date and time>); by the year alone, known here
    dated = tmp_path / "runs" / f"{datetime.now():%Y}"
    given = tmp_path / "mine"
    for folder, run_dir in ((dated, f"{dated.parent}/${{now:%Y}}"), (given, str(given))):
        cfg = compose_config("eval", folder, [*no_clips, f"hydra.run.dir={run_dir}"])
        with pytest.raises(SupraUserError, match="nothing to score for data.tasks video"), no_folder_left_if_refused(cfg):
            evaluate(cfg)
    assert not dated.exists()
    assert (given / "a2a_vocab.json").is_file()  # the user's folder: kept, as train.py keeps a refused run's


def test_evaluate_of_the_train_split_says_video_psnr_is_not_scored_there(a2a_trained, tmp_path, caplog):
    """The train split's clips keep no pixels (only their codes): its video PSNR was left out without a word."""
    cfg = compose_config("eval", tmp_path, [f"ckpt={a2a_trained / 'checkpoints' / 'best.ckpt'}", "data.split=train",
                                            "+data.test_items=1", "num_grid_images=0"])
    with caplog.at_level(logging.INFO):
        evaluate(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["split"] == "train" and "loss_video" in metrics and "video_psnr" not in metrics
    assert caplog.messages.count("video PSNR is not scored on the train split: its clips' pixels are kept for val "
                                 "and test only (data.split=val or test scores it)") == 1


def test_evaluate_of_no_test_items_is_refused_in_one_line_not_run_over_nothing(a2a_trained, tmp_path):
    """data.test_items=0 (a fit's way not to test) ran evaluate.py over no batch: exit 0, no metrics.json, only
    Lightning's warnings. Now one line before the data is set up, given or stored with the run (it trained so)."""
    from supra.runner.evaluation import data_for_release

    best = a2a_trained / "checkpoints" / "best.ckpt"
    given = compose_config("eval", tmp_path / "given", data_for_release([f"ckpt={best}", "data.test_items=0",
                                                                          "data.split=val"]))
    with pytest.raises(SupraUserError, match=r"^data.test_items=0 leaves nothing to score: evaluate.py scores the "
                                             r"first data.test_items items per task of data.split=val; give "
                                             r"data.test_items=N \(N >= 1\), or null for every item$"):
        evaluate(given)
    assert not (tmp_path / "given" / "metrics.json").exists()
    checkpoint = torch.load(best, weights_only=False)
    checkpoint["supra"]["run_config"]["data"]["test_items"] = 0  # trained with test=false data.test_items=0
    torch.save(checkpoint, tmp_path / "untested.ckpt")
    stored = compose_config("eval", tmp_path / "stored", [f"ckpt={tmp_path / 'untested.ckpt'}"])
    with pytest.raises(SupraUserError, match=r"^data.test_items=0 \(the run's, stored in ckpt=.*untested.ckpt\) "
                                             r"leaves nothing to score: .* data.split=test; give data.test_items=N"):
        evaluate(stored)


def test_train_refuses_a_test_of_no_test_items_before_any_step(vqvae_ckpt, tmp_path):
    """test=true with data.test_items=0 trained, then tested nothing and exited 0 without a test score."""
    from supra.runner.run_checks import check_run_config

    run = [*a2a_run(vqvae_ckpt, tmp_path / "cache"), "data.test_items=0"]
    with pytest.raises(SupraUserError, match=r"^data.test_items=0 leaves the test nothing to score: add test=false "
                                             r"\(no test\), or give data.test_items=N \(N >= 1\), or null for every item$"):
        check_run_config(compose_config("train", tmp_path / "tested", run))
    check_run_config(compose_config("train", tmp_path / "untested", [*run, "test=false"]))  # the fit's way not to test


def test_evaluate_samples_with_the_runs_own_seed_unless_given_one(a2a_trained, tmp_path):
    """A run trained with model.generation.seed=5 tested with seed 5: evaluate.py (seed: null) samples again
    with 5, the run's test and not a fixed 0; seed=3 on its command line samples with 3."""
    from supra.runner.evaluation import _a2a

    checkpoint = torch.load(a2a_trained / "checkpoints" / "last.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["generation"]["seed"] = 5
    torch.save(checkpoint, tmp_path / "seed5.ckpt")
    for given, seed in (([], 5), (["seed=3"], 3)):
        cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={tmp_path / 'seed5.ckpt'}", *given])
        assert _a2a(cfg, A2A_CHECKPOINT)[0].generation["seed"] == seed


def test_a_sampling_seed_outside_train_pys_range_is_one_line_not_a_traceback_in_the_test(a2a_trained, tmp_path):
    """The test's draws add the rank and an item count to the seed: past torch's 64 bits that was an overflow."""
    from supra.runner.evaluation import _a2a

    last = a2a_trained / "checkpoints" / "last.ckpt"
    for seed in (2**64, -1):
        cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={last}", f"seed={seed}"])
        with pytest.raises(SupraUserError, match=rf"^seed={seed} must be from 0 to 4294967295 \(or null: the run's "
                                                 r"own model.generation.seed\)$"):
            _a2a(cfg, A2A_CHECKPOINT)
    checkpoint = torch.load(last, weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["generation"]["seed"] = 2**64  # a run's own, unchecked when it trained
    torch.save(checkpoint, tmp_path / "huge_seed.ckpt")
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt={tmp_path / 'huge_seed.ckpt'}"])
    with pytest.raises(SupraUserError, match=r"^model.generation.seed=18446744073709551616 must be from 0 to "
                                             r"4294967295$"):  # train.py's line: the task's own rule
        _a2a(cfg, A2A_CHECKPOINT)
    given = compose_config("eval", tmp_path / "eval", [f"ckpt={tmp_path / 'huge_seed.ckpt'}", "seed=3"])
    assert _a2a(given, A2A_CHECKPOINT)[0].generation["seed"] == 3


def test_train_refuses_a_sampling_seed_outside_the_range_before_any_step(vqvae_ckpt, tmp_path):
    """Validation draws with model.generation.seed plus the rank: past torch's 64 bits an overflow there,
    after every step before the first validation. The task refuses it as train.py builds it, before any data
    or step (and so for every other builder of an A2ATask too)."""
    from supra.runner.components import build_task, stage1_vqvae
    from supra.runner.run_checks import check_run_config

    for seed in (2**64, 2**70, -1, -5):
        cfg = compose_config("train", tmp_path / "run", [*a2a_run(vqvae_ckpt, tmp_path / "cache"),
                                                         f"model.generation.seed={seed}"])
        check_run_config(cfg)
        with pytest.raises(SupraUserError, match=rf"^model.generation.seed={seed} must be from 0 to 4294967295$"):
            build_task(cfg.model, None, stage1_vqvae(cfg.model))


@pytest.mark.parametrize(("setting", "message"), [
    ("image_best_of=0", "model.generation.image_best_of=0 must be >= 1 (1 = off)"),
    ("max_caption_tokens=0", "model.generation.max_caption_tokens=0 must be >= 1"),
    ("image_temperature=-1", "model.generation.image_temperature=-1 must be a number >= 0 (0 = greedy)"),
    ("image_top_k=2.5", "model.generation.image_top_k=2.5 must be a whole number"),
    ("+model.generation.image_topk=5", "model.generation.image_topk=5 is no sampling setting (they are "),
])
def test_train_refuses_sampling_settings_the_samplers_would_fail_on_when_the_task_is_built(
        setting, message, vqvae_ckpt, tmp_path, monkeypatch):
    """model.generation is first sampled with at the first validation, after the steps before it: the task
    refuses what the samplers would (an a2a release's scoring.json is held to the same rules)."""
    monkeypatch.setattr("supra.runner.training.L.Trainer.fit", lambda *_, **__: pytest.fail("got past the task"))
    override = setting if setting.startswith("+") else f"model.generation.{setting}"
    cfg = compose_config("train", tmp_path / "run", [*a2a_run(vqvae_ckpt, tmp_path / "cache"), override])
    assert _user_error(cfg).startswith(message)


@pytest.mark.parametrize(("setting", "message"), [
    ("n_heads=3", "model.net.d_model=32 must be divisible by model.net.n_heads=3 (each head a d_model / n_heads slice)"),
    ("activation=swish", "model.net.activation='swish' is unknown: choose one of gelu, gelu_tanh, relu"),
    ("dropout=1.5", "model.net.dropout=1.5 must be a number >= 0 and < 1 (0: none)"),
    ("dropout=-0.1", "model.net.dropout=-0.1 must be a number >= 0 and < 1 (0: none)"),
])
def test_train_refuses_gpt_settings_it_cannot_build_when_the_task_is_built(
        setting, message, vqvae_ckpt, tmp_path, monkeypatch):
    """model.net is built at setup, once the vocabulary is trained: a head count that does not divide the width
    was a traceback (dropout torch's) after every source was encoded. Now one line, before the data is touched."""
    monkeypatch.setattr("supra.runner.training.build_datamodule", lambda *_, **__: pytest.fail("got past the task"))
    cfg = compose_config("train", tmp_path / "run", [*a2a_run(vqvae_ckpt, tmp_path / "cache"), f"model.net.{setting}"])
    assert _user_error(cfg) == message

