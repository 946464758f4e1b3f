"""A run or sweep folder belongs to one run: finished runs are kept, a live run's folder is not shared, and
two runs started in the same second do not share the dated default folder."""

from __future__ import annotations

import errno
import io
import logging
import os
import runpy
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from supra.artifacts.kinds import release_kind
from supra.utils import cli
from supra.utils.cli import exit_if_run_dir_unwritable, exit_on_user_error
from supra.utils.run_folders import OWNER, KeepFinishedRuns, sweep_record
from tests.conftest import CONF, ROOT


def hydra_config(run_dir: str, *overrides: str):
    """train.yaml with Hydra's own settings, as Hydra hands them to a callback at the run's start."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", return_hydra_config=True,
                       overrides=[f"hydra.run.dir={run_dir}", *overrides])


def claim_by(folder: Path, pid: int, start: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWNER).write_text(f"{socket.gethostname()} {pid} {start}\n")


def claimant(folder: Path) -> str:
    """'<host> <pid>' of the process whose claim `folder` holds (the claim also says when it started)."""
    return " ".join((folder / OWNER).read_text().split()[:2])


def this_process() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def live_pid():
    """The pid of a live process other than this one: a run still writing its folder."""
    process = subprocess.Popen(["sleep", "300"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_sweep_moved_from_a_dated_folder_a_live_sweep_holds_writes_every_job_into_its_own(tmp_path, live_pid):
    """Hydra composes each job's config again from its overrides: the move to `<folder>_1` reaches the jobs
    (quoted for Hydra's grammar: the folder's name has a space and a letter outside ASCII)."""
    sweeps, year = tmp_path / "my sweeps é", time.strftime("%Y")
    taken, mine = sweeps / f"sweep_{year}", sweeps / f"sweep_{year}_1"
    claim_by(taken, live_pid)  # a live sweep started in the same second
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "logger=csv", "seed=7,8", "train=false", "test=false",
         "callbacks.caption_grid=null", "callbacks.attention_maps=null",
         f"hydra.sweep.dir={sweeps}/sweep_${{now:%Y}}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in taken.iterdir()] == [OWNER]  # the live sweep's folder is left alone
    for job in ("0", "1"):
        assert (mine / job / ".hydra" / "config.yaml").is_file() and (mine / job / "sweep_job.json").is_file()
    assert (mine / "sweep_summary.csv").is_file()


def test_a_dated_folder_another_live_run_holds_moves_to_the_next_free_one(tmp_path, live_pid):
    cfg = hydra_config(str(tmp_path) + "/run_${now:%Y}")
    taken = tmp_path / f"run_{cfg.hydra.run.dir.rsplit('_', 1)[1]}"
    claim_by(taken, live_pid)  # a live run started in the same second
    (tmp_path / f"{taken.name}_1" / "checkpoints").mkdir(parents=True)
    (tmp_path / f"{taken.name}_1" / "checkpoints" / "last.ckpt").write_bytes(b"a finished run")
    callback = KeepFinishedRuns()
    callback.on_run_start(cfg)
    mine = tmp_path / f"{taken.name}_2"
    assert cfg.hydra.run.dir == str(mine)  # Hydra makes the run's folder from this after the callback
    assert claimant(mine) == this_process()
    callback.on_run_end(cfg)
    assert not (mine / OWNER).exists()
    assert (taken / OWNER).exists()  # the other run's claim is left alone


def test_a_named_folder_a_live_run_writes_is_refused_and_a_killed_runs_claim_is_taken_over(tmp_path, capsys,
                                                                                           live_pid):
    busy, abandoned = tmp_path / "busy", tmp_path / "abandoned"
    claim_by(busy, live_pid)
    with pytest.raises(SystemExit) as refused:
        KeepFinishedRuns().on_run_start(hydra_config(str(busy)))
    assert refused.value.code == 2
    assert capsys.readouterr().err == (f"error: hydra.run.dir={busy} is being written by another run (process "
                                       f"{live_pid} on {socket.gethostname()}): choose another with "
                                       "hydra.run.dir=DIR, or wait for that run to end (if it has ended, remove "
                                       f"its claim: rm {busy / OWNER})\n")
    claim_by(abandoned, a_dead_pid())
    cfg = hydra_config(str(abandoned))
    KeepFinishedRuns().on_run_start(cfg)
    assert cfg.hydra.run.dir == str(abandoned)
    assert claimant(abandoned) == this_process()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="process start times are read from /proc")
def test_a_claim_whose_pid_is_now_another_process_s_is_taken_over(tmp_path, live_pid):
    """A restarted container numbers its processes again: the pid in a killed run's claim may be this run's
    own, or another live process's (which started after the claim was written)."""
    claim_by(tmp_path / "mine", os.getpid())
    assert KeepFinishedRuns()._claim(tmp_path / "mine", "run") is None
    assert claimant(tmp_path / "mine") == this_process()
    started = Path(f"/proc/{live_pid}/stat").read_text().rpartition(")")[2].split()[19]  # the 22nd field
    claim_by(tmp_path / "reused", live_pid, start=str(int(started) - 100))
    assert KeepFinishedRuns()._claim(tmp_path / "reused", "run") is None
    claim_by(tmp_path / "live", live_pid, start=started)
    assert KeepFinishedRuns()._claim(tmp_path / "live", "run") is not None


