"""Stage 1 end to end: `train.py experiment=vqvae_shapes` through the real entry points, its metrics,
checkpoints and reconstruction pictures, DDP codebook agreement, and code caching with tokenize_media."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from supra.artifacts.checkpoints import load_vqvae
from supra.data.media.codes import codes_dtype, read_media_codes
from supra.metrics.codebook_usage import CodebookUsage
from supra.pictures.grids import LINE_HEIGHT
from supra.runner.training import train
from supra.utils.errors import SupraUserError
from supra.utils.files import writing_alone
from tests.conftest import ROOT, command_lines, compose_config, file_size_limit, run_command
from tests.picture_lines import drawn_at, titled

VQ_RUN = ["experiment=vqvae_shapes", "data.eval_batch_size=24"]


def test_codebook_usage_and_perplexity_count_the_whole_split():
    metric = CodebookUsage(num_codes=4)
    metric.update(torch.tensor([0, 0, 1]))
    metric.update(torch.tensor([[1, 2], [2, 2]]))
    scores = metric.compute()
    assert scores["codebook_usage"] == pytest.approx(3 / 4)  # code 3 never used
    probs = torch.tensor([2, 2, 3]) / 7
    assert scores["perplexity"] == pytest.approx(float(torch.exp(-(probs * probs.log()).sum())))


def test_uniform_use_of_every_code_has_perplexity_equal_to_the_codebook_size():
    metric = CodebookUsage(num_codes=256)
    metric.update(torch.arange(256).repeat(3))
    assert metric.compute()["perplexity"] == pytest.approx(256.0)
    assert metric.compute()["codebook_usage"] == 1.0


def test_codes_of_latents_that_are_not_finite_make_usage_and_perplexity_nan_not_one_valid_code():
    # NaN distances pick code 0 for every vector: a "usage" of 1 code and perplexity 1.0 of a broken encoder
    metric = CodebookUsage(num_codes=4)
    metric.update(torch.tensor([0, 1, 2]), finite=torch.tensor(True))
    metric.update(torch.tensor([0, 0, 0]), finite=torch.tensor(False))
    scores = metric.compute()
    assert scores["codebook_usage"].isnan() and scores["perplexity"].isnan()


def test_codebook_restarts_and_rebalancing_count_training_batches_as_their_docs_say():
    """Every training forward moves the EMA codebook and counts once, so under trainer.accumulate_grad_batches=N an
    optimizer step counts N: the settings are documented in training batches, not steps."""
    from supra.models.vqvae import VectorQuantizer, VQVAEConfig

    quantizer = VectorQuantizer(VQVAEConfig(num_codes=8, code_dim=4)).train()
    for _ in range(3):  # three batches, whatever steps they make
        quantizer(torch.randn(2, 4, 3, 3))
    assert int(quantizer.updates) == 3 and int(quantizer.steps_unused.max()) <= 3
    quantizer.eval()(torch.randn(2, 4, 3, 3))  # validation counts none
    assert int(quantizer.updates) == 3
    conf = (ROOT / "conf" / "model" / "vqvae_f8.yaml").read_text()
    for key in ("restart_dead_after", "rebalance_every"):
        assert "training batches" in next(line for line in conf.splitlines() if line.strip().startswith(f"{key}:"))


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory) -> Path:
    from tests.conftest import TINY_RUN, compose_config

    out = tmp_path_factory.mktemp("vq") / "run"
    cfg = compose_config("train", out, TINY_RUN + VQ_RUN)
    train(cfg)
    return out


def test_vqvae_run_reports_psnr_ssim_usage_and_perplexity_for_val_and_test(vq_run):
    metrics = json.loads((vq_run / "metrics.json").read_text())  # the run's own test report
    for name in ("psnr", "ssim", "codebook_usage", "perplexity", "loss"):
        assert name in metrics, name
    assert metrics["split"] == "test" and metrics["n_items"] == 15
    assert 0 < metrics["codebook_usage"] <= 1 and 1 <= metrics["perplexity"] <= 256
    assert metrics["psnr"] > 5  # six steps: far from good, but a real number from real reconstructions
    with open(vq_run / "csv" / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert {"val/psnr", "val/ssim", "val/codebook_usage", "val/perplexity"} <= set(columns)


def test_every_metric_a_vqvae_run_logs_is_one_its_task_names_for_callbacks_to_monitor(vq_run):
    from supra.tasks.vq_autoencoding import VQAutoencodingTask

    with open(vq_run / "csv" / "metrics.csv") as f:
        logged = {name for name in next(csv.reader(f)) if name.startswith(("train/", "val/"))}
    net, _ = load_vqvae(vq_run / "checkpoints" / "best.ckpt")
    assert "val/psnr" in logged and logged <= set(VQAutoencodingTask(net=net, optimizer=None).metric_names())


def test_vqvae_run_leaves_checkpoints_that_load_back_as_a_vqvae(vq_run):
    net, run_cfg = load_vqvae(vq_run / "checkpoints" / "best.ckpt")
    assert run_cfg["model"]["net"]["num_codes"] == 256
    codes = net.encode(torch.zeros(2, 3, 64, 64))
    assert codes.shape == (2, 8, 8)
    assert (vq_run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(("overrides", "theirs", "ours"), [
    # the codebook joins the optimizer, whose saved state cannot follow: a traceback from torch
    (["model.net.ema=false"], "model.net.ema=true", "model.net.ema=false"),
    # other shapes: the settings named, not the tensors that do not fit
    (["model.net.num_codes=128", "model.net.code_dim=32"], "model.net.code_dim=64 model.net.num_codes=256",
     "model.net.code_dim=32 model.net.num_codes=128")])
def test_resuming_with_other_model_settings_is_one_line_naming_them(vq_run, tmp_path, overrides, theirs, ours):
    from tests.conftest import TINY_RUN, compose_config

    last = vq_run / "checkpoints" / "last.ckpt"
    cfg = compose_config("train", tmp_path / "run", [*TINY_RUN, *VQ_RUN, f"ckpt_path={last}", "trainer.max_steps=7",
                                                      *overrides])
    with pytest.raises(SupraUserError, match=rf"^ckpt_path={last} was trained with {theirs}, this run sets {ours}: a "
                                             r"resumed run goes on with its checkpoint's model"):
        train(cfg)


def test_vqvae_run_writes_originals_over_reconstructions_after_each_validation_and_the_test(vq_run):
    names = sorted(p.name for p in (vq_run / "reconstructions").iterdir())
    assert names == ["test_step_000006.png", "val_step_000003.png", "val_step_000006.png"]
    picture = Image.open(vq_run / "reconstructions.png").convert("RGB")
    # 16 images in 2 blocks of (a row of 8 originals over their 8 reconstructions), 128 px tiles, under a
    # one-line title, each row under its one-line label
    assert picture.size == (8 * 128 + 9 * 4, 4 * 128 + 5 * 4 + (LINE_HEIGHT + 8) + 4 * (LINE_HEIGHT + 4))
    assert titled(picture, "reconstructions, test, step 6")
    assert drawn_at(picture, LINE_HEIGHT + 8 + 4, "originals", (20, 20, 20))


def test_a_captioning_checkpoint_is_refused_as_a_vqvae(trained_run):
    from supra.utils.errors import SupraUserError

    with pytest.raises(SupraUserError, match=r"is a captioner checkpoint, not a VQ-VAE: give a VQ-VAE checkpoint "
                                              r"\(a captioner is read by load_captioner in Python, python -m "
                                              r"supra.caption and evaluate.py\)$"):
        load_vqvae(trained_run / "checkpoints" / "best.ckpt")


class CodebookRecorder(L.Callback):
    """Test probe: every rank saves its codebook when training ends."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save(pl_module.net.quantizer.codebook.detach().cpu(), Path(self.out_dir) / f"codebook_rank{trainer.global_rank}.pt")


