"""The roadmap study's report (experiment=vlm_study): one row per architecture trained on the same data,
steps and seed, as a table (study.md, study.csv) and a plot (study.png).

Read from what the jobs left on disk: the `study=<variant>` override, metrics.json (test scores, decoding),
time_accounting.json (training and test step time, and the machine they were measured on) and the run config
(model, batch size); the command from the sweep's multirun.yaml. Written by
`StudyReport` when the multirun ends; `python -m supra.study_report dir=SWEEP_DIR` rebuilds it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import shlex
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from supra.artifacts.captioner_release import build_captioner, describe_architecture
from supra.sweeps.report import damaged_job_file, job_dirs, job_object, job_text, load_yaml
from supra.utils.errors import SupraUserError
from supra.utils.files import atomic_paths, refuse_folders_in_the_way, require_writable_dir
from supra.utils.numbers import counted, is_number
from supra.utils.overrides import compose_conf

if TYPE_CHECKING:  # matplotlib is imported where the plot is drawn: a study without one never loads it
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SCORES = ("CIDEr", "Bleu_4", "attr_acc", "relation_acc")
ACCURACIES = ["attr_acc", "relation_acc"]  # the plot's panel on the scale 0..1
LABEL_ROOM = 0.15  # beyond each panel's largest bar, a fraction of it, for the plot's value labels
RECIPE = "python train.py experiment=vlm_study"  # the documented study: docs/study.md's


@dataclass
class StudyRow:
    variant: str
    architecture: str
    params: int
    trainable_params: int
    CIDEr: float | None
    Bleu_4: float | None
    attr_acc: float | None
    relation_acc: float | None
    train_samples_per_s: float | None  # training steps only (forward, backward, optimizer)
    caption_images_per_s: float | None  # test steps: beam search (and the loss pass) per test image
    train_steps: int | None
    # which machine the speeds were measured on, as the job's time_accounting.json names it (None: a run that
    # named none): rows of one table may come from studies run apart (merged by variant), so each keeps its
    # own (study.csv only; study.md says it above the table)
    measured_on: str | None = None
    # how its test captions were made, from the job's metrics.json decode_settings (None: a run that recorded
    # none), kept per row for the same reason (study.csv only; study.md says it above the table)
    decoding: str | None = None


METRICS = "a test's scores (a JSON object, as the run writes them)"


def _scores(path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """The job's metrics.json, its scores (and n_images) each a number or null, as a run writes them; one line
    naming the file and the key otherwise: "n/a" would go into study.csv and stop the plot half-way."""
    for key in (*SCORES, "n_images"):
        value = metrics.get(key)
        if value is not None and not is_number(value):
            raise damaged_job_file(path, METRICS, f"its {key} is {json.dumps(value)[:40]}, not a number")
    return metrics


TIMES = "a run's step times (a JSON object, as the run writes them)"
TIMES_READ = {"seconds": ("train_steps", "test_steps"), "counts": ("train_steps",)}  # what the speeds are made of


def _times(path: Path, times: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's time_accounting.json as (seconds, counts), each an object whose entries the speeds read are a
    number or null, as a run writes them; one line naming the file and the key otherwise, as _scores does: "2 s"
    stopped the report in the middle of the speeds' division."""
    parts = []
    for part, keys in TIMES_READ.items():
        entries = {} if times.get(part) is None else times[part]
        if not isinstance(entries, dict):
            raise damaged_job_file(path, TIMES, f"its {part} is {json.dumps(entries)[:40]}, not an object")
        for key in keys:
            value = entries.get(key)
            if value is not None and not is_number(value):
                raise damaged_job_file(path, TIMES, f"its {part}.{key} is {json.dumps(value)[:40]}, not a number")
        parts.append(entries)
    return parts[0], parts[1]


CONFIG = "a job's config (a YAML mapping, as Hydra writes it)"