def test_a_runs_claim_is_readable_by_other_users_as_a_plain_file_is(tmp_path):
    """It was 0600: another user's run could not read it, took it for a dead run's and wrote into the same folder."""
    callback = KeepFinishedRuns()
    assert callback._claim(tmp_path / "run", "run") is None
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "run" / OWNER).stat().st_mode) == 0o666 & ~mask
    callback._release()


def unreadable_claim(folder: Path) -> None:
    """A claim in `folder` that this user may not read: another user's, kept from it by a stricter umask."""
    claim_by(folder, os.getpid() + 1)
    if os.geteuid() != 0:
        (folder / OWNER).chmod(0)
        return
    # root reads any file whatever its mode: a claim that is a write-only sysctl file, which root may not read
    (folder / OWNER).unlink()
    (folder / OWNER).symlink_to("/proc/sys/vm/compact_memory")
    try:
        (folder / OWNER).read_text()
    except PermissionError:
        return
    except OSError:
        pass
    pytest.skip("running as root with no file root may not read (no /proc/sys/vm/compact_memory)")


def test_a_claim_this_user_cannot_read_is_refused_as_a_live_runs_and_left_alone(tmp_path, capsys):
    """It was taken for a dead run's claim, removed, and the folder of another user's live run written into."""
    busy = tmp_path / "busy"
    unreadable_claim(busy)
    assert refusal(KeepFinishedRuns().on_run_start, hydra_config(str(busy)), capsys) == (
        f"error: hydra.run.dir={busy} is being written by another run (another user's, whose claim this user cannot "
        "read): choose another with hydra.run.dir=DIR, or wait for that run to end (if it has ended, remove its "
        f"claim: rm {busy / OWNER})\n")
    assert os.path.lexists(busy / OWNER)


def test_paths_kaggle_off_kaggle_is_refused_before_its_run_folder_is_made(tmp_path, capsys):
    """It made /kaggle/working/logs/... at the file system's root, with the whole run in it, and said nothing."""
    config = hydra_config(str(tmp_path / "run"), "paths=kaggle")  # this machine has no /kaggle/input
    for start in (KeepFinishedRuns().on_run_start, KeepFinishedRuns().on_multirun_start):
        with pytest.raises(SystemExit) as refused:
            start(config)
        assert refused.value.code == 2
        assert capsys.readouterr().err == ("error: paths=kaggle: /kaggle/input not found (not a Kaggle notebook?): "
                                           "leave out paths=kaggle\n")
    assert not (tmp_path / "run").exists()
    # in a notebook, where its data folder is
    callback, config = KeepFinishedRuns(), hydra_config(str(tmp_path / "run"), "paths=kaggle", f"paths.data_dir={tmp_path}")
    callback.on_run_start(config)
    callback.on_run_end(config)
    assert (tmp_path / "run").is_dir()