@pytest.mark.ddp
def test_ddp_ranks_keep_identical_codebooks_through_ema_restarts_and_rebalancing(train_config, tmp_path, caplog,
                                                                                  capfd):
    # Rank-local EMA statistics or restart seeds would let the two codebooks drift apart silently.
    cfg = train_config(*VQ_RUN, "trainer=ddp_sim", "trainer.max_steps=25", "trainer.log_every_n_steps=26", "test=false",
                       "model.net.restart_dead_after=3", "model.net.rebalance_every=5",
                       "+callbacks.recorder._target_=tests.test_vq_training.CodebookRecorder",
                       f"+callbacks.recorder.out_dir={tmp_path}", "callbacks.reconstruction_grid=null", run="ddp")
    train(cfg)
    first, second = (torch.load(tmp_path / f"codebook_rank{r}.pt") for r in (0, 1))
    assert torch.equal(first, second)
    # a fit shorter than its logging interval gets our advice once, and not Lightning's from rank 0 after it: the
    # spawned ranks start with Python's warning filters unset, so the filter is set where the fit runs
    assert sum("is below trainer.log_every_n_steps=26" in r.getMessage() for r in caplog.records) == 1
    assert "is smaller than the logging interval" not in capfd.readouterr().err


@pytest.fixture(scope="module")
def command_runs(vq_run, tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """`python -m supra.tokenize_media ...` of vq_run's checkpoint into tmp/codes, then given a folder it would
    overwrite (tmp/existing), a cut checkpoint and each bad option (into tmp/new), and `python train.py` with an
    image size the VQ-VAE cannot take: (tmp, each case's result), all run in one interpreter (command_lines)."""
    tmp = tmp_path_factory.mktemp("vq_commands")
    ckpt = vq_run / "checkpoints" / "best.ckpt"
    (tmp / "existing").mkdir()
    (tmp / "existing" / "meta.json").write_text("{}")
    corrupt = tmp / "cut.ckpt"
    corrupt.write_bytes(ckpt.read_bytes()[:2000])
    new = [f"out={tmp / 'new'}", f"hydra.run.dir={tmp}/hydra"]
    cases = {
        "writes": ["tokenize_media", f"ckpt={ckpt}", f"out={tmp / 'codes'}", "+data.num_train=40", "show_progress=false",
                   f"hydra.run.dir={tmp}/hydra"],
        "existing": ["tokenize_media", f"ckpt={ckpt}", f"out={tmp / 'existing'}", f"hydra.run.dir={tmp}/hydra"],
        "bad data": ["tokenize_media", f"ckpt={ckpt}", f"out={tmp / 'existing'}", "overwrite=true", "data=media_folder",
                     f"data.root={tmp / 'typo'}", f"hydra.run.dir={tmp}/hydra"],
        "corrupt": ["tokenize_media", f"ckpt={corrupt}", *new],
        **{case: ["tokenize_media", f"ckpt={ckpt}", *new, case]
           for case in ("batch_size=0", "splits=[]", "splits=trian", "accelerator=tpu", "accelerator=gpu")},
        "image size": [str(ROOT / "train.py"), *VQ_RUN, "data.image_size=60", f"hydra.run.dir={tmp / 'run'}"],
    }
    return tmp, dict(zip(cases, command_lines(*cases.values()), strict=True))


def test_tokenize_media_writes_codes_captions_and_meta_that_read_media_codes_reads(vq_run, command_runs):
    tmp, results = command_runs
    out = tmp / "codes"
    ckpt = vq_run / "checkpoints" / "best.ckpt"
    result = results["writes"]
    assert result.returncode == 0, result.stderr
    assert np.load(out / "codes_train.npy").dtype == np.uint8
    train_codes = read_media_codes(out, "train")
    assert train_codes.codes.shape == (40, 8, 8) and len(train_codes.captions[0]) == 5
    # the same codes the checkpoint's VQ-VAE gives the same images
    net, _ = load_vqvae(ckpt)
    from supra.data.media.datamodule import to_unit_range
    from supra.data.media.shapes_images import ShapesImagesDataModule

    images = ShapesImagesDataModule(num_train=40).items("train").pixels
    assert torch.equal(train_codes.codes, net.encode(to_unit_range(images)))
    assert train_codes.meta["splits"] == {"train": 40, "val": 24, "test": 15}


def test_tokenize_medias_docs_say_its_codes_are_for_your_own_code_not_train_pys_a2a_mixture():
    """The a2a mixture takes no tokenize_media folder (it encodes and caches its sources itself): docs that said
    "encode once for stage 2" sent users looking for an option that is not there."""
    from omegaconf import OmegaConf

    help_header = OmegaConf.load(ROOT / "conf" / "tokenize_media.yaml").hydra.help.header
    readme = (ROOT / "README.md").read_text()
    for text in (help_header, readme, (ROOT / "supra" / "tokenize_media.py").read_text()):
        words = " ".join(text.split())
        assert "for stage 2" not in words and "read_media_codes" in words
        assert re.search(r"a2a mixture (reads no such folder|encodes and caches its sources itself)", words)


def test_tokenize_media_caches_a_photo_sources_decoded_images_under_paths_cache_dir(vqvae_ckpt, tmp_path):
    """They went into <root>/.supra_cache, inside the data set, which a read-only one (/kaggle/input) refuses."""
    from omegaconf import OmegaConf

    from supra.tokenize_media import encode_splits
    from tests.caption_source_fixtures import write_coco_karpathy

    root = tmp_path / "coco"
    write_coco_karpathy(root)
    cfg = OmegaConf.create({"ckpt": str(vqvae_ckpt), "accelerator": "cpu", "batch_size": 256, "show_progress": False,
                            "paths": {"cache_dir": str(tmp_path / "cache")}})
    data_cfg = OmegaConf.create({"_target_": "supra.data.media.photo_captions.PhotoCaptionsMediaDataModule",
                                 "source": "coco", "root": str(root), "image_size": 32, "show_progress": False})
    _, encoded = encode_splits(cfg, load_vqvae(vqvae_ckpt)[0], data_cfg, ["test"])
    assert encoded["test"][1].shape == (3, 4, 4)
    assert not (root / ".supra_cache").exists() and list((tmp_path / "cache" / "tokenize_media").glob("images_*.npy"))


@pytest.mark.parametrize(("num_codes", "dtype"), [(256, np.uint8), (32768, np.int16), (70000, np.int32)])
def test_codes_are_stored_in_the_smallest_integer_type_that_holds_the_last_code(num_codes, dtype):
    assert codes_dtype(num_codes) == dtype and int(np.array([num_codes - 1]).astype(dtype)[0]) == num_codes - 1


def test_tokenize_media_refuses_to_overwrite_and_names_a_corrupt_checkpoint(command_runs):
    tmp, results = command_runs
    existing, bad_data, result = results["existing"], results["bad data"], results["corrupt"]
    no_batch, no_split, one_split = results["batch_size=0"], results["splits=[]"], results["splits=trian"]
    bogus, gpu = results["accelerator=tpu"], results["accelerator=gpu"]
    assert one_split.returncode == 2 and "error: splits=trian must name some of train, val, test" in one_split.stderr
    assert bogus.returncode == 2 and "error: accelerator=tpu is not one of auto, cpu, gpu" in bogus.stderr
    if not torch.cuda.is_available():  # asked for a GPU, it said so rather than encode on the CPU
        assert gpu.returncode == 2 and "error: accelerator=gpu needs a CUDA GPU but this machine has none" in gpu.stderr
    assert no_batch.returncode == 2 and "error: batch_size=0 must be >= 1" in no_batch.stderr
    assert no_split.returncode == 2 and "error: splits=[] must name some of train, val, test" in no_split.stderr
    assert existing.returncode == 2 and "overwrite=true" in existing.stderr
    # overwriting with data that cannot be read leaves the finished codes as they were
    assert bad_data.returncode == 2 and "typo" in bad_data.stderr and (tmp / "existing" / "meta.json").is_file()
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cut.ckpt is not a readable PyTorch checkpoint" in result.stderr
    assert not (tmp / "new").exists()  # nothing half-written


TINY_SHAPES = ["data=shapes_images", "data.num_train=3", "data.num_val=2", "data.num_test=2", "data.image_size=32",
               "show_progress=false", "accelerator=cpu"]


def test_an_overwrite_with_fewer_splits_removes_the_earlier_runs_other_splits_only(vqvae_ckpt, tmp_path):
    out = tmp_path / "codes"
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, run_dir=tmp_path)
    (out / "notes.txt").write_text("mine")  # not a split file: never touched
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, "overwrite=true", "splits=train",
                run_dir=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["codes_train.npy", "items_train.json", "meta.json", "notes.txt"]
    assert read_media_codes(out, "train").meta["splits"] == {"train": 3}


