"""`python -m supra.sweep_report dir=SWEEP_DIR`: (re)build a multirun's sweep_summary.csv and .md
(conf/sweep_report.yaml; the report itself is supra/sweeps/report.py)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from supra.sweeps.report import SUMMARY_CSV, SUMMARY_MD, JobRow, job_count, write_report
from supra.utils.cli import check_paths_given, hydra_command


def run(cfg: DictConfig) -> list[JobRow]:
    check_paths_given(cfg, {"dir": "a multirun directory (logs/train/multiruns/<date>)"})
    rows = write_report(cfg.dir)
    print(Path(cfg.dir, SUMMARY_MD).read_text())
    print(f"{job_count(len(rows))} -> {Path(cfg.dir, SUMMARY_CSV)}")
    return rows


main = hydra_command("sweep_report", run)

if __name__ == "__main__":
    main()
