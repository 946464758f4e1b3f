"""Every private API of Lightning, Hydra and wandb that Supra relies on, in this one place.

Each is used here only (the subclasses of Lightning's classes in lightning_subclasses.py, which imports Lightning), behind
a small function or class the rest of Supra calls; pyproject.toml pins each package to the minor versions the tests
ran on, and tests/test_private_apis.py fails when one of these changes shape, so an upgrade shows what to mend in one
place. Why each is needed:

- a checkpoint at the last step: ModelCheckpoint writes last.ckpt at validations, and at train end only
  when it wrote none at all, so steps after the last validation would be lost to a resume;
- when ModelCheckpoint saves the best: at a once-per-epoch validation it saves at the epoch's end, and a
  last.ckpt written before that (at the validation's end) would make it skip the save;
- a stop at the end of the batch: Ctrl-C during a fit stops it as SIGTERM does (the loops finish the
  batch, then raise SIGTERMException), so that last.ckpt is written at the step reached;
- whether a batch steps the optimizer: with gradient accumulation Ctrl-C stops at the end of the batch that
  ends the optimizer step, since a checkpoint cannot keep the gradients gathered before it;
- the last batch of an epoch: the captioner scores its last validation of a fit even when
  score_every_n_val would skip it, and only the fit loop's progress says that a batch is the epoch's last;
- the step the loggers are at: pictures are logged at the step of the scalars logged with them, which
  Lightning keeps apart from global_step (a validation's metrics are logged one step below it);
- an epoch begun afresh: a fit resumed between epochs (stopped at an epoch's last batch) would go on from the
  epoch before's progress, training one more batch;
- the batches done in an epoch: a stream of shards resumed mid-epoch skips what was trained on, and only
  the fit loop's progress (restored from the checkpoint) says how much that was;
- the folder spawned DDP ranks hand the last weights back in: Lightning's spawn launcher saves them in a new
  temp folder (mkdtemp) and removes the file alone, leaving an empty folder in $TMPDIR per trainer=ddp_sim fit;
- DDP children of a multirun job: Lightning starts ranks > 0 by re-running the command line, which
  under `-m` is the whole sweep (supra/sweeps/ddp.py replaces the command);
- the progress bar's epoch: a run bounded by max_steps has max_epochs=-1, which RichProgressBar showed
  as "Epoch 0/-2";
- the CSV writer's known columns: under ddp_spawn, fit and test write one metrics.csv from two processes;
- a failed sweep job's exception: JobReturn.return_value re-raises it after printing to stderr;
- an Optuna sweep none of whose trials completed: the plugin's sweeper then asks Optuna for the best trial,
  whose "No trials are completed yet." Hydra prints as a traceback, and no hook of Hydra's sees it first
  (its sweep() is wrapped); and a grid sweep with a failed job, which Hydra's BasicSweeper raises after the
  batch as an error of its own words, not naming the sweep's report (its sweep() is wrapped too);
- the Optuna sweeper's search space: a stored study resumed with a parameter searched another way fails in
  its first trial (Optuna's "Cannot set different distribution kind"), leaving it RUNNING in the study, so
  the space is read before, as the plugin reads it;
- the Optuna sweeper's line for a trial that returned no value: for a trial that diverged it repeats Supra's own
  warning in words that do not say why ("Got 'None'"), and a filter on the logger it uses drops it;
- Hydra's parser of the command line: two of its modes at once (`-m --cfg job`) are a ValueError traceback, and
  only its own parser reads the flags as it does (abbreviated, `--multi`, or bundled, `-mc job`);
- the W&B server a `wandb login` is for: a login to a self-hosted server (WANDB_BASE_URL, `wandb login --host`)
  is in ~/.netrc under that server's name, and only wandb's own readers say which server wandb.init would use.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra._internal.utils import get_args_parser
from hydra.core.utils import JobReturn

if TYPE_CHECKING:  # Lightning is imported where a function needs it: a command's --help runs without it (seconds)
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

ChildCommand = Callable[[int], tuple[Sequence[str], str]]


# -- lightning.pytorch.callbacks.ModelCheckpoint ------------------------------------------------------------

def last_step_saved(callback: ModelCheckpoint) -> int:
    """The global step of the checkpoint `callback` wrote last."""
    return callback._last_global_step_saved


def saves_best_at_epoch_end(callback: ModelCheckpoint, trainer: L.Trainer) -> bool:
    """Whether `callback` saves its best checkpoints at the training epoch's end (a validation once per epoch,
    at its end) rather than as each validation ends."""
    return callback._should_save_on_train_epoch_end(trainer)


def save_last_checkpoint(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Write `callback`'s last.ckpt now, as it does after a validation."""
    callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


