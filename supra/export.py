"""Export a checkpoint as a release folder: a captioning one as SupraVL-Nano-900k, an a2a one as the
Supra-A2A-Nano pair (GPT + VQ-VAE + tokenizer, supra/a2a_release.py).

    python -m supra.export ckpt=logs/train/runs/<run>/checkpoints/best.ckpt out=release/
"""

from __future__ import annotations

import sys

from supra.a2a_release import CHECKPOINT_KIND as A2A_KIND
from supra.a2a_release import export_a2a_release
from supra.checkpoints import load_supra_checkpoint
from supra.release import export_release
from supra.utils.cli import parse_key_values
from supra.utils.errors import exit_on_user_error


def main(argv: list[str] | None = None) -> None:
    args = parse_key_values(sys.argv[1:] if argv is None else argv, __doc__, required=("ckpt", "out"), defaults={})
    with exit_on_user_error():
        is_a2a = load_supra_checkpoint(args["ckpt"])["supra"]["kind"] == A2A_KIND
        out = (export_a2a_release if is_a2a else export_release)(args["ckpt"], args["out"])
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))


if __name__ == "__main__":
    main()