def test_a_second_tokenize_media_into_the_same_out_is_refused_while_the_first_writes(vqvae_ckpt, tmp_path, capsys):
    """Two at once left one's meta.json naming its VQ-VAE beside the other's codes."""
    out = tmp_path / "codes"
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, run_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with writing_alone(out, "the first run"), pytest.raises(SystemExit):
        run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, "overwrite=true",
                    "splits=train", run_dir=tmp_path)
    assert capsys.readouterr().err == (f"error: out={out} is being written by another run now: wait for it to "
                                       "finish, or choose another folder\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the first run's folder, untouched


def test_tokenize_media_removes_the_temp_files_a_killed_run_left_in_out_and_says_so(vqvae_ckpt, tmp_path, capsys):
    """A run killed (SIGKILL) mid-write left its temp file, maybe a whole split's codes, beside the codes for good:
    a rerun wrote its own and kept it, without a word, as did one refused."""
    out = tmp_path / "codes"
    out.mkdir()
    # what atomic_path leaves of codes_val.npy when its process is killed: its temp file, no longer locked
    (out / ".codes_val.k1lled00.npy").write_bytes(b"half of the codes")
    (out / ".codes_val.notes").write_text("the user's, named much like one")
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, run_dir=tmp_path)
    assert capsys.readouterr().out.splitlines()[0] == (
        f"removed 1 temp file that an interrupted earlier run left in {out}: .codes_val.k1lled00.npy")
    assert sorted(p.name for p in out.iterdir()) == [".codes_val.notes", *sorted(
        f"{kind}_{split}.{ext}" for split in ("train", "val", "test") for kind, ext in (("codes", "npy"),
                                                                                       ("items", "json"))), "meta.json"]
    # and a rerun refused (the codes are whole, overwrite=true not given) removes them all the same
    (out / ".meta.k1lled00.json").write_text("{")
    with pytest.raises(SystemExit):
        run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, run_dir=tmp_path)
    said = capsys.readouterr()
    assert said.out == f"removed 1 temp file that an interrupted earlier run left in {out}: .meta.k1lled00.json\n"
    assert said.err == (f"error: out={out} already holds codes (meta.json): choose another folder or add "
                        "overwrite=true\n")
    assert not (out / ".meta.k1lled00.json").exists()


