"""Entry point of DDP ranks > 0 in a multirun job: `train` on the config the job saved (see supra.sweeps.ddp).

Started by Lightning's launcher as `python -m supra.runner.ddp_rank --config-path <job>/.hydra
--config-name config hydra.run.dir=<job>`; not meant to be run by hand.
"""

import hydra
from omegaconf import DictConfig

from supra.runner.training import train
from supra.utils.cli import exit_on_user_error


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        train(cfg)


if __name__ == "__main__":
    main()
