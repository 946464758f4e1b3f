"""The runs behind train.py and evaluate.py. Importing any of it first sets up what every run's process needs
before Hydra composes its config: the resolvers the configs use, and filters for warnings users can do nothing
about."""

import logging
import warnings

from omegaconf import OmegaConf

from supra.loggers.wandb_options import wandb_job_type
from supra.sweeps.optuna_seed import study_seed
from supra.utils.distributed import is_distributed
from supra.utils.hardware import fast_precision, slurm_gpus_per_node, slurm_tasks_per_node

# Noise in every run's output that users can do nothing about: Lightning 2.x calls a torch.utils._pytree
# API that torch 2.14 deprecates, once per fit/test, and advertises a cloud logger at every Trainer.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda record: "litlogger" not in record.getMessage())
# The project's own model summary (callbacks.model_summary, ModelSummaryTable) stands in for Lightning's, which
# says at every Trainer that it is skipping its default
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "Skipping setting a default `ModelSummary` callback" not in record.getMessage())
# Ctrl-C: train.py and evaluate.py say in their one `interrupted: ...` line what is left, where Lightning says it
# "attempting graceful shutdown" first
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "Detected KeyboardInterrupt" not in record.getMessage())
# A SIGTERM in one process: the fit's `interrupted at step N` line, or the test's, says it, where Lightning says
# "Received SIGTERM" first. Not so in one rank of several: a DDP fit says no line of its own
logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").addFilter(
    lambda record: "Received SIGTERM" not in record.getMessage() or is_distributed())
# trainer.precision: ${fast_precision:${trainer.accelerator}} -> 16-mixed on GPUs; on CPUs bf16-mixed where
# native, else 32-true
OmegaConf.register_new_resolver("fast_precision", fast_precision, replace=True)
# hydra.launcher.gpus_per_node: ${slurm_gpus:${trainer.accelerator},${trainer.devices}} -> 0 for a CPU trainer (its
# devices are processes), else the GPUs per node counted; hydra.launcher.tasks_per_node: ${slurm_tasks:...} -> that
# count for every trainer (trainer.devices=-1 or auto on GPUs refused: sbatch takes a number)
OmegaConf.register_new_resolver("slurm_gpus", slurm_gpus_per_node, replace=True)
OmegaConf.register_new_resolver("slurm_tasks", slurm_tasks_per_node, replace=True)
# hydra.sweeper.sampler.seed: ${study_seed:1234,${hydra.sweeper.storage},${hydra.sweeper.study_name}} ->
# 1234 plus the trials a stored study already holds, so that its next session draws new ones
OmegaConf.register_new_resolver("study_seed", study_seed, replace=True)
# logger.wandb.job_type: ${wandb_job_type:${train}} -> train, or test for a run of train=false
OmegaConf.register_new_resolver("wandb_job_type", wandb_job_type, replace=True)
