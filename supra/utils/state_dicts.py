"""Does a state dict fit a module? One check for every weights file Supra loads (checkpoints, release
folders, a pretrained tower), as one line instead of torch's page of missing keys."""

from __future__ import annotations

import torch

from supra.utils.errors import SupraUserError


def check_state_fits(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                     target: str = "this model", hint: str = "") -> None:
    """A one-line SupraUserError naming `source` (and `target`, then `hint`) unless `state` has exactly
    `module`'s names and shapes."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        raise SupraUserError(
            f"{source} does not fit {target}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}, wrong shape {[(k, tuple(state[k].shape)) for k in wrong_shape[:5]]}{hint}"
        )
