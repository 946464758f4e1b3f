"""The collectives Supra uses are identities in one process and gather every rank's items once under DDP; a run
under trainer=ddp_sim says an interval too long for each rank in one line and tests with one process's loss."""

import json
import logging
import multiprocessing
import os
import pickle
import re
import signal
import time
import traceback
import warnings
from pathlib import Path
from types import SimpleNamespace

import hydra
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
import wandb
from hydra.core.utils import configure_log
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from supra.loggers.wandb_logger import build_wandb_logger
from supra.runner.spawned_ranks import _rank_files, end_with_main_process
from supra.runner.training import train
from supra.utils.cli import exit_on_user_error
from supra.utils.distributed import broadcast_object, gather_mappings
from supra.utils.errors import SupraUserError
from tests.conftest import ddp_turn
from tests.gather_ranks import gather_then_set_up_shapes_on_rank


def test_gather_and_broadcast_are_identity_without_ddp():
    assert gather_mappings({3: "x", 1: "y"}) == {3: "x", 1: "y"}
    assert broadcast_object({"CIDEr": 1.5}) == {"CIDEr": 1.5}


def test_every_tasks_epoch_scores_are_logged_as_the_max_over_ranks_of_equal_numbers(tmp_path):
    """Epoch scores are equal on every rank already (scored on rank 0 and shared, or computed from states summed
    over the ranks): their max is that number on any number of ranks, where a float32 mean of 3 equal numbers may
    be 1 ulp off it. The VQ-VAE took the max; the captioner and the a2a model averaged theirs."""
    import torch

    from supra.models.vqvae import VQVAE
    from supra.runner.components import build_task
    from supra.tasks.a2a import A2ATask
    from supra.tasks.vq_autoencoding import VQAutoencodingTask
    from tests.conftest import compose_config

    logged: dict[str, dict] = {}

    def recorded(task):  # what each task asks Lightning to log
        task.log = lambda name, value, **options: logged.__setitem__(f"{type(task).__name__} {name}", options)
        return task

    vq = recorded(VQAutoencodingTask(net=VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), optimizer=None))
    vq._eval_step({"pixels": torch.rand(2, 3, 16, 16) * 2 - 1}, "val")
    logged.clear()  # the loss is a mean over the batches: the epoch's scores follow
    vq._log_epoch("val")

    a2a = recorded(A2ATask(net=torch.nn.Identity(), optimizer=None, vqvae=VQVAE(num_codes=16, code_dim=4, hidden=(4, 4))))
    a2a.trainer = SimpleNamespace(is_global_zero=True)
    a2a.on_validation_epoch_start()
    a2a._fidelity = {"shapes/0": (1.0, 1.0, 1.0, 1.0, 1)}
    a2a._score_epoch("val", ["ROUGE_L"])

    captioner = recorded(build_task(compose_config("train", tmp_path, []).model, None))
    captioner.trainer = SimpleNamespace(is_global_zero=True, datamodule=SimpleNamespace(
        references=lambda split: {0: ["a red square"]}, extra_caption_scores=lambda split, predictions: {}))
    captioner._predictions = {0: "a red square"}
    captioner._score_epoch("val", "val", ["ROUGE_L"])

    assert {"VQAutoencodingTask val/psnr", "A2ATask val/text2image_fidelity", "CaptioningTask val/ROUGE_L"} <= set(logged)
    reductions = {name: (options.get("sync_dist"), options.get("reduce_fx", "mean")) for name, options in logged.items()}
    assert reductions == dict.fromkeys(logged, (True, "max"))  # Lightning's own default: "mean"


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """The folder 2 spawned ranks of one process group wrote into: what each gathered and was broadcast
    (rank<N>.json), then the warnings each logged setting up the shapes captions, cut to 6 tokens, for a fit
    (warnings_rank<N>.txt), then those each logged reading captions not in UTF-8 and restoring a resumed run's
    checkpoint callback whose best file is gone (read_warnings_rank<N>.txt). One spawn for the tests below: each
    rank's start-up is paid once."""
    out_dir = tmp_path_factory.mktemp("two_ranks")
    (out_dir / "cafe.txt").write_bytes("a café".encode("cp1252"))
    (out_dir / "utf16.txt").write_bytes("a dog".encode("utf-16") + b"\x00\xd8")  # a lone surrogate's half
    (out_dir / "photos").mkdir()
    for name in ("a", "b"):  # Notepad's sidecars beside two pictures
        Image.new("RGB", (8, 8)).save(out_dir / "photos" / f"{name}.png")
        (out_dir / "photos" / f"{name}.txt").write_bytes("a café".encode("cp1252"))
    wandb_dir = os.environ.get("WANDB_DIR")  # the logger points wandb at its run folder for the process: restored
    logger = build_wandb_logger(str(out_dir / "wandb_run"))  # offline (conftest.py), made before the ranks start
    try:
        with ddp_turn():
            mp.spawn(gather_then_set_up_shapes_on_rank, args=(str(out_dir / "init"), str(out_dir), 6,
                                                              pickle.dumps(logger)), nprocs=2, join=True)
    finally:
        wandb.finish()
        os.environ.pop("WANDB_DIR", None) if wandb_dir is None else os.environ.__setitem__("WANDB_DIR", wandb_dir)
    return out_dir


