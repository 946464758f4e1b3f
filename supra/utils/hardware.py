"""What the machine can do: fail at once, in one line, when a trainer config asks for GPUs the machine
does not have; pick the fastest safe precision (`${fast_precision:${trainer.accelerator}}` in configs)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from supra.utils.errors import SupraUserError


def _requested_gpus(devices: object) -> int:
    if isinstance(devices, int):
        return devices if devices > 0 else 1  # -1 means "all": at least one
    if isinstance(devices, str):
        if devices.strip() in ("auto", "-1"):
            return 1
        return len([d for d in devices.split(",") if d.strip()]) if "," in devices else int(devices)
    return len(devices)  # a list of device indices


def check_accelerator(trainer_cfg: DictConfig, trainer_name: str = "trainer") -> None:
    """Raise SupraUserError if the trainer wants more CUDA GPUs than are visible."""
    if str(trainer_cfg.get("accelerator", "cpu")) not in ("gpu", "cuda"):
        return
    needed = _requested_gpus(trainer_cfg.get("devices", 1)) * int(trainer_cfg.get("num_nodes", 1) or 1)
    per_node = _requested_gpus(trainer_cfg.get("devices", 1))
    found = torch.cuda.device_count()
    if found < per_node:
        raise SupraUserError(
            f"trainer={trainer_name} needs {per_node} CUDA GPU(s) per node ({needed} in all) but this machine has "
            f"{found}: use trainer=cpu (or trainer=ddp_sim to try DDP on CPU processes)"
        )


def fast_precision(accelerator: str = "cpu") -> str:
    """The fastest safe precision for `accelerator` (a trainer.accelerator value). On a CUDA GPU
    16-mixed, as trainer=gpu (every CUDA GPU has fp16; T4s have no bf16). On CPU bf16-mixed where it
    computes bf16 natively (AVX512-BF16 or AMX: a2a_nano trains 1.8x faster on 2 such cores), else
    32-true (emulated bf16 would be slower than fp32); torch.cpu's checks are private but the only ones
    torch offers, and if they go away fp32 is the safe answer."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "16-mixed"
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError:
        native = False
    return "bf16-mixed" if native else "32-true"