def _batch_size(path: Path, config: dict[str, Any]) -> Any:
    """The job's data.batch_size, a number or null, as Hydra writes it; one line naming the file and the key
    otherwise, as _times does: "16x" stopped the report in the middle of the speeds' division."""
    data = config.get("data")
    if not isinstance(data, dict):  # a hand-edited file: a KeyError named only "data"
        raise damaged_job_file(path, CONFIG, "it has no data: section")
    batch = data.get("batch_size")
    if batch is not None and not is_number(batch):
        raise damaged_job_file(path, CONFIG, f"its data.batch_size is {json.dumps(batch)[:40]}, not a number")
    return batch


def _json(path: Path, what: str) -> dict[str, Any]:
    """The object in the job's JSON file; {} if it is missing or cut short (a job still running or stopped), one
    line naming the file if it holds anything else."""
    try:
        content = json.loads(job_text(path, what) or "null")
    except json.JSONDecodeError:
        return {}
    return job_object(path, what, content)


def _variant(job_dir: Path) -> str:
    """The job's study=<variant>; a job without one is refused, as _require_captioner refuses another model's: a
    table of its job numbers as variants would read as the study's."""
    overrides = [str(o) for o in (load_yaml(job_dir / ".hydra" / "overrides.yaml") or [])]
    variant = next((o.split("=", 1)[1] for o in overrides if o.startswith(("study=", "+study="))), None)
    if variant is None:
        raise SupraUserError(f"job {job_dir} has no study= override: study_report reads the jobs of a study's sweep "
                             f"({RECIPE}, or python train.py -m study=release,nvis1 ...); give that sweep as dir=")
    return variant


CAPTIONER = "supra.models.vlm_nano.VLMNano"  # the model.net of every study variant


def _require_captioner(job_dir: Path, config: dict[str, Any]) -> None:
    """Refused rather than skipped: a job of another model means dir= is not a study's sweep, and a table
    that quietly left jobs out would misreport what the folder holds."""
    target = (config.get("model") or {}).get("net", {}).get("_target_")
    if target != CAPTIONER:
        raise SupraUserError(f"job {job_dir} is not a captioner run (model.net is {target}): study_report reads the "
                             "jobs of a captioner study (python train.py experiment=vlm_study); give that sweep as dir=")


def study_row(job_dir: Path) -> StudyRow | None:
    """The job's row, or None while it has no test metrics (failed, interrupted or still running)."""
    metrics = _scores(job_dir / "metrics.json", _json(job_dir / "metrics.json", METRICS))
    times = _json(job_dir / "time_accounting.json", TIMES)
    seconds, counts = _times(job_dir / "time_accounting.json", times)
    config = job_object(job_dir / ".hydra" / "config.yaml", CONFIG, load_yaml(job_dir / ".hydra" / "config.yaml"))
    if config:
        _require_captioner(job_dir, config)
    if not metrics or not config:
        return None
    net = build_captioner(config["model"]["net"])
    batch = _batch_size(job_dir / ".hydra" / "config.yaml", config)
    train_s, test_s = seconds.get("train_steps"), seconds.get("test_steps")
    machine = times.get("machine")  # the job's own: the machine building the report may be another
    return StudyRow(
        variant=_variant(job_dir), architecture=describe_architecture(net.config),
        params=net.get_num_params(), trainable_params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        **{name: metrics.get(name) for name in SCORES},
        train_samples_per_s=counts.get("train_steps", 0) * batch / train_s if train_s and batch else None,
        caption_images_per_s=metrics.get("n_images", 0) / test_s if test_s else None,
        train_steps=counts.get("train_steps"),
        measured_on=machine if isinstance(machine, str) and machine else None,
        decoding=decoding(metrics.get("decode_settings")),
    )