@pytest.mark.ddp
def test_gather_over_two_processes_keeps_each_image_once(two_ranks):
    results = [json.loads((two_ranks / f"rank{r}.json").read_text()) for r in (0, 1)]
    expected = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four"}
    for result in results:
        assert result["merged"] == expected
        assert result["shared"] == {"rank": 0}


@pytest.mark.ddp
def test_an_image_a_spawned_rank_logs_to_wandb_lands_in_the_run_folders_wandb_run(two_ranks):
    """Under trainer=ddp_sim the sample grids went to ./wandb of the folder the command started in: the rank's wandb
    did not know the parent's run folder, and the `wandb sync` the run printed uploaded a run without images."""
    media = (two_ranks / "wandb_run" / "wandb").glob("offline-run-*/files/media/images/test/samples_0_*.png")
    assert len(list(media)) == 1


@pytest.mark.ddp
def test_captions_cut_to_the_models_length_are_said_once_by_rank_zero_not_by_every_rank(two_ranks):
    """Every rank encodes the whole split alike: the warning was printed once per rank."""
    assert re.fullmatch(r"train: \d+ of 200 captions cut to MAX_SEQ=6 tokens \(EOS kept\)\n"
                        r"val: \d+ of 60 captions cut to MAX_SEQ=6 tokens \(EOS kept\)\n",
                        (two_ranks / "warnings_rank0.txt").read_text())
    assert (two_ranks / "warnings_rank1.txt").read_text() == ""


@pytest.mark.ddp
def test_caption_files_not_utf8_and_a_lost_best_checkpoint_are_said_once_by_rank_zero_not_by_every_rank(two_ranks):
    """Every rank reads the captions and restores the resumed checkpoint alike: each warning was printed once per
    rank."""
    said = (two_ranks / "read_warnings_rank0.txt").read_text().splitlines()
    assert said == [
        f"{two_ranks / 'cafe.txt'} is not UTF-8 (byte 5): read as Windows-1252; save it as UTF-8 if its captions "
        "look wrong",
        f"{two_ranks / 'utf16.txt'}: a byte-order mark says UTF-16, but byte 12 is not: read with replacement "
        "characters",
        f"2 caption files under {two_ranks / 'photos'} are not UTF-8 (e.g. a.txt, b.txt): read as Windows-1252; save "
        "them as UTF-8 if their captions look wrong",
        f"the resumed run's best checkpoint (val/CIDEr = 0.5) is neither beside ckpt_path nor at "
        f"{two_ranks / 'earlier' / 'best.ckpt'}: the best of this run is picked anew"]
    assert (two_ranks / "read_warnings_rank1.txt").read_text() == ""


