"""A run never writes over another: `python train.py hydra.run.dir=DIR` (or evaluate.py) into the folder of a
finished run, of a sweep or of a release, or `-m hydra.sweep.dir=DIR` into a folder holding a run's records at any depth (a
finished run's, a sweep's jobs), is refused in one line; so is a folder a live run is writing, and a
hydra.sweep.subdir that would put two jobs of one sweep in the same folder. Two runs started in the same second (`for s in 1 2; do python train.py seed=$s & done`)
would share the dated default folder, and each other's checkpoints: the second takes `<folder>_1` (a sweep's
jobs too, not only its multirun.yaml).

Checked by a Hydra callback as the run or sweep starts, because Hydra saves the new run's
.hydra/{config,hydra,overrides}.yaml into the folder before the job itself runs: a refusal from inside the job
came after the finished run's record of its own settings was already replaced (and a sweep report then
listed a job under settings it was not trained with).
"""

from __future__ import annotations

import atexit
import copy
import os
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from lightning.fabric.utilities.rank_zero import _get_rank
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from supra.utils.errors import SupraUserError
from supra.utils.files import give_plain_permissions
from supra.utils.hydra_quoting import hydra_quoted

# What a run leaves once it has started its work (a sweep job's record, its logged curves, its checkpoints, its
# test scores): a folder holding any of them is a run's, even one that saved no checkpoint and ran no test.
# Not Hydra's .hydra/ or <job>.log alone: Hydra writes those before a run refused on bad input, whose folder
# is then free for the corrected command. "sweep_job.json": supra.sweeps.report.JOB_RESULT (a layer above).
RECORDS = ("checkpoints/*.ckpt", "metrics.json", "sweep_job.json", "csv/metrics.csv",
           "tensorboard/events.out.tfevents.*", "wandb_run_id.txt", "wandb/*run-*")
SWEEP_RECORD = "multirun.yaml"  # Hydra's, in a grid sweep's folder: the Optuna sweeper writes none
# A release folder (`python -m supra.export`): supra.artifacts.kinds.release_kind's test (a layer above). A run
# into it would replace its samples.png and add its own files; a train.py run would reuse its tokenizer.json.
RELEASE_FILES = ("config.json", "model.safetensors")
# "<host> <pid> <start>" of the live process writing a run or sweep folder (see _start_time), removed at end
OWNER = ".supra_run_owner"


def finished_run_file(folder: Path) -> Path | None:
    """A record of a run in `folder` itself (a checkpoint, metrics.json, sweep_job.json, logged curves), or
    None."""
    return next((path for pattern in RECORDS for path in sorted(folder.glob(pattern))), None)


def is_release(folder: Path) -> bool:
    """Whether `folder` is a release folder (config.json + model.safetensors)."""
    return all((folder / name).is_file() for name in RELEASE_FILES)


def refuse_model_folder(out: Path, outputs: str) -> None:
    """out= of a command that writes `outputs` (e.g. "the captions") that is a release folder or a run's folder,
    refused in one line as train.py refuses them for its run: they would ship with the release (an export's
    copy, a push) or mix with the run's records."""
    if is_release(out):
        raise SupraUserError(f"out={out} is a release folder ({' + '.join(RELEASE_FILES)}), whose copies and pushes "
                             f"would carry {outputs}: choose another out= folder")
    # a run's checkpoints/ folder too: its best.ckpt and last.ckpt are the run's records, copied and resumed from
    if held := finished_run_file(out) or next(iter(sorted(out.glob("*.ckpt"))), None):
        raise SupraUserError(f"out={out} holds a run's records ({held.relative_to(out)}): choose another out= folder")


def data_root_around(config: DictConfig, folder: Path) -> Path | None:
    """The run's data folder (data.root) where `folder` is it or lies inside it, else None: a run's pictures,
    checkpoints and logs there would be read back as photos by the next run on that data, and by caption."""
    try:
        root = OmegaConf.select(config, "data.root", default=None)
    except OmegaConfBaseException:  # an interpolation that resolves only in the job: said there if wrong
        return None
    if not isinstance(root, str) or not root:
        return None
    root_path, folder_path = Path(root).resolve(), folder.resolve()
    return root_path if root_path == folder_path or root_path in folder_path.parents else None


