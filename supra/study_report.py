"""`python -m supra.study_report dir=SWEEP_DIR [out=docs]`: (re)build the roadmap study's table and plot
(study.md, study.csv, study.png) from a study multirun (conf/study_report.yaml; the report itself is
supra/sweeps/study.py)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from supra.sweeps.study import StudyRow, write_study
from supra.utils.cli import hydra_command


def run(cfg: DictConfig) -> list[StudyRow]:
    rows = write_study(cfg.dir, cfg.out)
    print(Path(cfg.out, "study.md").read_text())
    return rows


main = hydra_command("study_report", run)

if __name__ == "__main__":
    main()
