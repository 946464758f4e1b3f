"""A W&B logger that works with no account and no network: offline unless the user is logged in."""

from __future__ import annotations

import logging
import netrc
import os
import secrets
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger

from supra.utils.files import write_text_atomic

RUN_ID_FILE = "wandb_run_id.txt"

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
    resume_from: str | None = None, offline: bool | None = None, **kwargs: Any,
) -> WandbLogger:
    """WandbLogger that never prompts: offline unless logged in (or `offline` says otherwise).

    The run id is kept in `<save_dir>/wandb_run_id.txt`; resuming from a checkpoint of a run that has
    one continues that W&B run instead of starting a new one.
    """
    os.environ.setdefault("WANDB_SILENT", "true")  # which also hides its "wandb sync" hint: said below instead
    if not os.environ.get("HOME"):  # wandb keeps its settings and cache under ~: else errors on every run
        for variable, folder in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
            os.environ.setdefault(variable, str(Path(save_dir) / "wandb" / folder))
    mode = os.environ.get("WANDB_MODE")
    if mode == "disabled":  # Lightning's offline=True would set WANDB_MODE=dryrun over it, and write a run after all
        offline = False
        kwargs.setdefault("mode", "disabled")
    elif offline is None:
        offline = mode in ("offline", "dryrun") or not wandb_logged_in()
    run_id = None
    if resume_from:
        id_file = _run_dir_of_checkpoint(resume_from) / RUN_ID_FILE
        if id_file.exists():
            run_id = id_file.read_text().strip()
    run_id = run_id or secrets.token_hex(4)  # W&B ids are short lowercase alphanumerics
    write_text_atomic(Path(save_dir) / RUN_ID_FILE, run_id + "\n")
    if offline:
        log.info("W&B offline (%s): upload the run later with `wandb sync %s`",
                 "WANDB_MODE=offline" if mode in ("offline", "dryrun") else "not logged in: `wandb login` to go online",
                 Path(save_dir) / "wandb" / f"offline-run-*-{run_id}")
    logger = WandbLogger(
        save_dir=save_dir, project=project, name=name, tags=tags, id=run_id, resume="allow",
        offline=offline, **kwargs,
    )
    # Lightning hands wandb.init `anonymous=None` unasked, which wandb (0.19 on) answers with a warning
    # that the setting has no effect, in every run: not passed at all, it says nothing
    if getattr(logger, "_wandb_init", {}).get("anonymous", "asked") is None:
        logger._wandb_init.pop("anonymous")
    return logger