def decoding(settings: Any) -> str | None:
    """A job's decode_settings (metrics.json: DecodeConfig.settings_used) in words, "beam search, width 3";
    None where it recorded none."""
    if not isinstance(settings, dict) or not settings.get("strategy"):
        return None
    strategy = settings["strategy"]
    if strategy == "beam":
        words = [f"beam search, width {settings.get('beam_width')}"]
        if settings.get("length_penalty"):  # 0, the recipe's, ranks beams by score: said only when it is not
            words.append(f"length penalty {settings['length_penalty']}")
    elif strategy == "sample":
        words = [f"sampling, temperature {settings.get('temperature')}"]
        words += [f"{key} {settings[key]}" for key in ("top_k", "top_p", "seed") if settings.get(key) is not None]
    else:
        words = [str(strategy)]
    if settings.get("max_new_tokens") is not None:
        words.append(f"at most {settings['max_new_tokens']} new tokens")
    return ", ".join(words)


def no_results(job_dir: Path) -> str:
    """What the folder of a job without a row holds of its results, as study.md names it: a metrics.json that is
    there but cut short (a test stopped while writing it) is not one that was never written."""
    metrics = job_dir / "metrics.json"
    if not metrics.is_file():
        return "no metrics.json"
    if not (job_dir / ".hydra" / "config.yaml").is_file():
        return "no .hydra/config.yaml"
    text = metrics.read_text(encoding="utf-8").strip()  # UTF-8: study_row has read it
    if not text:
        return "an empty metrics.json"
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return "metrics.json cut short"
    return "a metrics.json of no scores"  # {}: the object, empty


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# machines and decodings: one line above the table
TABLE_COLUMNS = [f.name for f in fields(StudyRow) if f.name not in ("measured_on", "decoding")]
# what study.md says of a row whose run named no machine (one from before runs recorded it): not this machine's
NOT_RECORDED = "an unknown machine (its run recorded none)"
NO_DECODING = "decoding not recorded"  # a row whose run's metrics.json has no decode_settings


def _by_row(values: list[tuple[str, str]], joined: str = "{value} ({variants})") -> str:
    """"X" when every (variant, value) has value X; else each value with its variants, "X (release, nvis1); Y (vit)"."""
    variants: dict[str, list[str]] = {}
    for variant, value in values:
        variants.setdefault(value, []).append(variant)
    if len(variants) == 1:
        return next(iter(variants))
    return "; ".join(joined.format(value=value, variants=", ".join(names)) for value, names in variants.items())


def _machines(rows: list[StudyRow]) -> str:
    return _by_row([(r.variant, r.measured_on or NOT_RECORDED) for r in rows])


def _decodings(rows: list[StudyRow]) -> str:
    """The decoding of every row, or each with its variants where they differ: the scores then do not compare."""
    return _by_row([(r.variant, r.decoding or NO_DECODING) for r in rows], "{value}: {variants}")