def test_a_dated_run_folder_given_on_the_command_line_is_checked_by_its_fixed_part(tmp_path, capsys):
    exit_if_run_dir_unwritable([f"hydra.run.dir={tmp_path}/runs/${{now:%H-%M}}"])  # before Hydra resolves it
    assert list(tmp_path.iterdir()) == []  # checked, not made: no "runs", no folder named "${now:%H-%M}"
    (tmp_path / "runs").write_text("a file where the fixed part should be a folder")
    with pytest.raises(SystemExit):
        exit_if_run_dir_unwritable([f"hydra.run.dir={tmp_path}/runs/${{now:%H-%M}}"])
    assert f"({tmp_path / 'runs'} is a file, not a folder)" in capsys.readouterr().err


def test_a_paths_choice_whose_log_folder_cannot_be_made_is_one_line_before_hydra_makes_it(tmp_path, monkeypatch,
                                                                                          capsys):
    """paths=kaggle off Kaggle, where /kaggle/working cannot be made: Hydra's traceback as it made the run folder."""
    conf = tmp_path / "conf"
    (conf / "paths").mkdir(parents=True)
    (tmp_path / "a_file").write_text("a file where a folder should go")
    kaggle = (cli.CONF_DIR / "paths" / "kaggle.yaml").read_text()
    (conf / "paths" / "kaggle.yaml").write_text(kaggle.replace("/kaggle/working", str(tmp_path / "a_file" / "working")))
    monkeypatch.setattr(cli, "CONF_DIR", conf)
    with pytest.raises(SystemExit) as refused:
        exit_if_run_dir_unwritable(["paths=kaggle"], default_log_dir="logs")
    assert refused.value.code == 2 and capsys.readouterr().err == (
        f"error: cannot write to {tmp_path / 'a_file' / 'working' / 'logs'} ({tmp_path / 'a_file'} is a file, not a "
        "folder), where paths=kaggle puts "
        "runs: leave paths=kaggle out, or choose one with paths.log_dir=DIR\n")
    exit_if_run_dir_unwritable(["paths=kaggle", f"paths.log_dir={tmp_path / 'logs'}"], default_log_dir="logs")


@pytest.mark.parametrize(("option", "under", "flags"), [("paths.log_dir", "", []), ("hydra.run.dir", "", []),
                                                     ("paths.log_dir", "/logs", []), ("hydra.sweep.dir", "/sweep", ["-m"])])
def test_an_output_folder_that_is_a_file_or_lies_under_one_names_that_file(option, under, flags, tmp_path, capsys):
    """paths.log_dir=FILE said the OS's "(File exists)" (under a file, "(Not a directory)"), naming no file: the
    words the cache folder gets for it."""
    a_file = tmp_path / "a_file"
    a_file.write_text("a file where a folder should go")
    with pytest.raises(SystemExit) as refused:
        exit_if_run_dir_unwritable([*flags, f"{option}={a_file}{under}"])
    assert refused.value.code == 2 and capsys.readouterr().err == (
        f"error: cannot write to {option}={a_file}{under} ({a_file} is a file, not a folder): choose another with "
        f"{option}=DIR\n")


def without_hard_links(monkeypatch) -> None:
    """The file system of vfat, exFAT, gcsfuse or Google Drive: os.link fails with EPERM."""

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)


def test_a_folder_is_claimed_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch, live_pid):
    without_hard_links(monkeypatch)
    assert KeepFinishedRuns()._claim(tmp_path / "mine", "run") is None
    assert claimant(tmp_path / "mine") == this_process()
    claim_by(tmp_path / "busy", live_pid)
    refusal = KeepFinishedRuns()._claim(tmp_path / "busy", "run")
    assert refusal is not None and f"process {live_pid}" in refusal


