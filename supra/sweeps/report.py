"""The sweep report: one row per job of a multirun (finished or interrupted), best first.

Writes DIR/sweep_summary.csv and DIR/sweep_summary.md. Read from what the jobs left on disk, so it works on
a sweep that was stopped half-way: each job's .hydra/overrides.yaml and config.yaml, the job result
(sweep_job.json, written by supra.sweeps.callback.SweepJobRecorder; it also records the job's folder within the
sweep's, which tells one multirun's jobs nested in sub-folders from several multiruns' jobs), its metrics.csv
(csv/metrics.csv, or where its CSV logger's config says) for the best validation value and its step (the global
step of its checkpoint and pictures), and checkpoints/ (a test metric's is the tested checkpoint's).
Job configs are only read, never instantiated.
`python -m supra.sweep_report dir=DIR` rebuilds it by hand.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from supra.artifacts.checkpoints import checkpoint_step
from supra.artifacts.release_files import tested_checkpoint
from supra.utils.errors import SupraUserError
from supra.utils.files import absolute_path, atomic_paths, refuse_folders_in_the_way
from supra.utils.run_folders import is_single_run

JOB_RESULT = "sweep_job.json"
SUMMARY_CSV = "sweep_summary.csv"
SUMMARY_MD = "sweep_summary.md"


@dataclass
class JobRow:
    job: str
    status: str            # completed | failed | interrupted (no result: stopped, killed, or still running)
    overrides: str         # what this job changed beyond the overrides all jobs share
    metric: str
    direction: str         # maximize | minimize: how this job's metric is ranked
    best_value: float | None
    best_step: int | None  # the global step of the best value: its checkpoint's, and its pictures' (*_step_N.png)
    best_epoch: int | None
    final_value: float | None  # what the job returned to the sweeper (the metric at the end of training)
    wall_time_s: float | None
    checkpoint: str        # best.ckpt or last.ckpt if it holds the weights of best_step, else ""
    error: str = ""        # why a failed job failed


def load_yaml(path: Path) -> Any:
    """The file's content as plain data, or None if it is missing or was cut short (an interrupted job)."""
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return None


def job_text(path: Path, what: str) -> str | None:
    """The text of a job's file, None if it is not there; one line naming it if it is not text (damaged)."""
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except UnicodeDecodeError:
        raise damaged_job_file(path, what, "it is not UTF-8 text") from None


def job_object(path: Path, what: str, content: Any) -> dict[str, Any]:
    """`content` read from the job's file `path`, which holds an object ({} for None: missing or cut short); one
    line naming the file if it holds anything else (a list, a number: edited or damaged), not an AttributeError."""
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise damaged_job_file(path, what, f"it holds {type(content).__name__} {json.dumps(content, default=str)[:40]}")
    return content


def damaged_job_file(path: Path, what: str, why: str) -> SupraUserError:
    return SupraUserError(f"{path} is not {what} ({why}): move it away to report the job without it, or restore it")


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _direction(hydra_cfg: dict, job_cfg: dict, metric: str) -> str:
    """maximize | minimize: the Optuna sweeper's (the job's .hydra/hydra.yaml, or a grid's multirun.yaml),
    else the checkpoint callback's mode for this metric."""
    direction = ((hydra_cfg.get("hydra") or {}).get("sweeper") or {}).get("direction")
    if isinstance(direction, str) and direction in ("maximize", "minimize"):
        return direction
    ckpt = ((job_cfg.get("callbacks") or {}).get("model_checkpoint") or {})
    if ckpt.get("monitor") == metric and ckpt.get("mode") in ("max", "min"):
        return "maximize" if ckpt["mode"] == "max" else "minimize"
    return "minimize" if "loss" in metric else "maximize"


def metrics_csv(job_dir: Path, job_cfg: dict[str, Any]) -> Path:
    """Where the job's CSV logger wrote its metrics.csv: <save_dir>/<name>/<version>/ of its config's csv logger
    (logger.csv.name=curves: <job>/curves/metrics.csv), <job>/csv/metrics.csv (the default) without one."""
    node = next((node for node in _csv_loggers(job_cfg)), {"name": "csv", "version": ""})
    save_dir = str(node.get("save_dir") or "${paths.output_dir}")
    if "${" in save_dir:  # ${paths.output_dir}, the job's folder: Hydra's resolvers are not there to resolve it
        save_dir = save_dir.replace("${paths.output_dir}", str(job_dir))
    folder = job_dir if "${" in save_dir else _job_cwd(job_dir) / save_dir
    folder = folder / str(node.get("name") or "")
    version = node.get("version")
    if version is None:  # Lightning's next version_N: the job's run wrote the highest there is
        versions = [int(p.name[8:]) for p in folder.glob("version_*") if p.name[8:].isdigit()]
        version = max(versions) if versions else 0
    return folder / (version if isinstance(version, str) else f"version_{version}") / "metrics.csv"


