"""Runs started by a launcher (SLURM's srun, torchrun): a world of several processes for a trainer of one is
refused in one line, where each process trained alone."""

import signal

import pytest
from omegaconf import OmegaConf

from supra.utils.errors import SupraUserError
from supra.utils.hardware import check_accelerator

ONE_PROCESS = OmegaConf.create({"accelerator": "cpu", "devices": 1, "num_nodes": 1})


@pytest.fixture
def no_launcher(monkeypatch):
    """None of the variables a launcher sets, whatever the machine running the tests has."""
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME", "WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("launched", "message"), [
    ({"SLURM_NTASKS": "2", "SLURM_JOB_NAME": "train"},
     "SLURM_NTASKS=2 but trainer.devices x trainer.num_nodes is 1: each of the 2 processes would train alone, a copy "
     "of the run; set trainer.devices=2 (with trainer.strategy=ddp; or devices per node x trainer.num_nodes), or start "
     "one task (srun --ntasks=1)"),
    ({"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "none"},  # torchrun --nproc_per_node=2
     "WORLD_SIZE=2 but trainer.devices x trainer.num_nodes is 1: each of the 2 processes would train alone, a copy "
     "of the run; set trainer.devices=2 (with trainer.strategy=ddp; or devices per node x trainer.num_nodes), or start "
     "one process"),
])
def test_a_launched_world_of_two_for_a_trainer_of_one_process_is_one_line(no_launcher, launched, message):
    for name, value in launched.items():
        no_launcher.setenv(name, value)
    with pytest.raises(SupraUserError) as refused:
        check_accelerator(ONE_PROCESS)
    assert str(refused.value) == message


@pytest.mark.parametrize("launched", [
    {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train"},        # one task: srun --ntasks=1, or a batch script's python
    {"SLURM_NTASKS": "4", "SLURM_JOB_NAME": "interactive"},  # salloc's shell: one process started by hand
    {"SLURM_NTASKS": "4", "SLURM_JOB_NAME": "bash"},         # srun --pty bash
    {"WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "none"},
    {"WORLD_SIZE": "2"},  # left by Lightning's own DDP launcher in a sweep's process: not torchrun's
])
def test_a_launched_world_of_one_process_or_an_interactive_allocation_trains_as_configured(no_launcher, launched):
    for name, value in launched.items():
        no_launcher.setenv(name, value)
    check_accelerator(ONE_PROCESS)


def test_a_launched_world_the_trainer_counts_several_processes_in_is_left_to_lightning(no_launcher):
    """trainer=ddp_sim's and Lightning's own ranks (WORLD_SIZE set for them) and a DDP trainer under srun: Lightning's
    launchers compare the counts."""
    no_launcher.setenv("WORLD_SIZE", "2")
    check_accelerator(OmegaConf.create({"accelerator": "cpu", "devices": 2, "num_nodes": 1}))
    no_launcher.setenv("SLURM_NTASKS", "8")
    no_launcher.setenv("SLURM_JOB_NAME", "train")
    check_accelerator(OmegaConf.create({"accelerator": "cpu", "devices": 4, "num_nodes": 2}))


SLURM_JOB_OF_ONE_TASK = {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
                         "SLURM_JOB_ID": "777", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "train",
                         "SLURM_NODELIST": "localhost"}


def test_a_slurm_job_trains_without_lightnings_auto_requeue(no_launcher):
    """No SIGUSR1 handler writing hpc_ckpt_N.ckpt and requeueing the job: no run resumes from that file. A preempted
    or timed-out job stops at SIGTERM with last.ckpt written, and is resubmitted with ckpt_path= (README)."""
    import lightning as L
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from supra.runner.training import default_plugins

    for name, value in SLURM_JOB_OF_ONE_TASK.items():
        no_launcher.setenv(name, value)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, plugins=default_plugins())
    trainer._signal_connector.register_signal_handlers()  # as a fit does once set up
    try:
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    finally:
        trainer._signal_connector.teardown()
    no_launcher.delenv("SLURM_NTASKS")  # outside SLURM: Lightning chooses the environment itself
    assert not any(isinstance(plugin, SLURMEnvironment) for plugin in default_plugins())


def test_trainer_multi_node_waits_the_configured_time_for_its_ranks(train_config):
    """trainer.strategy.timeout_s becomes the process group's timeout (Lightning's 30 minutes by default)."""
    from hydra.utils import instantiate

    cfg = train_config("trainer=multi_node", "trainer.strategy.timeout_s=90")
    strategy = instantiate(cfg.trainer.strategy)
    assert strategy._timeout.total_seconds() == 90


def test_a_rank_whose_peers_never_start_ends_in_one_line_once_its_wait_is_over(no_launcher):
    """As torchrun or srun start it, rank 0 of a world of 2 whose rank 1 never comes: one line naming where it
    waited, after trainer.strategy.timeout_s, not torch's traceback after 30 minutes."""
    import socket

    import lightning as L

    from supra.runner.ddp_rendezvous import RendezvousTimedDDP

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": "0",
                        "LOCAL_RANK": "0", "NODE_RANK": "0"}.items():
        no_launcher.setenv(name, value)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=RendezvousTimedDDP(timeout_s=1), logger=False)
    with pytest.raises(SupraUserError) as refused:
        trainer.strategy.setup_environment()
    assert str(refused.value) == (
        f"DDP rank 0 waited 1 s at MASTER_ADDR=127.0.0.1 MASTER_PORT={port} for the other ranks of a world of 2, "
        "which never joined: start every rank (srun's tasks, or torchrun on each node) with the same MASTER_ADDR and "
        "MASTER_PORT, or wait longer with trainer.strategy.timeout_s=N")


def test_a_sigterm_while_the_ranks_meet_ends_the_process_then_the_runs_handler_is_back(monkeypatch):
    """The wait is in torch's C++ code, where a Python handler would run only once it ended: SIGTERM keeps its
    default action (end the process) meanwhile, not taken as a Ctrl-C that never comes."""
    from lightning.pytorch.strategies import DDPStrategy

    from supra.runner.ddp_rendezvous import RendezvousTimedDDP

    during = []
    monkeypatch.setattr(DDPStrategy, "setup_environment", lambda self: during.append(signal.getsignal(signal.SIGTERM)))

    def runs_handler(signum, frame):  # train.py's, taking SIGTERM as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, runs_handler)
    try:
        RendezvousTimedDDP(timeout_s=1).setup_environment()
        assert during == [signal.SIG_DFL] and signal.getsignal(signal.SIGTERM) is runs_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