def markdown(rows: list[StudyRow], command: str, changed: list[str] | None = None,
             kept: list[str] | None = None, missing: list[str] | None = None) -> str:
    """The table; `kept`: the variants whose rows come from the table that was there before (merged);
    `missing`: the variants of the sweep whose jobs have no test results (so no row of this study), each with
    what its folder holds of them (`no_results`)."""
    lines = ["# The roadmap study", "",
             f"Every architecture trained on the same data, steps and seed: `{command}`", ""]
    if changed:  # a quick try written where the documented study goes must not pass for it
        lines += [f"{NOT_DOCUMENTED} (`{RECIPE}`): other settings ({' '.join(changed)}).", ""]
    if kept:
        ran = [r.variant for r in rows if r.variant not in kept]
        lines += [f"Rows run by the latest study: {', '.join(ran)}; kept from the table before it: {', '.join(kept)}.",
                  ""]
    if missing:  # a study stopped half-way: a variant left out silently would read as never studied
        lines += [f"No test results (failed, interrupted or still running): {', '.join(missing)}.", ""]
    lines += [f"Measured on: {_machines(rows)}. Scores are the test split's ({_decodings(rows)}). Speeds are "
              "steps only, from each run's time_accounting.json: every run measures itself, so on a shared machine "
              "they carry its noise (compare one architecture's speed before and after a change with benchmarks/).",
              "", "![study](study.png)", "",
              "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(_cell(getattr(r, n)) for n in TABLE_COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[StudyRow]) -> bytes:
    """The PNG of three panels: caption scores, position/attribute accuracy, and speed, one bar per variant."""
    import matplotlib.pyplot as plt

    fig = study_figure(rows)
    png = io.BytesIO()
    try:
        fig.savefig(png, dpi=110, format="png")
    finally:
        plt.close(fig)
    return png.getvalue()


def study_figure(rows: list[StudyRow]) -> Figure:
    """The plot's figure (matplotlib's, off screen); every axis starts at 0 (a study scoring 0 ran -0.06..0.06),
    and the accuracies' axis spans 0..1 whatever they are, so that plots of two studies compare."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = [r.variant for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(rows) + 1.6), sharey=True)
    panels = [("CIDEr", ["CIDEr"]), ("accuracy", ACCURACIES),
              ("per second (training samples, captioned images)", ["train_samples_per_s", "caption_images_per_s"])]
    for ax, (title, keys) in zip(axes, panels, strict=True):
        height = 0.8 / len(keys)
        for k, key in enumerate(keys):
            values = [getattr(r, key) or 0.0 for r in rows]
            bars = ax.barh([i - 0.4 + (k + 0.5) * height for i in range(len(rows))], values, height=height, label=key)
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
        ax.set_title(title, fontsize=10)
        ax.margins(x=LABEL_ROOM)  # room for the value labels
        ax.set_xlim(left=0)
        if keys == ACCURACIES:  # the whole scale, as any study's: auto-scaled, accuracies of 0 ran 0..0.06
            ax.set_xlim(right=1 + LABEL_ROOM)
    axes[0].set_yticks(range(len(rows)), names)
    axes[0].invert_yaxis()
    for ax, (_, keys) in zip(axes, panels, strict=True):
        if len(keys) > 1:
            _legend_under_numbers(fig, ax, len(keys))
    fig.tight_layout()
    return fig


def _legend_under_numbers(fig: Figure, ax: Axes, columns: int) -> None:
    """The axis's legend under its numbers, placed in points below them: at a fraction of the axes' height
    (as it was) it rode over them when few variants made the axes short."""
    from matplotlib.transforms import offset_copy

    renderer = fig.canvas.get_renderer()
    below_numbers_pt = (ax.get_window_extent(renderer).y0 - ax.xaxis.get_tightbbox(renderer).y0) * 72 / fig.dpi
    under = offset_copy(ax.transAxes, fig=fig, y=-below_numbers_pt - 2, units="points")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=under, ncol=columns,
              frameon=False)


NOT_DOCUMENTED = "Not the documented study"  # study.md's mark of a table of other settings


def _read_rows(csv_path: Path) -> list[StudyRow]:
    """The rows of a study.csv write_study wrote (empty cells None); one line naming the file if it is not one."""
    types = {f.name: f.type for f in fields(StudyRow)}
    try:
        with csv_path.open(newline="") as file:
            records = list(csv.DictReader(file))
        rows = []
        for record in records:
            values: dict[str, Any] = {}
            for name, text in record.items():
                if name not in types or text is None:
                    raise ValueError(f"column {name!r} is not one of study.csv's")
                kind = types[name]
                values[name] = None if text == "" else int(text) if kind.startswith("int") else (
                    float(text) if kind.startswith("float") else text)
            rows.append(StudyRow(**values))
    except (OSError, ValueError, TypeError) as err:
        raise SupraUserError(f"{csv_path}: cannot read the study table there ({err}); the documented study's rows "
                             "are merged into it by variant: move it away to write a new table") from None
    return rows


def documented_rows(rows: list[StudyRow], out_dir: Path) -> tuple[list[StudyRow], list[str]]:
    """A documented study's rows merged by variant into the documented table already in out_dir: a study of
    some variants (study=release, or study=pretrained to add a tower's row) replaces their rows and
    keeps the others', rather than leaving a table of one row. A table there of other settings (its study.md
    says so) or none is replaced. Returns the rows and the variants kept from before."""
    table, md = out_dir / "study.csv", out_dir / "study.md"
    if not table.is_file() or not md.is_file() or NOT_DOCUMENTED in md.read_text():
        return rows, []
    ran = {r.variant: r for r in rows}
    before = _read_rows(table)
    kept = [r.variant for r in before if r.variant not in ran]
    merged = [ran.pop(r.variant, r) for r in before]  # the table's order; new variants after it
    return merged + list(ran.values()), kept


OUTPUTS = ("study.csv", "study.md", "study.png")


def write_study(sweep_dir: str | Path, out_dir: str | Path, command: str = RECIPE,
                changed: list[str] | None = None) -> list[StudyRow]:
    """study.md, study.csv and study.png of the sweep's finished jobs into out_dir, the three together (all
    made first, then renamed in as one: atomic_paths), so that a failure leaves the earlier three as they were.
    `command`: the study's command line; `changed`: what in it makes it another study than the documented one.
    The documented study's rows are merged by variant into a documented table already in out_dir
    (`documented_rows`); another study's replace what is there. Returns the rows written."""
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    if not sweep_dir.is_dir():
        raise SupraUserError(f"dir={sweep_dir} is not a directory: give the study's multirun directory "
                             "(logs/study/<date>)")
    jobs = [(d, study_row(d)) for d in job_dirs(sweep_dir)]
    rows = [row for _, row in jobs if row is not None]
    missing = [f"{_variant(d)} ({no_results(d)})" for d, row in jobs if row is None]
    if not rows:
        raise SupraUserError(f"{sweep_dir} holds no finished study job (<n>/metrics.json): nothing to report")
    require_writable_dir(out_dir, f"out={out_dir}")
    md = out_dir / "study.md"
    if changed and (out_dir / "study.csv").is_file() and md.is_file() and NOT_DOCUMENTED not in md.read_text():
        # its rows (of other steps or data) merged into the documented table would be read as the study's
        raise SupraUserError(f"out={out_dir} holds the documented study's table, which a study run with "
                             f"{' '.join(changed)} would replace: choose another out=DIR (or leave it out: dir=)")
    rows, kept = (rows, []) if changed else documented_rows(rows, out_dir)
    refuse_folders_in_the_way(out_dir, OUTPUTS)
    outputs = {"study.csv": _csv(rows).encode(), "study.md": markdown(rows, command, changed, kept, missing).encode(),
               "study.png": plot(rows)}
    with atomic_paths(*(out_dir / name for name in outputs)) as temps:
        for temp, content in zip(temps, outputs.values(), strict=True):
            temp.write_bytes(content)
    return rows


