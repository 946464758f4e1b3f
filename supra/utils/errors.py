"""User-facing errors: one line that names the value and what to do (utils/cli.py turns them into an exit),
also written into the run's log file (note_in_run_log)."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)


class SupraUserError(ValueError):
    """A problem with the user's input, config or machine (not a bug): reported as one line, no traceback."""


def first_line(err: BaseException, limit: int = 200, *, sentence: bool = False, with_type: bool = False) -> str:
    """A library's error, short enough for a one-line message: the first line of what it says (up to its first
    ". " with `sentence`), cut at `limit` characters, after its type's name with `with_type`; the type's name
    alone where it says nothing."""
    lines = str(err).strip().splitlines()
    if not lines:
        return type(err).__name__
    text = (lines[0].split(". ")[0] if sentence else lines[0])[:limit]
    return f"{type(err).__name__}: {text}" if with_type else text


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


def note_in_run_log(message: str, with_traceback: bool = False) -> None:
    """`message` (and the traceback of the exception being handled, `with_traceback`) written to the log files of
    the logging Hydra set up (a run's <run dir>/train.log), not to the console, where it was printed already:
    why a run ended, read in its folder afterwards (a background or cluster job's console is often gone)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None,
                            sys.exc_info() if with_traceback else None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
