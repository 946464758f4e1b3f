"""What evaluate.py scored, for metrics.json and the table's title (the data's source, layout and root), and
whether those are held-out scores: the images of the scored split that the checkpoint's run trained on, and
those it validated on (by which it picked its best checkpoint), by the `splits/train.txt` and `splits/val.txt` its
run folder keeps (a photo source writes its split lists there: data.output_dir, which the checkpoint's run config
records, so a checkpoint copied into another run's folder is not compared with that run's lists), each counted and
warned of in one line. Another layout of the same pictures (COCO's official files against
dataset_coco.json, whose restval trains; Flickr30k's .token against dataset_flickr30k.json) or another
data.split_seed cuts them otherwise, and its "test" split then holds pictures the model trained on. Generated data
has no files to compare: its train or val split is warned of where its config is the run's (the same pictures)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from supra.callbacks.test_report import TestReport
from supra.runner.training import QUIET_DATA_KEYS
from supra.utils.files import absolute_path, one_line_records

log = logging.getLogger(__name__)

TRAIN_LIST = Path("splits") / "train.txt"
# The run's splits whose images are not held out from its checkpoints, by the metrics.json key that counts each
SEEN_BY_RUN = {"train": "trained_on", "val": "validated_on"}
# How a warning names them, and what the run did with them
RUN_SPLIT_IMAGES = {"train": "training images", "val": "validation images"}
RUN_DID = {"train": "trained on by ckpt={ckpt}",
           "val": "validated on by the run of ckpt={ckpt}, which picks its best checkpoint by them"}
# One COCO picture is val2014/COCO_val2014_000000000113.jpg in the 2014 files and dataset_coco.json, and
# train2017/000000000113.jpg (or val2017/) in the 2017 ones: its split folder and 2014 prefix say nothing of it.
COCO_SPLIT_FOLDER = re.compile(r"(train|val|test)20(14|15|17)")
COCO_2014_PREFIX = re.compile(r"^COCO_(train|val|test)2014_")


def picture_parts(path: str) -> tuple[str, ...]:
    """`path`'s folders and file name, COCO's split folders and 2014 prefix left out: what names one
    picture in every layout of its data set."""
    *folders, name = PurePosixPath(path).parts
    return (*(f for f in folders if not COCO_SPLIT_FOLDER.fullmatch(f)), COCO_2014_PREFIX.sub("", name))


def _one_ends_the_other(parts: tuple[str, ...], other: tuple[str, ...]) -> bool:
    shorter, longer = sorted((parts, other), key=len)
    return longer[len(longer) - len(shorter):] == shorter


def pictures_of(scored: list[str], listed: list[str]) -> list[str]:
    """The files of `scored` (relative to the data root) that are pictures of `listed` (a run's split list,
    relative to its image folder): one's parts end the other's, so `Flicker8k_Dataset/1.jpg` is `1.jpg` while
    `dogs/1.jpg` is not `cats/1.jpg`. In the order of `scored`."""
    by_name: dict[str, list[tuple[str, ...]]] = {}
    for path in listed:
        parts = picture_parts(path)
        by_name.setdefault(parts[-1], []).append(parts)

    def is_listed(path: str) -> bool:
        parts = picture_parts(path)
        return any(_one_ends_the_other(parts, other) for other in by_name.get(parts[-1], ()))

    return [path for path in scored if is_listed(path)]


def run_train_list(ckpt: Path, written_to: str | None) -> Path | None:
    """The splits/train.txt above checkpoint `ckpt` (its run folder, above checkpoints/; a periodic checkpoint's a
    folder deeper) where that folder is `written_to`, the folder its run wrote its split lists into; None where no
    folder above keeps one (a copied checkpoint, a release) or it is another run's (a checkpoint copied into it)."""
    folder = run_folder_above(ckpt)
    return folder / TRAIN_LIST if folder is not None and is_folder(folder, written_to) else None


def run_folder_above(ckpt: Path) -> Path | None:
    """The first of `ckpt`'s three parents that keeps a splits/train.txt; None where none does."""
    return next((folder for folder in list(ckpt.parents)[:3] if (folder / TRAIN_LIST).is_file()), None)


