"""Score a checkpoint or release folder: `python evaluate.py ckpt=PATH [decode=beam|greedy|sample] [data.split=val]`."""

import sys

import hydra
from omegaconf import DictConfig

from supra.runner.evaluation import data_for_release, evaluate
from supra.utils.cli import exit_if_run_dir_unwritable, exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        evaluate(cfg)


if __name__ == "__main__":
    exit_if_run_dir_unwritable(sys.argv[1:])
    sys.argv[1:] = data_for_release(sys.argv[1:])  # a release folder holds no data config
    main()
