"""User-facing errors: one line that names the value and what to do (utils/cli.py turns them into an exit)."""

from __future__ import annotations


class SupraUserError(ValueError):
    """A problem with the user's input, config or machine (not a bug): reported as one line, no traceback."""


def user_error_in(err: BaseException) -> SupraUserError | None:
    # Hydra wraps errors raised by a constructor it calls; look through the chain for ours.
    while err is not None:
        if isinstance(err, SupraUserError):
            return err
        err = err.__cause__ or err.__context__
    return None
