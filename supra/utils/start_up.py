"""Ctrl-C while a command starts (its imports, Hydra's compose: seconds, more on a loaded machine) as one line,
`interrupted: ...` with exit status 130, as it is once the command runs (cli.exit_on_ctrl_c), not a traceback
through whatever module was being imported. Set up as `supra` is imported, but only in a process started as a
Supra command (`python -m supra.X`, train.py, evaluate.py): importing supra from Python (a library user, a
test) installs no handler. Also which `python -m supra.X --help` asks for help, answered before supra/X.py's
imports, and a first line on a terminal as train.py or evaluate.py starts."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

SIGINT_EXIT = 130  # what a shell reports for a process Ctrl-C ended (128 + SIGINT), as Python's own exit on it
ENTRY_SCRIPTS = ("train.py", "evaluate.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOUT_INSTALL = "pip install -e <checkout>"  # a wheel or `pip install .` leaves conf/ behind
SPAWNED = "--multiprocessing-fork"  # the last argument of the command line multiprocessing starts a child with


def is_command_line(orig_argv: Sequence[str], script: str) -> bool:
    """Whether the process was started as a Supra command: `python [options] -m supra.X ...` (`orig_argv`, the
    interpreter's own command line), or this repository's train.py or evaluate.py as the `script` run. Not a
    process multiprocessing spawned (a trainer=ddp_sim rank): it imports the command's script again, with the
    command's sys.argv, but runs no command, so nothing would end its start-up there, and the SIGINT its parent
    sends it as a run stops mid-fit was said as "stopped while starting"."""
    if SPAWNED in orig_argv:
        return False
    if "-m" in orig_argv[1:]:  # the commands are supra's first-level modules, not supra.runner.ddp_rank's ranks
        after = orig_argv.index("-m", 1) + 1
        return after < len(orig_argv) and re.fullmatch(r"supra\.\w+", orig_argv[after]) is not None
    return bool(script) and Path(script).resolve() in {REPO_ROOT / name for name in ENTRY_SCRIPTS}


def command_asked_for_help(orig_argv: Sequence[str], argv: Sequence[str]) -> str | None:
    """X, where the process is `python -m supra.X ... --help` (or -h: `argv`, its arguments) for a command X (a
    supra/X.py with its conf/X.yaml): its help can be answered before the command's module, and torch with it, is
    imported (supra/__init__.py)."""
    if SPAWNED in orig_argv or "-m" not in orig_argv[1:] or not any(arg in ("-h", "--help") for arg in argv):
        return None
    after = orig_argv.index("-m", 1) + 1
    command = re.fullmatch(r"supra\.(\w+)", orig_argv[after]) if after < len(orig_argv) else None
    if command is None:
        return None
    name = command[1]
    is_command = (REPO_ROOT / "supra" / f"{name}.py").is_file() and (REPO_ROOT / "conf" / f"{name}.yaml").is_file()
    return name if is_command else None


def exit_if_not_in_checkout(orig_argv: Sequence[str], script: str) -> None:
    """One line and exit status 2 where a Supra command runs from an install whose package has no conf/ beside it
    (a wheel, `pip install .`): Supra runs from a source checkout, installed editable, and every command reads
    the checkout's conf/; without it each would end in a traceback, --help too. Importing supra from Python is
    not checked: a captioner loads from a release folder without conf/."""
    conf = REPO_ROOT / "conf"
    if is_command_line(orig_argv, script) and not conf.is_dir():
        print(f"error: Supra runs from a source checkout, and this install has no conf/ beside its package ({conf} "
              f"is missing): install the checkout editable, {CHECKOUT_INSTALL}", file=sys.stderr, flush=True)
        raise SystemExit(2)


def exit_if_version_asked(orig_argv: Sequence[str], script: str, argv: Sequence[str], version: str) -> None:
    """`--version` on a Supra command (train.py, evaluate.py, `python -m supra.X`: `argv`, its arguments) prints
    `Supra <version>` and exits 0, where Hydra would name itself ("Hydra 1.3.8"); as supra is imported, before
    torch is, as --help."""
    if "--version" in argv and is_command_line(orig_argv, script):
        print(f"Supra {version}", flush=True)
        raise SystemExit(0)


def say_starting(orig_argv: Sequence[str], script: str, argv: Sequence[str]) -> None:
    """`train.py: starting ...` on stderr where it is a terminal, as train.py or evaluate.py (`script`) starts: its
    imports (torch, Lightning) take seconds, 10 and more on a busy machine, before its first line. Not in a log or
    a test (stderr no terminal), nor for --help (answered at once), nor in a DDP rank the run starts (LOCAL_RANK)."""
    if not sys.stderr.isatty() or any(arg in ("-h", "--help") for arg in argv) or os.environ.get("LOCAL_RANK"):
        return
    if script and is_command_line(orig_argv, script) and Path(script).name in ENTRY_SCRIPTS:
        print(f"{Path(script).name}: starting ...", file=sys.stderr, flush=True)


def quiet_ctrl_c_while_starting() -> None:
    """In a process started as a Supra command, Ctrl-C until the command's run begins (end_start_up) ends it in
    one line. Left alone where SIGINT is not Python's default (ignored in a background job, a launcher's own)."""
    if not is_command_line(getattr(sys, "orig_argv", []), sys.argv[0] if sys.argv else ""):
        return
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _ctrl_c_while_starting)


def _ctrl_c_while_starting(signum: int, frame: FrameType | None) -> None:
    """Nothing is made before the run begins: nothing to remove, nothing to say but that it stopped."""
    print("interrupted: stopped while starting, before any work", file=sys.stderr, flush=True)
    raise SystemExit(SIGINT_EXIT)  # quiet at the top level, where a KeyboardInterrupt prints its traceback


def end_start_up() -> None:
    """The run begins: Ctrl-C is a KeyboardInterrupt again, which the run turns into its own line (and Lightning
    into its graceful stop)."""
    if signal.getsignal(signal.SIGINT) is _ctrl_c_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
