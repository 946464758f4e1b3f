"""Ctrl-C while a command starts (its imports, Hydra's compose) is one line and status 130, as during its run;
importing supra from Python sets up nothing."""

import importlib.metadata
import io
import signal
import subprocess
import sys

import pytest

from supra.utils.cli import exit_on_ctrl_c
from supra.utils.start_up import (
    REPO_ROOT,
    end_start_up,
    exit_if_not_in_checkout,
    exit_if_version_asked,
    is_command_line,
    quiet_ctrl_c_while_starting,
    say_starting,
)


def test_only_a_process_started_as_a_supra_command_counts_as_one():
    assert is_command_line(["python", "-m", "supra.export", "ckpt=x"], "-m")  # as the package is imported
    assert is_command_line(["python", "-X", "dev", "-m", "supra.caption"], str(REPO_ROOT / "supra" / "caption.py"))
    assert is_command_line(["python", "train.py", "trainer.max_steps=4"], str(REPO_ROOT / "train.py"))
    assert is_command_line(["python", "evaluate.py"], str(REPO_ROOT / "evaluate.py"))
    assert not is_command_line(["python", "-m", "pytest", "tests"], "-m")  # a test imports supra
    assert not is_command_line(["python", "-m", "supra.runner.ddp_rank"], "-m")  # a rank, not a command
    assert not is_command_line(["python", "my_script.py"], "my_script.py")  # a library user
    assert not is_command_line(["python", "-c", "import supra"], "-c")
    spawned = ["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()", "--multiprocessing-fork"]
    assert not is_command_line(spawned, str(REPO_ROOT / "train.py"))  # a ddp_sim rank: train.py's sys.argv


def test_a_command_of_an_install_without_conf_says_in_one_line_that_supra_runs_from_an_editable_checkout(
        monkeypatch, tmp_path, capsys):
    site_packages = tmp_path / "site-packages"  # a wheel's install: supra/ there, no conf/ beside it
    monkeypatch.setattr("supra.utils.start_up.REPO_ROOT", site_packages)
    with pytest.raises(SystemExit) as exit_info:
        exit_if_not_in_checkout(["python", "-m", "supra.caption", "--help"], "-m")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: Supra runs from a source checkout, and this install has no conf/ beside its package "
        f"({site_packages / 'conf'} is missing): install the checkout editable, pip install -e <checkout>\n")
    exit_if_not_in_checkout(["python", "-c", "import supra"], "-c")  # Python's own use: a release folder is enough


def test_a_command_of_the_checkout_starts_as_usual(capsys):
    exit_if_not_in_checkout(["python", "-m", "supra.caption", "--help"], "-m")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", [["python", "-m", "supra.caption"], ["python", "train.py"],
                                     ["python", "evaluate.py"]])
def test_version_on_a_command_is_supras_name_and_version_not_hydras(command, capsys):
    import supra

    script = "-m" if "-m" in command else str(REPO_ROOT / command[1])
    with pytest.raises(SystemExit) as exit_info:
        exit_if_version_asked([*command, "--version"], script, ["--version"], supra.__version__)
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"Supra {supra.__version__}\n"
    assert supra.__version__ == importlib.metadata.version("supra")  # pyproject.toml's, as installed
    exit_if_version_asked(["python", "my_script.py", "--version"], "my_script.py", ["--version"], "1")  # not ours


def test_importing_supra_from_python_installs_no_signal_handler():
    code = "import signal, supra; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    # SIGINT at its default as the child starts, as at a terminal: a background job (CI's) starts with it ignored
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert done.stdout.strip() == "True", done.stderr


def test_ctrl_c_while_a_command_starts_is_one_line_and_status_130_and_the_run_takes_it_over_after(monkeypatch, capsys):
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "supra.export", "ckpt=x", "out=y"])
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a command's process starts
    try:
        quiet_ctrl_c_while_starting()
        with pytest.raises(SystemExit) as exit_info:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during the imports
        assert exit_info.value.code == 130
        assert capsys.readouterr().err == "interrupted: stopped while starting, before any work\n"
        with pytest.raises(SystemExit), exit_on_ctrl_c(lambda: "nothing written"):  # the run begins
            signal.raise_signal(signal.SIGINT)
        assert capsys.readouterr().err == "interrupted: nothing written\n"  # the run's own line, with what it left
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        end_start_up()
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_the_entry_scripts_import_supra_before_hydra_and_lightning(script):
    """supra's import sets up the one-line Ctrl-C: an entry script that imported hydra first left its import (and
    omegaconf's) to a KeyboardInterrupt traceback."""
    import ast

    imported = [alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "").split(".")[0]
                for node in ast.parse((REPO_ROOT / script).read_text()).body
                if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names]
    first_party_or_third = [name for name in imported if name not in sys.stdlib_module_names]
    assert first_party_or_third[0] == "supra", first_party_or_third


def test_a_process_spawned_from_a_command_keeps_no_start_up_handler(monkeypatch):
    """A trainer=ddp_sim rank imports train.py again (so supra) with train.py's sys.argv, but runs no command: a
    handler set there was never taken down, and the SIGINT its parent sends as a run stops mid-fit was said as
    "interrupted: stopped while starting, before any work" (from an atexit callback, with its traceback)."""
    import multiprocessing

    from tests.start_up_child import sigint_handler_is_pythons_default

    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "train.py")])  # the child's sys.argv is set to the parent's
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # the child's default, as at a terminal
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.apply(sigint_handler_is_pythons_default) is True
    finally:
        signal.signal(signal.SIGINT, before)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stderr", "argv", "rank", "said"), [
    (Terminal(), ["trainer.max_steps=3"], None, "train.py: starting ...\n"),  # its imports: seconds of silence
    (io.StringIO(), ["trainer.max_steps=3"], None, ""),  # a log file, a pipe, a test: not a word
    (Terminal(), ["--help"], None, ""),  # answered at once
    (Terminal(), ["trainer.max_steps=3"], "1", ""),  # a DDP rank the run started
])
def test_train_py_says_it_is_starting_on_a_terminal_alone(monkeypatch, stderr, argv, rank, said):
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    if rank:
        monkeypatch.setenv("LOCAL_RANK", rank)
    script = str(REPO_ROOT / "train.py")
    say_starting(["python", "train.py", *argv], script, argv)
    say_starting(["python", "-c", "import supra"], "-c", [])  # supra imported from Python: nothing
    assert stderr.getvalue() == said