def test_an_empty_claim_is_one_being_written_until_it_is_seconds_old(tmp_path):
    """Without hard links a claim is created, then written: read in between, it is not a dead run's."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / OWNER).touch()
    assert "one claiming it at this moment" in KeepFinishedRuns()._claim(tmp_path / "run", "run")
    os.utime(tmp_path / "run" / OWNER, (time.time() - 60, time.time() - 60))  # left by a run killed then
    assert KeepFinishedRuns()._claim(tmp_path / "run", "run") is None


def _claim_after(barrier, folder: Path, results) -> None:
    barrier.wait()
    claim = KeepFinishedRuns()
    results.put((os.getpid(), claim._claim(folder, "run") is None))
    barrier.wait()  # alive until every process has tried: a claim of a process that ended is taken over


@pytest.mark.parametrize("hard_links", [True, False])
def test_runs_claiming_one_folder_at_the_same_moment_get_it_once(tmp_path, monkeypatch, hard_links):
    import multiprocessing

    if not hard_links:
        without_hard_links(monkeypatch)  # the forked processes inherit it

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_claim_after, args=(barrier, tmp_path / "run", results)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    claims = [results.get(timeout=5) for _ in processes]
    (winner,) = [pid for pid, owns in claims if owns]
    assert claimant(tmp_path / "run") == f"{socket.gethostname()} {winner}"


def sweep_config(sweep_dir: Path, *overrides: str):
    """train.yaml with Hydra's settings for `python train.py -m hydra.sweep.dir=<sweep_dir> <overrides>`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", return_hydra_config=True,
                       overrides=[f"hydra.sweep.dir={sweep_dir}", *overrides])


def refusal(start, cfg, capsys) -> str:
    """The one line `start(cfg)` (a KeepFinishedRuns hook) refuses the folder with, exit status 2."""
    with pytest.raises(SystemExit) as refused:
        start(cfg)
    assert refused.value.code == 2
    return capsys.readouterr().err


def finished_job(folder: Path, *records: str) -> None:
    for record in records:
        (folder / record).parent.mkdir(parents=True, exist_ok=True)
        (folder / record).write_text("a finished job's")


def test_a_sweep_into_a_folder_whose_finished_jobs_are_nested_deeper_is_refused(tmp_path, capsys):
    """hydra.sweep.subdir=lr${model.optimizer.lr}/${hydra.job.num} puts each job two levels down: Hydra would
    write a second sweep's .hydra/ over those jobs' records before any job could refuse."""
    finished_job(tmp_path / "lr0.001" / "0", "checkpoints/best.ckpt", "sweep_job.json")
    cfg = sweep_config(tmp_path, "hydra.sweep.subdir=lr${model.optimizer.lr}/${hydra.job.num}")
    assert refusal(KeepFinishedRuns().on_multirun_start, cfg, capsys) == (
        f"error: hydra.sweep.dir={tmp_path} already holds a sweep's finished jobs (lr0.001/0/checkpoints/best.ckpt): "
        "choose another with hydra.sweep.dir=DIR (an Optuna study kept in storage=... goes on from any folder)\n")


def test_a_job_folder_that_is_the_same_for_every_job_is_refused_before_any_job_runs(tmp_path, capsys):
    """`-m seed=1,2 hydra.sweep.subdir=x`: job 1 would write over job 0's records."""
    cfg = sweep_config(tmp_path / "sweep", "hydra.sweep.subdir=x")
    assert refusal(KeepFinishedRuns().on_multirun_start, cfg, capsys) == (
        "error: hydra.sweep.subdir=x is the same folder for every job of the sweep, which would write over each "
        "other's records: make it one per job with ${hydra.job.num} in it (hydra.sweep.subdir=x/${hydra.job.num}), "
        "or leave it out\n")
    assert not (tmp_path / "sweep").exists()
    # one naming the swept values differs for most jobs: said as it is, not as the same for every job
    named = sweep_config(tmp_path / "sweep", "hydra.sweep.subdir=${hydra.job.override_dirname}")
    assert refusal(KeepFinishedRuns().on_multirun_start, named, capsys).startswith(
        "error: hydra.sweep.subdir=${hydra.job.override_dirname} may be the same folder for two jobs (two of the same "
        "values: two Optuna trials may draw them), which would write over each other's records: make it one per job "
        "with ${hydra.job.num} in it")
    callback = KeepFinishedRuns()  # one per job, however nested, is taken
    callback.on_multirun_start(sweep_config(tmp_path / "sweep", "hydra.sweep.subdir=x/${hydra.job.num}"))
    callback.on_multirun_end(cfg)


