"""`python -m supra.study_report dir=SWEEP_DIR [out=docs]`: (re)build the roadmap study's table and plot
(study.md, study.csv, study.png) from a study multirun (conf/study_report.yaml; the report itself is
supra/sweeps/study.py). The table names the command the jobs ran, read from their overrides."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from supra.sweeps.study import RECIPE, StudyRow, study_command, sweep_overrides, write_study
from supra.utils.cli import hydra_command


def run(cfg: DictConfig) -> list[StudyRow]:
    command, changed = study_command(sweep_overrides(Path(cfg.dir)))
    rows = write_study(cfg.dir, cfg.out, command, changed)
    if changed:  # out=docs by default: a quick try there would stand in for the documented study
        print(f"warning: dir={cfg.dir} is not the documented study ({RECIPE}): it ran with {' '.join(changed)}; "
              f"{Path(cfg.out, 'study.md')} says so", file=sys.stderr)
    print(Path(cfg.out, "study.md").read_text())
    return rows


main = hydra_command("study_report", run)

if __name__ == "__main__":
    main()