def _refuse_folder_in_data(config: DictConfig, folder: Path, mode: str) -> None:
    if root := data_root_around(config, folder):
        _refuse(f"hydra.{mode}.dir={folder} lies in data.root={root}: the run's pictures and records would be read "
                f"as data by later runs (and by caption); choose another with hydra.{mode}.dir=DIR outside it")


def sweep_record(folder: Path) -> Path | None:
    """What shows `folder` to be a sweep's, or to hold one: Hydra's multirun.yaml, else the .hydra/hydra.yaml
    of a multirun job below it, at any depth, which every sweep has from its first job's start on; None for
    any other."""
    if (folder / SWEEP_RECORD).is_file():
        return folder / SWEEP_RECORD
    for parent, children, _ in os.walk(folder):
        children[:] = sorted(child for child in children if not child.startswith("."))
        job = Path(parent) / ".hydra" / "hydra.yaml"
        if Path(parent) == folder or not job.is_file():
            continue
        if _is_multirun_job(job):
            return job
        children.clear()  # a single run's folder: what is below it is its own
    return None


def _is_multirun_job(hydra_yaml: Path) -> bool:
    return _hydra_mode(hydra_yaml) == "MULTIRUN"


def is_single_run(folder: Path) -> bool:
    """Whether `folder` is a single run's (its .hydra/hydra.yaml says mode RUN), not a multirun job's."""
    return _hydra_mode(folder / ".hydra" / "hydra.yaml") == "RUN"


def _hydra_mode(hydra_yaml: Path) -> str | None:
    try:
        return OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.mode")
    except Exception:  # missing, cut short by a killed job, or not Hydra's: no sign either way
        return None


def run_file_within(folder: Path) -> Path | None:
    """A record of a run in `folder` or in any folder below it: a sweep's jobs may be nested
    (hydra.sweep.subdir=lr${model.optimizer.lr}/${hydra.job.num})."""
    for parent, children, _ in os.walk(folder):
        children.sort()
        if held := finished_run_file(Path(parent)):
            return held
    return None


def stopped_short(folder: Path) -> tuple[int, int] | None:
    """(step reached, trainer.max_steps) of the train.py run in `folder` if its last.ckpt stopped short of its
    max_steps (Ctrl-C, or a killed run), else None."""
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    try:  # mmap: only the few numbers read come off the disk
        checkpoint = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
        step, max_steps = checkpoint["global_step"], checkpoint["supra"]["run_config"]["trainer"]["max_steps"]
    except Exception:  # not one train.py wrote, or cut short: it is refused as a finished run's file
        return None
    if isinstance(step, int) and isinstance(max_steps, int) and 0 <= step < max_steps:
        return step, max_steps
    return None


def interrupted_run_advice(folder: Path, ckpt_path: str | None) -> str:
    """What to do with the interrupted run in `folder`, refused as a run's folder: resume it, or, where this
    command already resumes (`ckpt_path` given), write the resumed run elsewhere."""
    if ckpt_path:
        return "a resumed run writes a new folder: leave out hydra.run.dir, or give another with hydra.run.dir=DIR"
    return (f"resume it with ckpt_path={folder / 'checkpoints' / 'last.ckpt'} (a resumed run writes a new folder), "
            "or choose another with hydra.run.dir=DIR")


def killed_before_checkpoint(folder: Path) -> bool:
    """Whether the run in `folder` was killed (its claim left behind by a process no longer alive) before it wrote
    a checkpoint or test scores: its logged curves alone, which a finished run that saves no checkpoint also has."""
    claim = folder / OWNER
    return (claim.is_file() and _live_owner(claim) is None and not any(folder.glob("checkpoints/*.ckpt"))
            and not (folder / "metrics.json").is_file())


