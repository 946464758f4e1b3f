"""train.py's command line: a misspelled option is one line naming the nearest there is, exit status 2, before
Hydra composes (whose own error would advise a `+key=...` that nothing reads); --help explains its options."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from dataclasses import asdict

import pytest

from supra.models.vlm_generation import DecodeConfig
from supra.utils.cli import exit_if_hydra_cfg_resolved, exit_if_modes_combined, exit_if_unknown_group_option
from supra.utils.unknown_keys import exit_if_unknown_key
from tests.conftest import ROOT, compose_config


@pytest.mark.parametrize(("arg", "message"), [
    ("ckpt_pth=x.ckpt", "error: ckpt_pth=x.ckpt: no such option (did you mean ckpt_path?)\n"),
    ("trainer.max_stpes=2", "error: trainer.max_stpes=2: no such option (did you mean trainer.max_steps?)\n"),
    ("model.optimizer.lrr=1e-3", "error: model.optimizer.lrr=1e-3: no such option (did you mean model.optimizer.lr?)\n"),
    # a key its class takes that conf/ leaves out: Hydra's advice, which is right here, in one line
    ("trainer.max_time=00:01:00", "error: trainer.max_time=00:01:00: not in the config, though trainer takes it: "
                                  "add it with +trainer.max_time=00:01:00\n"),
    # a key the optimizer takes but the task sets from an option of its own: adding it would be refused
    ("model.optimizer.weight_decay=0.05", "error: model.optimizer.weight_decay=0.05: not in the config, where the "
                                          "model sets it from model.weight_decay: use model.weight_decay=0.05\n"),
    ("model.optimizer.fused=true", "error: model.optimizer.fused=true: not in the config, where the model sets it "
                                   "from model.fused_optimizer: use model.fused_optimizer=true\n"),
    # with the `+` Hydra's own error suggests, beside the key it misspells: stored beside an unset ckpt_path, the
    # run would train from scratch
    ("+ckpt_pth=runs/a/last.ckpt", "error: +ckpt_pth=runs/a/last.ckpt: no such option, and nothing reads one "
                                   "added (did you mean ckpt_path?)\n"),
    ("++paths.log_dri=elsewhere", "error: ++paths.log_dri=elsewhere: no such option, and nothing reads one added "
                                  "(did you mean paths.log_dir?)\n"),
])
def test_a_misspelled_key_with_or_without_a_plus_is_one_line_with_the_nearest_key_of_its_sub_config(arg, message,
                                                                                                    capsys):
    with pytest.raises(SystemExit) as exit_info:
        exit_if_unknown_key("train", [arg])
    assert (exit_info.value.code, capsys.readouterr().err) == (2, message)


def test_train_py_refuses_a_misspelled_key_or_group_option_before_hydra_composes(monkeypatch, capsys):
    assert run_train_py(["ckpt_pth=x.ckpt"], monkeypatch) == 2
    assert run_train_py(["+ckpt_pth=x.ckpt"], monkeypatch) == 2
    assert run_train_py(["data=flikr8k"], monkeypatch) == 2
    errors = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in errors] == ["ckpt_pth=x.ckpt", "+ckpt_pth=x.ckpt", "data=flikr8k"]
    assert all("(did you mean" in line for line in errors)


@pytest.mark.parametrize("folder_option", ["hydra.run.dir", "paths.log_dir"])
def test_a_command_line_refused_before_composing_leaves_no_folder_it_names(folder_option, tmp_path, monkeypatch,
                                                                           capsys):
    # the check that the folder can be written comes first, and proves it in the nearest folder that exists
    assert run_train_py(["trainer.max_stpes=2", f"{folder_option}={tmp_path}/runs/mine"], monkeypatch) == 2
    assert "no such option (did you mean trainer.max_steps?)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_keys_an_experiment_or_an_earlier_plus_brings_are_options():
    # vlm_flickr8k's data has a root; the mixture's sources are added, then set, on one line
    exit_if_unknown_key("train", ["experiment=vlm_flickr8k", "data.root=/data", "seed=1", "-m", "trainer.max_steps=1,2"])
    exit_if_unknown_key("train", ["+model.extra={a:1}", "model.extra.a=2", "hydra.run.dir=elsewhere/x", "--cfg", "job"])
    exit_if_unknown_key("train", ["--config-name", "my_train", "my_key=1"])  # another config: Hydra checks its keys


def test_a_plus_key_added_on_purpose_is_taken():
    # as README.md and docs/ add them; keys of a class (trainer, data, optimizer) are its to check at the start
    exit_if_unknown_key("train", [
        "+trainer.max_time=00:01:00", "+trainer.enable_progress_bar=false", "+data.num_train=8",
        "+model.optimizer.eps=1e-6", "+callbacks.periodic._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        "+callbacks.periodic.every_n_train_steps=50", "+callbacks.mine={_target_:x.Y}", "+my_note=hello",
    ])
    exit_if_unknown_key("train", ["experiment=a2a_shapes", "+data.sources.mine={_target_:x.Y,root:my_media/}"])


SAMPLING = ["model.decode.strategy=sample", "model.decode.seed=3", "model.decode.temperature=1.5",
            "model.decode.top_k=null", "model.decode.top_p=0.9", "model.decode.max_new_tokens=5"]


def test_every_decoding_setting_is_an_option_that_the_composed_config_shows_at_its_default(tmp_path):
    # README names model.decode.seed: each DecodeConfig field is in model.decode, so it is set without a `+` and
    # `--cfg job` shows what sampling uses; at the dataclass's defaults, so no run decodes otherwise than before
    assert dict(compose_config("train", tmp_path, []).model.decode) == asdict(DecodeConfig())
    exit_if_unknown_key("train", SAMPLING)
    given = compose_config("train", tmp_path, SAMPLING).model.decode
    assert DecodeConfig(**given) == DecodeConfig(strategy="sample", seed=3, temperature=1.5, top_k=None, top_p=0.9,
                                                 max_new_tokens=5)


@pytest.mark.parametrize(("arg", "message"), [
    ("data=flikr8k", "error: data=flikr8k: data has no option flikr8k (did you mean flickr8k?): its options are "
                     "a2a_mixture, caption_folder, coco, flickr30k, flickr8k, hf_disk, media_folder, shapes, "
                     "shapes_images, shapes_video, shards\n"),
    ("trainer=gpuu", "error: trainer=gpuu: trainer has no option gpuu (did you mean gpu?): its options are "),
    ("experiment=vlm_flikr8k", "error: experiment=vlm_flikr8k: experiment has no option vlm_flikr8k (did you mean "
                               "vlm_flickr8k?)"),
    ("debug=fastdevrun", "(did you mean fast_dev_run?)"),
    ("model/encoder=vitt", "error: model/encoder=vitt: model/encoder has no option vitt (did you mean vit?)"),
    ("data=shapes,flikr8k", "error: data=shapes,flikr8k: data has no option flikr8k (did you mean flickr8k?)"),
])
def test_a_misspelled_group_option_is_one_line_with_the_nearest_and_the_options(arg, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        exit_if_unknown_group_option([arg])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1 and message in error


def test_group_options_that_exist_are_left_to_hydra():
    exit_if_unknown_group_option(["data=flickr8k", "model/encoder=vit", "+experiment=vlm_coco", "-m",
                                  "trainer=cpu,ddp_sim", "debug=null", "hydra/launcher=basic", "data.root=x"])


def test_options_of_the_users_own_config_folders_are_left_to_hydra(tmp_path):
    """`--config-dir DIR` (or hydra.searchpath) adds the user's own options, data=mine among them."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.yaml").write_text("root: x\n")
    exit_if_unknown_group_option(["--config-dir", str(tmp_path), "data=mine"])
    exit_if_unknown_group_option([f"hydra.searchpath=[file://{tmp_path}]", "data=mine"])
    exit_if_unknown_key("train", ["--config-dir", str(tmp_path), "data=mine", "data.mine_key=1"])


