"""The tests of a whole-number or numeric option (Python counts `True` as the int 1, and Hydra gives `true` as
one), and a count said with its noun."""

from __future__ import annotations

import math


def is_whole(value: object, least: int | None = None) -> bool:
    """`value` is an int that is not a bool, and at least `least` where given."""
    return isinstance(value, int) and not isinstance(value, bool) and (least is None or value >= least)


def is_number(value: object) -> bool:
    """`value` is an int or a finite float (not NaN or infinity), and not a bool; an int past the largest float
    (10**400) is none either: every option is used as a float somewhere, where it would be an OverflowError."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # math.isfinite converts an int to a float first
        return False


def whole_hint(value: object, typed: str | None = None) -> str:
    """What a refusal of `value` as no whole number says right after `name=value`: " (write 128, not 128.0)" for a
    float of a whole value (as some JSON writers give sizes, and Hydra reads 1e3: `typed`, the value as given), where
    "128.0 must be a whole number" alone reads as self-contradictory; "" for any other value. The one wording of
    that refusal: models add it themselves (they may not import utils/cli.py, which imports Hydra), every option
    through cli.count_as_typed."""
    if isinstance(value, float) and value.is_integer():
        return f" (write {int(value)}, not {typed or repr(value)})"
    return ""


def counted(count: object, noun: str, grouped: bool = False, plural: str | None = None) -> str:
    """`count` with `noun`, plural but for one: "1 block", "4 blocks" (`plural` for a noun that takes more than
    an s: counted(2, "batch", plural="batches")); `grouped`: the thousands separated ("1,000 steps"). A count
    that is no number ("?") takes the plural."""
    shown = f"{count:,}" if grouped and is_whole(count) else str(count)
    return f"{shown} {noun_for(count, noun, plural)}"


def noun_for(count: object, noun: str, plural: str | None = None) -> str:
    """`noun` as `count` of it takes it, without the count: before a list of names ("unknown metric 'x'",
    "unknown metrics 'x', 'y'"); singular for one, else `plural` (default: an s added), as counted says it."""
    return noun if count == 1 and not isinstance(count, bool) else plural or noun + "s"


def finite_or_none(value: object) -> object:
    """`value`, but None for a float that is NaN or infinite, however deep in dicts, lists and tuples (as lists):
    strict JSON (and its readers) has no such number."""
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value
