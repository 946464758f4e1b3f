"""The range of a seed, one for every command and setting that takes one (no Hydra here: the models check
their decoding seed with it too)."""

from __future__ import annotations

from supra.utils.errors import SupraUserError

# The seeds every command takes: numpy's (Lightning's seed_everything sets them too), train.py's range. An a2a
# model's sampling adds its rank and an item count to its seed (tasks/a2a.py), which then stays within the 64
# bits a torch.Generator takes; a seed past those was a traceback.
MAX_SEED = 2**32 - 1


def seed_problem(value: int) -> str | None:
    """What is wrong with the seed `value` (a whole number, checked before), as a phrase ("must be ..."), or None."""
    return None if 0 <= value <= MAX_SEED else f"must be from 0 to {MAX_SEED}"


def check_seed(name: str, value: int | None, null: str | None = None) -> None:
    """`name`=`value` (a whole number, checked before) from 0 to MAX_SEED, else one line; `null`: what null
    means, where the option may be null."""
    problem = None if value is None else seed_problem(value)
    if problem:
        raise SupraUserError(f"{name}={value} {problem}" + (f" (or null: {null})" if null else ""))