def is_folder(folder: Path, recorded: str | None) -> bool:
    """Whether `folder` is the one `recorded` names (links followed); False where it names none or is gone."""
    try:
        return recorded is not None and folder.samefile(recorded)
    except OSError:
        return False


def likely_reason(split: str, scored: Mapping[str, Any], trained: Mapping[str, Any], run_split: str = "train") -> str:
    """Why the scored split (`scored`: its data config) holds images of the run's `run_split` (train: trained on,
    val: validated on; `trained`: the run's data config), as far as the two configs tell."""
    if split == run_split:  # the run's own split, or another data's that holds its pictures
        return f"data.split={split} scores the run's {RUN_SPLIT_IMAGES[run_split]}"
    if absolute_path(scored.get("root") or "") != absolute_path(trained.get("root") or ""):
        return (f"data.root={scored.get('root')} holds pictures of the run's data.root={trained.get('root')}, cut "
                "otherwise (another layout of the same data set: COCO's official files against dataset_coco.json, "
                "whose restval trains)")
    for key in ("split_seed", "layout"):
        if scored.get(key) != trained.get(key):
            return f"data.{key}={scored.get(key)} cuts the images otherwise than the run's data.{key}={trained.get(key)}"
    return "the same data cut otherwise"


def scored_files(datamodule: L.LightningDataModule) -> list[str]:
    """The files of the split `datamodule` scores, relative to its root; [] for data that has none (generated
    pictures, a dataset's rows, data that is not captioned images)."""
    if not hasattr(datamodule, "image_records"):
        return []
    return [record["file"] for record in datamodule.image_records(datamodule.split) if record.get("file")]


def scored_folders(data_cfg: Mapping[str, Any], prefix: str = "data") -> dict[str, str]:
    """Each data folder (`root`) of `data_cfg`, the a2a mixture's sources' included, absolute, by option
    (`data.root`, `data.sources.photos.root`): what evaluate.py says it scored."""
    found: dict[str, str] = {}
    for key, value in data_cfg.items():
        if isinstance(value, Mapping):
            found |= scored_folders(value, f"{prefix}.{key}")
        elif key == "root" and isinstance(value, str) and value:
            found[f"{prefix}.{key}"] = absolute_path(value)
    return found


def described_data(data_cfg: Mapping[str, Any], datamodule: L.LightningDataModule,
                   roots: Mapping[str, str]) -> dict[str, Any]:
    """The data scored as its config names it: `source` (or the DataModule's class), `layout` (the one read,
    where the data detects it) and `root`: its folder (`roots`, scored_folders' absolute folders; the a2a
    mixture's by option) or a shard data's scored shards."""
    index = getattr(datamodule, "index", None)
    split = getattr(datamodule, "split", "test")
    root = (next(iter(roots.values())) if len(roots) == 1 else dict(roots)) if roots else None
    return {"source": data_cfg.get("source") or type(datamodule).__name__,
            "layout": getattr(index, "layout", None) or data_cfg.get("layout"),
            "root": root or data_cfg.get(f"{split}_shards")}


def same_items(scored: Mapping[str, Any], trained: Mapping[str, Any]) -> bool:
    """Whether two data configs make the same items: equal but for how they are served and where files go
    (QUIET_DATA_KEYS, the split and pin_memory)."""
    ignored = QUIET_DATA_KEYS | {"split", "pin_memory"}

    def items(cfg: Mapping[str, Any]) -> dict[str, Any]:
        plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        return {key: value for key, value in plain.items() if key not in ignored}

    return items(scored) == items(trained)


