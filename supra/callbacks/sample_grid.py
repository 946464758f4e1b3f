"""The skeleton every sample-picture callback shares: after each validation (not the sanity check) and
after a test, on global rank 0 only, the model in eval mode draws its pictures of the split's first items;
each is written as `<output_dir>/<dirname>/<split>_step_XXXXXX<suffix>.png` (and `.gif` for clips), copied
to `<output_dir>/<name>.png` (the latest), and logged as `<split>/<name>` to every logger. The step is the
training step of the weights drawn: a validation's global step, or that of the checkpoint a test scores.
After a SIGTERM (a preemption, whose grace period is short) or Ctrl-C a validation's pictures are skipped: they would be
drawn before the checkpoint is written, and may take minutes (the a2a model's generated grids). A SIGTERM while they
are drawn stops the drawing at once (Lightning's handler only marks the trainer, which its loops read at a batch's end,
so drawing went on for a minute): a validation's checkpoint then comes next, and a test ends as a SIGTERM ends it
during its batches (the runner's `interrupted` line, exit status 130), its metrics.json kept where already written.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from PIL import Image

from supra.callbacks.image_logging import log_animation, log_image
from supra.models.eval_mode import eval_mode
from supra.pictures.files import save_gif_atomic, save_image_atomic

log = logging.getLogger(__name__)


class DrawingStopped(Exception):
    """A SIGTERM came while pictures were drawn: the rest of them are not."""


@contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """Within the block a SIGTERM raises DrawingStopped once the handler in place has run (Lightning's, in a fit or
    test: it marks trainer.received_sigterm and calls a launcher's). Outside the main thread no handler can be set,
    and a SIGTERM ignored or at its default (no Python handler) is left so."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        previous(signum, frame)
        raise DrawingStopped

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Sample:
    """One picture a callback drew: logged as `<split>/<name>`, kept as `<name>.png` (the latest)."""

    name: str
    picture: Image.Image
    frames: list[Image.Image] | None = None  # an animation of it, for clips
    suffix: str = ""  # after `<split>_step_XXXXXX` in the file name, when a callback draws several


class SampleGridCallback(L.Callback):
    """Subclasses say which datamodule method they read (`needs`) and draw their pictures (`draw`); the
    drawing must not use collectives: the other ranks do not take part."""

    needs = ""  # the datamodule method `draw` reads; without it there is a warning and no picture

    def __init__(self, num_samples: int, columns: int, dirname: str, output_dir: str | None = None,
                 gif_frame_ms: int = 250) -> None:
        self.num_samples, self.columns, self.dirname = num_samples, columns, dirname
        self.output_dir, self.gif_frame_ms = output_dir, gif_frame_ms
        self.last_path: Path | None = None  # the last picture written (its step's file)
        self.written: list[Path] = []
        self.seconds_drawing = 0.0  # wall time of every drawing, writing and logging of pictures (TimeAccounting's row)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> list[Sample]:
        """The pictures of `split` by the weights of training step `step` (for their titles)."""
        raise NotImplementedError

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> None:
        """Draw and save the pictures; DrawingStopped where a SIGTERM stops them (those saved before it are kept)."""
        started = time.perf_counter()
        try:
            with stopped_by_sigterm():
                self._draw_and_save(trainer, pl_module, split, step)
        finally:
            self.seconds_drawing += time.perf_counter() - started

    def _write_unless_stopped(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> bool:
        """`_write`; False where a SIGTERM stopped it, said in the log."""
        try:
            self._write(trainer, pl_module, split, step)
        except DrawingStopped:
            log.info("%s: %s pictures at step %d stopped: the run is stopping (SIGTERM)", type(self).__name__, split,
                     step)
            return False
        return True

    def _draw_and_save(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str, step: int) -> None:
        if not trainer.is_global_zero or self.num_samples < 1:
            return  # rank 0 alone draws; the others go on to their next collective and wait there
        if getattr(trainer.datamodule, self.needs, None) is None:
            rank_zero_warn(f"{type(self).__name__} needs a datamodule with {self.needs}(...): no picture written")
            return
        # BatchNorm and dropout in inference behaviour, as in validation itself
        with eval_mode(pl_module), torch.no_grad():
            samples = self.draw(trainer, pl_module, split, step)
        root = Path(self.output_dir or trainer.default_root_dir)
        stem = root / self.dirname / f"{split}_step_{step:06d}"
        for sample in samples:
            path = save_image_atomic(sample.picture, f"{stem}{sample.suffix}.png")
            save_image_atomic(sample.picture, root / f"{sample.name}.png")
            self.last_path = path
            self.written.append(path)
            log_image(trainer, f"{split}/{sample.name}", sample.picture)
            if sample.frames:
                gif = save_gif_atomic(sample.frames, f"{stem}{sample.suffix}.gif", self.gif_frame_ms)
                save_gif_atomic(sample.frames, root / f"{sample.name}.gif", self.gif_frame_ms)
                self.written.append(gif)
                log_animation(trainer, f"{split}/{sample.name}_video", gif)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.received_sigterm:  # the checkpoint (written after this hook) comes first
            if trainer.is_global_zero:
                log.info("%s: no val pictures at step %d: the run is stopping (SIGTERM, or Ctrl-C), and its checkpoint "
                         "comes first", type(self).__name__, trainer.global_step)
            return
        self._write_unless_stopped(trainer, pl_module, "val", trainer.global_step)  # the checkpoint next

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        split = getattr(trainer.datamodule, "split", "test")
        # a SIGTERM before (while the test scored) or during the pictures: no loop reads it after this hook, so the
        # test ends here as Lightning ends one a SIGTERM stopped at a batch's end (the runners say it, status 130)
        if trainer.received_sigterm or not self._write_unless_stopped(trainer, pl_module, split,
                                                                      tested_step(trainer, pl_module)):
            raise SIGTERMException


def tested_step(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
    """The training step of the weights a test scores. trainer.test(ckpt_path=...) loads a checkpoint's
    weights but leaves the trainer at its own step (the fit's last, for the best checkpoint of a fit), and
    evaluate.py's trainer has trained none: there it is the step of the checkpoint loaded (SupraTask's
    weights_step); a test of the weights a fit ended with is at the fit's step."""
    loaded = getattr(pl_module, "weights_step", None)
    if loaded is not None and (trainer.ckpt_path or not trainer.global_step):
        return loaded
    return trainer.global_step
