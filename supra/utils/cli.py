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