def test_a_sweep_into_a_folder_whose_jobs_saved_no_checkpoint_or_test_scores_is_refused(tmp_path, capsys):
    """Jobs run with test=false and no checkpoints leave their record and logged curves: a second sweep would
    replace their settings and add its curves to their csv/metrics.csv."""
    sweep, run = tmp_path / "sweep", tmp_path / "run"
    finished_job(sweep / "0", "sweep_job.json", "csv/metrics.csv")
    assert "already holds a sweep's finished jobs (0/sweep_job.json)" in refusal(
        KeepFinishedRuns().on_multirun_start, sweep_config(sweep), capsys)
    finished_job(run, ".hydra/config.yaml", "csv/metrics.csv")  # a single run's the same way
    assert "already holds a finished run (csv/metrics.csv)" in refusal(
        KeepFinishedRuns().on_run_start, hydra_config(str(run)), capsys)


def test_a_run_killed_before_its_first_checkpoint_is_refused_as_such_not_as_a_finished_run(tmp_path, capsys):
    """A run killed (SIGKILL) before it saved a checkpoint leaves its logged curves and its claim: it was refused as
    a finished run, though it had nothing to resume."""
    finished_job(tmp_path, ".hydra/config.yaml", "csv/metrics.csv")
    claim_by(tmp_path, a_dead_pid())
    assert refusal(KeepFinishedRuns().on_run_start, hydra_config(str(tmp_path)), capsys) == (
        f"error: hydra.run.dir={tmp_path} already holds a run stopped before its first checkpoint (csv/metrics.csv, "
        "no checkpoints/*.ckpt): there is nothing to resume; choose another with hydra.run.dir=DIR, or remove that "
        "folder to run there again\n")


def test_resuming_into_the_interrupted_runs_own_folder_is_told_to_write_elsewhere_not_to_resume(tmp_path, capsys):
    """The interrupted run's folder is refused (the resumed run writes a new one); a command that already resumes
    it with ckpt_path=... was told to add that very ckpt_path."""
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    torch.save({"global_step": 20, "supra": {"run_config": {"trainer": {"max_steps": 60}}}}, last)
    assert refusal(KeepFinishedRuns().on_run_start, hydra_config(str(tmp_path), f"ckpt_path={last}"), capsys) == (
        f"error: hydra.run.dir={tmp_path} already holds an interrupted run (checkpoints/last.ckpt at step 20 of 60): "
        "a resumed run writes a new folder: leave out hydra.run.dir, or give another with hydra.run.dir=DIR\n")
    assert f"resume it with ckpt_path={last} (a resumed run writes a new folder)" in refusal(
        KeepFinishedRuns().on_run_start, hydra_config(str(tmp_path)), capsys)