def _job_cwd(job_dir: Path) -> Path:
    """The folder the job ran in, which a relative save_dir is relative to (.hydra/hydra.yaml's runtime.cwd)."""
    hydra_cfg = load_yaml(job_dir / ".hydra" / "hydra.yaml")
    cwd = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("cwd") if isinstance(hydra_cfg, dict) else None
    return Path(cwd) if isinstance(cwd, str) and cwd else Path.cwd()


def _best_logged(path: Path, metric: str, direction: str) -> tuple[float | None, int | None, int | None]:
    """(best value, its global step, its epoch) of `metric` in the job's metrics.csv (`path`).

    Lightning logs what is measured during a fit (a validation's metrics, a training batch's) at the
    count of optimizer steps before the batch it follows: one below the global step of the checkpoint
    written there (best.ckpt) and of the pictures drawn there (samples/val_step_N.png). The step reported
    is that global step, so that the three agree (a test's metrics, logged after the fit, are left as logged)."""
    after_a_batch = 0 if metric.startswith("test/") else 1
    text = job_text(path, "the curves a CSV logger writes") if metric else None
    if text is None:
        return None, None, None
    best: tuple[float, int | None, int | None] | None = None
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            value = _float(row.get(metric))
            if value is None:
                continue
            better = best is None or (value > best[0] if direction == "maximize" else value < best[0])
            if better:
                step, epoch = _float(row.get("step")), _float(row.get("epoch"))
                best = (value, None if step is None else int(step) + after_a_batch, None if epoch is None else int(epoch))
    except csv.Error as err:  # a NUL byte, a line cut inside a quote
        raise damaged_job_file(path, "the curves a CSV logger writes", str(err)) from None
    return best if best else (None, None, None)


