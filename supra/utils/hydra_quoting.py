"""Command-line values quoted for Hydra's override grammar, which refuses many a value users type bare
(`images=фото`, `data.root=/data/café`, a generate prompt with `<` or `${`): one plain value is quoted for
it, a sweep, list, dict or function that would need its elements quoted is refused in one line."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

from supra.utils.home_paths import is_path_option


def quote_prompt(argv: list[str]) -> list[str]:
    """Hydra's override grammar refuses `<`, `>` and `!` in plain values, so `prompt=<TEXT>a red square</TEXT><IMAGE>`
    is quoted for it here (unless the user quoted it whole already): a prompt works as typed, quotes,
    backslashes and `${...}` included (which OmegaConf would otherwise resolve: `${oc.env:HOME}` put the
    home folder into the prompt)."""
    quoted = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key == "prompt" and sep and value != "null" and not quoted_whole(value):
            arg = f"prompt='{hydra_quoted(value)}'"
        quoted.append(arg)
    return quoted


def quote_values(argv: list[str]) -> list[str]:
    """`key=value` arguments Hydra's override grammar cannot read unquoted, quoted for it: a path with a
    letter outside ASCII (`images=фото`, `data.root=/data/café`), `~`, `'`, `(`, `#`, `&`, `=`...
    was Hydra's multi-line LexerNoViableAltException. A `${...}` in such a value is still resolved, as in
    an unquoted one; what Hydra reads as it is (a sweep `a,b`, a group choice) is left alone. A sweep,
    list, dict or function Hydra cannot read is refused in one line (`error: ...`, exit status 2): quoted
    whole, `task_name=étude,test` would be one job named "étude,test"; its elements are the user's to quote.
    But an option that holds one path (home_paths.is_path_option) outside a multirun holds one path: a comma
    or a leading `[` / `{` there is part of a file name (`images=/photos/a,b.png`, `data.root=[2024] trip`),
    which Hydra read as a sweep ("Ambiguous value") or a list, so it is quoted whole. A value that is no
    sweep, list or dict Hydra could read however its elements were quoted (`tags=[2024] trip`) is one value
    too, quoted whole."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, quoted = OverridesParser.create(), []
    multirun = any(arg in ("-m", "--multirun") or arg.replace(" ", "") == "hydra.mode=MULTIRUN" for arg in argv)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("-") or quoted_whole(value):
            quoted.append(arg)
            continue
        one_path = is_path_option(key) and not multirun
        if _parses(parser, arg) and not (one_path and len(_top_level_split(value)) > 1):
            quoted.append(arg)
            continue
        inside = hydra_quoted(value).replace("\\${", "${")  # interpolations stay live
        kind = _structure(value, parser.functions.definitions)
        if kind is not None and not (one_path and kind != "function"):
            example = _elements_quoted(parser, key, value, kind)
            if _parses(parser, f"{key}={example}"):
                one = f", or {key}=\"'{inside}'\" for one path" if is_path_option(key) and kind != "function" else ""
                print(f"error: {arg}: Hydra's grammar reads some elements of this {kind} only quoted, and quoting it "
                      f"whole would make it one string: quote those, e.g. {key}=\"{example}\"{one}", file=sys.stderr)
                raise SystemExit(2)
        if _parses(parser, f"{key}='{inside}'"):
            arg = f"{key}='{inside}'"
        quoted.append(arg)
    return quoted


def _structure(value: str, functions: Iterable[str]) -> str | None:
    """What Hydra's grammar would read `value` as, beyond one plain element: "sweep" (`a,b`), "list",
    "dict" or "function" (`choice(...)`, one of Hydra's `functions`); None for one element."""
    function = re.match(r"\s*(\w+)\(", value)
    if function and function.group(1) in functions:
        return "function"
    kinds = {"[": "list", "{": "dict"}
    return kinds.get(value.lstrip()[:1]) or ("sweep" if len(_top_level_split(value)) > 1 else None)


def _top_level_split(text: str) -> list[str]:
    """`text` split at its commas outside brackets, `${...}` and quoted elements, as Hydra splits a sweep
    (a quote opens a string only where an element starts: the one in `it's` is a letter)."""
    parts, depth, start, quote, at_start = [], 0, 0, "", True
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote and text[i - 1] != "\\" else quote
            continue
        if char in "'\"" and at_start:
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        at_start = char in ",[{(:= "
    return [*parts, text[start:]]


def _elements_quoted(parser: Any, key: str, value: str, kind: str) -> str:
    """`value` (a `kind` from _structure) with each element Hydra cannot read bare quoted, for the refusal's
    example; a dict's values and a function's named arguments quoted after their `name:` / `name=`."""
    value = value.strip()
    head, inner, tail = "", value, ""
    if kind != "sweep":
        opening = value.index("(" if kind == "function" else value[0]) + 1
        head, inner = value[:opening], value[opening:]
        if inner.endswith(closing := {"function": ")", "list": "]", "dict": "}"}[kind]):
            inner, tail = inner[:-1], closing
    elements = []
    for element in _top_level_split(inner):
        name = re.match(r"\s*\w+[:=]", element) if kind in ("dict", "function") else None
        prefix = name.group(0) if name else ""
        bare = element[len(prefix):]
        readable = quoted_whole(bare.strip()) or _parses(parser, f"{key.lstrip('+~')}={bare}")
        inside = hydra_quoted(bare).replace("\\${", "${")  # interpolations stay live, as quote_values keeps them
        elements.append(prefix + (bare if readable else f"'{inside}'"))
    return head + ",".join(elements) + tail


def _parses(parser: Any, arg: str) -> bool:
    try:
        parser.parse_override(arg)
    except Exception:  # Hydra's OverrideParseException, or its grammar's own  # noqa: BLE001
        return False
    return True


def quoted_whole(value: str) -> bool:
    """`'...'` or `"..."` with no unescaped quote of its kind inside: a value the user quoted for Hydra."""
    quote = value[:1]
    return (len(value) >= 2 and quote in ("'", '"') and value[-1] == quote
            and re.search(rf"(?<!\\){quote}", value[1:-1]) is None)


def hydra_quoted(value: str) -> str:
    """The inside of a Hydra single-quoted string (`key='...'`) that reads back as `value`: a run of backslashes before a
    quote or at the end doubled and the quote escaped (Hydra's rule), `${` escaped for OmegaConf."""
    value = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return value.replace("${", "\\${")