# -- lightning.pytorch.trainer.connectors.signal_connector ---------------------------------------------------

def stop_at_end_of_batch(trainer: L.Trainer) -> None:
    """What Lightning's SIGTERM handler does: the fit stops at the end of the current training batch (a
    validation at its next batch), raising SIGTERMException."""
    trainer._signal_connector.received_sigterm = True


# -- the fit loop ---------------------------------------------------------------------------------------------

def steps_the_optimizer(trainer: L.Trainer) -> bool:
    """Whether the current training batch ends an optimizer step (the last of trainer.accumulate_grad_batches
    batches, or of the epoch, where Lightning steps on the batches left): from its start to the next batch's."""
    return not trainer.fit_loop.epoch_loop._should_accumulate()


def is_last_batch_of_epoch(trainer: L.Trainer) -> bool:
    return trainer.fit_loop.epoch_loop.batch_progress.is_last_batch


def logging_step(trainer: L.Trainer) -> int:
    """The step Lightning logs metrics at now: the training batches that stepped the optimizer before the
    current one (during a validation: global_step - 1, the batch that triggered it; in a test: global_step)."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def begin_epoch_afresh(trainer: L.Trainer) -> None:
    """The training epoch now beginning starts at its first batch with its counts at zero, as in a run never
    stopped. A fit resumed between epochs is restarting, and Lightning would go on from the restored progress
    of the epoch before (a bounded-by-steps run trained one more batch, counted in it)."""
    trainer.fit_loop.epoch_loop.restarting = False


def batches_done_in_epoch(trainer: L.Trainer) -> int:
    """Training batches completed in the current epoch (after a resume: before the checkpoint was written)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.completed


def batches_trained_in_epoch(trainer: L.Trainer) -> int:
    """Training batches of the current epoch that ran, as restored from a checkpoint before the epoch goes on: one
    written at a batch's end counts it processed, not yet completed (Lightning completes it as it restarts)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def count_batches_trained_in_epoch(trainer: L.Trainer, batches: int) -> None:
    """Count `batches` of the current epoch as trained (before it goes on from a checkpoint), each of the epoch's
    counts moved alike: the epoch then ends, and validates, after the batches the trainer's loader has left."""
    counts = trainer.fit_loop.epoch_loop.batch_progress.current
    moved = batches - counts.processed
    counts.ready, counts.started = counts.ready + moved, counts.started + moved
    counts.processed, counts.completed = counts.processed + moved, counts.completed + moved


# -- lightning.pytorch.strategies.launchers.subprocess_script ---------------------------------------------

