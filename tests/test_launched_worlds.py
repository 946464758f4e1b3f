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
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("launched", "message"), [
    ({"SLURM_NTASKS": "2", "SLURM_JOB_NAME": "train"},
     "SLURM_NTASKS=2 but trainer.devices x trainer.num_nodes is 1: each of the 2 processes would train alone, a copy "
     "of the run; set trainer.devices=2 (with trainer.strategy=ddp; or devices per node x trainer.num_nodes), or start "
     "one task (srun --ntasks=1)"),
    ({"WORLD_SIZE": "2"},  # torchrun --nproc_per_node=2
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
    {"WORLD_SIZE": "1"},
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
