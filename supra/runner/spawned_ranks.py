"""DDP ranks started by spawn (trainer=ddp_sim) log as the run does and end with the process that started them."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.util import Finalize
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import configure_log
from omegaconf import DictConfig, OmegaConf

from supra.utils.cli import sigterm_default
from supra.utils.lightning_subclasses import FolderRemovingSpawnDDP


class SpawnedRanks(FolderRemovingSpawnDDP):
    """Lightning's `ddp_spawn` (DDP in processes started by spawn) whose ranks log as `strategy=ddp`'s ranks do.

    A spawned process starts with Python's logging unset, and the data is set up there: without this, what a
    run's sources hold and skip (INFO lines) went nowhere and the run's <job>.log stayed empty. Each rank takes
    the run's Hydra job logging: rank 0 its console and <job>.log, rank N <job>_ddp_process_N.log instead of
    <job>.log (the name Lightning gives a subprocess rank's log) and, on the console, its warnings and errors
    alone (the set-up lines every rank says are rank 0's to print). The temp folder rank 0 hands the last weights
    back in is removed once they are read (Lightning's removes the file alone: one empty folder in $TMPDIR a fit)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(start_method="spawn", **kwargs)
        self._job_logging = _job_logging()  # read here, in the process Hydra set up; plain values: it pickles

    def setup_environment(self) -> None:
        super().setup_environment()  # the rank is known after it
        if self._job_logging is not None and multiprocessing.parent_process() is not None:
            saved = OmegaConf.create(self._job_logging)
            configure_log(_rank_files(saved.job_logging, self.global_rank), saved.verbose)


def _job_logging() -> dict | None:
    """This Hydra run's logging settings (hydra.job_logging, hydra.verbose), resolved; None outside a run."""
    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    verbose = hydra.verbose  # a bool, a logger's name or a list of names
    return {"job_logging": OmegaConf.to_container(hydra.job_logging, resolve=True),
            "verbose": OmegaConf.to_container(verbose, resolve=True) if OmegaConf.is_config(verbose) else verbose}


def _rank_files(settings: DictConfig | None, rank: int) -> DictConfig | None:
    """Logging settings of rank `rank`: after rank 0, its log files are <name>_ddp_process_<rank><suffix> and its
    console shows warnings and errors only. Every rank sets the same data up, so its INFO lines (what a source
    holds and skips, the tokenizer) said on rank 0's console too were each printed once per rank; a rank's own
    warnings and errors (a worker killed, a rank's traceback) are seen by that rank alone, and still show."""
    if settings is None or rank == 0:
        return settings
    settings = settings.copy()
    for handler in (settings.get("handlers") or {}).values():
        if "filename" in handler:
            path = Path(handler.filename)
            handler.filename = str(path.with_name(f"{path.stem}_ddp_process_{rank}{path.suffix}"))
        elif _level(handler.get("level")) < logging.WARNING:  # the console
            handler.level = "WARNING"
    return settings


def _level(name: str | int | None) -> int:
    """A handler's level as a number (logging's settings take names or numbers); NOTSET where unset."""
    return logging.getLevelName(name) if isinstance(name, str) else int(name or logging.NOTSET)


class EndWithMainProcess(L.Callback):
    """A spawned rank whose main process is gone ends, rather than train on alone (end_with_main_process)."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        end_with_main_process()


def end_with_main_process() -> None:
    """In a process started by multiprocessing's spawn (torch.multiprocessing.spawn: ddp_spawn's ranks), make
    the death of the process that started it end this one, as torch means it to.

    torch asks the kernel for SIGINT in each rank when its parent dies, and takes the KeyboardInterrupt as
    "killed by the parent". A process started with SIGINT ignored (a background job of a shell script: `python
    train.py trainer=ddp_sim &`) passes that on to the ranks, which then ignored the signal: the main process
    killed, both ranks trained on to the end as orphans, writing checkpoints and logs. Here such a rank still
    ignores SIGINT (Ctrl-C at the terminal is not meant for a background job), unless its parent has died. A rank
    so ended ends without a traceback from its DataLoader workers (_end_loader_workers_quietly_at_exit)."""
    parent = multiprocessing.parent_process()
    if parent is None or threading.current_thread() is not threading.main_thread():
        return  # not spawned
    _end_loader_workers_quietly_at_exit()
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return  # SIGINT already ends it (Python's KeyboardInterrupt)

    def end_if_orphaned(signum: int, frame: FrameType | None) -> None:
        if os.getppid() != parent.pid:  # adopted: the parent is gone (the kernel reparents before it signals)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, end_if_orphaned)
    if os.getppid() != parent.pid:  # it died before the handler was in place: its signal was ignored
        raise KeyboardInterrupt


def _end_loader_workers_quietly_at_exit() -> None:
    """SIGCHLD back at its default as this process exits, before multiprocessing's exit ends its daemonic children
    with SIGTERM: the DataLoader workers of a rank that ended mid-epoch, never shut down (the trainer holds its
    loaders). A worker in its loop takes its parent's SIGTERM as "exit quietly", but one still starting (spawned,
    it imports torch for seconds: a validation's first) dies of it, and torch's SIGCHLD handler, there to report
    a crashed worker, raised `DataLoader worker (pid N) is killed by signal: Terminated` as the rank ended."""
    Finalize(None, signal.signal, args=(signal.SIGCHLD, signal.SIG_DFL), exitpriority=0)  # run before that


@contextmanager
def sigterm_ends_main_process_at_once(trainer: L.Trainer) -> Iterator[None]:
    """SIGTERM at its default (the process ends at once, status 143, its ranks with it) in the process that spawned
    `trainer`'s ranks, while they run: taken as Ctrl-C there (utils/cli.py), Lightning's KeyboardInterrupt handling
    waited for ranks that trained on, and the run never ended. Elsewhere, nothing changes."""
    spawning = isinstance(trainer.strategy, SpawnedRanks) and multiprocessing.parent_process() is None
    if not spawning:
        yield
        return
    with sigterm_default():
        yield