def lightning_child_command() -> ChildCommand:
    """Lightning's own function giving (command line, cwd) of DDP rank `local_rank` in a Hydra run."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    return subprocess_script._hydra_subprocess_cmd


def set_lightning_child_command(command: ChildCommand) -> None:
    from lightning.pytorch.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = command


# -- lightning.pytorch.loggers.CSVLogger ------------------------------------------------------------------

def cached_experiment(logger: CSVLogger) -> ExperimentWriter | None:
    """The writer the CSV logger created already, if any."""
    return logger._experiment


def set_experiment(logger: CSVLogger, writer: ExperimentWriter) -> None:
    logger._experiment = writer


# -- hydra.core.utils.JobReturn ------------------------------------------------------------------------------

def job_error(job_return: JobReturn) -> Any:
    """The exception a failed Hydra job raised, without re-raising it."""
    return job_return._return_value


# -- hydra._internal.utils.get_args_parser ------------------------------------------------------------------

def hydra_args_parser() -> argparse.ArgumentParser:
    """The parser hydra.main reads the command line with: its flags, as it takes them."""
    return get_args_parser()


# -- hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper, hydra's BasicSweeper.sweep ---------------

def on_optuna_sweep_error(handler: Callable[[Exception], None]) -> None:
    """`handler` is called with the exception that ends an Optuna sweep, before Hydra prints it: it may end the
    process in its own words, or return to let the exception go on. Each call replaces the handler before."""
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

    _on_sweep_error(OptunaSweeper, handler)


def on_optuna_sweep_stopped(handler: Callable[[list[Any]], None]) -> None:
    """`handler` is called with the Optuna trials of the batch a trial's job stopped with Ctrl-C or a SIGTERM
    (KeyboardInterrupt, SystemExit: the sweeper tells the study nothing of that batch), before the exception goes
    on. Each call replaces the handler before."""
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

    configure = getattr(OptunaSweeperImpl._configure_trials, "__wrapped__", OptunaSweeperImpl._configure_trials)
    sweep = getattr(OptunaSweeperImpl.sweep, "__wrapped__", OptunaSweeperImpl.sweep)
    batch: list[Any] = []  # the trials the sweeper asked its study for last, the batch it launches next

    @functools.wraps(configure)
    def recorded_batch(self: Any, trials: list[Any], *args: Any, **kwargs: Any) -> Any:
        batch[:] = trials
        return configure(self, trials, *args, **kwargs)

    @functools.wraps(sweep)
    def handled_sweep(self: Any, arguments: list[str]) -> Any:
        batch.clear()
        try:
            return sweep(self, arguments)
        except (KeyboardInterrupt, SystemExit):
            handler(list(batch))
            raise

    OptunaSweeperImpl._configure_trials = recorded_batch
    OptunaSweeperImpl.sweep = handled_sweep


def on_grid_sweep_error(handler: Callable[[Exception], None]) -> None:
    """As on_optuna_sweep_error, for Hydra's own grid sweeper, which raises a failed job's exception after its
    batch of jobs has run (JobReturn.return_value, which has then written "Error executing job with overrides")."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    _on_sweep_error(BasicSweeper, handler)


def _on_sweep_error(sweeper: type, handler: Callable[[Exception], None]) -> None:
    sweep = getattr(sweeper.sweep, "__wrapped__", sweeper.sweep)

    @functools.wraps(sweep)
    def handled_sweep(self: Any, arguments: list[str]) -> Any:
        try:
            return sweep(self, arguments)
        except Exception as err:
            handler(err)
            raise

    sweeper.sweep = handled_sweep


# -- hydra_plugins.hydra_optuna_sweeper._impl ---------------------------------------------------------------------

# The logger the plugin's sweeper says each failed trial on, in the sweep's process after each batch of trials,
# and how its line for a trial that returned None (a diverged one: train() returns no value) begins
OPTUNA_SWEEPER_LOGGER = "hydra_plugins.hydra_optuna_sweeper._impl"
OPTUNA_NO_VALUE_LINE = "Failed experiment: Return value must be float-castable. Got 'None'"


def optuna_search_space(arguments: Sequence[str]) -> dict[str, Any]:
    """The Optuna distributions the plugin's sweeper searches for `arguments` (its params as `key=value`, then the
    command line's overrides), by name; keys given a fixed value are left out, as the sweeper leaves them."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    searched, fixed = create_params_from_overrides(list(arguments))
    return {name: distribution for name, distribution in searched.items() if name not in fixed}


# -- wandb.sdk.lib.wbauth, wandb.Settings' readers ---------------------------------------------------------------

def wandb_netrc_has_key(config_dir: str | None) -> bool:
    """Whether ~/.netrc holds a key for the W&B server wandb.init would use: the one its settings file names
    (under `config_dir`, WANDB_CONFIG_DIR, else ~/.config/wandb; `wandb login --host` saves it there), then
    WANDB_BASE_URL, as wandb reads them. A key in a form W&B refuses counts: its login, tried, says so."""
    from wandb import Settings
    from wandb.errors import AuthenticationError
    from wandb.sdk.lib.wbauth import HostUrl, read_netrc_auth

    settings = Settings()
    settings.settings_system = str(Path(config_dir).expanduser() / "settings" if config_dir
                                   else Path("~", ".config", "wandb", "settings").expanduser())
    try:
        settings.update_from_system_settings()
        settings.update_from_env_vars(dict(os.environ))
    except ValueError:  # a setting wandb refuses: wandb.init says which; its default server here
        settings = Settings()
    try:
        return read_netrc_auth(host=HostUrl(settings.base_url, app_url=settings.app_url)) is not None
    except AuthenticationError:
        return True