def _csv(rows: list[StudyRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(StudyRow)])
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return buffer.getvalue()


# What a study run may set and still be the study docs/ shows: which variants, a pretrained tower's weights
STUDY_CHOICES = ("experiment", "study", "model.net.pretrained.weights")

# Settings that cannot change a result, so a run with them is still the documented study (a key, or anything
# under it; a group's choice: paths=kaggle): where files and caches go, and what is shown or logged while it
# runs. Not data.num_workers (the worker count changes the shuffle from the second epoch on, so the weights:
# README, "What else a run depends on"), nor any key not known to leave every weight and score as they are
# (data.eval_batch_size, callbacks.caption_grid, which generates during validation): a key joins only once that
# is known. A harmful key given the recipe's own value (seed=0) still counts: only the key is read.
HARMLESS_SETTINGS = (
    # where the runs' folders, logs and caches go (caches are keyed by their content): the study's shapes are
    # drawn in memory, so paths.data_dir is read by no file of it (another data= is a change of its own)
    "paths", "hydra.sweep.dir", "data.cache_dir",
    "data.show_progress", "callbacks.progress_bar", "callbacks.model_summary",  # what is printed
    "callbacks.lr_monitor", "logger", "tags",  # what is logged, and where (the table reads metrics.json)
)


def _harmless(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in HARMLESS_SETTINGS)


