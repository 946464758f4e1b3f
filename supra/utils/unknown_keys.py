"""A `key=value` of the command line that names no option of the composed config (`trainer.max_stpes=2`), said in
one line with the nearest key there is, before Hydra composes: Hydra's own answer is a multi-line error that
advises `+key=...`, which would add a key nothing reads. Such a `+key=...` beside the key it misspells
(`+ckpt_pth=...`) is refused the same way: the run would go on without it. The one check of every entry point
(train.py, evaluate.py and each `python -m supra.X`), so one typo gets one kind of answer everywhere."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import OmegaConf

from supra.utils.overrides import compose_conf, is_config_group, other_configs, parsed_overrides
from supra.utils.target_options import set_by_task, target_options


def exit_if_unknown_key(config_name: str, argv: Sequence[str], *, new_top_keys: bool = True) -> None:
    """Exit with status 2 and `error: <arg>: no such option (did you mean <key>?)` for the first override of
    `argv` whose key conf/<config_name>.yaml, composed with the command line's group choices, does not have.
    Keys under hydra. and the overrides Hydra cannot read are left to Hydra. `new_top_keys=False` refuses a
    `+key=...` that adds a top-level key too (`+fps=3`): a command reads its own options only, where train.py's
    config may read one (`+my_note=...` in an interpolation)."""
    if other_configs(argv):  # not conf/<config_name>.yaml alone: Hydra's to check
        return
    overrides = [o for o in parsed_overrides(argv) if not o.key_or_group.startswith("hydra")]
    values = [o for o in overrides if not is_config_group(o.key_or_group) and not o.is_delete()]
    choices = [o for o in overrides if is_config_group(o.key_or_group)]
    if not values or any(o.is_sweep_override() for o in choices):  # a sweep over groups: each job its own keys
        return
    try:
        tree = OmegaConf.to_container(compose_conf(config_name, [o.input_line for o in choices]), resolve=False)
    except HydraException:  # a choice that does not compose: Hydra says why when it composes
        return
    added: list[str] = []  # keys an earlier `+key=...` of the line adds, known to those after it
    for override in values:
        key = override.key_or_group
        known_added = any(key == a or key.startswith(f"{a}.") for a in added)
        problem = None if known_added else unknown_key(tree, override, new_top_keys)
        if problem:
            print(f"error: {override.input_line}: {problem}", file=sys.stderr)
            raise SystemExit(2)
        if override.is_add() or override.is_force_add():
            added.append(key)


def unknown_key(tree: dict, override: Override, new_top_keys: bool = True) -> str | None:
    """What is wrong with `override`'s key in `tree` (the composed config as plain containers), None if it is
    there (or below a list or value, Hydra's to judge). `new_top_keys`: as exit_if_unknown_key takes it."""
    parts = override.key_or_group.split(".")
    missing = first_missing(tree, parts)
    if missing is None:
        return None
    depth, parent = missing
    where, name = ".".join(parts[:depth]), parts[depth]
    adds = override.is_add() or override.is_force_add()
    if depth == 0:  # a top-level typo: the nearest option, else all of them (a command has a page of them at most)
        if adds and new_top_keys:
            return _unread_addition(override, parts, depth, parent)
        close = nearest_key(parent, parts, depth)
        unread = ", and nothing reads one added" if adds else ""
        return f"no such option{unread} ({f'did you mean {close}?' if close else _options_there(parent, where)})"
    if adds:
        return _unread_addition(override, parts, depth, parent)
    model = tree.get("model")
    own = set_by_task(model.get("_target_")).get(name) if where == "model.optimizer" and isinstance(model, dict) else None
    if own and depth == len(parts) - 1:  # the task's own option sets it: adding it here would be refused
        return f"not in the config, where the model sets it from {own}: use {own}={override.input_line.partition('=')[2]}"
    if depth == len(parts) - 1 and _target_takes(parent, name):  # not in conf/, but its class reads it
        return f"not in the config, though {where} takes it: add it with +{override.input_line.lstrip('+')}"
    siblings = user_options(parent)
    if not parent:  # an empty node (tokenize_media's data: {}): filled with +key=..., as Hydra advises
        return f"not in the config, where {where} is empty: add it with +{override.input_line.lstrip('+')}"
    if close := nearest_key(parent, parts, depth):
        return f"no such option (did you mean {close}?)"
    if len(siblings) <= 16:
        return f"no such option ({_options_there(parent, where)})"
    return "no such option"


def _options_there(parent: dict, where: str) -> str:
    """`the options of <where>: a, b` (`the options there are: a, b` at the top level)."""
    return f"the options {f'of {where}' if where else 'there are'}: {', '.join(user_options(parent))}"


def _unread_addition(override: Override, parts: Sequence[str], depth: int, parent: dict) -> str | None:
    """A `+key=value` adding a plain value next to a key it is close to (`+ckpt_pth=` beside ckpt_path): a typo
    nothing would read (the run would go on without a word). A new node (`+callbacks.mine._target_=...`, a
    `{...}` value) is the user's own, and a key of a `_target_` node is checked against what its class takes
    when the run starts (check_target_options: `+trainer.max_time=` is read)."""
    if depth != len(parts) - 1 or isinstance(override.value(), dict) or "_target_" in parent:
        return None
    close = nearest_key(parent, parts, depth)
    return f"no such option, and nothing reads one added (did you mean {close}?)" if close else None


def user_options(node: dict) -> list[str]:
    """The keys of `node` a user sets (not `_target_` and its kind)."""
    return sorted(str(k) for k in node if not str(k).startswith("_"))


def nearest_key(parent: dict, parts: Sequence[str], depth: int, extra: Sequence[str] = ()) -> str | None:
    """The full key of `parent`'s option (or of `extra`, options it takes that are not among its keys) nearest to
    parts[depth] (a typo of it), or None."""
    close = difflib.get_close_matches(parts[depth], [*user_options(parent), *extra], n=1)
    return ".".join([*parts[:depth], close[0]]) if close else None


def first_missing(tree: dict, parts: Sequence[str]) -> tuple[int, dict] | None:
    """The index of the first of `parts` that its parent in `tree` lacks, and that parent; None if all are
    there, or a list or value comes first."""
    node: Any = tree
    for depth, part in enumerate(parts):
        if not isinstance(node, dict):
            return None
        if part not in node:
            return depth, node
        node = node[part]
    return None


def _target_takes(node: dict, name: str) -> bool:
    """Whether `node`'s `_target_` takes a keyword `name` (False when it has none, or takes any)."""
    options = target_options(node.get("_target_"))
    return options is not None and name in options
