"""Keys of a `_target_` config node that its class or function does not take (a typo on the command line,
`+model.foo=...`), said in one line naming the key and the options there are. Hydra's `instantiate` passes
every key on, and the constructor's TypeError ends the run in a traceback (one per job of a sweep), after
whatever was built before it."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from supra.utils.errors import SupraUserError


def check_target_options(node: DictConfig | ListConfig | None, where: str) -> None:
    """Refuse, in one line, a key of `node` (or of a `_target_` node anywhere inside it) that its target does
    not take as a keyword. Targets that take **kwargs, or that cannot be imported or inspected, are left to
    `instantiate`, which says what is wrong with them."""
    if node is None:
        return
    value = OmegaConf.to_container(node, resolve=False)
    instead: dict[str, str] = {}  # the optimizer's keywords the task sets: offered as its options, not the optimizer's
    if where == "model" and isinstance(value, dict):
        instead = {f"model.optimizer.{key}": own for key, own in set_by_task(value.get("_target_")).items()}
    _check(value, where, instead)


def _check(value: Any, where: str, instead: dict[str, str]) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", instead)
        return
    if not isinstance(value, dict):
        return
    options = target_options(value.get("_target_"))
    unknown = [key for key in value if not str(key).startswith("_") and options is not None and key not in options]
    if unknown:
        key, name = str(unknown[0]), str(value["_target_"]).rsplit(".", 1)[-1]
        settable = sorted(o for o in options - FILLED_IN.get(where, set()) if f"{where}.{o}" not in instead)
        close = difflib.get_close_matches(key, [*settable, *(k.rpartition(".")[2] for k in instead)], n=1)
        listed = f" (its options at {where}: {', '.join(settable)})" if len(settable) <= 16 else ""
        # a key the composed config brings (SGD's inherited betas) is dropped with Hydra's ~, which few know
        remove = "" if on_command_line(f"{where}.{key}") else f": remove it with ~{where}.{key}"
        nearest = close and instead.get(f"{where}.{close[0]}", f"{where}.{close[0]}")
        hint = f": did you mean {nearest}?" if close else remove + listed
        raise SupraUserError(f"{where}.{key}={value[key]}: {name} has no option {key}{hint}")
    for key, item in value.items():
        _check(item, f"{where}.{key}", instead)


# Keywords the task passes itself (the parameter groups, Muon's hidden matrices; the optimizer and run length a
# schedule is built with): no setting of the config's, so left out of the options a refusal lists
FILLED_IN = {"model.optimizer": {"params", "hidden_matrices"}, "model.scheduler": {"optimizer", "total_steps"}}

# The optimizer's keywords a task sets from an option of its own, by that option's name (where its class takes
# it): the captioner's and a2a's parameter groups carry model.weight_decay, and torch lets a group's value win; the
# captioner passes fused as model.fused_optimizer says, over the optimizer config's
TASK_SETS = {"weight_decay": "weight_decay", "fused": "fused_optimizer"}


def set_by_task(model_target: Any) -> dict[str, str]:
    """{optimizer keyword: the task's option that sets it (`model.weight_decay`)} for the task class
    `model_target` (model._target_): keywords a run refuses at model.optimizer, so no message offers them there."""
    options = target_options(model_target) or set()
    return {key: f"model.{own}" for key, own in TASK_SETS.items() if own in options}


def on_command_line(option: str) -> bool:
    """Whether `option` (model.optimizer.betas) is set by an override of this run's command line, as +key=... or
    key=...; False outside a Hydra run."""
    if not HydraConfig.initialized():
        return False
    return any(str(given).lstrip("+~").split("=", 1)[0] == option for given in HydraConfig.get().overrides.task)


def target_options(target: Any) -> set[str] | None:
    """The keywords `target` takes; None (any) when it takes **kwargs or cannot be looked at. A model class
    naming its `config_class` (a dataclass its **config builds) takes that class's fields. Other **kwargs of
    a class of Supra's are taken to go on to its base class's __init__ (the DataModules' do), whose keywords
    it then takes too; a library's class with **kwargs takes any."""
    if not isinstance(target, str) or "${" in target:
        return None
    try:
        found = get_object(target)
    except Exception:  # noqa: BLE001 - an unknown target is instantiate's to name
        return None
    inits = [c.__dict__["__init__"] for c in found.__mro__ if "__init__" in c.__dict__] if isinstance(found, type) else [found]
    options: set[str] = set()
    settings = getattr(found, "config_class", None)  # a model whose **config builds its config dataclass
    if isinstance(found, type) and dataclasses.is_dataclass(settings):
        own = inspect.signature(inits[0]).parameters.values()
        return {f.name for f in dataclasses.fields(settings)} | {p.name for p in own if p.kind is p.KEYWORD_ONLY}
    for init in inits:
        try:
            parameters = list(inspect.signature(init).parameters.values())
        except (TypeError, ValueError):
            return None
        options |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return options - {"self"}
        if not getattr(init, "__module__", "").startswith("supra."):
            break
    return None


def check_target_exists(option: str, target: Any) -> None:
    """Refuse, in one line, a `_target_` (`option`, e.g. model.optimizer._target_) that names no class or function,
    with the nearest names its module holds: Hydra's own error is several lines (a traceback's worth) and comes
    only as the target is built. An interpolation, or a value that is no text, is left to `instantiate`."""
    if not isinstance(target, str) or "${" in target or is_located(target):
        return
    module, _, name = target.rpartition(".")
    try:
        held = [key for key in vars(importlib.import_module(module)) if not key.startswith("_")] if module else []
    except Exception:  # noqa: BLE001 - no such module: nothing near to name
        held = []
    close = difflib.get_close_matches(name, held, n=3)
    hint = f": did you mean {' or '.join(f'{module}.{found}' for found in close)}?" if close else ""
    raise SupraUserError(f"{option}={target} names no class or function{hint}")


def is_located(target: str) -> bool:
    """Whether the dotted path `target` names an object: its longest importable module, then attributes, as Hydra
    locates it, but without the error Hydra's get_object logs for one it cannot find."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # noqa: BLE001 - a shorter path may still be a module
            continue
        for part in parts[cut:]:
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True
    return False