def run_train_py(argv: list[str], monkeypatch) -> int:
    """`python train.py argv...` in this process, up to its exit before Hydra composes: the exit status."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "train.py"), *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    return exit_info.value.code


def test_train_py_help_shows_its_options_with_their_comments_and_every_config_group(monkeypatch, capsys):
    assert run_train_py(["--help"], monkeypatch) == 0
    text = capsys.readouterr().out
    assert text.startswith("Supra: train and evaluate") and "Examples:" in text
    assert "  ckpt_path: null   # resume: ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt" in text
    assert "  optimized_metric: null  # the metric train.py returns to a sweeper" in text
    assert "  model/encoder: cnn, pretrained, vit" in text and "  debug: fast_dev_run, overfit, profiler" in text
    assert "hydra/launcher: slurm" in text


@pytest.mark.parametrize(("argv", "named"), [
    (["-m", "--cfg", "job"], "-m and --cfg"),          # flags typed whole: named as typed
    (["--multi", "--cf", "job"], "--multirun and --cfg"),  # abbreviated, as Hydra's parser takes them
    (["-mc", "job"], "--multirun and --cfg"),          # bundled short flags
    (["--cfg=job", "--inf"], "--cfg and --info"),
    (["x=1", "--shell", "-r"], "-r and --shell-completion"),
])
def test_two_of_hydras_modes_however_spelled_are_one_line_before_hydras_traceback(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        exit_if_modes_combined(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {named} cannot be given together: a command line takes one of")


@pytest.mark.parametrize(("argv", "package"), [
    (["--cfg", "hydra", "--resolve"], "hydra"),
    (["hydra/launcher=slurm", "-c", "hydra", "--resolve", "-p", "hydra.launcher"], "hydra.launcher"),
])
def test_hydras_config_resolved_alone_is_one_line_naming_the_command_that_prints_it(argv, package, capsys):
    with pytest.raises(SystemExit) as exit_info:  # was Hydra's InterpolationKeyError: 'paths.log_dir' not found
        exit_if_hydra_cfg_resolved(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: --cfg hydra --resolve cannot resolve Hydra's config alone (it reads the "
                                       f"run's keys, such as paths.log_dir): use --cfg all --resolve --package {package}\n")


@pytest.mark.parametrize("argv", [["--cfg", "hydra"], ["--cfg", "all", "--resolve", "--package", "hydra"],
                                  ["--cfg", "job", "--resolve"], ["seed=1"]])
def test_hydras_config_unresolved_or_resolved_within_the_whole_is_left_to_hydra(argv, capsys):
    exit_if_hydra_cfg_resolved(argv)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("argv", [
    ["-m", "seed=1,2"], ["--cf", "job"], ["-sc", "install=bash"],  # one mode
    ["--cfg", "nonsense", "-m"],            # Hydra's parser refuses it first, in its own words
    ["--version", "-m", "--cfg", "job"],    # Hydra prints its version first
])
def test_one_mode_or_a_command_line_hydras_parser_answers_first_is_left_to_hydra(argv, capsys):
    exit_if_modes_combined(argv)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("command", "override", "error"), [
    ("train", "trainer.max_steps=1e3", "trainer.max_steps=1e3 (write 1000, not 1e3) must be a whole number"),
    ("train", "data.num_train=1e3", "data.num_train=1e3 (write 1000, not 1e3) must be a whole number"),
    ("train", "data.num_workers=1e3", "data.num_workers=1e3 (write 1000, not 1e3) must be a whole number >= 0"),
    ("train", "trainer.log_every_n_steps=2e1", "trainer.log_every_n_steps=2e1 (write 20, not 2e1) must be a whole "
                                               "number >= 1"),
    ("train", "trainer.check_val_every_n_epoch=1e1", "trainer.check_val_every_n_epoch=1e1 (write 10, not 1e1) must "
                                                     "be a whole number"),
    ("shapes_gifs", "n=1e3", "n=1e3 (write 1000, not 1e3) must be a whole number"),
    ("tokenize_media", "batch_size=1E3", "batch_size=1E3 (write 1000, not 1E3) must be a whole number"),
])
def test_a_count_given_as_a_float_is_refused_as_typed_not_as_the_float_hydra_reads(command, override, error,
                                                                                  tmp_path, capsys):
    """Hydra reads 1e3 as 1000.0: "1000.0 must be a whole number" read as self-contradictory. Refused still (a count
    is written in digits), but quoted as the command line gave it, with the count to write, as a model's own
    settings are (model.net.N_VIS=16.0)."""
    from supra.data.base import check_num_workers, check_split_sizes
    from supra.runner.run_checks import check_run_numbers, check_trainer_numbers
    from supra.utils.errors import SupraUserError
    from tests.conftest import run_command

    if command == "train":
        cfg = compose_config("train", tmp_path, [override])
        checks = [lambda: check_run_numbers(cfg), lambda: check_trainer_numbers(cfg.trainer),
                  lambda: check_num_workers(cfg.data.num_workers),
                  lambda: check_split_sizes(cfg.data.num_train, cfg.data.num_val, cfg.data.num_test)]
        with pytest.raises(SupraUserError, match=f"^{re.escape(error)}"):
            for check in checks:
                check()
        return
    options = {"shapes_gifs": [f"out={tmp_path / 'gifs'}"], "tokenize_media": ["ckpt=x.ckpt", f"out={tmp_path / 'codes'}"]}
    with pytest.raises(SystemExit):
        run_command(command, *options[command], override, run_dir=tmp_path)
    assert capsys.readouterr().err.startswith(f"error: {error}")


def test_help_of_train_py_and_evaluate_py_answers_without_importing_torch_or_lightning():
    """--help is static text from conf/: it does not wait for torch and Lightning to load (10 s and more)."""
    script = ("import runpy, sys\n"
              "for name in ('train.py', 'evaluate.py'):\n"
              "    sys.argv = [name, '--help']\n"
              "    try:\n"
              "        runpy.run_path(name, run_name='__main__')\n"
              "    except SystemExit as end:\n"
              "        assert end.code == 0, end.code\n"
              "print(sorted({'torch', 'lightning', 'torchvision', 'matplotlib'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_help_read_by_a_reader_that_stops_early_ends_quietly():
    """`python train.py --help | head -3`: the reader closes the pipe before the help is written, which is no error
    of the user's; it was a BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails as head's closed pipe makes it fail
    try:
        done = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