def test_a_rank_that_scored_no_row_computes_the_split_metric_without_torchmetrics_warning(tmp_path):
    """A val split of 1 image on 2 ranks: rank 1 updates no metric, and its compute (the ranks' states summed)
    is right; torchmetrics warned of compute before update there, three times per validation."""
    from torchmetrics.image import PeakSignalNoiseRatio

    from supra.tasks.base import computed_over_ranks

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            computed_over_ranks(PeakSignalNoiseRatio(data_range=1.0))
    finally:
        dist.destroy_process_group()
    with pytest.warns(UserWarning, match="before the ``update`` method"):  # in one process, no rank scores more
        computed_over_ranks(PeakSignalNoiseRatio(data_range=1.0))


@pytest.fixture
def ctrl_c_ignored():
    """SIGINT ignored, as a background job of a shell script starts (and passes on to the processes it spawns)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_spawned_rank_that_inherited_ctrl_c_ignored_still_ends_when_its_main_process_dies(ctrl_c_ignored, monkeypatch):
    # torch has the kernel send a spawned rank SIGINT when its parent dies; ignored, the ranks of a killed
    # `python train.py trainer=ddp_sim &` trained on as orphans
    end_with_main_process()  # this process was not spawned: left as it is
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: SimpleNamespace(pid=os.getppid()))
    end_with_main_process()
    ends = signal.getsignal(signal.SIGINT)
    ends(signal.SIGINT, None)  # Ctrl-C at the terminal while the parent lives: still ignored
    parent = os.getppid()
    monkeypatch.setattr(os, "getppid", lambda: parent + 1)  # the parent died: this rank was adopted
    with pytest.raises(KeyboardInterrupt):  # which torch's spawn takes as "killed by the parent": the rank ends
        ends(signal.SIGINT, None)


class _StillStartingInWorkers(list):
    """A dataset whose DataLoader workers are still starting when their rank ends, as a validation's first are
    (a spawned worker takes seconds to import torch): each worker unpickles it for far longer than the test."""

    def __getstate__(self) -> bool:
        return True  # a state, for unpickling to call __setstate__

    def __setstate__(self, state: bool) -> None:
        time.sleep(60)


def _rank_ended_while_its_loader_workers_start(rank: int, held_by_the_trainer: list) -> None:
    end_with_main_process()  # as each rank does at setup
    # 8 workers, not 2: one reaped by the exit's join before torch's handler runs goes unreported (a race)
    batches = iter(DataLoader(_StillStartingInWorkers(range(8)), num_workers=8))
    held_by_the_trainer.append(batches)  # a rank's trainer holds its loaders: they are never shut down
    os.kill(os.getpid(), signal.SIGINT)  # its main process died: the KeyboardInterrupt torch's spawn takes as the end


def test_a_spawned_rank_ended_while_its_loader_workers_start_ends_without_their_traceback(capfd):
    """`trainer=ddp_sim data.num_workers=2` killed as a validation's workers started: multiprocessing's exit in each
    rank ended them with SIGTERM, which torch's SIGCHLD handler took for a crash: the rank ended with status 1 and
    a traceback, `DataLoader worker (pid N) is killed by signal: Terminated`."""
    mp.spawn(_rank_ended_while_its_loader_workers_start, args=([],), nprocs=1)  # raises unless it ended with 0
    assert "killed by signal" not in capfd.readouterr().err


def test_a_spawned_rank_after_the_first_keeps_its_info_lines_in_its_own_log_and_prints_only_its_warnings(
        tmp_path, capsys):
    """Under trainer=ddp_sim every rank sets the same data up: what a source holds and skips, and the tokenizer,
    reached the console once per rank. Rank 1 keeps those lines in its own log file; on the console it says only
    its warnings and errors, which it alone may see (a DataLoader worker of its own killed)."""
    settings = OmegaConf.load(Path(hydra.__file__).parent / "conf" / "hydra" / "job_logging" / "default.yaml")
    settings.handlers.file.filename = str(tmp_path / "train.log")  # Hydra's job logging, in a run folder
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_log(_rank_files(settings, rank=1), False)
        log = logging.getLogger("supra.data.caption_sources.decoded")
        log.info("folder (folder layout): train 7 images")
        log.warning("a DataLoader worker of this rank was killed")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved_handlers, saved_level
    assert not (tmp_path / "train.log").exists()  # rank 0's
    rank_log = (tmp_path / "train_ddp_process_1.log").read_text()
    assert "[INFO] - folder (folder layout): train 7 images" in rank_log and "[WARNING] - a DataLoader" in rank_log
    console = capsys.readouterr().out
    assert "train 7 images" not in console and "[WARNING] - a DataLoader worker of this rank was killed" in console
    assert _rank_files(settings, rank=0) is settings  # rank 0: the run's console and train.log, as Hydra set them


def test_a_user_error_in_a_spawned_rank_is_one_line_not_spawns_traceback(capsys):
    """trainer=ddp_sim sets the data up in ranks torch's spawn starts, which hands the parent only the rank's
    traceback as text (a ProcessRaisedException, made here as spawn makes it): that was ~60 lines of traceback
    where one process prints `error: ...`."""
    message = "data.root=/photos holds no images or GIFs (it is empty): point data.root elsewhere"
    try:
        raise SupraUserError(message)
    except SupraUserError:
        trace = traceback.format_exc()
    raised = mp.ProcessRaisedException(f"\n\n-- Process 1 terminated with the following error:\n{trace}", 1, 4321)
    with pytest.raises(SystemExit) as exited, exit_on_user_error():
        raise raised
    assert exited.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"
    with pytest.raises(mp.ProcessRaisedException), exit_on_user_error():  # a rank's bug stays a traceback
        raise mp.ProcessRaisedException("\n\n-- Process 0 terminated with the following error:\nKeyError: 'x'", 0, 1)


@pytest.mark.ddp
def test_a_validation_interval_longer_than_each_ranks_epoch_is_one_line_naming_its_batches(train_config):
    # 8 images of 5 captions in batches of 16: 3 batches an epoch in one process, where an interval of 3 is valid,
    # but 2 for each of the 2 ranks; Lightning refused it in a spawned rank, which reached the run as that rank's
    # whole traceback
    cfg = train_config("trainer=ddp_sim", "data.num_train=8", "trainer.check_val_every_n_epoch=1",
                       "trainer.val_check_interval=3")
    with pytest.raises(SupraUserError) as refused:
        train(cfg)
    assert str(refused.value) == (
        "trainer.val_check_interval=3 is more than the 2 training batches each of the 2 DDP processes has per epoch "
        "(each trains its share of the epoch): with trainer.check_val_every_n_epoch=1 it counts within each epoch; "
        "use trainer.val_check_interval=1.0 (each epoch's end) or a number up to 2, or "
        "trainer.check_val_every_n_epoch=null (every 3 batches across epochs)")
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()  # refused before the first step


@pytest.mark.ddp
def test_a_ddp_test_of_an_odd_split_gives_the_loss_and_scores_of_one_process(train_config):
    # 15 images in batches of 7, 7 and 1 on 2 ranks: each rank takes its rows of every batch, and rank 1 the last
    # batch's one image again, logged with no weight and not captioned. Lightning's DistributedSampler padded the
    # split with image 0 instead, whose caption tokens the loss counted twice. (An odd token total was averaged
    # over the ranks as an int, rounded down: tokens / (tokens - 1) of one process's loss.) Untrained weights
    # (train=false, the seed's) on both: the same model, and no fit to wait for
    common = ("train=false", "data.num_test=15", "data.eval_batch_size=7", "model.test_metrics=[CIDEr]",
              "model.decode.max_new_tokens=2")
    reports = {}
    for run, settings in (("two", ("trainer=ddp_sim", *common)), ("one", common)):
        cfg = train_config(*settings, run=run)  # composed where it runs: a run logs into the last one composed
        train(cfg)
        reports[run] = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert reports["two"]["loss"] == reports["one"]["loss"]  # to all digits: each image's tokens summed once, exactly
    assert reports["two"]["n_images"] == reports["one"]["n_images"] == 15
    assert reports["two"]["CIDEr"] == reports["one"]["CIDEr"]
