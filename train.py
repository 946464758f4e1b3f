"""Train a Supra model. `python train.py --help` lists the config groups; see README.md."""

import sys

import supra  # noqa: F401  before hydra and lightning: Ctrl-C while they import is one line (start_up.py)

# isort: split
import hydra
from omegaconf import DictConfig

from supra.utils.cli import (
    asks_shell_completion,
    check_required,
    exit_if_hydra_cfg_resolved,
    exit_if_modes_combined,
    exit_if_null_group,
    exit_if_run_dir_unwritable,
    exit_if_unknown_group_option,
    exit_on_ctrl_c,
    exit_on_user_error,
    print_help,
)
from supra.utils.home_paths import expand_home
from supra.utils.hydra_quoting import quote_values
from supra.utils.unknown_keys import exit_if_unknown_key


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # here, not at the top: --help and the checks of the command line answer without torch and Lightning (seconds)
    from supra.runner.components import tower_file_unneeded
    from supra.runner.training import interrupted_run, train

    with exit_on_ctrl_c(lambda: interrupted_run(cfg)), exit_on_user_error():
        tower_file_unneeded(cfg)  # a resumed or fine-tuned tower's weights are in its checkpoint or folder
        check_required(cfg, "train")  # e.g. model/encoder=pretrained without its weights file
        metric, _ = train(cfg)
    return metric  # what a sweeper (e.g. Optuna) optimises


def check_command_line() -> None:
    """--help, and the options Hydra would answer with a traceback or a many-line error, before it composes."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print_help("train", help_config="default", config_groups=True)  # the options' comments too
        raise SystemExit(0)
    sys.argv[1:] = expand_home(sys.argv[1:])  # data.root=~/f8k: the shell leaves its ~ alone
    exit_if_null_group("train", sys.argv[1:])  # logger=null: Hydra's traceback
    exit_if_unknown_group_option(sys.argv[1:])  # data=flikr8k: Hydra's 15-line error
    exit_if_run_dir_unwritable(sys.argv[1:], default_log_dir="logs")
    sys.argv[1:] = quote_values(sys.argv[1:])  # data.root=/data/café: quoted for Hydra's grammar
    exit_if_unknown_key("train", sys.argv[1:])  # trainer.max_stpes=2: Hydra's multi-line error


if __name__ == "__main__":
    exit_if_modes_combined(sys.argv[1:])  # -m --cfg job: Hydra's traceback
    exit_if_hydra_cfg_resolved(sys.argv[1:])  # --cfg hydra --resolve: Hydra's traceback
    if not asks_shell_completion(sys.argv[1:], "python train.py"):  # else Hydra's, as given
        check_command_line()
    import supra.runner  # noqa: F401  after --help: the resolvers the configs use (${study_seed:...}), before Hydra composes
    main()
