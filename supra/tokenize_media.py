"""Encode a media corpus once to VQ-VAE codes for stage 2:
`python -m supra.tokenize_media ckpt=VQVAE.ckpt out=DIR [data=media_folder data.root=DIR data.mode=clips]`.

Without data=..., the data the VQ-VAE was trained on is encoded. `--help` lists every option.
"""

import sys

import hydra
from omegaconf import DictConfig

from supra.tokenization import tokenize_media
from supra.utils.cli import exit_if_run_dir_unwritable
from supra.utils.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="tokenize_media")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        tokenize_media(cfg)


if __name__ == "__main__":
    exit_if_run_dir_unwritable(sys.argv[1:])
    main()