def test_a_rerun_after_one_killed_before_its_meta_json_keeps_none_of_its_codes_and_says_so(vqvae_ckpt, tmp_path,
                                                                                              capsys):
    """An overwrite killed mid-write (its meta.json removed first, written last) left the earlier run's val and test
    codes: a rerun of splits=train kept them beside its own, unnamed by its meta.json, without a word."""
    out = tmp_path / "codes"
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, run_dir=tmp_path)
    (out / "meta.json").unlink()  # what a run killed before writing it leaves of the folder
    (out / "notes.txt").write_text("mine")  # not a split file: never touched
    capsys.readouterr()
    run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, "splits=train", run_dir=tmp_path)
    assert capsys.readouterr().out.splitlines()[0] == (
        f"removed 6 files of an earlier run into {out} that did not finish (it wrote no meta.json): codes_train.npy, "
        "items_train.json, codes_val.npy and 3 more")
    assert sorted(p.name for p in out.iterdir()) == ["codes_train.npy", "items_train.json", "meta.json", "notes.txt"]


@pytest.mark.parametrize(("stopped_in", "said"), [
    ("encode_items", "nothing written to out={out}: run it again to write the codes"),
    ("write_meta", "out={out} holds whole codes only if its meta.json is there (written last): run it again to "
                   "write them"),
], ids=["while encoding", "while writing"])
def test_an_interrupted_tokenize_media_says_what_its_out_folder_holds(vqvae_ckpt, tmp_path, capsys, monkeypatch,
                                                                      stopped_in, said):
    """Ctrl-C while encoding leaves no out folder: the line said it held whole codes only with a meta.json, of a
    folder that was not there. Once writing, its split files may be there without the meta.json written last."""
    import supra.tokenize_media
    from supra.utils.cli import exit_on_ctrl_c

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(supra.tokenize_media, stopped_in, ctrl_c)
    out = tmp_path / "codes"
    cfg = compose_config("tokenize_media", tmp_path, [f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES])
    # the command's own ending of a Ctrl-C (main's: hydra_command with interrupted=codes_left)
    with pytest.raises(SystemExit) as exit_info, exit_on_ctrl_c(lambda: supra.tokenize_media.codes_left(cfg)):
        supra.tokenize_media.run(cfg)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == f"interrupted: {said.format(out=out)}\n"
    assert out.exists() == (stopped_in == "write_meta") and not (out / "meta.json").exists()


