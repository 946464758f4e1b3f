"""A leading `~` in a path option of the command line means the home folder, as the shell would make it;
the shell itself leaves `data.root=~/x` alone (`data.root` is no variable name)."""

from __future__ import annotations

import os
import pwd

import pytest

from supra.utils.home_paths import expand_home
from supra.utils.hydra_quoting import quote_values
from tests.conftest import command_lines, compose_config


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("HOME", str(folder))
    return folder


@pytest.mark.parametrize("option", ["data.root", "paths.cache_dir", "paths.log_dir", "hydra.run.dir", "ckpt", "out",
                                    "dir", "model.vqvae_ckpt", "model.encoder.pretrained.weights", "data.tokenizer_path",
                                    "data.gpt2_tokenizer", "ckpt_path", "images", "+data.sources.codes.directory"])
def test_a_leading_tilde_in_a_path_option_is_the_home_folder(option, home):
    assert expand_home([f"{option}=~/x y/ü"]) == [f"{option}={home}/x y/ü"]


def test_a_tilde_with_a_user_name_is_that_users_home():
    root_home = pwd.getpwuid(0).pw_dir
    assert expand_home(["data.root=~root/f8k"]) == [f"data.root={root_home}/f8k"]


def test_each_path_of_a_shard_list_sweep_or_list_starts_from_the_home_folder(home):
    assert expand_home(["data.train_shards=~/a.tar::~/b.tar", "data.root=~/a,~/b", "data.val_shards=['~/a.tar', ~/b]"]) \
        == [f"data.train_shards={home}/a.tar::{home}/b.tar", f"data.root={home}/a,{home}/b",
            f"data.val_shards=['{home}/a.tar', {home}/b]"]


def test_text_options_and_a_tilde_inside_a_path_are_left_as_typed(home):
    argv = ["prompt=~/a red square", "tags=[~x]", "task_name=~mine", "data.root=me/~drafts", "data.root=a~", "-m",
            "~callbacks.model_summary"]
    assert expand_home(argv) == argv


def test_the_expanded_path_reaches_the_config_quoted_for_hydra(home, tmp_path):
    """As train.py reads its command line: expanded, then quoted for Hydra's grammar (a space, a letter past ASCII)."""
    argv = quote_values(expand_home(["data.root=~/dätä dir/f 8k", "paths.cache_dir=~/pc ü"]))
    cfg = compose_config("train", tmp_path, ["data=caption_folder", *argv])
    assert (cfg.data.root, cfg.paths.cache_dir) == (f"{home}/dätä dir/f 8k", f"{home}/pc ü")


def test_a_tilde_naming_no_user_here_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as ended:
        expand_home(["paths.cache_dir=~nosuchuser_supra/cache"])
    assert ended.value.code == 2
    assert capsys.readouterr().err == ("error: paths.cache_dir=~nosuchuser_supra/cache: ~nosuchuser_supra names the "
                                       "home of a user 'nosuchuser_supra', who is not on this machine: give the full "
                                       "path\n")


def test_a_command_reads_a_folder_under_home_and_makes_no_folder_named_tilde(tmp_path):
    """`python -m supra.sweep_report dir=~/sweep`, as bash passes it when the option is quoted: the home's folder."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    (run,) = command_lines(["sweep_report", "dir=~/sweeps/none"], cwd=cwd,
                           before=f"import os; os.environ['HOME'] = {str(home)!r}\n")
    assert run.returncode == 2
    assert f"{home}/sweeps/none is not a directory" in run.stderr
    assert os.listdir(cwd) == []
