"""What a W&B run's settings must be, checked before any work and without importing wandb: a run that logs
elsewhere (logger=csv, none) never loads it, so a broken wandb install cannot stop it."""

from __future__ import annotations

import json
import os
from typing import Any

from supra.utils.errors import SupraUserError, first_line
from supra.utils.numbers import is_number
from supra.utils.private_apis import wandb_netrc_has_key

WANDB_TARGET = "supra.loggers.wandb_logger.build_wandb_logger"  # the W&B logger's _target_ in conf/logger/
PROJECT_FORBIDDEN = "/\\#?%:"  # wandb's: refused only as the run starts
WANDB_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")  # what wandb's Settings take


def wandb_job_type(fits: bool) -> str:
    """A train.py run's W&B job_type, which the W&B UI filters and groups runs by: "train" for a run that fits
    (and tests after), "test" for one of train=false (a checkpoint tested); a sweep's jobs are told apart by their
    group, the sweep (wandb_logger.sweep_job_names)."""
    return "train" if fits else "test"


def require_wandb() -> None:
    """wandb importable, else one line: a missing or broken install (a protobuf mismatch) was a traceback."""
    try:
        import wandb  # noqa: F401
    except Exception as err:  # ImportError, or whatever a broken install raises as it loads
        raise SupraUserError(f"logger=wandb needs the wandb package (import failed: {first_line(err)}): "
                             "`pip install wandb`, or choose another logger (logger=csv)") from None


def wandb_logged_in() -> bool:
    """True when an API key is available without asking: WANDB_API_KEY, or a ~/.netrc entry from `wandb login` for
    the server wandb would use (WANDB_BASE_URL, or the one `wandb login --host` saved)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    return wandb_netrc_has_key(os.environ.get("WANDB_CONFIG_DIR"))


def wandb_tags(tags: Any) -> list[str] | None:
    """The tags as W&B takes them, strings: Hydra reads tags=[exp,2024] as "exp" and the number 2024, which wandb
    refuses only as the run starts; each is given as typed (true, not True). None (null) is an empty tag."""
    if tags is None:
        return None
    return [("" if tag is None else json.dumps(tag) if isinstance(tag, bool) else str(tag))
            for tag in ([tags] if isinstance(tags, str) else tags)]


def check_wandb_options(project: str | None, tags: list[str] | None, init_timeout: Any,
                        where: str = "logger.wandb", offline: Any = None) -> None:
    """What wandb refuses only as the run starts (after the data set-up: a traceback) or never (an init_timeout
    of 0 or less left the run hanging), as one line naming the option (`where`: the logger's key)."""
    require_wandb()
    check_wandb_mode()
    check_wandb_login(offline, where)
    if not is_number(init_timeout) or init_timeout <= 0:
        raise SupraUserError(f"{where}.init_timeout={init_timeout!r} must be a number of seconds > 0: how long "
                             "to wait for the W&B server before logging offline (default 10)")
    if project is not None:
        forbidden = [char for char in PROJECT_FORBIDDEN if char in str(project)]
        if forbidden or len(str(project)) > 128:
            problem = f"holds {' '.join(forbidden)}" if forbidden else f"is {len(str(project))} characters long"
            raise SupraUserError(f"{where}.project={project} {problem}: a W&B project name has at most 128 "
                                 f"characters, none of {' '.join(PROJECT_FORBIDDEN)}")
    for tag in wandb_tags(tags) or ():
        if not 1 <= len(tag) <= 64:
            raise SupraUserError(f"{where}.tags holds the tag {tag!r} ({len(tag)} characters): a W&B "
                                 "tag has 1 to 64 characters (the tags come from tags=[...])")


def check_wandb_mode() -> None:
    """WANDB_MODE as wandb takes it: a mistyped one was wandb's multi-line error, after a line saying the run
    logs offline."""
    mode = os.environ.get("WANDB_MODE")
    if mode and mode not in WANDB_MODES:  # empty: wandb takes it as unset
        raise SupraUserError(f"WANDB_MODE={mode} is not a W&B mode: set it to one of {', '.join(WANDB_MODES)}, "
                             "or unset it (the run then logs online when logged in, else offline)")


def check_wandb_login(offline: Any, where: str = "logger.wandb") -> None:
    """A run asked to log online can: `offline=false` is logged in (else wandb's traceback) and not contradicted by
    WANDB_MODE (which wandb obeys: the run was quietly offline); WANDB_MODE=online with `offline` unset is logged
    in (else a run quietly offline: the user asked for online)."""
    mode = os.environ.get("WANDB_MODE")
    if offline is False and mode in ("offline", "dryrun", "disabled"):
        raise SupraUserError(f"{where}.offline=false asks for an online run, but WANDB_MODE={mode}: unset WANDB_MODE "
                             f"(or set it to online), or leave {where}.offline unset")
    if mode in ("offline", "dryrun", "disabled") or offline is True or wandb_logged_in():
        return
    if offline is False:
        raise SupraUserError(f"{where}.offline=false needs a W&B login: run `wandb login` or set WANDB_API_KEY "
                             f"(or leave {where}.offline unset: the run then logs offline)")
    if mode in ("online", "run"):  # run: wandb's older name of online
        raise SupraUserError(f"WANDB_MODE={mode} needs a W&B login: run `wandb login` or set WANDB_API_KEY "
                             "(or unset WANDB_MODE: the run then logs offline)")