def test_tokenize_media_on_a_full_disk_is_one_line_naming_out(vqvae_ckpt, tmp_path, capsys):
    out = tmp_path / "codes"
    with file_size_limit(100), pytest.raises(SystemExit):  # ulimit -f: as a full disk, codes_train.npy finds no room
        run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={out}", *TINY_SHAPES, run_dir=tmp_path)
    assert capsys.readouterr().err == (f"error: cannot write to out={out} (File too large): free space there, or give "
                                       "another out= folder\n")
    assert not (out / "meta.json").exists() and not list(out.glob(".*"))  # no temp file left


def test_data_that_is_no_image_or_clip_datamodule_is_one_line_naming_the_data_it_takes(vqvae_ckpt, tmp_path, capsys):
    from hydra.utils import get_class

    from supra.data.media.datamodule import MediaDataModule

    for data in ("a2a_mixture", "shapes", "coco"):  # the mixture's own checks would ask for a model.vqvae_ckpt= first
        with pytest.raises(SystemExit) as exit_info:
            run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={tmp_path / 'codes'}", f"data={data}",
                        run_dir=tmp_path)
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
        assert "is not an image/clip DataModule: use data=shapes_images, data=shapes_video or data=media_folder" in err
        # photos with captions and shards have image DataModules of their own: named, and they are ones
        for target in ("supra.data.media.photo_captions.PhotoCaptionsMediaDataModule",
                       "supra.data.media.shard_images.ShardImagesMediaDataModule"):
            assert target in err and issubclass(get_class(target), MediaDataModule)
        assert not (tmp_path / "codes").exists()  # refused before the folder is made


