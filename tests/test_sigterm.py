"""SIGTERM (kill, `timeout`, a service manager's stop, a cluster's preemption) ends every entry point as Ctrl-C
does: one `interrupted: ...` line naming what is left, exit status 130, what it had half made removed."""

import signal

import pytest

from supra.utils.cli import SIGINT_EXIT, sigterm_as_ctrl_c
from tests.conftest import ROOT, command_lines

# In the interpreter the commands run in: SIGTERM as a process started from a shell has it, and one sent to it
# as each command's work begins (where it checks its required options), as `kill` would send it then.
SIGTERM_AS_WORK_BEGINS = """
import os, signal
import supra.utils.cli as cli
signal.signal(signal.SIGTERM, signal.SIG_DFL)
checked = cli.check_required
def sigterm_then_check(cfg, config_name):
    os.kill(os.getpid(), signal.SIGTERM)
    checked(cfg, config_name)
cli.check_required = sigterm_then_check
"""

LEFT_BEFORE_IT_FINISHED = "stopped before it finished"  # what a command without a word of its own says is left
COMMANDS = {  # each command with the options it requires, and the end of what it says is left
    "caption": (["ckpt=run.ckpt", "images=photos"], LEFT_BEFORE_IT_FINISHED),
    "demo": (["ckpt=run.ckpt"], LEFT_BEFORE_IT_FINISHED),
    "explain": (["ckpt=run.ckpt"], LEFT_BEFORE_IT_FINISHED),
    "export": (["ckpt=run.ckpt", "out=release"], LEFT_BEFORE_IT_FINISHED),
    "generate": (["ckpt=run.ckpt"], LEFT_BEFORE_IT_FINISHED),
    "shapes_gifs": (["out=clips", "n=2"], "run it again to write them all"),
    "study_report": (["dir=study"], LEFT_BEFORE_IT_FINISHED),
    "sweep_report": (["dir=sweep"], LEFT_BEFORE_IT_FINISHED),
    "tokenize_media": (["ckpt=vq.ckpt", "out=codes"], "nothing written to out=codes"),
    "write_shards": (["source=folder", "root=photos", "out=shards"], "out=shards left as it was"),
}


def test_a_sigterm_ends_every_command_train_py_and_evaluate_py_as_ctrl_c_does(tmp_path):
    """By default a SIGTERM ended them at once, silently, with status 143, leaving what they had half made."""
    runs = [[name, *options] for name, (options, _) in COMMANDS.items()]
    runs += [[str(ROOT / "train.py"), f"hydra.run.dir={tmp_path / 'train'}"],
             [str(ROOT / "evaluate.py"), "ckpt=run.ckpt", f"hydra.run.dir={tmp_path / 'eval'}"]]
    ended = command_lines(*runs, cwd=tmp_path, before=SIGTERM_AS_WORK_BEGINS)
    for run, result in zip(runs, ended, strict=True):
        assert result.returncode == SIGINT_EXIT, (run, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, (run, result.stderr[-2000:])
        assert result.stderr.count("interrupted: ") == 1, (run, result.stderr[-2000:])
    said = {name: result.stderr.splitlines()[-1] for name, result in zip(COMMANDS, ended[:len(COMMANDS)], strict=True)}
    for name, (_, left) in COMMANDS.items():
        assert said[name].startswith("interrupted: ") and left in said[name], said[name]
    assert ended[-2].stderr.endswith(f"interrupted: {tmp_path / 'train'} holds no checkpoint yet, nothing to resume: "
                                     "run it again\n")
    assert ended[-1].stderr.endswith(f"interrupted: no scores written into {tmp_path / 'eval'}: score it again with "
                                     "python evaluate.py ckpt=run.ckpt\n")


@pytest.mark.parametrize("handler", [signal.SIG_IGN, "a launcher's"])
def test_a_sigterm_handler_already_in_place_is_left_to_it(handler):
    """A launcher's own (submitit's in a SLURM job, which requeues it), or SIGTERM ignored: not taken over."""
    if handler == "a launcher's":
        def handler(signum, frame):  # noqa: ARG001
            pass
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with sigterm_as_ctrl_c():
            assert signal.getsignal(signal.SIGTERM) is handler
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_while_ddp_sim_ranks_run_a_sigterm_ends_their_main_process_at_once():
    """Taken as Ctrl-C there, Lightning's KeyboardInterrupt handling waited for ranks that trained on: the run never
    ended. At its default the process ends (143) and its ranks end with it (spawned_ranks.py)."""
    import lightning as L

    from supra.runner.spawned_ranks import SpawnedRanks, sigterm_ends_main_process_at_once

    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=SpawnedRanks(), logger=False)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a process started from a shell has it
    try:
        with sigterm_as_ctrl_c():
            with sigterm_ends_main_process_at_once(trainer):
                assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
            assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL  # Ctrl-C's again once the ranks are done
    finally:
        signal.signal(signal.SIGTERM, previous)
