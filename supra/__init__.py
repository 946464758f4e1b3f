"""Supra: train and evaluate small captioning and any-to-any models (README.md)."""

import sys
from importlib.metadata import PackageNotFoundError, version

from supra.utils.start_up import (
    command_asked_for_help,
    exit_if_not_in_checkout,
    exit_if_version_asked,
    quiet_ctrl_c_while_starting,
    say_starting,
)

try:
    __version__ = version("supra")  # pyproject.toml's, as installed
except PackageNotFoundError:  # a checkout run without installing it: no version to tell
    __version__ = "0+unknown"

quiet_ctrl_c_while_starting()  # only in a process started as a Supra command: Ctrl-C while it starts is one line
_orig_argv, _script, _args = getattr(sys, "orig_argv", []), sys.argv[0] if sys.argv else "", sys.argv[1:]
exit_if_version_asked(_orig_argv, _script, _args, __version__)
exit_if_not_in_checkout(_orig_argv, _script)  # a wheel: no conf/
say_starting(_orig_argv, _script, _args)  # on a terminal alone
if (_command := command_asked_for_help(_orig_argv, _args)) is not None:
    # `python -m supra.X --help`: answered from conf/ before supra/X.py imports torch (seconds)
    from supra.utils.cli import exit_if_help_asked

    exit_if_help_asked(_command, _args)