def test_data_refused_once_built_leaves_no_out_folder(vqvae_ckpt, tmp_path, capsys):
    (tmp_path / "one").mkdir()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(tmp_path / "one" / "red.png")  # too few files for a val split
    for root, said in (("nowhere", "does not exist"), ("one", "1 usable media files are too few")):
        with pytest.raises(SystemExit):
            run_command("tokenize_media", f"ckpt={vqvae_ckpt}", f"out={tmp_path / 'codes'}", "data=media_folder",
                        f"data.root={tmp_path / root}", "show_progress=false", run_dir=tmp_path)
        assert said in capsys.readouterr().err
        assert not (tmp_path / "codes").exists(), root  # made to prove it writable, removed again


def test_image_size_that_is_not_a_multiple_of_8_is_refused_with_the_nearest_sizes(command_runs):
    result = command_runs[1]["image size"]  # `python train.py ... data.image_size=60`
    assert result.returncode == 2
    assert "data.image_size=60 must be a positive multiple of 8 (the VQ-VAE's patch): use 56 or 64" in result.stderr


def test_an_unknown_reconstruction_loss_is_one_line_naming_the_choices(train_config):
    """model.recon_loss=huber was a ValueError: a 25-line traceback through Hydra."""
    from supra.runner.components import build_task

    cfg = train_config(*VQ_RUN, "model.recon_loss=huber")
    with pytest.raises(SupraUserError, match=r"^model.recon_loss='huber' is unknown: choose one of mse, l1, mse\+l1$"):
        build_task(cfg.model, None)


