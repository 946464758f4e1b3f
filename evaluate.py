"""Score a checkpoint or release folder: `python evaluate.py ckpt=PATH [decode=beam|greedy|sample] [data.split=val]`."""

import sys
import time

import supra  # noqa: F401  before hydra and lightning: Ctrl-C while they import is one line (start_up.py)

# isort: split
import hydra
from omegaconf import DictConfig

from supra.utils.cli import (
    asks_shell_completion,
    check_required,
    exit_if_hydra_cfg_resolved,
    exit_if_modes_combined,
    exit_if_run_dir_unwritable,
    exit_if_unknown_group_option,
    exit_on_ctrl_c,
    exit_on_user_error,
    print_help,
)
from supra.utils.home_paths import expand_home
from supra.utils.hydra_quoting import quote_values


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    # here, not at the top: --help answers without torch and Lightning (seconds)
    from supra.runner.evaluation import evaluate, interrupted_evaluation, no_folder_left_if_refused

    started = time.time()  # a metrics.json written since is this run's
    with (exit_on_ctrl_c(lambda: interrupted_evaluation(cfg, started)), exit_on_user_error(),
          no_folder_left_if_refused(cfg)):  # within: the error is said (and logged) once the folder is gone
        check_required(cfg, "eval")  # no ckpt=: one line, not OmegaConf's traceback
        evaluate(cfg)


def check_command_line() -> None:
    """--help, and the options Hydra would answer with a traceback (or not at all), before it composes."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print_help("eval", help_config="eval")  # its own usage, not train.py's
        raise SystemExit(0)
    # after --help, which answers without them: they import torch and Lightning
    from supra.runner.evaluation import data_for_release, exit_if_unknown_eval_key

    sys.argv[1:] = expand_home(sys.argv[1:])  # ckpt=~/run/best.ckpt data.root=~/f8k: the shell leaves data.root's ~ alone
    exit_if_run_dir_unwritable(sys.argv[1:], default_log_dir="logs")
    exit_if_unknown_group_option(sys.argv[1:])  # data=flikr8k: Hydra's 15-line error
    sys.argv[1:] = data_for_release(sys.argv[1:])  # a release folder holds no data config
    sys.argv[1:] = quote_values(sys.argv[1:])  # data.root=/data/café: quoted for Hydra's grammar
    exit_if_unknown_eval_key(sys.argv[1:])  # data=coco data.batch_sizee=8: Hydra's multi-line error


if __name__ == "__main__":
    exit_if_modes_combined(sys.argv[1:])  # -m --cfg job: Hydra's traceback
    exit_if_hydra_cfg_resolved(sys.argv[1:])  # --cfg hydra --resolve: Hydra's traceback
    if not asks_shell_completion(sys.argv[1:], "python evaluate.py"):  # else Hydra's, as given
        check_command_line()
    main()
