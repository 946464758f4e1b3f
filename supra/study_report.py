"""`python -m supra.study_report dir=SWEEP_DIR [out=DIR]`: (re)build the roadmap study's table and plot
(study.md, study.csv, study.png) from a study multirun (conf/study_report.yaml; the report itself is
supra/sweeps/study.py). The table names the command the jobs ran as it was given (the sweep's
multirun.yaml, else the jobs' overrides) and the variants without test results.

Where it writes, as the end of the study does: into docs/ only for the documented study, by its command line
and by what its jobs ran (documented_check; its rows merged by variant into the table there); any other study (fewer steps, other data) into its own folder, dir=,
unless out= says otherwise (never a folder holding the documented table: out=docs is refused for it), so
that a quick try never replaces the committed table. Run from a folder without docs/study.md (not the
repository's root), the documented study is refused rather than written into a new docs/ there; the last line
says where the files went."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from supra.sweeps.study import OUTPUTS, RECIPE, StudyRow, documented_check, sweep_overrides, write_study
from supra.utils.cli import check_paths_given, hydra_command
from supra.utils.errors import SupraUserError
from supra.utils.files import absolute_path

# the documented study's place, relative to where the command runs (as StudyReport's out_dir): the repository's
# root, which holds docs/study.md; run elsewhere, it is refused rather than made anew there
DOCS = "docs"


def run(cfg: DictConfig) -> list[StudyRow]:
    check_paths_given(cfg, {"dir": "the study's multirun directory (logs/study/<date>)",
                            "out": "the folder to write the table to (or leave it out)"})
    command, changed = documented_check(Path(cfg.dir), sweep_overrides(Path(cfg.dir)))
    out = cfg.out if cfg.out is not None else cfg.dir if changed else DOCS
    if out == DOCS and cfg.out is None and not Path(DOCS, "study.md").is_file():
        # run elsewhere, docs/ would be a new folder there, and the repository's table would stay as it was
        raise SupraUserError(f"{Path.cwd()} has no {DOCS}/study.md, where the documented study's rows are merged: "
                             "run this from the repository's root (the folder holding train.py), or give out=DIR")
    rows = write_study(cfg.dir, out, command, changed)
    if changed and cfg.out is None:
        print(f"dir={cfg.dir} is not the documented study ({RECIPE}): it ran with {' '.join(changed)}; its table "
              f"is in {Path(out, 'study.md')} and {DOCS}/ is left as it is", file=sys.stderr)
    elif changed:  # written where the user said, docs/ maybe: the table says it is another study
        print(f"warning: dir={cfg.dir} is not the documented study ({RECIPE}): it ran with {' '.join(changed)}; "
              f"{Path(out, 'study.md')} says so", file=sys.stderr)
    print(Path(out, "study.md").read_text())
    print(f"wrote {', '.join(OUTPUTS)} into {absolute_path(out)}")  # after the table: its last line
    return rows


main = hydra_command("study_report", run)

if __name__ == "__main__":
    main()