class KeepFinishedRuns(Callback):
    """Refuses a run or sweep folder that holds a finished run's results or a release, or that a live run is writing,
    before Hydra writes into it; a dated default folder taken that way moves to the next free `_1`, `_2`."""

    def __init__(self) -> None:
        self._owned: Path | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _is_first_process():
            return  # a DDP rank Lightning started again with hydra.run.dir=<rank 0's folder>
        _refuse_kaggle_paths_off_kaggle(config)
        _refuse_folder_in_data(config, self._resolved(config, "run"), "run")  # not in _take: a dated one's _N too
        resumed = " (a resumed run, ckpt_path=..., writes a new one)" if "ckpt_path" in config else ""

        def finished(folder: Path) -> str | None:
            if is_release(folder):
                return (f"hydra.run.dir={folder} is a release folder ({' + '.join(RELEASE_FILES)}): choose another "
                        "with hydra.run.dir=DIR, or leave it out for a new dated folder")
            if sweep := sweep_record(folder):  # its jobs' folders are below it, not where a run writes
                # (a run's .hydra/ there would also make the sweep's report refuse the folder as one run's)
                what = (f"is a sweep's folder ({SWEEP_RECORD})" if sweep.name == SWEEP_RECORD else
                        f"holds a sweep's jobs ({sweep.parent.parent.relative_to(folder)}/)")
                return (f"hydra.run.dir={folder} {what}: choose another with hydra.run.dir=DIR, or leave it out "
                        "for a new dated folder")
            held = finished_run_file(folder)
            if held and not (folder / "metrics.json").is_file() and (stopped := stopped_short(folder)):
                return (f"hydra.run.dir={folder} already holds an interrupted run (checkpoints/last.ckpt at step "
                        f"{stopped[0]} of {stopped[1]}): " + interrupted_run_advice(folder, config.get("ckpt_path")))
            if held and killed_before_checkpoint(folder):
                return (f"hydra.run.dir={folder} already holds a run stopped before its first checkpoint "
                        f"({held.relative_to(folder)}, no checkpoints/*.ckpt): there is nothing to resume; choose "
                        "another with hydra.run.dir=DIR, or remove that folder to run there again")
            return held and (f"hydra.run.dir={folder} already holds a finished run ({held.relative_to(folder)}): "
                             f"choose another with hydra.run.dir=DIR, or leave it out for a new dated folder{resumed}")
        self._take(config, "run", finished)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_kaggle_paths_off_kaggle(config)
        _refuse_shared_job_folders(config)
        _refuse_folder_in_data(config, self._resolved(config, "sweep"), "sweep")

        def finished(folder: Path) -> str | None:
            if is_release(folder):  # Hydra writes multirun.yaml into it
                return (f"hydra.sweep.dir={folder} is a release folder ({' + '.join(RELEASE_FILES)}): choose another "
                        "with hydra.sweep.dir=DIR")
            own = finished_run_file(folder)  # a single run's folder, not a sweep's
            held = own or run_file_within(folder)
            if held is None:
                return None
            what = "a finished run" if own else "a sweep's finished jobs"
            return (f"hydra.sweep.dir={folder} already holds {what} ({held.relative_to(folder)}): choose another "
                    "with hydra.sweep.dir=DIR (an Optuna study kept in storage=... goes on from any folder)")
        self._take(config, "sweep", finished)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._release()

    def _take(self, config: DictConfig, mode: str, finished: Callable[[Path], str | None]) -> None:
        """Claims the run's or sweep's folder for this process, or refuses it in one line; a dated default
        taken by another run moves to the first free `<folder>_N`, set in Hydra's config (read after this)."""
        folder = self._resolved(config, mode)
        dated = "${now:" in str(OmegaConf.to_container(config.hydra[mode], resolve=False)["dir"])
        candidate, n = folder, 0
        # a live run's folder first: once it holds a checkpoint it would otherwise be called finished or
        # interrupted (with advice to resume a run that is still going)
        while (refusal := _written_by_another(candidate, mode) or finished(candidate)
               or self._claim(candidate, mode)) is not None:
            if not dated:
                _refuse(refusal)
            n += 1
            candidate = folder.with_name(f"{folder.name}_{n}")
        if candidate != folder:
            with read_write(config.hydra):  # Hydra's own settings are read-only to its callbacks
                config.hydra[mode].dir = str(candidate)
                if mode == "sweep":
                    _set_sweep_dir_of_jobs(config, candidate)

    def _claim(self, folder: Path, mode: str) -> str | None:
        """None once `folder` is this process's (created atomically: two runs started together cannot both
        have it); a refusal while another live process holds it."""
        claim = folder / OWNER
        for _ in range(2):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                _link_claim(claim)
            except FileExistsError:
                if refusal := _written_by_another(folder, mode):
                    return refusal
                claim.unlink(missing_ok=True)  # a killed run's: taken over
                continue
            except OSError:
                return None  # an unwritable folder: said in one line by the job itself (supra.runner)
            self._owned = claim
            atexit.register(self._release)  # also when the job ends by SystemExit, which Hydra's on_run_end misses
            return None
        return f"hydra.{mode}.dir={folder} is being claimed by another run: choose another with hydra.{mode}.dir=DIR"

    def _release(self) -> None:
        if self._owned is not None:
            self._owned.unlink(missing_ok=True)
            self._owned = None

    @staticmethod
    def _resolved(config: DictConfig, mode: str) -> Path:
        # the folder's ${hydra:runtime.cwd} and ${now:...} resolve once Hydra's config is set, which Hydra
        # itself does only later, in the job (`now` is cached: the job gets the same folder)
        HydraConfig.instance().set_config(config)
        return Path(str(config.hydra[mode].dir))


