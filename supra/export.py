"""`python -m supra.export ckpt=CKPT out=DIR [push_to=org/name]`: a checkpoint as a release folder
(conf/export.yaml): a captioner's as SupraVL-Nano-900k, an a2a_nano's as the Supra-A2A-Nano pair (GPT +
VQ-VAE + tokenizer); with push_to, uploaded to the Hugging Face Hub too (the folder is written first)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from supra.artifacts.a2a_release import export_a2a_release
from supra.artifacts.captioner_release import export_release
from supra.artifacts.checkpoints import artifact_kind
from supra.artifacts.hub import push_folder
from supra.artifacts.kinds import A2A_CHECKPOINT, CAPTIONER_CHECKPOINT
from supra.utils.cli import hydra_command
from supra.utils.errors import SupraUserError

EXPORTERS = {CAPTIONER_CHECKPOINT: export_release, A2A_CHECKPOINT: export_a2a_release}


def run(cfg: DictConfig) -> Path:
    kind = artifact_kind(cfg.ckpt)
    if kind not in EXPORTERS:
        raise SupraUserError(f"ckpt={cfg.ckpt} is a {kind}, which has no release format: give a captioner or "
                             "an a2a_nano checkpoint written by train.py")
    out = EXPORTERS[kind](str(cfg.ckpt), str(cfg.out), license=cfg.license)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    if cfg.push_to:
        url = push_folder(out, cfg.push_to, private=bool(cfg.private))
        print(f"pushed {out} to {url}")
    return out


main = hydra_command("export", run)

if __name__ == "__main__":
    main()
