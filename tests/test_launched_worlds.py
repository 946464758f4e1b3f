"""Runs started by a launcher (SLURM's srun, torchrun): a world of several processes for a trainer of one is
refused in one line, where each process trained alone."""

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
