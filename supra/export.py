"""Export a captioning checkpoint as a SupraVL-Nano-900k release folder.

    python -m supra.export ckpt=logs/train/runs/<run>/checkpoints/best.ckpt out=release/
"""

from __future__ import annotations

import sys

from supra.release import export_release
from supra.utils.cli import parse_key_values
from supra.utils.errors import exit_on_user_error


def main(argv: list[str] | None = None) -> None:
    args = parse_key_values(sys.argv[1:] if argv is None else argv, __doc__, required=("ckpt", "out"), defaults={})
    with exit_on_user_error():
        out = export_release(args["ckpt"], args["out"])
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))


if __name__ == "__main__":
    main()
