"""Does a state dict fit a module? One check for every weights file Supra loads (checkpoints, release
folders, a pretrained tower), as one line instead of torch's page of missing keys; the BatchNorm counters a
release may lack (`with_unread_counters`); and are two state dicts the same model's (`same_state`). A module
is checked built for its shapes alone (`shapes_only`), before any memory is taken."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch.overrides import TorchFunctionMode

from supra.utils.errors import SupraUserError

SHOWN = 5  # names listed of each kind of difference; the rest are counted


def check_state_fits(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                     target: str = "this model", hint: str = "") -> None:
    """A one-line SupraUserError naming `source` (and `target`, then `hint`) unless `state` has exactly
    `module`'s names and shapes: only the kinds of difference found, a wrong shape as the file's and the model's."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    differences = [f"{what} {_listed(names, describe)}" for what, names, describe in (
        ("missing", missing, repr), ("unexpected", unexpected, repr),
        ("wrong shape", wrong_shape, lambda k: f"{k!r} {tuple(state[k].shape)} there, {tuple(expected[k].shape)} here"))
        if names]
    if differences:
        raise SupraUserError(f"{source} does not fit {target}: {'; '.join(differences)}{hint}")


class _InitSkipped(TorchFunctionMode):
    """torch.nn.init's functions give their tensor back untouched. Supra's own, not Lightning's empty-init mode
    (Fabric.init_module's, private): models, which check their files' sizes with it, import no Lightning."""

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> object:
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return kwargs["tensor"] if "tensor" in kwargs else args[0]
        return func(*args, **kwargs)


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Modules built inside hold meta tensors (shapes, no memory) and run no torch.nn.init function: on meta
    tensors those load torch's decompositions (sympy, ~1 s) the first time, in every command that loads weights."""
    with torch.device("meta"), _InitSkipped():
        yield


def built_to_fit(build: Callable[[], torch.nn.Module], state: Mapping[str, torch.Tensor], source: str,
                 target: str = "this model", hint: str = "") -> torch.nn.Module:
    """`build()`, once `state` is found to fit what it builds (check_state_fits): built first on the meta device,
    which holds shapes and no memory, so sizes a file's config gives far from its weights' (VOCAB_SIZE=10**9) are
    the one-line refusal, not gigabytes taken (or an allocator's traceback) before it."""
    with shapes_only():
        check_state_fits(build(), dict(state), source, target, hint)
    return build()


COUNTER = "num_batches_tracked"  # the int64 buffer by which BatchNorm counts the batches it trained on


def with_unread_counters(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with the BatchNorm batch counters (`...num_batches_tracked`) it lacks taken from `module`, for each
    BatchNorm whose momentum is set: converters that keep only float tensors drop them. Safe, as such a BatchNorm
    never reads its counter (only momentum=None's cumulative average does): the model computes the same."""
    filled = dict(state)
    for key, counter in module.state_dict().items():
        owner, _, name = key.rpartition(".")
        if name == COUNTER and key not in state and getattr(module.get_submodule(owner), "momentum", None) is not None:
            filled[key] = counter
    return filled


def same_state(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same names and equal tensors, wherever each lies (device, autograd):
    the same weights and buffers, so the same model (a frozen VQ-VAE whose codes must mean what they meant)."""
    return theirs.keys() == ours.keys() and all(torch.equal(theirs[k].detach().cpu(), v.detach().cpu())
                                                for k, v in ours.items())


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in `state` that hold a NaN or an inf: a diverged run's weights."""
    return [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]


def _listed(names: list[str], describe: Callable[[str], str]) -> str:
    shown = ", ".join(describe(name) for name in names[:SHOWN])
    return f"[{shown}{f', ... ({len(names) - SHOWN} more)' if len(names) > SHOWN else ''}]"
