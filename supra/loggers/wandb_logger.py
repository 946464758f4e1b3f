"""A W&B logger that works with no account and no network: offline unless the user is logged in."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger  # imports wandb only when a run starts

from supra.loggers.wandb_options import check_wandb_options, wandb_logged_in, wandb_tags
from supra.utils.errors import SupraUserError, first_line
from supra.utils.files import write_text_atomic

RUN_ID_FILE = "wandb_run_id.txt"
# wandb's folders under ~, set to the run folder's where there is no HOME: per job, as each job has its folder
HOME_FOLDERS = {"WANDB_CONFIG_DIR": "config", "WANDB_CACHE_DIR": "cache", "WANDB_DATA_DIR": "data"}

log = logging.getLogger(__name__)
_set_here: set[str] = set()  # the variables of HOME_FOLDERS this process set itself (not the user's)


def resumed_wandb_id(ckpt_path: str) -> str | None:
    """The W&B run id of the run a checkpoint belongs to: in wandb_run_id.txt of the nearest folder above it that
    holds one (<run>/checkpoints/last.ckpt, <run>/checkpoints/periodic/*.ckpt), None where none does."""
    for folder in Path(ckpt_path).resolve().parents:
        id_file = folder / RUN_ID_FILE
        if id_file.is_file():
            return id_file.read_text().strip() or None
    return None


def point_wandb_at(save_dir: str) -> None:
    """wandb's files in this run's folder, through the environment too: a DDP rank wandb starts in a process of
    its own reads WANDB_DIR, not the parent's `dir` (it wrote its images under the launch folder's ./wandb)."""
    os.environ["WANDB_DIR"] = str(Path(save_dir).resolve())
    if not os.environ.get("HOME"):  # wandb keeps its settings and cache under ~: else errors on every run
        for variable, folder in HOME_FOLDERS.items():
            if variable not in os.environ or variable in _set_here:  # a sweep's next job: its own folder
                os.environ[variable] = str(Path(save_dir) / "wandb" / folder)
                _set_here.add(variable)


def sweep_job_names(kwargs: dict[str, Any], name: str | None) -> str | None:
    """In a multirun, the W&B group is the sweep folder's name and a job's run is named by its job number (its
    subfolder): the jobs of one sweep are told apart in W&B. Given ones (logger.wandb.name, +logger.wandb.group)
    are kept. Returns the name."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return name
    hydra_cfg = HydraConfig.get()
    kwargs.setdefault("group", Path(hydra_cfg.sweep.dir).name)
    return name if name is not None else str(hydra_cfg.job.num)


@contextmanager
def wandb_run_ends_with_job() -> Iterator[None]:
    """Around one job: the W&B run it logged to finished as it ends (exit code 1 where it raised). Left open until
    the next job's logger, a sweep's job recorded that job's console lines. Nothing where wandb was never loaded."""
    try:
        yield
    except BaseException:
        _finish_wandb_run(1)
        raise
    _finish_wandb_run(0)


def _finish_wandb_run(exit_code: int) -> None:
    wandb = sys.modules.get("wandb")  # not imported: a run logging elsewhere never loads it
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


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
    import wandb  # here, not above: a run logging elsewhere never loads it

    tags = wandb_tags(tags)
    kwargs = dict(kwargs)
    name = sweep_job_names(kwargs, name)
    if wandb.run is not None:  # an earlier run of this process, left open: Lightning would log into it
        wandb.finish()
    os.environ.setdefault("WANDB_SILENT", "true")  # which also hides its "wandb sync" hint: said below instead
    point_wandb_at(save_dir)
    mode = os.environ.get("WANDB_MODE")
    forced_online = offline is False  # an error, not offline, when W&B does not answer
    if mode == "disabled":  # not offline: that would write a run after all
        offline = False
        kwargs.setdefault("mode", "disabled")
    elif offline is None:
        offline = mode in ("offline", "dryrun") or not wandb_logged_in()
    resumed_id = resumed_wandb_id(resume_from) if resume_from else None
    if resume_from and not resumed_id and mode != "disabled":
        log.warning("W&B: no %s in the folders above ckpt_path=%s: this resumed run is a new W&B run, not a "
                    "continuation", RUN_ID_FILE, resume_from)
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


def _started_online(logger: WandbLogger, save_dir: str, project: str, name: str | None, tags: list[str] | None,
                    run_id: str, resumed_id: str | None, forced_online: bool, init_timeout: float,
                    kwargs: dict[str, Any]) -> tuple[WandbLogger, str]:
    """The online W&B run started now, where a failure can still be answered: (logger, run id), offline when W&B
    does not answer (unless forced online), or one line."""
    import wandb

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
    import wandb

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
