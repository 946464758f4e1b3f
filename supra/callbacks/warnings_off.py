"""A callback base that turns a Lightning warning off for the rest of a fit, once Supra has said the same thing
in its own words, and back on when the fit ends."""

from __future__ import annotations

import warnings

import lightning as L


class WarningsOffForFit(L.Callback):
    """`ignore(message)` adds a filter for warnings matching `message` (a regex of their start); each is taken out
    at teardown or on an exception. A callback, not a filter set around trainer.fit: trainer=ddp_sim fits in
    spawned ranks, which start with Python's warning filters unset, and a callback's hooks run in the process
    that fits."""

    def __init__(self) -> None:
        self._filters: list[tuple] = []

    def ignore(self, message: str) -> None:
        warnings.filterwarnings("ignore", message=message)
        self._filters.append(warnings.filters[0])

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._remove()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._remove()

    def _remove(self) -> None:
        # these filters taken out after the fit, not catch_warnings' whole list: it would drop those the fit adds
        for found in self._filters:
            if found in warnings.filters:
                warnings.filters.remove(found)
        self._filters = []
