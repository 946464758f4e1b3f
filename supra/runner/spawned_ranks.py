"""DDP ranks started by spawn (trainer=ddp_sim) end with the process that started them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from types import FrameType

import lightning as L


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
    ignores SIGINT (Ctrl-C at the terminal is not meant for a background job), unless its parent has died."""
    parent = multiprocessing.parent_process()
    if (parent is None or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
        return  # not spawned, or SIGINT already ends it (Python's KeyboardInterrupt)

    def end_if_orphaned(signum: int, frame: FrameType | None) -> None:
        if os.getppid() != parent.pid:  # adopted: the parent is gone (the kernel reparents before it signals)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, end_if_orphaned)
    if os.getppid() != parent.pid:  # it died before the handler was in place: its signal was ignored
        raise KeyboardInterrupt
