"""Sample from an a2a_nano GPT: text, text2image, image2text, video2video, text2video.

    python -m supra.generate ckpt=CKPT_OR_RELEASE mode=text2image prompt="a red square" seed=0 out=DIR
    python -m supra.generate ckpt=... mode=image2text image=photo.png out=DIR
    python -m supra.generate ckpt=... mode=video2video image=clip.gif frames=4 out=DIR

`--help` lists every option (conf/generate.yaml); supra/a2a_inference.py does the work.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from supra.a2a_inference import Request, generate
from supra.utils.cli import exit_if_run_dir_unwritable
from supra.utils.errors import exit_on_user_error


def quote_prompt(argv: list[str]) -> list[str]:
    """Hydra's override grammar refuses `<` and `>` in plain values, so `prompt=<TEXT>a red square</TEXT><IMAGE>`
    is quoted for it here (unless the user quoted it already): control tokens work as typed."""
    quoted = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key == "prompt" and sep and value[:1] not in ("'", '"') and value != "null":
            escaped = value.replace("'", "\\'")  # in Hydra's quoted strings only quotes need escaping
            arg = f"prompt='{escaped}'"
        quoted.append(arg)
    return quoted


def run(cfg: DictConfig) -> dict[str, Any]:
    """The command for a composed conf/generate.yaml: returns what it wrote to out/generation.json."""
    values = OmegaConf.to_container(cfg, resolve=True)
    request = Request(**{f.name: values[f.name] for f in fields(Request) if f.name in values})
    return generate(request, str(cfg.ckpt), cfg.get("vqvae"))


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        summary = run(cfg)
    print(f"wrote {cfg.out}: " + ", ".join([*summary["files"], "generation.json"]))
    for text in summary.get("texts", []):
        print(f"  {text}")


if __name__ == "__main__":
    exit_if_run_dir_unwritable(sys.argv[1:])
    sys.argv[1:] = quote_prompt(sys.argv[1:])
    main()
