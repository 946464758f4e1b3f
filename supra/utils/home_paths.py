"""A leading `~` or `~user` in a path option of the command line, expanded as a shell expands it in `VAR=~/x`.
The shell leaves `data.root=~/x` alone (`data.root` is no variable name), so Hydra got a literal `~`: a folder
named `~` appeared in the current one (which `rm -rf ~` would then take for the home folder), and
`data.root=~/f8k` "did not exist". Done once, on the command line, before Hydra or any check reads it."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

# The options that name a file or folder, by the last part of their key (data.root, paths.cache_dir, ckpt=,
# model.vqvae_ckpt, ...weights, hydra.run.dir): text options (prompt, tags, task_name) are never touched.
PATH_OPTION = re.compile(r"root|dir|out|ckpt|image|images|video|vqvae|weights|directory|dirpath|gpt2_tokenizer"
                         r"|init_from|\w+_(dir|path|ckpt|shards|folder)")

# Where a path starts inside a value: at its start, after a `:` (as in bash's `PATH=~/a:~/b`; the shards'
# `a.tar::b.tar` lists), or as an element of a sweep or list (`,` `[`), maybe quoted; up to its first `/`.
TILDE_PREFIX = re.compile(r"(?:^|(?<=[:,\[]))(\s*['\"]?)(~[^/:,\]'\"\s]*)")


def is_path_option(key: str) -> bool:
    """Whether the option `key` (`data.root`, `+paths.cache_dir`) names a file or folder."""
    return PATH_OPTION.fullmatch(key.lstrip("+~").rpartition(".")[2]) is not None


def expand_home(argv: Sequence[str]) -> list[str]:
    """`argv` with each `~` / `~user` that starts a path in a path option's value replaced by that home folder
    (`data.root=~/f8k` -> `data.root=$HOME/f8k`, $HOME's value written out); everything else as given. A `~user`
    of no user here ends the command in one line (`error: ...`, exit status 2): kept, it would become a folder of that name."""
    return [_expanded(arg) for arg in argv]


def _expanded(arg: str) -> str:
    key, sep, value = arg.partition("=")
    if not sep or arg.startswith("-") or not is_path_option(key):
        return arg
    return f"{key}={TILDE_PREFIX.sub(lambda found: found[1] + _home(found[2], arg), value)}"


def _home(prefix: str, arg: str) -> str:
    home = os.path.expanduser(prefix)
    if home == prefix:  # a shell keeps it as it is: here that would make a folder named `~name`
        print(f"error: {arg}: {prefix} names the home of a user {prefix[1:]!r}, who is not on this machine: give the "
              "full path", file=sys.stderr)
        raise SystemExit(2)
    return home