def _written_by_another(folder: Path, mode: str) -> str | None:
    """The refusal of `folder` while another live process's claim is in it, else None."""
    claim = folder / OWNER
    # lexists: a folder this user may not search is no other run's (the job says it cannot write there)
    if not os.path.lexists(claim) or (owner := _live_owner(claim)) is None:
        return None
    return (f"hydra.{mode}.dir={folder} is being written by another run ({owner}): choose another with "
            f"hydra.{mode}.dir=DIR, or wait for that run to end (if it has ended, remove its claim: "
            f"rm {shlex.quote(str(claim))})")


def _link_claim(claim: Path) -> None:
    """`claim` holding "<host> <pid> <start>", made at once, whole: written to a file of its own, then linked
    under the claim's name, which fails (FileExistsError) when another run's claim is there. A claim created
    empty and written after could be read in between as a dead run's and taken over by a second run."""
    start = _start_time(os.getpid())
    text = f"{socket.gethostname()} {os.getpid()}" + (f" {start}\n" if start else "\n")
    with tempfile.NamedTemporaryFile("w", dir=claim.parent, prefix=".claim.", delete=False) as file:
        file.write(text)
    try:
        # not mkstemp's 0600, which the link keeps: another user's run could not read it, and took it for a dead
        # run's claim
        give_plain_permissions(file.name)
        os.link(file.name, claim)
    except FileExistsError:
        raise
    except OSError:  # the folder is writable (the file above is there): it has no hard links (vfat, gcsfuse)
        _create_claim(claim, text)
    finally:
        os.unlink(file.name)


def _create_claim(claim: Path, text: str) -> None:
    """`claim` created only if it is not there (FileExistsError otherwise), then written in one write; read
    empty in between, it is a claim being made (`_live_owner`), not a dead run's."""
    descriptor = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(descriptor, text.encode())
    except OSError:
        claim.unlink(missing_ok=True)  # not left half made: no claim, as in a folder that cannot be written
        raise
    finally:
        os.close(descriptor)


def _refuse_kaggle_paths_off_kaggle(config: DictConfig) -> None:
    """paths=kaggle where its data folder (/kaggle/input) is missing, refused before the run's folder is made:
    off Kaggle, its fixed log_dir would put the run under /kaggle/working, at the file system's root (made there
    by whoever may, and found by nobody)."""
    if OmegaConf.select(config, "hydra.runtime.choices.paths") != "kaggle":
        return
    try:
        data_dir = Path(str(config.paths.data_dir))
    except Exception:  # resolvable only inside the job: checked as the data is read
        return
    if not data_dir.is_dir():
        _refuse(f"paths=kaggle: {data_dir} not found (not a Kaggle notebook?): leave out paths=kaggle")