def test_clips_train_frame_by_frame_and_leave_an_animated_gif_of_originals_and_reconstructions(train_config):
    cfg = train_config(*VQ_RUN, "data=shapes_video", "data.frames=3", "trainer.max_steps=2", "trainer.val_check_interval=2",
                       "test=false", "callbacks.reconstruction_grid.num_images=4", run="clips")
    _, metrics = train(cfg)
    assert "val/psnr" in metrics
    out = Path(cfg.paths.output_dir)
    gif = Image.open(out / "reconstructions" / "val_step_000002.gif")
    assert gif.n_frames == 3  # one picture per clip frame: originals row over reconstructions row
    assert gif.size == (4 * 128 + 5 * 4, 2 * 128 + 3 * 4 + (LINE_HEIGHT + 8) + 2 * (LINE_HEIGHT + 4))  # titled, labelled
    assert (out / "reconstructions.gif").is_file() and (out / "reconstructions.png").is_file()


def test_evaluate_py_scores_a_vqvae_checkpoint_as_its_run_did(vq_run, tmp_path):
    from supra.runner.evaluation import evaluate
    from tests.conftest import compose_config

    best = vq_run / "checkpoints" / "best.ckpt"
    report = evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={best}", "num_grid_images=2"]))
    run = json.loads((vq_run / "metrics.json").read_text())
    for name in ("psnr", "ssim", "codebook_usage", "perplexity"):
        assert round(report[name], 4) == round(run[name], 4), name
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == report
    assert (tmp_path / "eval" / "reconstructions.png").is_file()
    # the keys a captioner's metrics.json has, null: its generated pictures name no files to compare
    assert report["trained_on"] is None and report["validated_on"] is None
    assert report["ckpt"] == str(best) and report["step"] == torch.load(best, weights_only=True)["global_step"]


def test_evaluate_py_warns_in_one_line_that_a_checkpoint_of_nan_weights_scores_a_broken_model(vq_run, tmp_path,
                                                                                               caplog):
    from supra.runner.evaluation import evaluate
    from tests.conftest import compose_config

    checkpoint = torch.load(vq_run / "checkpoints" / "best.ckpt", weights_only=False)
    for tensor in checkpoint["state_dict"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))  # a diverged run's weights
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save(checkpoint, ckpt)
    evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={ckpt}", "num_grid_images=0"]))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    tensors = sum(1 for tensor in checkpoint["state_dict"].values() if tensor.is_floating_point())
    assert warnings == [f"ckpt={ckpt} holds weights that are not finite (NaN or inf) in {tensors} of its "
                        f"{len(checkpoint['state_dict'])} tensors (e.g. net.encoder.0.weight): its run diverged, and "
                        "these are a broken model's scores; score an earlier checkpoint of that run"]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # no "valid" codebook figures of codes picked by NaN distances
    assert [metrics[name] for name in ("psnr", "ssim", "codebook_usage", "perplexity", "loss")] == [None] * 5


def test_evaluate_py_refuses_caption_metrics_for_a_vqvae_which_captions_nothing(vqvae_ckpt, tmp_path):
    from supra.runner.evaluation import evaluate
    from tests.conftest import compose_config

    with pytest.raises(SupraUserError, match=r"^metrics=\['CIDEr'\]: ckpt=.* is a VQ-VAE checkpoint, whose scoring "
                                             r"does not read it; leave it out$"):
        evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={vqvae_ckpt}", "metrics=[CIDEr]"]))


def test_evaluate_py_names_a_vqvae_checkpoint_without_a_data_config_as_a_checkpoint(vqvae_ckpt, tmp_path):
    """A checkpoint whose run config has no data section (one saved outside train.py), not "a release folder"."""
    from supra.runner.evaluation import evaluate
    from tests.conftest import compose_config

    with pytest.raises(SupraUserError) as refused:
        evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={vqvae_ckpt}"]))
    assert str(refused.value) == (f"ckpt={vqvae_ckpt} is a checkpoint whose run config has no data section: add "
                                  "data=shapes_images (or data=shapes_video, or data=media_folder data.root=DIR)")


