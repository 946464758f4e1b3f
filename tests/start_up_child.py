"""For a process multiprocessing spawns as a trainer=ddp_sim rank is spawned: light to import, because the child
imports the module of the function it runs (and supra with it, as a rank does)."""

import signal

import supra  # noqa: F401  as a rank imports it, with the command's sys.argv


def sigint_handler_is_pythons_default() -> bool:
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler
