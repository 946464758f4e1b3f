"""What the machine can do: fail at once, in one line, when a trainer config asks for GPUs the machine
does not have, or one process where a launcher started several; pick the fastest safe precision
(`${fast_precision:${trainer.accelerator}}` in configs); the GPUs and tasks a SLURM job asks for
(slurm_gpus_per_node, slurm_tasks_per_node); the most memory a process can hold (memory_limit)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from supra.utils.cli import CONF_DIR, count_as_typed
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted, is_whole


def memory_limit() -> tuple[int, str] | None:
    """The most memory this process could ever hold, in bytes, and what sets it, for a message: the machine's
    physical memory, or an address-space limit below it (`ulimit -v`); None where neither is known."""
    try:
        limit, what = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's memory"
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows), or these names unknown to it
        limit, what = None, ""
    try:
        import resource
    except ImportError:
        return None if limit is None else (limit, what)
    address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
    if address_space != resource.RLIM_INFINITY and (limit is None or address_space < limit):
        limit, what = address_space, "this process's address-space limit (ulimit -v)"
    return None if limit is None else (limit, what)


# CPU flags (Linux names) of native bf16 arithmetic: AVX-512's BF16 instructions or Intel's AMX tiles.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def check_command_accelerator(accelerator: str) -> None:
    """A command's `accelerator=` (evaluate.py, tokenize_media): one of its choices, and a GPU only where
    there is one (rather than quietly running on the CPU, or Lightning's traceback)."""
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        raise SupraUserError(f"accelerator={accelerator} is not one of auto, cpu, gpu")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise SupraUserError(f"accelerator={accelerator} needs a CUDA GPU but this machine has none: use accelerator=cpu (or auto)")


# The accelerators Supra trains on; Lightning's others (mps, tpu, hpu) are untested here, and it refuses them only as
# the Trainer is built, after the data set-up (tpu: with advice to install torch_xla)
ACCELERATORS = ("cpu", "gpu", "cuda", "auto")


def check_devices(trainer_cfg: DictConfig) -> None:
    """trainer.accelerator one of ACCELERATORS, trainer.devices a count (or the GPUs' indices) that accelerator
    takes and trainer.num_nodes a whole number >= 1, each else one line naming it: Lightning refuses them as the
    Trainer is built, after the data set-up, in Hydra's multi-line "Error in call to target"."""
    accelerator = trainer_cfg.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        raise SupraUserError(f"trainer.accelerator={accelerator} is not one of {', '.join(ACCELERATORS)}: use "
                             "trainer.accelerator=cpu, or gpu where there are CUDA GPUs (auto: a GPU if there is one)")
    nodes = trainer_cfg.get("num_nodes", 1)
    if not is_whole(nodes, 1):
        raise SupraUserError(f"{count_as_typed('trainer.num_nodes', nodes)} must be a whole number >= 1: the machines "
                             "the run spans")
    devices = trainer_cfg.get("devices", "auto")
    shown = OmegaConf.to_container(devices) if OmegaConf.is_list(devices) else devices
    if not trains_on_cpu(accelerator):
        if not _names_gpus(shown):
            raise SupraUserError(f"trainer.devices={shown!r} must be a whole number >= 1 (GPUs per node), -1 or auto "
                                 "(every GPU), or the GPUs' indices ([0,1] or '0,1')")
    elif not (shown == "auto" or is_whole(shown, 1) or (isinstance(shown, str) and shown.strip().isdigit()
                                                        and int(shown) >= 1)):
        raise SupraUserError(f"trainer.devices={shown!r} must be a whole number >= 1 (processes on the CPU: 1, or "
                             "2 and more for DDP) or auto (one)")


def trains_on_cpu(accelerator: object) -> bool:
    """Whether a trainer.accelerator trains on the CPU: cpu, or auto (Lightning's default) on a machine without a
    CUDA GPU."""
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def _names_gpus(devices: object) -> bool:
    """Whether Lightning takes `devices` for a CUDA accelerator: a count >= 1, -1 or auto (every GPU), or indices."""
    if isinstance(devices, str):
        devices = devices.strip()
        if devices in ("auto", "-1"):
            return True
        if "," in devices:
            indices = [part.strip() for part in devices.split(",") if part.strip()]
            return bool(indices) and all(index.isdigit() for index in indices)
        return devices.isdigit() and int(devices) >= 1
    if isinstance(devices, list):
        return bool(devices) and all(is_whole(index, 0) for index in devices)
    return is_whole(devices, 1) or devices == -1


def _requested_gpus(devices: object) -> int:
    if isinstance(devices, int):
        return devices if devices > 0 else 1  # -1 means "all": at least one (check_devices refused the rest)
    if isinstance(devices, str):
        if devices.strip() in ("auto", "-1"):
            return 1
        return len([d for d in devices.split(",") if d.strip()]) if "," in devices else int(devices)
    return len(devices)  # a list of device indices


def check_accelerator(trainer_cfg: DictConfig, trainer_name: str = "trainer", cpu_trainer: bool = False,
                      remedy: str | None = None) -> None:
    """Raise SupraUserError if the trainer's accelerator or counts are none Lightning takes (check_devices), it
    wants more CUDA GPUs than are visible, SyncBatchNorm on CPU, or
    several nodes without a launcher that starts them, or one process where a launcher started several
    (check_world_joined). `cpu_trainer`: the trainer
    config chosen is a CPU one whose accelerator was set to the GPU on the command line (named so). `remedy`:
    what to do without the GPUs in the caller's own options (a script without train.py's trainer= choices)."""
    check_devices(trainer_cfg)  # first: the counts below read trainer.devices
    check_world_joined(trainer_cfg)
    accelerator = str(trainer_cfg.get("accelerator", "cpu"))
    if accelerator not in ("gpu", "cuda"):
        check_nodes_launched(trainer_cfg)
        if trainer_cfg.get("sync_batchnorm"):  # torch's SyncBatchNorm raises on CPU modules, deep in setup
            raise SupraUserError(f"trainer.sync_batchnorm=true needs CUDA GPUs but trainer.accelerator={accelerator}: "
                                 "add trainer.sync_batchnorm=false (or use trainer=ddp_sim to try DDP on CPU)")
        return
    needed = _requested_gpus(trainer_cfg.get("devices", 1)) * int(trainer_cfg.get("num_nodes", 1) or 1)
    per_node = _requested_gpus(trainer_cfg.get("devices", 1))
    found = torch.cuda.device_count()
    if found < per_node:
        asked, own = ((f"trainer.accelerator={accelerator}", "leave trainer.accelerator at cpu") if cpu_trainer
                      else (f"trainer={trainer_name}", "use trainer=cpu"))
        raise SupraUserError(
            f"{asked} needs {counted(per_node, 'CUDA GPU')} per node ({needed} in all) but this machine has "
            f"{found}: {remedy or own + ' (or trainer=ddp_sim to try DDP on CPU processes)'}"
        )
    check_nodes_launched(trainer_cfg)


def check_chosen_trainer(trainer_cfg: DictConfig, trainer_name: str) -> None:
    """check_accelerator for the config of `trainer=<trainer_name>`: when conf/trainer/<trainer_name>.yaml is a
    CPU one, a GPU the trainer asks for was set on the command line, and the message names that instead."""
    chosen = CONF_DIR / "trainer" / f"{trainer_name}.yaml"
    cpu_trainer = chosen.is_file() and OmegaConf.load(chosen).get("accelerator") == "cpu"
    check_accelerator(trainer_cfg, trainer_name, cpu_trainer)


# What the launchers Lightning knows set in each process: SLURM, torchrun / TorchElastic, LSF, MPI, and the
# variables of a cluster started by hand (Lightning's "general purpose cluster")
LAUNCHED = ("SLURM_NTASKS", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "LSB_JOBID", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def check_nodes_launched(trainer_cfg: DictConfig) -> None:
    """Several nodes need each started by a launcher: run alone, the process waits for the others forever."""
    nodes = int(trainer_cfg.get("num_nodes", 1) or 1)
    if nodes > 1 and not any(name in os.environ for name in LAUNCHED):
        raise SupraUserError(f"trainer.num_nodes={nodes} needs its nodes started together (SLURM: python train.py -m "
                             "hydra/launcher=slurm ...; or torchrun on each node): run alone it would wait for the "
                             "other nodes forever")


def declared_world() -> tuple[str, int] | None:
    """The variable and the number of processes a launcher says this one is among, where above 1: SLURM_NTASKS
    (srun, sbatch --ntasks) first, as Lightning picks SLURM's variables before torchrun's, then torchrun's
    WORLD_SIZE. SLURM_NTASKS is left out where Lightning does not take the job for SLURM's: a job named bash or
    interactive (salloc's shell, `srun --pty bash`), in whose shell one process is started by hand. WORLD_SIZE counts
    only under torchrun (TORCHELASTIC_RUN_ID): Lightning's own DDP launcher sets it in the process it runs in too,
    where a sweep's next job of one process would read it."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    names = ("SLURM_NTASKS",) if SLURMEnvironment.job_name() not in ("bash", "interactive") else ()
    if torch.distributed.is_available() and torch.distributed.is_torchelastic_launched():
        names += ("WORLD_SIZE",)
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 1:
            return name, int(value)
    return None


def check_world_joined(trainer_cfg: DictConfig) -> None:
    """A launcher that started several processes (srun --ntasks=2, torchrun --nproc_per_node=2) for a trainer of one
    process (trainer.devices x trainer.num_nodes = 1): Lightning chooses no DDP then, and each process trained alone,
    a copy of the run, without a word, the logs of all but rank 0 lost."""
    if (world := declared_world()) is None:
        return
    devices = trainer_cfg.get("devices", "auto")
    every_gpu = devices in ("auto", -1, "-1") and not trains_on_cpu(trainer_cfg.get("accelerator", "auto"))
    per_node = torch.cuda.device_count() if every_gpu else _requested_gpus(devices)
    if per_node * int(trainer_cfg.get("num_nodes", 1) or 1) != 1:  # several: Lightning's DDP launchers compare them
        return
    name, size = world
    start_one = "start one task (srun --ntasks=1)" if name == "SLURM_NTASKS" else "start one process"
    raise SupraUserError(f"{name}={size} but trainer.devices x trainer.num_nodes is 1: each of the {size} processes "
                         f"would train alone, a copy of the run; set trainer.devices={size} (with trainer.strategy=ddp; "
                         f"or devices per node x trainer.num_nodes), or {start_one}")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them; empty where there is no /proc/cpuinfo (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


def kernels_capped_below_avx512() -> bool:
    """Whether torch was told to use no AVX-512 kernels (ATEN_CPU_CAPABILITY=avx2|default, or oneDNN's
    ONEDNN_MAX_CPU_ISA=AVX2 or below): then bf16 runs emulated even on a CPU that has it, as on an
    AVX2-only CPU (these variables are how an AVX2 machine is imitated on an AVX-512 one)."""
    capability = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return capability in ("default", "avx2") or isa in ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether torch computes bf16 natively here (AVX512-BF16 or AMX, and AVX-512 kernels allowed), read
    from the kernel's flags: torch answers this only through private functions. Elsewhere than Linux:
    False, the safe answer."""
    return bool(cpu_flags(cpuinfo) & NATIVE_BF16_FLAGS) and not kernels_capped_below_avx512()


def fast_precision(accelerator: str = "cpu") -> str:
    """The fastest safe precision for `accelerator` (a trainer.accelerator value). On a CUDA GPU
    16-mixed, as trainer=gpu (every CUDA GPU has fp16; T4s have no bf16). On CPU bf16-mixed where it
    computes bf16 natively (AVX512-BF16 or AMX), else 32-true (emulated bf16 would be slower than fp32)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def asks_every_gpu(accelerator: str, devices: object) -> bool:
    """Whether trainer.devices asks for every GPU of a node (-1, or auto with a GPU accelerator): no number of
    GPUs or tasks that sbatch takes (optuna_settings.check_launcher refuses it for hydra/launcher=slurm)."""
    shown = str(devices).strip()
    return shown == "-1" or (shown == "auto" and accelerator != "cpu")


def slurm_tasks_per_node(accelerator: str, devices: object) -> object:
    """The tasks a SLURM job starts on each node, one per process of the trainer (`${slurm_tasks:...}` in
    conf/hydra/launcher/slurm.yaml): trainer.devices as a count, the GPUs' indices ([0,1] or '0,1') counted, a CPU
    trainer's auto one process; every GPU (asks_every_gpu) as given, for a sweep to refuse in one line."""
    shown = OmegaConf.to_container(devices) if OmegaConf.is_list(devices) else devices
    if asks_every_gpu(accelerator, devices) or not (_names_gpus(shown) or shown == "auto"):
        return devices  # every GPU, or no count at all: the job's check_devices says what to give instead
    return _requested_gpus(shown)


def slurm_gpus_per_node(accelerator: str, devices: object) -> object:
    """The GPUs a SLURM job asks for on each node (`${slurm_gpus:${trainer.accelerator},${trainer.devices}}` in
    conf/hydra/launcher/slurm.yaml): none for a CPU trainer, whose devices are processes (trainer=ddp_sim: 2),
    which a CPU partition could not schedule with GPUs asked for; else the trainer's GPUs per node, counted as
    slurm_tasks_per_node counts them."""
    tasks = slurm_tasks_per_node(accelerator, devices)
    return 0 if accelerator == "cpu" else tasks


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return "unknown CPU"
    line = next((line for line in text.splitlines() if line.startswith("model name")), "")
    return line.partition(":")[2].strip() or "unknown CPU"


def cpu_features(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """Which CPU this is: model, vector width, native bf16 or not; e.g. "AMD EPYC, AVX-512, bf16 native"."""
    flags = cpu_flags(cpuinfo)
    vector = "AVX-512" if "avx512f" in flags else "AVX2 only (no AVX-512)" if "avx2" in flags else "no AVX2"
    if kernels_capped_below_avx512() and "avx512f" in flags:
        vector += ", kernels capped at AVX2 (ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA)"
    bf16 = "bf16 native" if cpu_has_native_bf16(cpuinfo) else "bf16 emulated"
    return f"{cpu_model(cpuinfo)}, {vector}, {bf16}"


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """Which CPU a measurement ran on, as benchmark tables print it: cpu_features and torch's threads; e.g.
    "AMD EPYC, AVX-512, bf16 native, 2 threads"."""
    return f"{cpu_features(cpuinfo)}, {torch.get_num_threads()} threads"


def device_description(device: torch.device) -> str:
    """Which machine a measurement on `device` ran on: the GPU's name, or the CPU's (cpu_description)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
