"""User-facing errors: one line that names the value and what to do (utils/cli.py turns them into an exit)."""

from __future__ import annotations


class SupraUserError(ValueError):
    """A problem with the user's input, config or machine (not a bug): reported as one line, no traceback."""


def user_error_in(err: BaseException) -> SupraUserError | None:
    # Hydra wraps errors raised by a constructor it calls; look through the chain for ours.
    while err is not None:
        if isinstance(err, SupraUserError):
            return err
        if (raised := raised_in_spawned_process(err)) is not None:
            return raised
        err = err.__cause__ or err.__context__
    return None


SPAWNED_ERROR_LINE = f"{SupraUserError.__module__}.{SupraUserError.__qualname__}: "


def raised_in_spawned_process(err: BaseException) -> SupraUserError | None:
    """Ours, raised in a process torch's spawn started (a DDP rank of trainer=ddp_sim): spawn raises only its
    traceback as text (ProcessRaisedException), whose last line of ours is the message."""
    if type(err).__name__ != "ProcessRaisedException":  # by name: no torch import for this module
        return None
    lines = [line for line in str(err).splitlines() if line.startswith(SPAWNED_ERROR_LINE)]
    return SupraUserError(lines[-1].removeprefix(SPAWNED_ERROR_LINE)) if lines else None
