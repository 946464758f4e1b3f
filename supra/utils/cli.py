"""Checks an entry point makes before Hydra starts, for failures Hydra would report with a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from supra.utils.files import check_writable_dir


def exit_if_run_dir_unwritable(argv: Sequence[str]) -> None:
    """Hydra creates `hydra.run.dir` before the job runs and fails there with a traceback; say it in one line."""
    for arg in argv:
        if arg.startswith("hydra.run.dir="):
            run_dir = arg.split("=", 1)[1]
            try:
                check_writable_dir(run_dir)
            except OSError as err:
                print(f"error: cannot write to the output directory {run_dir} ({err.strerror or err}): "
                      "choose another with hydra.run.dir=DIR", file=sys.stderr)
                raise SystemExit(2) from None


def parse_key_values(argv: Sequence[str], usage: str, required: Sequence[str], defaults: dict[str, str]) -> dict[str, str]:
    """`key=value` arguments (Hydra's style, for the small `python -m supra.X` commands): --help prints
    `usage`; an unknown or missing key is a one-line error."""
    if any(a in ("-h", "--help") for a in argv):
        print(usage)
        raise SystemExit(0)
    values = dict(defaults)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in (*required, *defaults):
            print(f"error: unexpected argument {arg!r}: expected key=value with key in "
                  f"{', '.join((*required, *defaults))}\n{usage}", file=sys.stderr)
            raise SystemExit(2)
        values[key] = value
    missing = [k for k in required if k not in values]
    if missing:
        print(f"error: missing {', '.join(f'{k}=...' for k in missing)}\n{usage}", file=sys.stderr)
        raise SystemExit(2)
    return values