def other_settings(overrides: list[str]) -> list[str]:
    """The command-line overrides that make a study run another study than the documented one (fewer steps,
    other data...): any but STUDY_CHOICES and the HARMLESS_SETTINGS."""
    keys = [(o, o.split("=", 1)[0].lstrip("+~")) for o in overrides]
    return [o for o, key in keys if key not in STUDY_CHOICES and not _harmless(key)]


def study_command(overrides: list[str]) -> tuple[str, list[str]]:
    """The command line of a study with these (sweep) overrides, and what makes it another study than RECIPE
    (nothing: it is RECIPE, whichever variants ran and whatever HARMLESS_SETTINGS it gave; write_study merges
    a study of some variants into the documented table by variant)."""
    experiment = next((o for o in overrides if o.startswith("experiment=")), "without experiment=vlm_study")
    # another experiment, or none, is not the recipe's data, steps and seed
    changed = ([] if experiment == "experiment=vlm_study" else [experiment]) + other_settings(overrides)
    return (" ".join(["python train.py", *overrides]) if changed else RECIPE), changed


# The settings that change a study's results, as each job's .hydra/config.yaml recorded them: compared with the
# recipe's (its variant's) composed config, since a recipe edited in the user's clone (3 steps) reaches no
# command line. A key, or every key under it; the HARMLESS_SETTINGS under them are left out.
RESULT_SETTINGS = ("seed", "trainer.max_steps", "data", "model.decode")


def _leaves(value: Any, key: str) -> dict[str, Any]:
    """`value` as dotted keys under `key`, each a setting that is no mapping (data -> data.num_train, ...)."""
    if not isinstance(value, dict):
        return {key: value}
    return {leaf: v for k, sub in value.items() for leaf, v in _leaves(sub, f"{key}.{k}").items()}


MISSING = object()  # a key the job's config does not hold


