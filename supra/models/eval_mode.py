"""A model in eval mode for a block, each of its modules put back in its own mode after: generation's guard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Within the block `model` is in eval mode (BatchNorm reads its running statistics and leaves them, dropout
    is off); after it, even on an error, every module is in the mode it was in. Each module's own flag is put
    back, not model.train(True) called: a part kept frozen in eval inside a training model stays so."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