class ScoredData(L.Callback):
    """Once the scored split is read (test start): what `report` writes beside the scores, the data described
    with `trained_on` and `validated_on` (how many of its images the run of `ckpt` trained on, and validated on;
    null where that cannot be checked), each count above 0 warned of in one line (the report adds the model file
    scored and the step of its weights after them). `run_data`: the data config the checkpoint's run trained on."""

    def __init__(self, report: TestReport, ckpt: str, ckpt_path: Path, data_cfg: Mapping[str, Any],
                 run_data: Mapping[str, Any] | None, roots: Mapping[str, str]) -> None:
        self.report, self.ckpt, self.ckpt_path = report, ckpt, ckpt_path
        self.data_cfg, self.run_data, self.roots = data_cfg, run_data or {}, roots

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        self.report.about_data.update(described_data(self.data_cfg, datamodule, self.roots))
        # every kind of model has both keys: a script reading them gets null where they cannot be checked
        self.report.about_data.update(self._seen_by_run(getattr(datamodule, "split", "test"), scored_files(datamodule)))

    def _seen_by_run(self, split: str, files: list[str]) -> dict[str, int | None]:
        """SEEN_BY_RUN's counts of `files`, the `split` scored: None where they cannot be checked."""
        counts: dict[str, int | None] = dict.fromkeys(SEEN_BY_RUN.values())
        if not files:  # pictures without files (generated, a dataset's rows): no list to compare them with
            self._warn_of_runs_own_split(split)
            return counts
        train_list = run_train_list(self.ckpt_path, self.run_data.get("output_dir"))
        if train_list is None:
            log.info("cannot check whether ckpt=%s trained or validated on the %s images scored: %s", self.ckpt,
                     split, self._why_no_train_list())
            return counts
        for run_split, key in SEEN_BY_RUN.items():
            run_list = train_list.with_name(f"{run_split}.txt")
            if run_list.is_file():  # a run folder keeps every split's list; one removed by hand cannot be checked
                counts[key] = len(self._warn_of_seen(split, files, run_split, run_list))
        return counts

    def _warn_of_runs_own_split(self, split: str) -> None:
        """For data without files: data.split=train or val of the run's own data config (generated the same) warned
        of in one line, as not held-out scores; otherwise that it cannot be checked, said once."""
        if split in SEEN_BY_RUN and self.run_data and same_items(self.data_cfg, self.run_data):
            log.warning("the %s images scored are those %s (its run's data config, the same): %s; these are not "
                        "held-out scores", split, RUN_DID[split].format(ckpt=self.ckpt),
                        likely_reason(split, self.data_cfg, self.run_data, split))
            return
        log.info("cannot check whether ckpt=%s trained or validated on the %s images scored: %s", self.ckpt, split,
                 self._why_no_files())

    def _why_no_files(self) -> str:
        """Why the data scored gave no files to compare, for the line that says it cannot check: the data scored
        names none, or (a folder of files, as a media folder: a VQ-VAE or a2a model's data) its run's data names
        none, or neither lists its files by split."""
        if not self.roots:
            return "the data scored names no image files to compare with its run's (generated pictures, a dataset's rows)"
        folders = ", ".join(f"{option}={folder}" for option, folder in self.roots.items())
        if not scored_folders(self.run_data):
            return (f"its run's data names no image files to compare with those of {folders} (its pictures generated, "
                    "or a dataset's rows)")
        return f"neither the data scored ({folders}) nor its run's data lists the image files of its splits to compare"

    def _warn_of_seen(self, split: str, files: list[str], run_split: str, run_list: Path) -> list[str]:
        """The files of `files` in the run's `run_split` list (`run_list`), warned of in one line where any are."""
        seen = pictures_of(files, one_line_records(run_list.read_text(encoding="utf-8")))
        if seen:
            log.warning("%d of %d %s images scored were %s (its run's %s): %s (e.g. %s); these are not held-out "
                        "scores", len(seen), len(files), split, RUN_DID[run_split].format(ckpt=self.ckpt), run_list,
                        likely_reason(split, self.data_cfg, self.run_data, run_split), ", ".join(seen[:2]))
        return seen

    def _why_no_train_list(self) -> str:
        """Why run_train_list found no list of the checkpoint's run, for the line that says it cannot check."""
        folder = run_folder_above(self.ckpt_path)
        if folder is None:
            return f"its run folder keeps no {TRAIN_LIST.as_posix()}"
        written_to = self.run_data.get("output_dir")
        if written_to is None:  # a run config without data.output_dir: no way to tell its run folder
            return f"its run recorded no data.output_dir to tell whether {folder} is its run folder"
        return f"{folder} is another run's folder (its run wrote its split lists into {written_to})"