def _checkpoint_steps(job_dir: Path) -> dict[str, int | None]:
    """The global step of each of the job's checkpoints/{best,last}.ckpt that exists (None: unreadable)."""
    paths = (job_dir / "checkpoints" / "best.ckpt", job_dir / "checkpoints" / "last.ckpt")
    return {str(path): checkpoint_step(path) for path in paths if path.is_file()}


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of the one multirun in `sweep_dir`, in the order they ran; a folder holding the jobs of
    several multiruns (dir=logs/train/multiruns) is refused: their rows would be ranked together as one sweep."""
    if (sweep_dir / ".hydra").is_dir():  # a run's own folder, or one job of a multirun
        raise SupraUserError(f"dir={sweep_dir} is one run (it holds .hydra/), not a multirun directory: give the "
                             "folder of its jobs (logs/train/multiruns/<date>)")
    dirs = [p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")]
    runs = sorted(d for d in dirs if is_single_run(d))
    if runs:  # runs side by side (logs/train/runs) are no sweep's jobs: finished, they were listed as interrupted
        raise SupraUserError(f"dir={sweep_dir} holds single runs, not a multirun's jobs ({runs[0].relative_to(sweep_dir)}"
                             "/.hydra/hydra.yaml: mode RUN): give a multirun directory (logs/train/multiruns/<date>, "
                             "logs/study/<date>)")
    roots = _multirun_folders(dirs)
    outside = sorted({root for root in roots.values() if not root.is_relative_to(sweep_dir)})
    if outside:
        raise SupraUserError(f"dir={sweep_dir} holds some of the jobs of the multirun in {outside[0]}: give "
                             f"dir={outside[0]}")
    folders = sorted({str(root.relative_to(sweep_dir)) + "/" for root in roots.values()})
    if len(folders) > 1:
        raise SupraUserError(f"dir={sweep_dir} holds the jobs of {len(folders)} multiruns ({', '.join(folders[:4])}"
                             f"{', ...' if len(folders) > 4 else ''}): give one of them as dir=")
    return sorted(dirs, key=lambda d: (len(d.parts), int(d.name) if d.name.isdigit() else 0, str(d)))


def _multirun_folders(dirs: list[Path]) -> dict[Path, Path]:
    """The folder of the multirun each job folder is one of: as many levels above it as the job's recorded
    subdir has (sweep_job.json's "subdir": hydra.sweep.subdir=lr${model.optimizer.lr}/${hydra.job.num} nests
    a sweep's jobs two deep). A job without that record (killed before it ended, or run by an older Supra) is
    one of the recorded multirun whose folder it lies in, else of its parent folder's (jobs side by side)."""
    roots: dict[Path, Path | None] = {}
    for job_dir in dirs:
        subdir = _job_result(job_dir / JOB_RESULT).get("subdir")
        depth = len(Path(subdir).parts) if isinstance(subdir, str) and subdir else 0
        roots[job_dir] = job_dir.parents[depth - 1] if 0 < depth <= len(job_dir.parents) else None
    recorded = sorted({root for root in roots.values() if root is not None}, key=lambda root: -len(root.parts))
    return {job_dir: root or next((r for r in recorded if job_dir.is_relative_to(r)), job_dir.parent)
            for job_dir, root in roots.items()}


def _job_result(path: Path) -> dict:
    """The job's sweep_job.json; {} if it is missing or cut short (the job is then reported as interrupted)."""
    try:
        result = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(result, dict):
        raise SupraUserError(f"{path} is not a job result (a JSON object, as the sweep writes it): delete it "
                             "to report the job as interrupted, or restore it")
    return result


def collect(sweep_dir: str | Path) -> tuple[list[JobRow], list[str], list[str]]:
    """The sweep's rows (best first, jobs without a value last), the overrides all jobs share, and notes on
    the rows (why a job's checkpoint is not named)."""
    # Absolute before anything is read: a job's relative paths are joined onto the folder it ran in, not this one;
    # `..` taken out, so the report's paths are the same however dir= was spelled
    sweep_dir = Path(absolute_path(sweep_dir))
    if not sweep_dir.is_dir():
        raise SupraUserError(f"{sweep_dir} is not a directory: give a multirun directory (logs/train/multiruns/<date>)")
    dirs = job_dirs(sweep_dir)
    if not dirs:
        raise SupraUserError(f"{sweep_dir} holds no job directories (<n>/.hydra/overrides.yaml): is it a multirun directory?")
    sweep_cfg = load_yaml(sweep_dir / "multirun.yaml") or {}
    overrides = {d: [str(o) for o in (load_yaml(d / ".hydra" / "overrides.yaml") or [])] for d in dirs}
    # a swept or searched key stays in each row, though one job ran or all drew one value
    swept = {key.lstrip("+~") for key, _ in planned_grid(sweep_cfg)} | optuna_searched_keys(sweep_dir, dirs[0])
    shared = [o for o in overrides[dirs[0]] if all(o in job for job in overrides.values())
              and o.partition("=")[0].lstrip("+~") not in swept]
    rows, notes = [], []
    for job_dir in dirs:
        row, job_notes = _job_row(job_dir, sweep_dir, sweep_cfg, overrides[job_dir], shared)
        rows.append(row)
        notes.extend(job_notes)
    rows = [r for group in _ranked(rows).values() for r in group]
    return rows, shared, notes


def planned_grid(sweep_cfg: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The swept keys of a grid sweep (Hydra's basic sweeper) as multirun.yaml records them, each with its
    values in the order Hydra runs them; [] for another sweeper (Optuna's trials have no fixed values) or where
    multirun.yaml is missing or unreadable. As in BasicSweeper.split_arguments, the command line's override of
    a key replaces its sweeper's param, in the param's place (study=nvis1 runs one job, not the 7 params'),
    and a single value there leaves the key unswept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = (sweep_cfg or {}).get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return []
    given = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    given += [str(o) for o in ((hydra_cfg.get("overrides") or {}).get("task") or [])]
    try:
        parsed = OverridesParser.create().parse_overrides(given)
    except Exception:  # a multirun.yaml edited by hand: the report goes on without the plan
        return []
    last_of_key = {o.get_key_element(): o for o in parsed}  # a dict keeps a key's first place, as Hydra's does
    return [(key, list(o.sweep_string_iterator())) for key, o in last_of_key.items() if o.is_sweep_override()]


def optuna_searched_keys(sweep_dir: Path, job_dir: Path) -> set[str]:
    """The keys an Optuna sweep searched: those of its best parameters (optimization_results.yaml, written as
    it ends), else, for a sweep stopped before, its search space's (a job's .hydra/hydra.yaml
    hydra.sweeper.params); none for another sweeper."""
    results = load_yaml(sweep_dir / "optimization_results.yaml")
    best_params = results.get("best_params") if isinstance(results, dict) else None
    if isinstance(best_params, dict) and best_params:
        return {str(key).lstrip("+~") for key in best_params}
    hydra_cfg = load_yaml(job_dir / ".hydra" / "hydra.yaml")
    sweeper = ((hydra_cfg.get("hydra") or {}).get("sweeper") or {}) if isinstance(hydra_cfg, dict) else {}
    params = sweeper.get("params") if isinstance(sweeper, dict) and "n_trials" in sweeper else None
    return {str(key).lstrip("+~") for key in params} if isinstance(params, dict) else set()


def never_started(sweep_cfg: dict[str, Any], jobs: list[str]) -> tuple[int, list[str]]:
    """How many jobs the grid sweep planned (0 where that is not known), and `<n>: <its swept values>` for each
    planned job with no folder among `jobs` (numbered as Hydra numbers them: the product of the values)."""
    grid = planned_grid(sweep_cfg)
    if not grid:
        return 0, []
    combos = list(itertools.product(*[[f"{key}={value}" for value in values] for key, values in grid]))
    return len(combos), [f"job {n}: `{' '.join(c)}`" for n, c in enumerate(combos) if str(n) not in jobs]


def planned_trials(sweep_dir: Path, rows: list[JobRow]) -> int:
    """How many trials the Optuna sweep planned: hydra.sweeper.n_trials of a job's .hydra/hydra.yaml (the sweeper
    writes no multirun.yaml); 0 for another sweeper, or where that is not known (a GridSampler runs fewer when
    its grid is smaller)."""
    hydra_cfg = load_yaml(sweep_dir / rows[0].job / ".hydra" / "hydra.yaml") if rows else None
    sweeper = ((hydra_cfg.get("hydra") or {}).get("sweeper") or {}) if isinstance(hydra_cfg, dict) else {}
    sampler = sweeper.get("sampler") or {}
    if isinstance(sampler, dict) and str(sampler.get("_target_", "")).endswith("GridSampler"):
        return 0
    n_trials = sweeper.get("n_trials")
    return n_trials if type(n_trials) is int and n_trials > 0 else 0  # not a bool, nor an unresolved ${...}


def _job_row(job_dir: Path, sweep_dir: Path, sweep_cfg: dict[str, Any], overrides: list[str],
             shared: list[str]) -> tuple[JobRow, list[str]]:
    """One job's row, read from its folder, and the notes on it (why its checkpoint or best value is not named)."""
    job = str(job_dir.relative_to(sweep_dir))
    job_cfg = job_object(job_dir / ".hydra" / "config.yaml", "a job's config (a YAML mapping, as Hydra writes it)",
                         load_yaml(job_dir / ".hydra" / "config.yaml"))
    result = _job_result(job_dir / JOB_RESULT)
    ckpt_cfg = (job_cfg.get("callbacks") or {}).get("model_checkpoint") or {}
    metric = result.get("metric") or job_cfg.get("optimized_metric") or ckpt_cfg.get("monitor") or ""
    direction = _direction(load_yaml(job_dir / ".hydra" / "hydra.yaml") or sweep_cfg, job_cfg, metric)
    curves = metrics_csv(job_dir, job_cfg)
    diverged = result.get("status") == "failed" and str(result.get("error") or "").startswith("diverged:")
    # a diverged job's best is no result (its val/CIDEr 0.0 from NaN weights): its curves stay in its metrics.csv
    best_value, best_step, best_epoch = (None, None, None) if diverged else _best_logged(curves, metric, direction)
    ckpt_steps = _checkpoint_steps(job_dir)
    checkpoint, best_step = _best_checkpoint(job_dir, ckpt_cfg, ckpt_steps, metric, direction, best_value, best_step,
                                             diverged)
    notes: list[str] = []
    if best_step is not None and ckpt_steps and not checkpoint:
        notes.append(_no_best_checkpoint_note(job, metric, best_step, ckpt_cfg, ckpt_steps))
    final_value = _float(result.get("return_value"))
    if best_value is None and (final_value is not None or result.get("status") == "completed"):
        notes.append(_unknown_best_note(job, job_dir, job_cfg, curves, metric, final_value))
    row = JobRow(
        job=job, status=result.get("status", "interrupted"),
        overrides=" ".join(o for o in overrides if o not in shared), metric=metric, direction=direction,
        best_value=best_value, best_step=best_step, best_epoch=best_epoch, final_value=final_value,
        wall_time_s=_float(result.get("wall_time_s")), checkpoint=checkpoint, error=str(result.get("error") or ""),
    )
    return row, notes


def _best_checkpoint(job_dir: Path, ckpt_cfg: dict[str, Any], ckpt_steps: dict[str, int | None], metric: str,
                     direction: str, best_value: float | None, best_step: int | None,
                     diverged: bool) -> tuple[str, int | None]:
    """The checkpoint that holds the weights of the job's best `metric` ("" when none does), and the step shown
    for it. The rule, later lines overriding earlier ones:
    - the checkpoint saved at the best value's global step (read from the file, not assumed from the config:
      best.ckpt is the best of the checkpoint callback's monitor, which need not be this metric nor have its
      direction);
    - for a test metric, the tested checkpoint and its step: a test's scores are logged at the fit's last step,
      whichever checkpoint it scored (best.ckpt, or last.ckpt when the run kept no best);
    - with no step to check by (no metrics.csv), best.ckpt when the config's monitor and mode are this metric's;
    - none for a diverged job: its checkpoints may hold NaN weights (its val/CIDEr 0.0 at every step)."""
    checkpoint = next((path for path, step in ckpt_steps.items() if best_step is not None and step == best_step), "")
    tested = tested_checkpoint(job_dir)
    if metric.startswith("test/") and best_value is not None and tested:
        checkpoint, best_step = str(tested), ckpt_steps[str(tested)]
    best_ckpt = job_dir / "checkpoints" / "best.ckpt"
    keeps_this_best = ckpt_cfg.get("monitor") == metric and ckpt_cfg.get("mode") == direction[:3]  # max | min
    if best_step is None and keeps_this_best and best_ckpt.is_file():
        checkpoint = str(best_ckpt)
    if diverged:
        checkpoint = ""
    return checkpoint, best_step


def _no_best_checkpoint_note(job: str, metric: str, best_step: int, ckpt_cfg: dict[str, Any],
                             ckpt_steps: dict[str, int | None]) -> str:
    """Why a job's row names no checkpoint: none was saved at its best step; which ones it has, at which steps."""
    monitor = ckpt_cfg.get("monitor")
    held = ", ".join(f"{Path(path).name} ("
                     + (f"the best {monitor}, " if monitor and path.endswith("best.ckpt") else "")
                     + (f"step {step})" if step is not None else "unreadable)") for path, step in ckpt_steps.items())
    return f"job {job}: no checkpoint holds the weights of its best {metric} (step {best_step}); it has {held}"


def _unknown_best_note(job: str, job_dir: Path, job_cfg: dict[str, Any], curves: Path, metric: str,
                       final_value: float | None) -> str:
    """Why a job that finished has no best value: what its metrics.csv lacks, or that it wrote none."""
    # Said rather than read from TensorBoard's event files (or W&B's): one reader, metrics.csv's, for
    # every logger; and the csv logger is the default. The job is ranked by what it returned.
    shown = curves.relative_to(job_dir) if curves.is_relative_to(job_dir) else curves
    why = (f"its {shown} has no {metric}" if curves.is_file() else
           "it logged no metric (a run this short may log none)" if _logs_csv(job_cfg) else
           "it logged no csv/metrics.csv (add logger=many or the csv logger)")
    return (f"job {job}: its best {metric} and its step are unknown: {why}"
            + ("; it is ranked by its final value" if final_value is not None else ""))


def _csv_loggers(job_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The CSV loggers of the job's config."""
    loggers = job_cfg.get("logger") or {}
    return [node for node in loggers.values() if isinstance(node, dict)
            and str(node.get("_target_", "")).rpartition(".")[2].startswith("CSVLogger")] if isinstance(loggers, dict) else []


def _logs_csv(job_cfg: dict[str, Any]) -> bool:
    """Whether the job's config has a CSV logger: its metrics.csv is written at the first metric logged, so a
    job that logged none (a few steps, no validation) has none to read."""
    return bool(_csv_loggers(job_cfg))


def _ranking_value(row: JobRow) -> float | None:
    """The best value, else (no metrics.csv, said in a note) the final one; none for a failed job, ranked after
    those that completed (a diverged one's val/CIDEr 0.0, or its early val/loss, is no result)."""
    if row.status == "failed":
        return None
    return row.best_value if row.best_value is not None else row.final_value


# Where each status ranks: an interrupted job's best is of a run cut short, which never returned a value to the
# sweeper (Optuna's study has no value for its trial), so it comes after the jobs that finished, failed ones last
_STATUS_RANK = {"completed": 0, "interrupted": 1}


def _ranked(rows: list[JobRow]) -> dict[tuple[str, str], list[JobRow]]:
    """The rows of each (metric, direction): completed jobs best first, then interrupted ones (best first), jobs
    without a value last. Jobs that optimise different metrics (optimized_metric=val/loss,val/Bleu_1) have values
    that do not compare: each metric is ranked on its own, in the order its first job ran."""
    groups: dict[tuple[str, str], list[JobRow]] = {}
    for row in rows:
        groups.setdefault((row.metric, row.direction), []).append(row)
    for (_, direction), group in groups.items():
        sign = -1.0 if direction == "maximize" else 1.0
        group.sort(key=lambda r: (_ranking_value(r) is None, _STATUS_RANK.get(r.status, 2),
                                  sign * (_ranking_value(r) or 0.0)))
    return groups


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def job_count(n: int) -> str:
    """"1 job", "3 jobs"."""
    return f"{n} job" if n == 1 else f"{n} jobs"


def _table(out: io.StringIO, rows: list[JobRow]) -> None:
    metric = rows[0].metric
    names = ["job", "status", "overrides", f"best {metric}", "step", "epoch", "final", "wall time (s)", "checkpoint"]
    out.write("\n| " + " | ".join(names) + " |\n|" + "---|" * len(names) + "\n")
    for r in rows:
        cells = [r.job, r.status, f"`{r.overrides}`" if r.overrides else "", r.best_value, r.best_step, r.best_epoch,
                 r.final_value, None if r.wall_time_s is None else round(r.wall_time_s, 1), r.checkpoint]
        out.write("| " + " | ".join(_cell(c) for c in cells) + " |\n")


def _optuna_best_trial(sweep_dir: Path, rows: list[JobRow], optuna: dict) -> str:
    """Which trial Optuna's best (optimization_results.yaml) is: the study's best, which for a study kept in
    hydra.sweeper.storage and resumed may be an earlier session's, in another folder, and none of this sweep's
    jobs. Its number: the job's for a study in memory (this sweep's alone: its trial N is job N), else that of the
    stored study's trial of those parameters and value, where the study file can be read."""
    params = optuna.get("best_params") or {}
    if not params:  # several objectives: a Pareto front, no best trial
        return ""
    wanted = {f"{key}={value}" for key, value in params.items()}  # as the sweeper gave them to the job
    job = next((r.job for r in rows if wanted <= {str(o) for o in load_yaml(
        sweep_dir / r.job / ".hydra" / "overrides.yaml") or []}), None)
    hydra_cfg = (load_yaml(sweep_dir / (job or rows[0].job) / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    storage = sweeper.get("storage")
    if storage:
        number = _stored_trial_number(str(storage), str(sweeper.get("study_name")), params, optuna.get("best_value"),
                                      str((hydra_cfg.get("runtime") or {}).get("cwd") or "."))
        kept = f"the study {sweeper.get('study_name')} kept in {storage}"
    else:
        number, kept = (hydra_cfg.get("job") or {}).get("num") if job else None, "the study"
    trial = f"trial {number}" if isinstance(number, int) else "a trial"
    if job:
        return f"The best trial of {kept} is {trial}: job {job} of this sweep.\n\n"
    if storage:
        return (f"The best trial of {kept} is {trial} from an earlier session (its job is in another folder): "
                "none of this sweep's jobs.\n\n")
    return f"The best trial of {kept} is {trial}: none of this folder's jobs.\n\n"


def _stored_trial_number(storage: str, name: str, params: dict, value: Any, cwd: str) -> int | None:
    """The number of the trial of `params` and `value` in the SQLite study, or None (another database, a file
    that is not there: none is made, one Optuna cannot read)."""
    path = Path(storage.removeprefix("sqlite:///").partition("?")[0])
    if not storage.startswith("sqlite:///") or "${" in storage or not (Path(cwd) / path).is_file():
        return None
    try:
        import optuna

        study = optuna.load_study(study_name=name, storage=f"sqlite:///{Path(cwd) / path}")
        return next((t.number for t in study.trials if t.params == params and t.value == _float(value)), None)
    except Exception:  # locked, of another Optuna, not a study: the report goes on without the number
        return None


def _markdown(rows: list[JobRow], shared: list[str], notes: list[str], optuna: dict | None,
              best_trial: str = "", planned: int = 0, missing: list[str] | None = None, trials: int = 0) -> str:
    groups = _ranked(rows)
    out = io.StringIO()
    out.write("# Sweep summary\n\n")
    ran = job_count(len(rows))
    if missing:  # a sweep stopped before all its jobs ran
        ran = f"{len(rows)} of {planned} jobs ran ({', '.join(missing)} never started)"
    if trials:  # an Optuna sweep's n_trials: fewer ran where it stopped early (Ctrl-C, too many failed)
        ran = f"{len(rows)} of {trials} trials ran"
    if len(groups) == 1:
        (metric, direction), = groups
        out.write(f"{ran}, sorted by best {metric or 'metric'} ({direction}).\n")
    else:
        out.write(f"{ran} optimising {len(groups)} metrics: each ranked on its own.\n")
    if shared:
        out.write(f"All jobs: `{' '.join(shared)}`\n")
    for (metric, direction), group in groups.items():
        if len(groups) > 1:
            out.write(f"\n## {metric or 'no metric'} ({direction})\n\n{job_count(len(group))}, sorted by best "
                      f"{metric or 'metric'} ({direction}).\n")
        _table(out, group)
    if notes:
        out.write("\n## Notes\n\n" + "".join(f"- {note}\n" for note in notes))
    interrupted = [r for r in rows if r.status == "interrupted"]
    if interrupted:
        out.write("\n## Interrupted jobs\n\nStopped before they ended (or still running): their values are of a run "
                  "cut short, never returned to the sweeper, so they rank after the jobs that finished.\n\n")
        for r in interrupted:
            out.write(f"- {r.job}" + (f" (`{r.overrides}`)" if r.overrides else "") + "\n")
    failed = [r for r in rows if r.error]
    if failed:
        out.write("\n## Failed jobs\n\n")
        for r in failed:
            out.write(f"- {r.job}" + (f" (`{r.overrides}`)" if r.overrides else "") + f": {r.error}\n")
    if optuna:
        out.write(f"\n## Optuna\n\n{best_trial}best value: {_cell(_float(optuna.get('best_value')))}\n\n"
                  "best parameters:\n\n")
        for key, value in (optuna.get("best_params") or {}).items():
            out.write(f"- `{key}={value}`\n")
    elif trials:  # an Optuna sweep stopped (Ctrl-C, SIGTERM, killed) before its sweeper wrote its best
        out.write("\n## Optuna\n\nNo optimization_results.yaml: the sweep stopped before Optuna wrote its best "
                  "trial. Optuna was told the final values of the completed jobs alone (the `final` column).\n")
    return out.getvalue()


def write_report(sweep_dir: str | Path) -> list[JobRow]:
    """Write sweep_summary.csv and sweep_summary.md into `sweep_dir`; returns the rows, best first (grouped
    by metric where jobs optimise different ones)."""
    sweep_dir = Path(absolute_path(sweep_dir))
    rows, shared, notes = collect(sweep_dir)
    planned, missing = never_started(load_yaml(sweep_dir / "multirun.yaml") or {}, [r.job for r in rows])
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=[f.name for f in fields(JobRow)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    optuna = load_yaml(sweep_dir / "optimization_results.yaml")
    best_trial = _optuna_best_trial(sweep_dir, rows, optuna) if isinstance(optuna, dict) else ""
    trials = planned_trials(sweep_dir, rows)
    summary = _markdown(rows, shared, notes, optuna, best_trial, planned, missing, trials)
    refuse_folders_in_the_way(sweep_dir, [SUMMARY_CSV, SUMMARY_MD], "dir", "move the folder away")
    # the two describe one sweep: replaced together, never a new csv beside an earlier md
    with atomic_paths(sweep_dir / SUMMARY_CSV, sweep_dir / SUMMARY_MD) as (csv_temp, md_temp):
        csv_temp.write_text(table.getvalue(), encoding="utf-8")
        md_temp.write_text(summary, encoding="utf-8")
    return rows