def test_a_folder_a_live_run_is_writing_is_refused_as_such_once_it_holds_checkpoints(tmp_path, capsys, live_pid):
    """Its last.ckpt made it "an interrupted run" with advice to resume it, starting a second training from a
    snapshot of a run still going; a live sweep's first job made its folder "a sweep's finished jobs"."""
    run, sweep, host = tmp_path / "run", tmp_path / "sweep", socket.gethostname()
    last = run / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"global_step": 6, "supra": {"run_config": {"trainer": {"max_steps": 400}}}}, last)
    claim_by(run, live_pid)
    assert refusal(KeepFinishedRuns().on_run_start, hydra_config(str(run)), capsys) == (
        f"error: hydra.run.dir={run} is being written by another run (process {live_pid} on {host}): choose another "
        f"with hydra.run.dir=DIR, or wait for that run to end (if it has ended, remove its claim: rm {run / OWNER})\n")
    finished_job(sweep, "multirun.yaml", "0/checkpoints/last.ckpt", "0/csv/metrics.csv")
    claim_by(sweep, live_pid)
    assert refusal(KeepFinishedRuns().on_multirun_start, sweep_config(sweep), capsys) == (
        f"error: hydra.sweep.dir={sweep} is being written by another run (process {live_pid} on {host}): choose "
        "another with hydra.sweep.dir=DIR, or wait for that run to end (if it has ended, remove its claim: "
        f"rm {sweep / OWNER})\n")
    claim_by(run, a_dead_pid())  # once that run is killed, its folder is an interrupted run's
    assert "already holds an interrupted run (checkpoints/last.ckpt at step 6 of 400)" in refusal(
        KeepFinishedRuns().on_run_start, hydra_config(str(run)), capsys)


def test_a_folder_a_run_was_refused_in_before_its_work_is_free_for_the_corrected_command(tmp_path):
    """Hydra writes .hydra/ and the log before the run refuses bad input (`seed=abc`): no run's result."""
    finished_job(tmp_path, ".hydra/config.yaml", ".hydra/overrides.yaml", "train.log")
    cfg = hydra_config(str(tmp_path))
    KeepFinishedRuns().on_run_start(cfg)
    assert cfg.hydra.run.dir == str(tmp_path)


def test_a_sweep_into_a_finished_runs_folder_and_a_run_into_a_sweeps_folder_are_refused(tmp_path, capsys):
    run, sweep = tmp_path / "run", tmp_path / "sweep"
    finished_job(run, "checkpoints/best.ckpt", "metrics.json")
    finished_job(sweep, "multirun.yaml", "0/sweep_job.json")
    assert refusal(KeepFinishedRuns().on_multirun_start, sweep_config(run), capsys) == (
        f"error: hydra.sweep.dir={run} already holds a finished run (checkpoints/best.ckpt): choose another with "
        "hydra.sweep.dir=DIR (an Optuna study kept in storage=... goes on from any folder)\n")
    assert refusal(KeepFinishedRuns().on_run_start, hydra_config(str(sweep)), capsys) == (
        f"error: hydra.run.dir={sweep} is a sweep's folder (multirun.yaml): choose another with hydra.run.dir=DIR, "
        "or leave it out for a new dated folder\n")


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_a_run_or_sweep_into_a_release_folder_is_refused_before_anything_is_written_into_it(tmp_path, capsys, mode):
    """evaluate.py there replaced the release's samples.png; train.py reused its tokenizer.json."""
    release = tmp_path / "release"
    finished_job(release, "config.json", "model.safetensors", "tokenizer.json", "samples.png")
    assert release_kind(release)  # the folder the release readers take for one
    start = KeepFinishedRuns().on_run_start if mode == "run" else KeepFinishedRuns().on_multirun_start
    cfg = hydra_config(str(release)) if mode == "run" else sweep_config(release)
    assert refusal(start, cfg, capsys) == (
        f"error: hydra.{mode}.dir={release} is a release folder (config.json + model.safetensors): choose another "
        f"with hydra.{mode}.dir=DIR" + (", or leave it out for a new dated folder\n" if mode == "run" else "\n"))
    assert sorted(p.name for p in release.iterdir()) == ["config.json", "model.safetensors", "samples.png", "tokenizer.json"]