@pytest.mark.parametrize("loader", ["val_dataloader", "test_dataloader"])
def test_under_ddp_the_ranks_share_the_rows_of_every_eval_batch_and_score_each_image_once(loader, monkeypatch):
    """15 images in batches of 7 over 2 ranks: the same 3 steps on each, the last batch's single image
    handed to the second rank too, but not to be scored there (no DistributedSampler padding)."""
    import supra.data.base as data_base
    from supra.data.media.shapes_images import ShapesImagesDataModule

    datamodule = ShapesImagesDataModule(num_train=1, num_val=15, num_test=15, eval_batch_size=7, image_size=32)
    datamodule.setup()
    scored = []
    for rank in (0, 1):
        monkeypatch.setattr(data_base, "rank_and_world", lambda rank=rank: (rank, 2))
        batches = list(getattr(datamodule, loader)())
        assert len(batches) == 3
        scored += [i for b in batches for i, again in zip(b["index"].tolist(), b["repeated"], strict=True) if not again]
    assert sorted(scored) == list(range(15))


@pytest.mark.ddp
def test_a_ddp_test_of_an_odd_split_scores_as_one_process_does(vq_run, capfd):
    """Run's metrics.json: one process (evaluate.py scores alike); here 2 (ddp_spawn), each image once. The
    scores, whole-split numbers on every rank already, are logged without Lightning's advice to sync them."""
    from supra.runner.components import build_datamodule
    from supra.tasks.vq_autoencoding import VQAutoencodingTask

    net, run_cfg = load_vqvae(vq_run / "checkpoints" / "best.ckpt")
    task = VQAutoencodingTask(net=net, optimizer=None, run_config=run_cfg)
    # batches of 7: the last one image, fewer than the ranks
    datamodule = build_datamodule({**run_cfg["data"], "eval_batch_size": 7}, task)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    (ddp,) = trainer.test(task, datamodule=datamodule, verbose=False)
    alone = json.loads((vq_run / "metrics.json").read_text())
    assert alone["n_items"] == 15
    for name in ("psnr", "ssim", "codebook_usage", "perplexity", "loss"):
        assert float(ddp[f"test/{name}"]) == pytest.approx(alone[name], rel=1e-5), name
    assert "It is recommended to use `self.log(" not in capfd.readouterr().err  # printed by the spawned ranks


def test_tokenize_media_refuses_out_a_run_folder_or_its_checkpoints_before_reading_anything(tmp_path, capsys):
    """The codes would mix with the run's records (caption, explain and generate refuse the same folders)."""
    from tests.conftest import run_command

    run_folder = tmp_path / "run"
    (run_folder / "checkpoints").mkdir(parents=True)
    (run_folder / "checkpoints" / "best.ckpt").write_bytes(b"")
    for out, held in ((run_folder, "checkpoints/best.ckpt"), (run_folder / "checkpoints", "best.ckpt")):
        with pytest.raises(SystemExit):
            run_command("tokenize_media", "ckpt=no_such.ckpt", f"out={out}", run_dir=tmp_path)
        assert capsys.readouterr().err == (f"error: out={out} holds a run's records ({held}): choose another out= "
                                           "folder\n")
    assert sorted(p.name for p in run_folder.rglob("*")) == ["best.ckpt", "checkpoints"]  # nothing written


def test_evaluate_py_of_a_vqvae_on_a_media_folder_says_why_it_cannot_check_in_one_natural_line(vq_run, tmp_path,
                                                                                              caplog):
    """A VQ-VAE trained on shapes, scored on a folder of files: the line said the data scored named no files."""
    import logging

    from supra.runner.evaluation import evaluate
    from tests.media_fixtures import write_media_folder

    write_media_folder(tmp_path / "media")
    best = vq_run / "checkpoints" / "best.ckpt"
    with caplog.at_level(logging.INFO, logger="supra.runner.scored_data"):
        report = evaluate(compose_config("eval", tmp_path / "eval", [
            f"ckpt={best}", "data=media_folder", f"data.root={tmp_path / 'media'}", "data.show_progress=false",
            "num_grid_images=0"]))
    # a folder of files, not "names no image files": its run trained on generated pictures, which have none
    said = [r.getMessage() for r in caplog.records if r.name == "supra.runner.scored_data"]
    assert said == [f"cannot check whether ckpt={best} trained or validated on the test images scored: its run's data "
                    f"names no image files to compare with those of data.root={tmp_path / 'media'} (its pictures "
                    "generated, or a dataset's rows)"]
    assert report["trained_on"] is None and report["validated_on"] is None
