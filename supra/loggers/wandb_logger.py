"""A W&B logger that works with no account and no network: offline unless the user is logged in."""

from __future__ import annotations

import json
import logging
import netrc
import os
import secrets
import shlex
import shutil
from pathlib import Path
from typing import Any

import wandb
from lightning.pytorch.loggers import WandbLogger

from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import write_text_atomic
from supra.utils.numbers import is_number

RUN_ID_FILE = "wandb_run_id.txt"
PROJECT_FORBIDDEN = "/\\#?%:"  # wandb's: refused only as the run starts
WANDB_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")  # what wandb's Settings take

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """True when an API key is available without asking: WANDB_API_KEY or a ~/.netrc entry from `wandb login`."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _run_dir_of_checkpoint(ckpt_path: str) -> Path:
    # Checkpoints live in <run dir>/checkpoints/*.ckpt.
    return Path(ckpt_path).resolve().parent.parent


def build_wandb_logger(
    save_dir: str, project: str = "supra", name: str | None = None, tags: list[str] | None = None,
    resume_from: str | None = None, offline: bool | None = None, init_timeout: float = 10, **kwargs: Any,
) -> WandbLogger:
    """WandbLogger that never prompts: offline unless logged in (or `offline` says otherwise).

    The run id is kept in `<save_dir>/wandb_run_id.txt`; resuming from a checkpoint of a run that has
    one continues that W&B run instead of starting a new one when online (offline: _continued_offline).
    Logged in but without an answer from the W&B server within `init_timeout` seconds (a machine without
    network), the run logs offline and says so; with `offline=False` it stops in one line instead. Not logged in,
    `offline=False` and WANDB_MODE=online (with `offline` unset) stop in one line before any work.
    """
    check_wandb_options(project, tags, init_timeout, offline=offline)
    tags = wandb_tags(tags)
    if wandb.run is not None:  # an earlier run of this process (a sweep's jobs share one): Lightning would log into it
        wandb.finish()
    os.environ.setdefault("WANDB_SILENT", "true")  # which also hides its "wandb sync" hint: said below instead
    if not os.environ.get("HOME"):  # wandb keeps its settings and cache under ~: else errors on every run
        for variable, folder in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
            os.environ.setdefault(variable, str(Path(save_dir) / "wandb" / folder))
    mode = os.environ.get("WANDB_MODE")
    forced_online = offline is False  # an error, not offline, when W&B does not answer
    if mode == "disabled":  # not offline: that would write a run after all
        offline = False
        kwargs.setdefault("mode", "disabled")
    elif offline is None:
        offline = mode in ("offline", "dryrun") or not wandb_logged_in()
    resumed_id = None
    if resume_from:
        id_file = _run_dir_of_checkpoint(resume_from) / RUN_ID_FILE
        if id_file.exists():
            resumed_id = id_file.read_text().strip() or None
    if resumed_id and offline:
        kwargs = _continued_offline(resumed_id, kwargs)
    run_id = (None if offline else resumed_id) or secrets.token_hex(4)  # W&B ids are short lowercase alphanumerics
    sync = _sync_hint(save_dir, run_id)
    if offline:
        log.info("W&B offline (%s): %s",
                 "WANDB_MODE=offline" if mode in ("offline", "dryrun") else "not logged in: `wandb login` to go online",
                 sync)
    online_kwargs = dict(kwargs)
    if not offline and mode != "disabled" and "settings" not in kwargs:
        # wandb waits 90 s for its server by default, then ends the run with a CommError
        online_kwargs["settings"] = wandb.Settings(init_timeout=init_timeout)
    logger = _logger(save_dir, project, name, tags, run_id, offline, online_kwargs)
    if not offline and mode != "disabled":
        logger, run_id = _started_online(logger, save_dir, project, name, tags, run_id, resumed_id, forced_online,
                                         init_timeout, kwargs)
    if mode != "disabled":  # no W&B run to continue: a file naming one would mislead
        _start(logger, save_dir, run_id)
        # written only now: a run refused before (a refused login, no server with offline=false, wandb.init
        # failing offline) leaves its folder free for the corrected command (the file marks a run's folder,
        # supra.utils.run_folders)
        write_text_atomic(Path(save_dir) / RUN_ID_FILE, run_id + "\n")
    return logger


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
    """A run asked to log online is logged in: `offline=false` (else wandb's traceback), or WANDB_MODE=online with
    `offline` unset (else a run quietly offline: the user asked for online)."""
    mode = os.environ.get("WANDB_MODE")
    if mode in ("offline", "dryrun", "disabled") or offline is True or wandb_logged_in():
        return
    if offline is False:
        raise SupraUserError(f"{where}.offline=false needs a W&B login: run `wandb login` or set WANDB_API_KEY "
                             f"(or leave {where}.offline unset: the run then logs offline)")
    if mode in ("online", "run"):  # run: wandb's older name of online
        raise SupraUserError(f"WANDB_MODE={mode} needs a W&B login: run `wandb login` or set WANDB_API_KEY "
                             "(or unset WANDB_MODE: the run then logs offline)")


def _started_online(logger: WandbLogger, save_dir: str, project: str, name: str | None, tags: list[str] | None,
                    run_id: str, resumed_id: str | None, forced_online: bool, init_timeout: float,
                    kwargs: dict[str, Any]) -> tuple[WandbLogger, str]:
    """The online W&B run started now, where a failure can still be answered: (logger, run id), offline when W&B
    does not answer (unless forced online), or one line."""
    before = set(Path(save_dir, "wandb").glob(f"run-*-{run_id}"))
    try:
        logger.experiment  # noqa: B018 -- starts the W&B run now, where a failure can still be answered
    # first: wandb's AuthenticationError is a CommError too, and a refused key is no server out of reach
    except (wandb.errors.AuthenticationError, wandb.errors.UsageError) as err:  # e.g. a key cut short
        _remove_failed_attempt(save_dir, run_id, before)
        raise SupraUserError(f"W&B refused the login ({first_line(err)}): run `wandb login` again or fix "
                             "WANDB_API_KEY, or log offline with logger.wandb.offline=true") from None
    # TimeoutError: wandb's own wait given up on (not a CommError); left alone, wandb's process kept this one alive
    except (wandb.errors.CommError, TimeoutError) as err:
        _remove_failed_attempt(save_dir, run_id, before)
        reason = f"no answer from the W&B server within {init_timeout:g} s ({first_line(err)})"
        if forced_online:
            raise SupraUserError(f"logger.wandb.offline=false: {reason}: leave logger.wandb.offline unset to log "
                                 "offline when W&B cannot be reached, or raise logger.wandb.init_timeout") from None
        if resumed_id:
            kwargs = _continued_offline(resumed_id, kwargs)
            run_id = secrets.token_hex(4)
        log.warning("W&B offline: %s; %s", reason, _sync_hint(save_dir, run_id))
        logger = _logger(save_dir, project, name, tags, run_id, True, kwargs)
    return logger, run_id


def _start(logger: WandbLogger, save_dir: str, run_id: str) -> None:
    """The W&B run started (offline: at once; started already online) before its id is recorded: one wandb.init
    refuses leaves no wandb_run_id.txt, as one refused online does, nor the folder of its attempt."""
    before = set(Path(save_dir, "wandb").glob(f"*run-*-{run_id}"))
    try:
        logger.experiment  # noqa: B018 -- starts the W&B run now, as Lightning would at its first log
    except Exception:
        _remove_failed_attempt(save_dir, run_id, before)
        raise


def _remove_failed_attempt(save_dir: str, run_id: str, before: set[Path]) -> None:
    wandb.teardown()  # the failed run holds its id in this process: the offline one could not take it
    for folder in set(Path(save_dir, "wandb").glob(f"*run-*-{run_id}")) - before:  # offline-run-* too
        shutil.rmtree(folder, ignore_errors=True)  # the failed attempt's, holding nothing to upload


def _sync_hint(save_dir: str, run_id: str) -> str:
    # the folder quoted for the shell (a space would split the pasted command), the glob left outside the quotes
    folder = shlex.quote(f"{Path(save_dir) / 'wandb'}{os.sep}")
    return f"upload the run later with `wandb sync {folder}offline-run-*-{run_id}`"


def _continued_offline(resumed_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """wandb cannot continue a run offline: it starts the history at step 0 again, and syncing that under
    the first run's id would replace the first run's history. So a resumed run logged offline is a W&B run
    of its own, noting which one it continues (its charts line up with it by trainer/global_step)."""
    log.warning("W&B offline: a W&B run cannot be continued offline (syncing both under one id would replace the "
                "first's history): this resumed run is a new W&B run that notes it continues %s", resumed_id)
    return {"notes": f"continues W&B run {resumed_id} (resumed offline)", **kwargs}


def _logger(save_dir: str, project: str, name: str | None, tags: list[str] | None, run_id: str, offline: bool,
            kwargs: dict[str, Any]) -> WandbLogger:
    if offline:  # wandb's own mode, not Lightning's offline=True: that sets WANDB_MODE=dryrun for the whole
        kwargs = {"mode": "offline", **kwargs}  # process, which its next run (a sweep's next job) took for the user's
    logger = WandbLogger(
        save_dir=save_dir, project=project, name=name, tags=tags, id=run_id, resume="allow", offline=False, **kwargs,
    )
    # Lightning hands wandb.init `anonymous=None` unasked, which wandb (0.19 on) answers with a warning
    # that the setting has no effect, in every run: not passed at all, it says nothing
    if getattr(logger, "_wandb_init", {}).get("anonymous", "asked") is None:
        logger._wandb_init.pop("anonymous")
    return logger
