"""User-facing errors: one line that names the value and what to do, and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import InstantiationException


class SupraUserError(ValueError):
    """A problem with the user's input, config or machine (not a bug): reported as one line, no traceback."""


def _user_error_in(err: BaseException) -> SupraUserError | None:
    # Hydra wraps errors raised by a constructor it calls; look through the chain for ours.
    while err is not None:
        if isinstance(err, SupraUserError):
            return err
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def exit_on_user_error(exit_code: int = 2) -> Iterator[None]:
    """Print `error: <message>` and exit with `exit_code` on a SupraUserError, even one Hydra wrapped."""
    try:
        yield
    except (SupraUserError, InstantiationException) as err:
        user_error = _user_error_in(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        raise SystemExit(exit_code) from None