def _refuse_shared_job_folders(config: DictConfig) -> None:
    """A hydra.sweep.subdir that is the same for two jobs (`hydra.sweep.subdir=x`, or one naming only a swept
    value) refused before any job runs: Hydra writes each job's .hydra/ into it before the job itself runs, so
    a later job would replace an earlier one's record of its settings, and its results after. Told by
    resolving it for two job numbers (and ids): unique only if it follows them."""
    subdirs = set()
    for num in (0, 1):
        job = copy.deepcopy(config)
        with read_write(job.hydra), open_dict(job.hydra):
            job.hydra.job.num, job.hydra.job.id = num, f"job_id_for_{num}"
        try:
            subdirs.add(str(job.hydra.sweep.subdir))
        except Exception:  # resolvable only inside a job: its folder is checked there (supra.runner)
            return
    if len(subdirs) == 1:
        subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"]
        # one naming the swept values (${hydra.job.override_dirname}) differs for most jobs, but two jobs of the
        # same values (a value given twice, two Optuna trials drawing the same) would share it
        same = ("may be the same folder for two jobs (two of the same values: two Optuna trials may draw them)"
                if "${" in str(subdir) else "is the same folder for every job of the sweep")
        _refuse(f"hydra.sweep.subdir={subdir} {same}, which would write over each other's records: make it one "
                f"per job with ${{hydra.job.num}} in it (hydra.sweep.subdir={subdir}/${{hydra.job.num}}), or leave it out")


def _set_sweep_dir_of_jobs(config: DictConfig, folder: Path) -> None:
    """Hydra's launcher composes each job's config again, from `hydra.overrides.hydra` and the job's own
    overrides (not from this config), with `${now:...}` cached: a moved sweep's jobs would still write into
    the other sweep's folder unless the move is one of those overrides."""
    kept = [o for o in config.hydra.overrides.hydra if o.partition("=")[0].lstrip("+~") != "hydra.sweep.dir"]
    config.hydra.overrides.hydra = [*kept, f"hydra.sweep.dir='{hydra_quoted(str(folder))}'"]


def _is_first_process() -> bool:
    return _get_rank() in (None, 0)


def _live_owner(claim: Path) -> str | None:
    """'process N on HOST' while the process that wrote `claim` runs; None for a dead one's (a run killed
    before it could remove its claim), one whose pid a later process has (this one included: a restarted
    container numbers its processes again) or a claim gone in the meantime. One this user may not read is taken for
    live: another user's run, whose folder is not this run's to take over."""
    try:
        host, pid, *started = claim.read_text().split()
        pid_number = int(pid)
    except PermissionError:
        return "another user's, whose claim this user cannot read"
    except OSError:
        return None
    except ValueError:  # empty: just created by a run about to write it (where there are no hard links)
        return "one claiming it at this moment" if _written_lately(claim) else None
    if host == socket.gethostname():
        if pid_number == os.getpid():
            return None  # not this run's (it releases its claim): an earlier process's, given the same pid
        try:
            os.kill(pid_number, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
        if started and _start_time(pid_number) not in (None, started[0]):
            return None  # the pid of a process started since
    return f"process {pid_number} on {host}"  # another host's (a shared file system) counts as alive


def _start_time(pid: int) -> str | None:
    """When process `pid` started, in clock ticks after boot (/proc/<pid>/stat's 22nd field, after the
    name in parentheses, which may hold spaces): a later process given the same pid has another. None
    without /proc (macOS)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _written_lately(path: Path, seconds: float = 5.0) -> bool:
    try:
        return abs(time.time() - path.stat().st_mtime) < seconds  # abs: a network file system's clock may lead
    except OSError:
        return False


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
