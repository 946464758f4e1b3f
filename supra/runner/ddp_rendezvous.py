"""Lightning's `ddp` whose ranks wait a bounded time for each other to start (trainer=multi_node): a rank whose
peers never come (one task of a SLURM job failed to start, torchrun run on one node of two) ends in one line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch.distributed
from lightning.pytorch.strategies import DDPStrategy

from supra.utils.cli import sigterm_default
from supra.utils.errors import SupraUserError


class RendezvousTimedDDP(DDPStrategy):
    """DDPStrategy with its process-group `timeout` given in seconds (`timeout_s`, a config's number; Lightning's
    default 1800): how long the ranks wait for each other as they start, and in each collective after. A rank
    whose peers never come ended in torch's traceback after Lightning's 30 minutes; here in one line naming where
    it waited. A SIGTERM meanwhile ends the process at once (exit 143): the wait is in torch's C++ code, where no
    Python handler runs (Lightning's, Supra's Ctrl-C one) until it returns, and a job's SIGTERM went unheeded."""

    def __init__(self, timeout_s: float = 1800, **kwargs: Any) -> None:
        super().__init__(timeout=timedelta(seconds=timeout_s), **kwargs)
        self.timeout_s = timeout_s

    def setup_environment(self) -> None:
        with sigterm_default():
            try:
                super().setup_environment()
            except torch.distributed.DistError as err:  # DistStoreError on rank 0, DistNetworkError on the others
                environment = self.cluster_environment
                where = (f"MASTER_ADDR={environment.main_address} MASTER_PORT={environment.main_port}"
                         if environment is not None else "its main address")
                raise SupraUserError(
                    f"DDP rank {self.global_rank} waited {self.timeout_s:g} s at {where} for the other ranks of a "
                    f"world of {self.world_size}, which never joined: start every rank (srun's tasks, or torchrun on "
                    "each node) with the same MASTER_ADDR and MASTER_PORT, or wait longer with "
                    "trainer.strategy.timeout_s=N") from err