def test_a_run_into_an_optuna_sweeps_folder_is_refused_though_the_optuna_sweeper_writes_no_multirun_yaml(
        tmp_path, capsys):
    """Its jobs' folders show it: a run's .hydra/ written there would leave a sweep report that cannot be rebuilt."""
    sweep, killed, runs = tmp_path / "sweep", tmp_path / "killed", tmp_path / "runs"
    finished_job(sweep, "optimization_results.yaml", "sweep_summary.csv", "0/sweep_job.json", "1/sweep_job.json")
    for job in (sweep / "0", sweep / "1", killed / "0"):  # a sweep killed in its first job has only that job's .hydra/
        finished_job(job, ".hydra/overrides.yaml")
        (job / ".hydra" / "hydra.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    assert refusal(KeepFinishedRuns().on_run_start, hydra_config(str(sweep)), capsys) == (
        f"error: hydra.run.dir={sweep} holds a sweep's jobs (0/): choose another with hydra.run.dir=DIR, "
        "or leave it out for a new dated folder\n")
    assert sweep_record(killed) == killed / "0" / ".hydra" / "hydra.yaml"
    finished_job(runs / "a_run", ".hydra/overrides.yaml")  # a folder of single runs is no sweep's
    (runs / "a_run" / ".hydra" / "hydra.yaml").write_text("hydra:\n  mode: RUN\n")
    assert sweep_record(runs) is None


def test_a_run_refused_once_its_folder_exists_says_why_in_its_train_log_too(tmp_path, monkeypatch, capsys,
                                                                         root_logging):
    """A background or cluster job's console is often gone: its run folder tells why it ended. The console
    has the line once, on stderr (Hydra's console logging does not repeat it)."""
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["train.py", "+model.weightdecay=0.1", f"hydra.run.dir={run}"])
    with pytest.raises(SystemExit) as ended:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    line = "error: model.weightdecay=0.1: CaptioningTask has no option weightdecay: did you mean model.weight_decay?"
    console = capsys.readouterr()
    assert ended.value.code == 2 and console.err.count(line) == 1 and line not in console.out
    assert (run / "train.log").read_text().splitlines()[-1].endswith(f"[ERROR] - {line}")


def test_an_unexpected_error_leaves_its_traceback_in_the_run_log_not_twice_on_the_console(tmp_path, root_logging):
    stream = io.StringIO()
    console, run_log = logging.StreamHandler(stream), logging.FileHandler(tmp_path / "train.log")
    root_logging.handlers[:] = [console, run_log]
    with pytest.raises(RuntimeError, match="a bug"), exit_on_user_error():
        raise RuntimeError("a bug")
    run_log.close()
    written = (tmp_path / "train.log").read_text()
    assert written.startswith("the run failed:\nTraceback (most recent call last):") and \
        written.endswith("RuntimeError: a bug\n")
    assert stream.getvalue() == ""  # Hydra prints the traceback there itself


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_a_run_or_sweep_folder_in_its_data_folder_is_refused_before_anything_is_written_into_it(tmp_path, capsys,
                                                                                                  mode):
    """Its sample grids, checkpoints and logs would be read back as photos by the next run on that data, and by
    caption; a folder beside the data is taken as before."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "img_00.jpg").write_bytes(b"a photo")
    data = ["data=caption_folder", f"data.root={photos}"]
    start = KeepFinishedRuns().on_run_start if mode == "run" else KeepFinishedRuns().on_multirun_start
    for folder in (photos, photos / "logs" / "runs"):  # the data folder itself, or one below it
        cfg = hydra_config(str(folder), *data) if mode == "run" else sweep_config(folder, *data)
        assert refusal(start, cfg, capsys) == (
            f"error: hydra.{mode}.dir={folder} lies in data.root={photos.resolve()}: the run's pictures and records "
            f"would be read as data by later runs (and by caption); choose another with hydra.{mode}.dir=DIR outside it\n")
    assert [p.name for p in photos.iterdir()] == ["img_00.jpg"]
    beside = KeepFinishedRuns()
    beside.on_run_start(hydra_config(str(tmp_path / "run"), *data))
    beside.on_run_end(hydra_config(str(tmp_path / "run"), *data))
