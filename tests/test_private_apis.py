"""Each private Lightning, Hydra or wandb API that supra/utils/private_apis.py wraps is still there and still does
what Supra relies on: a failure here, after an upgrade, names the one place to mend."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from supra.utils import lightning_subclasses, private_apis
from tests.sweep_runs import optuna_sweeper


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        self.last_batch_flags.append(private_apis.is_last_batch_of_epoch(self.trainer))
        self.batches_done.append(private_apis.batches_done_in_epoch(self.trainer))
        return self.layer(batch[0]).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_model_checkpoint_reports_and_writes_its_last_checkpoint(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=0, save_top_k=0)
    module = Tiny()
    module.last_batch_flags, module.batches_done = [], []
    trainer = L.Trainer(max_steps=3, callbacks=[callback], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    assert module.last_batch_flags == [False, True, False]  # 2 batches an epoch
    assert module.batches_done == [0, 1, 0]  # batches of the epoch done before this one
    (tmp_path / "last.ckpt").unlink(missing_ok=True)
    private_apis.save_last_checkpoint(callback, trainer)
    assert (tmp_path / "last.ckpt").is_file() and private_apis.last_step_saved(callback) == 3


def test_lightning_starts_ddp_children_with_a_replaceable_function_of_the_local_rank():
    original = private_apis.lightning_child_command()
    assert list(inspect.signature(original).parameters)[:1] == ["local_rank"]
    try:
        private_apis.set_lightning_child_command(lambda local_rank: (["echo"], "."))
        assert private_apis.lightning_child_command()(1) == (["echo"], ".")
    finally:
        private_apis.set_lightning_child_command(original)
    assert private_apis.lightning_child_command() is original


def test_the_csv_writer_keeps_columns_the_file_already_has(tmp_path):
    logger = CSVLogger(tmp_path, name="csv", version="")
    assert private_apis.cached_experiment(logger) is None
    writer = lightning_subclasses.ColumnKeepingWriter(log_dir=logger.log_dir)
    private_apis.set_experiment(logger, writer)
    assert logger.experiment is writer
    writer.log_metrics({"a": 1.0}, step=0)
    writer.save()
    previous = Path(writer.metrics_file_path).read_text()
    other = lightning_subclasses.ColumnKeepingWriter(log_dir=logger.log_dir)  # a second process: starts a new file
    Path(other.metrics_file_path).write_text(previous)  # as CSVLoggerKeepingColumns puts the rows back
    other.log_metrics({"b": 2.0}, step=1)
    other.save()
    assert set(other.metrics_keys) >= {"a", "b"}


def test_a_failed_job_keeps_its_exception():
    error = ValueError("bad lr")
    job = JobReturn(status=JobStatus.FAILED, _return_value=error)
    assert private_apis.job_error(job) is error


def test_a_stop_asked_during_a_batch_ends_the_fit_at_that_batch_end(tmp_path):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    class StopsInItsSecondBatch(Tiny):
        def training_step(self, batch, batch_idx):
            if self.trainer.global_step == 1:
                private_apis.stop_at_end_of_batch(self.trainer)
            return self.layer(batch[0]).mean()

    trainer = L.Trainer(max_steps=5, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, limit_val_batches=0, default_root_dir=tmp_path)
    with pytest.raises(SIGTERMException):
        trainer.fit(StopsInItsSecondBatch(), DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
    assert trainer.global_step == 2  # the batch finished, then the fit stopped


def test_a_restored_fit_loop_begins_its_next_epoch_afresh_when_told():
    trainer = L.Trainer(max_steps=4, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)
    trainer.fit_loop.load_state_dict(trainer.fit_loop.state_dict())  # restored, as from a checkpoint
    assert trainer.fit_loop.epoch_loop.restarting  # goes on from the restored progress (in reset())
    private_apis.begin_epoch_afresh(trainer)
    assert not trainer.fit_loop.epoch_loop.restarting


def test_a_batch_steps_the_optimizer_at_the_end_of_its_accumulation_or_of_its_epoch(tmp_path):
    class RecordsWhetherItSteps(Tiny):
        def training_step(self, batch, batch_idx):
            self.steps.append(private_apis.steps_the_optimizer(self.trainer))
            return self.layer(batch[0]).mean()

    module = RecordsWhetherItSteps()
    module.steps = []
    trainer = L.Trainer(max_epochs=2, accumulate_grad_batches=2, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                        default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(6, 2)), batch_size=2))  # epochs of 3 batches
    assert module.steps == [False, True, True] * 2 and trainer.global_step == 4


def test_the_logging_step_is_the_count_of_batches_that_stepped_before_this_one(tmp_path):
    class RecordsItsLoggingStep(Tiny):
        def training_step(self, batch, batch_idx):
            self.steps.append((private_apis.logging_step(self.trainer), self.trainer.global_step))
            return self.layer(batch[0]).mean()

    module = RecordsItsLoggingStep()
    module.steps = []
    trainer = L.Trainer(max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    assert module.steps == [(0, 0), (1, 1), (2, 2)] and private_apis.logging_step(trainer) == 3


@pytest.mark.parametrize(("limits", "description"), [({"max_steps": 2}, "Epoch 0"), ({"max_epochs": 3}, "Epoch 0/2")])
def test_the_progress_bar_names_the_last_epoch_only_when_there_is_one(limits, description, tmp_path):
    bar = lightning_subclasses.StepsProgressBar()
    trainer = L.Trainer(**limits, callbacks=[bar], logger=False, enable_model_summary=False, enable_checkpointing=False,
                        limit_train_batches=2, limit_val_batches=0, default_root_dir=tmp_path)
    module = Tiny()
    module.last_batch_flags, module.batches_done = [], []
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2))
    assert bar._get_train_description(0).rstrip() == description  # was "Epoch 0/-2" for max_steps alone


def fit_with_bar(tmp_path, ckpt_path=None, **limits) -> tuple[L.Trainer, tuple[float, float]]:
    """A fit of Tiny over 12 batches an epoch with a StepsProgressBar, and its training bar's (count, total) at
    the end, as the console last showed it."""
    bar = lightning_subclasses.StepsProgressBar()
    trainer = L.Trainer(**limits, callbacks=[bar], logger=False, enable_model_summary=False, enable_checkpointing=False,
                        limit_val_batches=0, default_root_dir=tmp_path)
    module = Tiny()
    module.last_batch_flags, module.batches_done = [], []
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(24, 2)), batch_size=2), ckpt_path=ckpt_path)
    return trainer, (bar.train_progress_bar.completed, bar.train_progress_bar.total)


def test_the_progress_bar_counts_to_its_total_in_batches_with_gradient_accumulation(tmp_path):
    _, bar = fit_with_bar(tmp_path, max_steps=3, accumulate_grad_batches=3)
    assert bar == (9, 9)  # was 9/3: 9 batches against 3 optimizer steps


def test_the_progress_bar_of_a_fit_resumed_within_an_epoch_counts_to_its_total(tmp_path):
    trainer, _ = fit_with_bar(tmp_path / "first", max_steps=4)
    trainer.save_checkpoint(tmp_path / "at_4.ckpt")  # within the epoch's 12 batches
    resumed, bar = fit_with_bar(tmp_path / "resumed", ckpt_path=tmp_path / "at_4.ckpt", max_steps=6)
    assert resumed.global_step == 6 and bar == (6, 6)  # was 6/2: the epoch's 6th batch, against the 2 steps left


def test_an_optuna_sweeps_error_reaches_the_handler_before_hydra_prints_it():
    from types import SimpleNamespace

    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

    error, seen = ValueError("No trials are completed yet."), []

    def fail(arguments):
        raise error

    private_apis.on_optuna_sweep_error(seen.append)
    with pytest.raises(ValueError) as raised:  # a handler that returns lets it go on
        OptunaSweeper.sweep(SimpleNamespace(sweeper=SimpleNamespace(sweep=fail)), [])
    assert raised.value is error and seen == [error]
    private_apis.on_optuna_sweep_error(lambda err: None)  # replaces the one before, not wrapped around it
    with pytest.raises(ValueError):
        OptunaSweeper.sweep(SimpleNamespace(sweeper=SimpleNamespace(sweep=fail)), [])
    assert seen == [error]


def test_a_grid_sweeps_failed_job_reaches_the_handler_before_hydra_prints_it():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    error, seen = ValueError("model.optimizer.lr=-1 must be a finite number >= 0"), []
    job = JobReturn(status=JobStatus.FAILED, _return_value=error)
    sweep = BasicSweeper.sweep
    try:
        # the grid's loop as Hydra's BasicSweeper.sweep ends: a failed job's exception raised after its batch
        BasicSweeper.sweep = lambda self, arguments: job.return_value
        private_apis.on_grid_sweep_error(seen.append)
        with pytest.raises(ValueError) as raised:  # a handler that returns lets it go on
            BasicSweeper.sweep(None, [])
        assert raised.value is error and seen == [error]
    finally:
        BasicSweeper.sweep = sweep


def test_the_optuna_sweeper_says_a_trial_that_returned_no_value_failed_on_its_logger(tmp_path, caplog):
    def no_value(overrides, initial_job_idx):
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=None)]

    sweeper = optuna_sweeper(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}), no_value, n_trials=1)
    with caplog.at_level("WARNING"), pytest.raises(ValueError, match="No trials are completed yet"):
        sweeper.sweep([])
    assert [(r.name, r.levelname) for r in caplog.records if r.getMessage().startswith(
        private_apis.OPTUNA_NO_VALUE_LINE)] == [(private_apis.OPTUNA_SWEEPER_LOGGER, "WARNING")]


def test_spawned_ranks_hand_the_last_weights_back_in_a_temp_folder_that_is_removed_once_read(tmp_path, monkeypatch):
    """Lightning's spawn launcher saves rank 0's last weights in a new temp folder and removes the file alone: an
    empty folder was left in $TMPDIR by every trainer=ddp_sim fit."""
    import tempfile

    from lightning.pytorch.trainer.states import TrainerFn

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where rank 0 saves them (its mkdtemp)
    trainer = L.Trainer(strategy=lightning_subclasses.FolderRemovingSpawnDDP(start_method="spawn"), accelerator="cpu",
                        devices=2, logger=False, enable_progress_bar=False, enable_model_summary=False)
    module, trained = Tiny(), Tiny()
    trainer.strategy.connect(trained)
    trainer.state.fn = TrainerFn.FITTING
    launcher = trainer.strategy.launcher
    handed = launcher._collect_rank_zero_results(trainer, None)  # as rank 0 does at the fit's end
    assert Path(handed.weights_path).parent.parent == tmp_path
    trainer.strategy.connect(module)
    launcher._recover_results_in_main_process(handed, trainer)  # as the main process does with them
    assert torch.equal(module.layer.weight, trained.layer.weight) and list(tmp_path.iterdir()) == []


def test_hydras_parser_reads_its_modes_as_hydra_main_does_abbreviated_and_bundled():
    parser = private_apis.hydra_args_parser()
    args = parser.parse_args(["--multi", "--cf", "job", "seed=1"])
    assert (args.run, args.multirun, args.cfg, args.info, args.shell_completion, args.overrides) == (
        False, True, "job", None, False, ["seed=1"])
    assert parser.parse_args(["-mc", "job"]).cfg == "job"
    assert parser.parse_args(["--inf"]).info == "all"


def test_wandb_reads_the_netrc_key_of_the_server_its_settings_name(tmp_path, monkeypatch):
    """A `wandb login --host` to a self-hosted server keeps its key under that server's name in ~/.netrc: it is
    found through the server wandb's settings file names, and a key for api.wandb.ai does not count for it."""
    (tmp_path / "config" / "settings").parent.mkdir()
    (tmp_path / "config" / "settings").write_text("[default]\nbase_url = https://wandb.example.com\n")
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'a' * 40}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    assert not private_apis.wandb_netrc_has_key(str(tmp_path / "config"))
    netrc.write_text(f"machine wandb.example.com\n  login user\n  password {'b' * 40}\n")
    assert private_apis.wandb_netrc_has_key(str(tmp_path / "config"))
