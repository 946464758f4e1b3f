"""Fixtures that compose the real Hydra configs, as train.py and evaluate.py do, into a temp run dir."""

from __future__ import annotations

import copy
import fcntl
import importlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from supra.runner.training import train
from supra.utils.cli import check_required, exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small shapes data and a short schedule: the whole pipeline in seconds on 2 CPU cores.
TINY_RUN = [
    "data.num_train=96", "data.num_val=24", "data.num_test=15", "data.eval_batch_size=8", "data.batch_size=16",
    "trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.log_every_n_steps=1",
    "callbacks.progress_bar=null", "callbacks.model_summary=null",
]

os.environ.setdefault("WANDB_MODE", "offline")  # no test ever talks to wandb.ai

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one test process per core: one torch thread each (and in what they start), since two
    # each would make four on two cores, and torch's threads then wait on each other
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# DDP's rank 0 asks the system for a free port, then listens on it: a DDP test in another test process
# (pytest-xdist) may take that port in between (EADDRINUSE), so tests marked ddp take turns; so do the tests that
# start a demo on a port they chose beforehand, which has the same gap.
DDP_TURN_LOCK = Path(tempfile.gettempdir()) / f"supra-tests-ddp-{os.getuid()}.lock"


@contextmanager
def ddp_turn() -> Iterator[None]:
    """This test process's turn among those that start DDP ranks (a module fixture that spawns ranks takes it too:
    a fixture is set up outside its test's turn)."""
    with open(DDP_TURN_LOCK, "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)  # released as the file closes
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if item.get_closest_marker("ddp") is None:
        return (yield)
    with ddp_turn():
        return (yield)


def compose_config(config_name: str, output_dir: Path, overrides: list[str]) -> DictConfig:
    """Compose conf/<config_name>.yaml with overrides, with Hydra's runtime set as in a real run."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, return_hydra_config=True, overrides=overrides)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.hydra.job.name = {"eval": "evaluate"}.get(config_name, config_name)  # its script's name: train.log
    HydraConfig().set_config(cfg)
    cfg = copy.deepcopy(cfg)  # the job's config without hydra, as Hydra's run_job makes it: HydraConfig keeps
    with open_dict(cfg):      # resolving its ${hydra...} in the config it was set with
        if "paths" in cfg:
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.root_dir = str(output_dir)
        del cfg.hydra
    return cfg


@pytest.fixture
def root_logging():
    """The root logger's handlers and level put back after the test (a run, or a command's main, sets Hydra's logging up
    in process: its console handler holds the test's captured stream, closed once the test ends)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


def run_command(name: str, *overrides: str, run_dir: Path | None = None) -> Any:
    """`python -m supra.<name> key=value ...` in-process: its conf/<name>.yaml composed with the overrides as
    Hydra composes it, then the command's `run`; user errors end it as the command does (`error: ...` on
    stderr, SystemExit(2))."""
    module = importlib.import_module(f"supra.{name}")
    cfg = compose_config(name, run_dir or Path.cwd(), list(overrides))
    with exit_on_user_error():
        check_required(cfg, name)
        return module.run(cfg)


# Each run as `python -m supra.<name> args...` (or `python <script>.py args...`) does it: runpy, as
# __main__, one after another in one interpreter; a process each would pay Lightning's import (~5 s on 2
# cores) once per run.
RUN_COMMANDS_IN_ONE_INTERPRETER = """
import contextlib, io, json, runpy, sys
results = []
for name, *args in json.loads(sys.argv[1]):
    script = name.endswith(".py")
    sys.argv, out, err, code = [name if script else f"supra.{name}", *args], io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            if script:
                runpy.run_path(name, run_name="__main__")
            else:
                runpy.run_module(f"supra.{name}", run_name="__main__", alter_sys=True)
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (end.code is not None and print(end.code, file=sys.stderr) or 1)
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def command_lines(*runs: list[str], cwd: Path = ROOT, before: str = "",
                  timeout_s: int = 300) -> list[subprocess.CompletedProcess]:
    """Each run, `[name, *args]`, as `python -m supra.<name> args...` gives it (exit code, stdout, stderr),
    or as `python <name> args...` where name is a script's path (train.py); all run in one interpreter, in
    order, after the Python code `before` (a test's setting of that interpreter), within timeout_s in all."""
    result = subprocess.run([sys.executable, "-c", before + RUN_COMMANDS_IN_ONE_INTERPRETER, json.dumps(runs)],
                            cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, result.stderr[-2000:]
    return [subprocess.CompletedProcess([sys.executable, *(run[:1] if run[0].endswith(".py") else ["-m", f"supra.{run[0]}"]),
                                         *run[1:]], code, out, err)
            for run, (code, out, err) in zip(runs, json.loads(result.stdout.splitlines()[-1]), strict=True)]


KILLED_IN_ATOMIC_DIR = """
import os, signal, sys
from supra.utils.files import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / sys.argv[2]).write_text("half a file")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_in_atomic_dir(path: Path, name: str) -> Path:
    """What a process killed (SIGKILL: no error to clean up on) while it filled atomic_dir(path) with the file
    `name` leaves beside `path`: its temp folder."""
    before = set(path.parent.iterdir()) if path.parent.is_dir() else set()
    subprocess.run([sys.executable, "-c", KILLED_IN_ATOMIC_DIR, str(path), name], cwd=ROOT, check=False,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    (left,) = set(path.parent.iterdir()) - before
    return left


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """A full disk as this process's writers meet it, without one: no file may grow past `size` bytes
    (`ulimit -f`), so a write past it fails with EFBIG (SIGXFSZ ignored, as Python starts) until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.fixture
def train_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """train_config(*overrides, run="name") -> a tiny-run train config writing into tmp_path/name."""

    def make(*overrides: str, run: str = "run") -> DictConfig:
        return compose_config("train", tmp_path / run, TINY_RUN + list(overrides))

    return make


def first_train_batches(datamodule: Any, overfit_batches: int, monkeypatch: Any) -> tuple[Any, Any]:
    """The first training batch `datamodule` gives at epoch 0 and at epoch 1 under a bare Trainer with
    `overfit_batches` (debug=overfit's setting), as Lightning's fit loop would ask for them."""
    import lightning as L

    trainer = L.Trainer(overfit_batches=overfit_batches, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    monkeypatch.setattr(datamodule, "trainer", trainer)
    firsts = []
    for epoch in (0, 1):
        trainer.fit_loop.epoch_progress.current.completed = epoch  # the trainer's current_epoch
        firsts.append(next(iter(datamodule.train_dataloader())))
    return firsts[0], firsts[1]


def write_vqvae_checkpoint(path: Path, num_codes: int = 256, seed: int = 0) -> Path:
    """A random VQ-VAE saved in the exact format train.py writes for experiment=vqvae_shapes."""
    torch.manual_seed(seed)
    net_cfg = {"_target_": "supra.models.vqvae.VQVAE", "num_codes": num_codes, "code_dim": 64, "hidden": [32, 64]}
    from supra.models.vqvae import VQVAE

    net = VQVAE(**{k: v for k, v in net_cfg.items() if k != "_target_"})
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "supra": {"kind": "supra.vqvae", "run_config": {"model": {"net": net_cfg}}}}, path)
    return path


@pytest.fixture(scope="module")
def vqvae_ckpt(tmp_path_factory) -> Path:
    """A random stage-1 VQ-VAE checkpoint (write_vqvae_checkpoint), one per test module."""
    return write_vqvae_checkpoint(tmp_path_factory.mktemp("vq") / "vqvae.ckpt")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One tiny training run shared by the tests that need a checkpoint."""
    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = compose_config("train", out, [
        "data.num_train=96", "data.num_val=24", "data.num_test=15", "data.eval_batch_size=8",
        "data.batch_size=16", "trainer.max_steps=30", "trainer.val_check_interval=15",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.scheduler.warmup_steps=5",
        "model.optimizer.lr=3e-3",
    ])
    train(cfg)
    return out


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline: a Hub id resolves only to what a test puts there
    (tests/test_hub.py's cache_repo), and nothing is downloaded."""
    from huggingface_hub import constants

    from supra.artifacts.hub import hub_release

    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_release.cache_clear()
    yield cache
    hub_release.cache_clear()


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny tensors: a second torch thread only adds hand-off cost, on busy shared cores
    far more (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def progress_bars(monkeypatch) -> Callable[..., list[list]]:
    """Call with modules that import rich's Progress: their bars are recorded, not drawn, each as [description,
    total, how far it advanced, shown (not disabled)], in the order they were added."""
    bars: list[list] = []

    class RecordedProgress:
        def __init__(self, *_: Any, disable: bool = False, **__: Any) -> None:
            self.shown = not disable

        def __enter__(self) -> RecordedProgress:
            return self

        def __exit__(self, *_: Any) -> None:
            return None

        def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
            bars.append([description, total, 0, self.shown])
            return len(bars) - 1

        def advance(self, task: int, advance: float = 1) -> None:
            bars[task][2] += advance

    def record(*modules: Any) -> list[list]:
        for module in modules:
            monkeypatch.setattr(module, "Progress", RecordedProgress)
        return bars

    return record


@pytest.fixture
def pipes_never_opened() -> Iterator[None]:
    """For a test that lays a named pipe where a picture would be: code that opened it would wait for a writer
    forever, a hung worker naming no test; an alarm fails the test instead, by name."""
    seconds = 120

    def opened(signum: int, frame: object) -> None:
        raise AssertionError(f"still waiting after {seconds} s: a named pipe was opened, which waits for a writer")

    previous = signal.signal(signal.SIGALRM, opened)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def autograd_left_on() -> Iterator[None]:
    """Autograd is a thread's setting: a test that leaves it off (a generator suspended inside torch.no_grad,
    a set_grad_enabled(False) not undone) fails here, by name, not the training tests that run after it."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("the test left autograd off (torch.is_grad_enabled() is False)")


@pytest.fixture(autouse=True)
def no_hydra_config_left() -> Iterator[None]:
    """compose_config sets Hydra's runtime config for the run under test; left set, a later test in the same worker
    read its overrides (as_typed: `data.batch_size=2.5` said as that run's `2`)."""
    yield
    HydraConfig.instance().cfg = None