def _at(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(config, dict) or part not in config:
            return MISSING
        config = config[part]
    return config


@functools.cache
def recipe_settings(variant: str) -> dict[str, Any]:
    """The RESULT_SETTINGS of `python train.py experiment=vlm_study study=<variant>` as conf/ composes them (unresolved,
    as Hydra records a job's), each leaf by its dotted key."""
    from omegaconf import OmegaConf

    config = compose_conf("train", ["experiment=vlm_study", f"study={variant}"])
    settings = OmegaConf.to_container(config, resolve=False)
    return {k: v for key in RESULT_SETTINGS if (found := _at(settings, key)) is not MISSING
            for k, v in _leaves(found, key).items() if not _harmless(k)}


def _setting(key: str, value: Any) -> str:
    return f"{key}=(none)" if value is MISSING else f"{key}={json.dumps(value) if value is None else value}"


def settings_that_differ(sweep_dir: Path) -> list[str]:
    """What the sweep's jobs ran with (their .hydra/config.yaml) that is not the recipe's for their variant: each
    setting of RESULT_SETTINGS that differs once, as `key=value` (the first job's value that differs), in the order
    of the recipe's keys. A job without a config (never started) is not read."""
    differ: dict[str, Any] = {}
    for job_dir in job_dirs(sweep_dir):
        path = job_dir / ".hydra" / "config.yaml"
        config = job_object(path, CONFIG, load_yaml(path))
        if not config:
            continue
        _require_captioner(job_dir, config)  # another model's job: its own line, before its settings are read
        variant = _variant(job_dir)
        try:
            recipe = recipe_settings(variant)
        except HydraException:  # a variant of the user's own: no recipe's row
            differ.setdefault(f"study={variant}", MISSING)
            continue
        for key, value in recipe.items():
            ran = _at(config, key)
            if ran != value and key not in differ:
                differ[key] = ran
    return [key if key.startswith("study=") else _setting(key, value) for key, value in differ.items()]


def documented_check(sweep_dir: Path, overrides: list[str]) -> tuple[str, list[str]]:
    """study_command of the sweep's overrides, its `changed` completed with the settings_that_differ of what
    its jobs ran (those the command line gave already are named once, as given): a study is the documented one
    only when both agree with the recipe."""
    command, changed = study_command(overrides)
    given = {o.split("=", 1)[0].lstrip("+~") for o in changed}
    ran = [s for s in settings_that_differ(sweep_dir) if s.split("=", 1)[0] not in given]
    if ran and not changed:
        command = " ".join(["python train.py", *overrides])
    return command, changed + ran


def sweep_overrides(sweep_dir: Path) -> list[str]:
    """The overrides of the command that ran the sweep, in the order it gave them: as Hydra saved them in
    the sweep's multirun.yaml (what StudyReport names at the sweep's end). Without that file, rebuilt from its
    jobs' .hydra/overrides.yaml: each key once, its values across jobs joined by commas (study=release,nvis1),
    in the jobs' order (which puts a key of hydra.sweeper.params, study=, first)."""
    saved = load_yaml(sweep_dir / "multirun.yaml")
    hydra = saved.get("hydra") if isinstance(saved, dict) else None
    overrides = hydra.get("overrides") if isinstance(hydra, dict) else None
    task = overrides.get("task") if isinstance(overrides, dict) else None
    if isinstance(task, list):
        return [str(o) for o in task]
    values: dict[str, list[str]] = {}
    for job_dir in job_dirs(sweep_dir):
        for override in (str(o) for o in (load_yaml(job_dir / ".hydra" / "overrides.yaml") or [])):
            key, _, value = override.partition("=")
            if value not in values.setdefault(key, []):
                values[key].append(value)
    return [f"{key}={','.join(vals)}" for key, vals in values.items()]


class StudyReport(Callback):
    """Hydra callback: the study's table and plot into the sweep directory when the multirun ends, and into
    `out_dir` (docs/) when it ran as documented, its rows merged by variant into the table there (a study of
    some variants updates theirs); a study run with other settings (a quick try with fewer steps) leaves the
    committed one alone and says how to put its own there."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """The table so far into the sweep directory after every job: a grid stops after a batch with a failed
        job without on_multirun_end (Hydra raises that job's error), and the finished variants' rows are then
        there, the failed ones named. docs/ is the end's alone: a study stopped half-way is said how to put them
        there."""
        hydra_cfg = HydraConfig.get()
        # a single run has no sweep; under SLURM every task of a job runs this, the first one writes
        if hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN" or os.environ.get("SLURM_PROCID", "0") != "0":
            return
        sweep_dir = Path(hydra_cfg.sweep.dir)
        try:
            command, changed = documented_check(sweep_dir, sweep_overrides(sweep_dir))
            rows = write_study(sweep_dir, sweep_dir, command, changed)
        except SupraUserError as err:
            if job_return.status != JobStatus.COMPLETED:  # the sweep may end now, with no end of its own to say it
                log.warning("no study report so far: %s", err)
            return
        if job_return.status != JobStatus.COMPLETED:
            rebuild = f"`python -m supra.study_report dir={shlex.quote(str(sweep_dir))}`"
            log.warning("a study job failed: the study so far (%s) is in %s; %s", counted(len(rows), "variant"),
                        sweep_dir / "study.md", f"{rebuild} rebuilds it" if changed else
                        f"{self.out_dir}/ is left as it is until the study ends, or {rebuild} puts its rows there")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        try:
            command, changed = documented_check(Path(sweep_dir), [str(o) for o in config.hydra.overrides.task])
            rows = write_study(sweep_dir, sweep_dir, command, changed)
            table = [] if changed else write_study(sweep_dir, self.out_dir, command)
        except SupraUserError as err:
            log.warning("no study report: %s", err)
            return
        if changed:  # a warning: the jobs' configs may differ from a recipe edited where it ran, which no line said
            log.warning("study (%s) in %s; %s/ left as it is, since %s changes the study (its rows "
                     "are no rows of the documented table)", counted(len(rows), "variant"), Path(sweep_dir) / "study.md",
                     self.out_dir, " ".join(changed))
        else:
            log.info("study (%d variants run, %d rows in the table): %s", len(rows), len(table),
                     Path(self.out_dir) / "study.md")
