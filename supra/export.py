"""`python -m supra.export ckpt=CKPT out=DIR [push_to=org/name]`: a checkpoint as a release folder
(conf/export.yaml): a captioner's as SupraVL-Nano-900k, an a2a_nano's as the Supra-A2A-Nano pair (GPT +
VQ-VAE + tokenizer); with push_to, uploaded to the Hugging Face Hub too (the folder is written first)."""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import DictConfig

from supra.artifacts.a2a_release import export_a2a_release, load_a2a_release
from supra.artifacts.captioner_release import export_release, load_release
from supra.artifacts.checkpoints import artifact_kind
from supra.artifacts.hub import RELEASE_FILES, check_repo_id, local_path, push_folder
from supra.artifacts.kinds import A2A_CHECKPOINT, A2A_RELEASE, CAPTIONER_CHECKPOINT, CAPTIONER_RELEASE
from supra.utils.cli import changed_options, hydra_command, refuse_unread_options
from supra.utils.errors import SupraUserError
from supra.utils.files import atomic_dir, check_replaceable_dir, require_writable_dir


def copy_release(folder: str, out_dir: str, license: str = "other") -> Path:
    """A release folder (a local one, or one fetched from the Hub) is already in the release format: its
    files are copied as they are (its card keeps its license), e.g. to push it to another repo."""
    with atomic_dir(out_dir) as tmp:
        for name in RELEASE_FILES:
            if (Path(folder) / name).is_file():
                shutil.copyfile(Path(folder) / name, tmp / name)
    return Path(out_dir)


EXPORTERS = {CAPTIONER_CHECKPOINT: export_release, A2A_CHECKPOINT: export_a2a_release,
             CAPTIONER_RELEASE: copy_release, A2A_RELEASE: copy_release}
# a release folder is read whole before it is copied: one that cannot be read (a file missing or cut
# short) is refused in one line, not exported and pushed as it is
RELEASE_READERS = {CAPTIONER_RELEASE: load_release, A2A_RELEASE: load_a2a_release}


# Besides the release's own files, what a Hub download or upload leaves in a release folder.
REPLACEABLE = (*RELEASE_FILES, "metrics.json", ".gitattributes", ".cache", ".huggingface")


def run(cfg: DictConfig) -> Path:
    # The folder is replaced whole: refuse before any work where that would delete more than an old release.
    check_replaceable_dir(cfg.out, f"out={cfg.out}", REPLACEABLE, inputs=[cfg.ckpt], overwrite=bool(cfg.overwrite))
    require_writable_dir(Path(cfg.out).resolve().parent, f"out={cfg.out}")
    if cfg.push_to:
        check_repo_id(cfg.push_to)  # before the work, not after it
    else:  # the Hub repo's visibility: without push_to there is none to set
        refuse_unread_options(cfg, "export", ["private"], "export without push_to=org/name")
    kind = artifact_kind(cfg.ckpt)
    if kind not in EXPORTERS:
        raise SupraUserError(f"ckpt={cfg.ckpt} is a {kind}, which has no release format: give a captioner or "
                             "an a2a_nano checkpoint written by train.py")
    if kind in (CAPTIONER_RELEASE, A2A_RELEASE) and changed_options(cfg, "export", ["license"]):
        raise SupraUserError(f"license={cfg.license}: ckpt={cfg.ckpt} is a release folder, copied as it is (its card "
                             "keeps its own license); license= is for exporting a checkpoint")
    ckpt = local_path(cfg.ckpt, "ckpt")  # a Hub repo id -> its folder in the local cache
    if kind in RELEASE_READERS:
        RELEASE_READERS[kind](ckpt)
    out = EXPORTERS[kind](str(ckpt), str(cfg.out), license=cfg.license)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    if cfg.push_to:
        url = push_folder(out, cfg.push_to, private=bool(cfg.private))
        print(f"pushed {out} to {url}")
    return out


main = hydra_command("export", run)

if __name__ == "__main__":
    main()
