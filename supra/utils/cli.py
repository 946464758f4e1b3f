"""The one style of every command: Hydra apps over conf/ (key=value overrides, `--help` with the command's
own usage and examples), with user errors as one line and no traceback."""

from __future__ import annotations

import difflib
import io
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from types import FrameType
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import ChoiceSweep
from hydra.core.plugins import Plugins
from hydra.errors import CompactHydraException, InstantiationException
from hydra.plugins.completion_plugin import CompletionPlugin
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from supra.utils.errors import SupraUserError, note_in_run_log, user_error_in
from supra.utils.files import check_writable_dir, openable_path, unwritable_reason
from supra.utils.home_paths import expand_home
from supra.utils.hydra_quoting import quote_values, quoted_whole
from supra.utils.numbers import whole_hint
from supra.utils.overrides import CONF_DIR, is_config_group, other_configs, parsed_overrides
from supra.utils.private_apis import hydra_args_parser
from supra.utils.start_up import SIGINT_EXIT, end_start_up
from supra.utils.unknown_keys import exit_if_unknown_key


@contextmanager
def exit_on_user_error(exit_code: int = 2) -> Iterator[None]:
    """Print `error: <message>` and exit with `exit_code` on a SupraUserError, even one Hydra wrapped; that line,
    or another exception's traceback, also goes into the run's log file (note_in_run_log). In
    a sweep's job the error is raised on instead, once said: Hydra records the job as failed (an Optuna
    search goes on), where an exit would end the whole sweep without recording it."""
    try:
        yield
    except Exception as err:
        # ours, one Hydra's instantiate wrapped, or a spawned rank's
        carries = isinstance(err, (SupraUserError, InstantiationException, *_spawned_rank_errors()))
        user_error = user_error_in(err) if carries else None
        if user_error is None:  # Hydra prints the traceback on the console alone
            note_in_run_log("the run failed:", with_traceback=True)
            raise
        print(f"error: {user_error}", file=sys.stderr)
        note_in_run_log(f"error: {user_error}")
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise FailedJob(str(user_error)) from None
        raise SystemExit(exit_code) from None


def _spawned_rank_errors() -> tuple[type[Exception], ...]:
    """The error torch raises for a spawned rank's: only once torch is imported (a command's --help, its checks
    of the command line, run without it), and none can be raised before."""
    spawning = sys.modules.get("torch.multiprocessing")
    return (spawning.ProcessRaisedException,) if spawning else ()


@contextmanager
def exit_on_ctrl_c(left: Callable[[], str]) -> Iterator[None]:
    """Ctrl-C (a KeyboardInterrupt), or a SIGTERM taken as one (sigterm_as_ctrl_c), as one line,
    `interrupted: <left()>` (what the command leaves behind), exit status 130, not a traceback through whatever
    library was at work; also noted in the run's log. Lightning's own exit after a Ctrl-C (ended_by_ctrl_c) is
    taken for one too."""
    end_start_up()  # from here on Ctrl-C is a KeyboardInterrupt, said below with what the command leaves
    try:
        with sigterm_as_ctrl_c():
            yield
    except (KeyboardInterrupt, SystemExit) as err:
        if not ended_by_ctrl_c(err):
            raise
        message = f"interrupted: {left()}"
        print(message, file=sys.stderr, flush=True)
        note_in_run_log(message)
        raise SystemExit(SIGINT_EXIT) from None


@contextmanager
def sigterm_default() -> Iterator[None]:
    """SIGTERM at its default action (end the process) within the block, in the main thread; then as it was (a
    handler set outside Python, which signal cannot put back, is left at the default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (kill, `timeout`, a service manager's stop, a cluster's preemption) taken as Ctrl-C within the block:
    a KeyboardInterrupt, so the command removes what it made and ends as Ctrl-C ends it. By default it ended the
    process at once, silently (status 143), leaving what it had half made. Only where SIGTERM has that default: a
    handler a launcher put in place (submitit's, in a SLURM job) is left alone, an ignored SIGTERM stays ignored,
    and outside the main thread no handler can be set."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _sigterm_as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """sigterm_as_ctrl_c's handler. During a fit or test Lightning's own handler is in place and calls this one
    after its own: Lightning then stops at the end of the batch (a fit writes last.ckpt at the step reached, which a
    preempted SLURM job is resubmitted from), where a KeyboardInterrupt would cut the batch short; so nothing here."""
    if signal.getsignal(signal.SIGTERM) is _sigterm_as_ctrl_c:
        raise KeyboardInterrupt


def ended_by_ctrl_c(err: BaseException) -> bool:
    """Whether `err` is Ctrl-C's: a KeyboardInterrupt, or the exit a library made of one (Lightning ends a fit or
    test that Ctrl-C cut with sys.exit(1), raised while handling it, after its graceful shutdown)."""
    if isinstance(err, KeyboardInterrupt):
        return True
    return isinstance(err, SystemExit) and err.code != SIGINT_EXIT and isinstance(err.__context__, KeyboardInterrupt)


class FailedJob(CompactHydraException):
    """A sweep job's user error, raised on to Hydra: the job is recorded as failed, and where the sweep stops
    on it (a grid stops at the end of its batch) Hydra prints the line alone, being compact: no traceback."""


def check_option_types(values: Mapping[str, Any], whole: Iterable[str] = (), numbers: Iterable[str] = (),
                       optional: Iterable[str] = ()) -> None:
    """Hydra passes `seed=abc` on as a string: name the option in one line before it fails deep inside.
    `whole` must be ints, `numbers` ints or floats; those in `optional` may also be null."""
    optional = set(optional)
    for names, kinds, what in ((whole, (int,), "a whole number"), (numbers, (int, float), "a number")):
        for name in names:
            value = values.get(name)
            if value is None and name in optional:
                continue
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise SupraUserError(f"{count_as_typed(name, value)} must be {what}"
                                     + (" (or null)" if name in optional else ""))


def as_typed(name: str, value: object) -> str:
    """The value of option `name` as the command line gave it (`1e3`, which Hydra reads as the float 1000.0), for
    a message the user reads as their own input; `value`'s repr where no override gave it (a config's, a test's)."""
    if HydraConfig.initialized():
        for override in HydraConfig.get().overrides.task:
            key, _, text = str(override).partition("=")
            if key.lstrip("+~") == name:
                return text
    return repr(value)


def count_as_typed(name: str, value: object) -> str:
    """`name=value` for the refusal of a count option: a float as the command line gave it (`1e3`, which Hydra reads
    as 1000.0), any other value as its repr; a float of a whole value with the count to write instead
    (numbers.whole_hint: `n=1e3 (write 1000, not 1e3)`), as the models' own checks say it."""
    typed = as_typed(name, value) if isinstance(value, float) else repr(value)
    return f"{name}={typed}{whole_hint(value, typed)}"


JOB_CHDIR = ("hydra.job.chdir=true: the commands read every relative path given (ckpt_path=, data.root=, ...) "
             "from the folder they are started in, not from the run folder Hydra would move into (their outputs "
             "go there anyway): leave it out")


def refuse_job_chdir() -> None:
    """hydra.job.chdir=true, refused: Hydra moves into the run folder before the job starts, where a relative
    path given on the command line names another file (`ckpt_path=ck/best.ckpt` "does not exist")."""
    if HydraConfig.initialized() and HydraConfig.get().job.get("chdir"):
        raise SupraUserError(JOB_CHDIR)


def check_switches(values: Mapping[str, Any], auto: Iterable[str] = ()) -> None:
    """Each of `values` (option name -> value) true or false, those in `auto` also "auto", else one line naming
    it: Hydra passes `compile=no` on as the text "no", which Python counts as true."""
    auto = set(auto)
    for name, value in values.items():
        if not isinstance(value, bool) and not (name in auto and value == "auto"):
            raise SupraUserError(f"{name}={value!r} must be true{', false or auto' if name in auto else ' or false'}")


def check_paths_given(values: Mapping[str, Any], paths: Mapping[str, str]) -> None:
    """Each of `paths` (option name -> what it names) that is set (not null) given as more than blanks, else one
    line: Path("") is the current folder, so `out=` would write there and `images=` read every picture below it."""
    for name, what in paths.items():
        value = values.get(name)
        if isinstance(value, str) and not value.strip():
            raise SupraUserError(f"{name}= is empty: give {what}")


def changed_options(values: Mapping[str, Any], config_name: str, names: Iterable[str]) -> list[str]:
    """`name=value` for each of `names` whose value is not conf/<config_name>.yaml's default."""
    defaults = OmegaConf.load(CONF_DIR / f"{config_name}.yaml")
    return [f"{name}={values.get(name)}" for name in names if values.get(name) != defaults.get(name)]


def refuse_unread_options(values: Mapping[str, Any], config_name: str, unread: Iterable[str], reader: str,
                          reads: Sequence[str] | None = None) -> None:
    """Those of `unread` (options `reader` does not read) that the command line changed from their defaults,
    refused in one line: they would be ignored without a word. `reads`: the options it does read, named."""
    ignored = changed_options(values, config_name, unread)
    if ignored:
        them = "it" if len(ignored) == 1 else "them"
        named = f" (it reads {', '.join(reads)})" if reads else ""
        raise SupraUserError(f"{' '.join(ignored)}: {reader} does not read {them}{named}; leave {them} out")


def exit_if_run_dir_unwritable(argv: Sequence[str], default_log_dir: str | None = None) -> None:
    """Hydra creates the run directory (`hydra.run.dir`, by default under `paths.log_dir`) before the job
    runs and fails there with a traceback; say it in one line, making no folder (a command line refused after
    this check leaves nothing behind). `default_log_dir`: where the command's runs go when the command line names
    no folder (`logs` under the folder it is run from), checked then too."""
    options = {arg.partition("=")[0].lstrip("+") for arg in argv}
    if default_log_dir and not options & {"hydra.run.dir", "hydra.sweep.dir", "paths.log_dir", "paths.root_dir"}:
        folder, where = Path(default_log_dir), "where runs go by default: run from a folder you can write to, or"
        # paths=kaggle: its fixed log_dir (/kaggle/working/logs), which off Kaggle may not be made
        chosen = next((arg.partition("=")[2] for arg in argv if arg.partition("=")[0].lstrip("+") == "paths"), None)
        paths_file = CONF_DIR / "paths" / f"{chosen}.yaml"
        log_dir = OmegaConf.load(paths_file).get("log_dir") if chosen and paths_file.is_file() else None
        if isinstance(log_dir, str) and "${" not in log_dir:
            folder, where = Path(log_dir), f"where paths={chosen} puts runs: leave paths={chosen} out, or"
        try:  # without creating it: Hydra does, in the folder chosen after composing (an experiment may move it)
            _check_writable_unmade(folder)
        except OSError as err:
            print(f"error: cannot write to {folder.resolve()} ({unwritable_reason(folder, err)}), {where} choose one with "
                  "paths.log_dir=DIR", file=sys.stderr)
            raise SystemExit(2) from None
    multirun = any(arg in ("-m", "--multirun") for arg in argv)  # only then is hydra.sweep.dir made
    for arg in argv:
        option, _, folder = arg.partition("=")
        if option in ("hydra.run.dir", "paths.log_dir") or (multirun and option == "hydra.sweep.dir"):
            if quoted_whole(folder):  # hydra.run.dir='/runs/my run': the folder inside the quotes
                folder = folder[1:-1]
            if "${" in folder:  # a dated folder (`runs/${now:%H-%M}`): its fixed part, not a folder named "${now"
                folder = folder.split("${")[0].rpartition("/")[0] or "."
            try:  # not made here: Hydra makes it, and a command line refused later (a misspelled key) leaves none
                _check_writable_unmade(Path(folder))
            except OSError as err:
                print(f"error: cannot write to {option}={folder} ({unwritable_reason(Path(folder), err)}): "
                      f"choose another with {option}=DIR", file=sys.stderr)
                raise SystemExit(2) from None


def _check_writable_unmade(folder: Path) -> None:
    """`folder` could be made and written, proven in the nearest folder above it that exists, without making
    it (OSError if not)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    check_writable_dir(folder, create=False)


COMPLETION_FLAGS = ("--shell-completion", "-sc")
COMPLETION_ACTIONS = ("install", "uninstall", "query")

# What Hydra does with a command line, one at a time: run it (the default), sweep it, print its config or
# its search path, or complete it in a shell; each by its flags, long and short.
HYDRA_MODES = {"--run": ("--run", "-r"), "--multirun": ("--multirun", "-m"), "--cfg": ("--cfg", "-c"),
               "--info": ("--info", "-i"), "--shell-completion": COMPLETION_FLAGS}


def exit_if_modes_combined(argv: Sequence[str]) -> None:
    """Two of Hydra's modes on one command line (`-m --cfg job`, `--cfg job --info`, `--multi --cf job`, `-mc job`)
    as one line, exit 2, not Hydra's ValueError traceback ("Only one of --run, --multirun, --cfg, --info and
    --shell_completion"). Each mode is named as typed where its flag was typed whole, else by its long flag."""
    modes = hydra_modes_given(argv)
    if len(modes) < 2:
        return
    typed = {mode: next((arg.partition("=")[0] for arg in argv if arg.partition("=")[0] in HYDRA_MODES[mode]), mode)
             for mode in modes}
    hint = " (--cfg prints one run's config: leave out the multirun flag)" if {"--cfg", "--multirun"} <= set(typed) else ""
    print(f"error: {' and '.join(typed.values())} cannot be given together: a command line takes one of "
          f"{', '.join(HYDRA_MODES)}; leave out all but one{hint}", file=sys.stderr)
    raise SystemExit(2)


def exit_if_hydra_cfg_resolved(argv: Sequence[str]) -> None:
    """`--cfg hydra --resolve` as one line naming what prints it, exit 2, not Hydra's traceback: Hydra resolves its
    own section alone, without the run's keys it reads (hydra.run.dir's ${paths.log_dir}, the SLURM launcher's
    ${trainer.devices}), where `--cfg all --resolve --package hydra` resolves it within the whole config."""
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):  # Hydra says it again, as it parses
            args = hydra_args_parser().parse_args(list(argv))
    except SystemExit:  # a command line Hydra's parser refuses itself, in its own words
        return
    if args.cfg == "hydra" and args.resolve:
        package = args.package if args.package and args.package.startswith("hydra") else "hydra"
        print(f"error: --cfg hydra --resolve cannot resolve Hydra's config alone (it reads the run's keys, such as "
              f"paths.log_dir): use --cfg all --resolve --package {package}", file=sys.stderr)
        raise SystemExit(2)


def hydra_modes_given(argv: Sequence[str]) -> list[str]:
    """The modes of HYDRA_MODES that `argv` gives, read by Hydra's own parser (abbreviated and bundled flags as
    it takes them); none for a command line it refuses itself (`--cfg foo`) or answers first (`--version`)."""
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):  # Hydra says it again, as it parses
            args = hydra_args_parser().parse_args(list(argv))
    except SystemExit:
        return []
    given = {"--run": args.run, "--multirun": args.multirun, "--cfg": args.cfg is not None,
             "--info": args.info is not None, "--shell-completion": args.shell_completion}
    return [mode for mode in HYDRA_MODES if given[mode]]


def asks_shell_completion(argv: Sequence[str], command: str) -> bool:
    """Whether the command line asks for Hydra's shell completion (`-sc install=bash`, as Hydra documents it),
    which then goes to Hydra as given, past the command's own checks of its options (`install=` is none of them).
    Without exactly one action and a shell Hydra completes, one line naming the forms, not Hydra's ValueError
    traceback. `command`: how the command is typed (`python train.py`), for the example."""
    if not any(arg in COMPLETION_FLAGS for arg in argv):
        return False
    shells = sorted(plugin.provides() for plugin in Plugins.instance().discover(CompletionPlugin))
    actions = [arg.partition("=") for arg in argv if arg.partition("=")[0] in COMPLETION_ACTIONS]
    if len(actions) != 1 or actions[0][2] not in shells:
        forms = ", ".join(f"{action}=SHELL" for action in COMPLETION_ACTIONS)
        print(f"error: --shell-completion (-sc) takes one of {forms}, SHELL one of {', '.join(shells)}: "
              f'e.g. eval "$({command} -sc install=bash)"', file=sys.stderr)
        raise SystemExit(2)
    return True


def exit_if_shell_completion(argv: Sequence[str], command: str) -> None:
    """Hydra's shell completion asked of a `python -m supra.X` command (`command`), as one line naming the ones
    it works for: Hydra's scripts complete `python FILE.py` only (the word after `python` must be a file that
    holds @hydra.main), so the script it would print here completes nothing of this command."""
    if "--shell-completion" in hydra_modes_given(argv):
        print(f"error: {command} has no shell completion (Hydra's completes python FILE.py, not python -m): "
              'train.py and evaluate.py have it, e.g. eval "$(python train.py -sc install=bash)"', file=sys.stderr)
        raise SystemExit(2)


def exit_if_null_group(config_name: str, argv: Sequence[str]) -> None:
    """`group=null` (`logger=null`) as one line naming the group's options, not Hydra's traceback ("Config group
    override must be a string or a list"): a group takes an option's name (`logger=none` runs without one)."""
    config = OmegaConf.load(CONF_DIR / f"{config_name}.yaml")
    groups = {str(next(iter(d))) if OmegaConf.is_dict(d) else str(d) for d in config.get("defaults", [])}
    for arg in argv:
        group, sep, value = arg.partition("=")
        if sep and group in groups and value.strip() == "null":
            options = sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))
            none = f" ({group}=none: without one)" if "none" in options else ""
            print(f"error: {arg}: a config group takes one of its options, {', '.join(options)}{none}, or leave it "
                  "out for the default", file=sys.stderr)
            raise SystemExit(2)


def exit_if_unknown_group_option(argv: Sequence[str]) -> None:
    """`group=option` naming no file of conf/<group>/ (`data=flikr8k`, `model/encoder=vitt`, each choice of a
    sweep's `data=a,b`) as one line naming the nearest and the options, exit 2, not Hydra's 15-line error. Hydra's
    own groups (hydra/...), what its grammar cannot read and a command line with configs of the user's
    (other_configs: `--config-dir DIR` adds options of its own) are left to it."""
    if other_configs(argv):
        return
    for override in parsed_overrides(argv):
        group = override.key_or_group
        if not is_config_group(group) or override.is_delete():
            continue
        value = override.value()
        chosen = [str(v) for v in value.list] if isinstance(value, ChoiceSweep) else [value] if isinstance(value, str) else []
        for name in chosen:
            if name != "null" and not (CONF_DIR / group / f"{name}.yaml").is_file():
                options = sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))
                close = difflib.get_close_matches(name, options, n=1)
                nearest = f" (did you mean {close[0]}?)" if close else ""
                print(f"error: {override.input_line}: {group} has no option {name}{nearest}: its options are "
                      f"{', '.join(options)}", file=sys.stderr)
                raise SystemExit(2)


LAUNCHERS = ("hydra/launcher: slurm (each job of a -m multirun a SLURM job: python train.py -m hydra/launcher=slurm ...);\n"
             "    Hydra's own basic (the default: the jobs one after another) and submitit_local (each job a local process)")


def print_help(config_name: str, help_config: str | None = None, data_sets: Sequence[str] | None = None,
               config_groups: bool = False) -> None:
    """The command's usage, its options as its config file states them (defaults and what each means, the
    comments included: Hydra's own --help would print the values alone), the data sets where it takes
    data=<name> (`data_sets`, else every conf/data file), or with `config_groups` every group of conf/ and its
    options (train.py's), then examples. The usage and examples are its config's hydra.help, or those of the
    hydra/<help_config> it names. A reader that stops early (`--help | head`) ends it quietly."""
    try:
        _write_help(config_name, help_config, data_sets, config_groups)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader closed the pipe: no error of the user's, so no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # else Python's flush at exit raises again


def _write_help(config_name: str, help_config: str | None, data_sets: Sequence[str] | None,
                config_groups: bool) -> None:
    path = CONF_DIR / f"{config_name}.yaml"
    text = path.read_text()
    help_cfg = OmegaConf.load(CONF_DIR / "hydra" / f"{help_config}.yaml").help if help_config else OmegaConf.load(path).hydra.help
    options: list[str] = []
    in_defaults = False
    for line in text.split("\nhydra:")[0].splitlines():
        in_defaults = line.startswith("defaults:") or (in_defaults and line.startswith("  "))
        header_comment = line.startswith("#") and not options  # the file's own header, said by the usage
        if header_comment or in_defaults or line.startswith("task_name:") or not line.strip():
            continue
        options.append(line)
    print(f"{help_cfg.header.rstrip()}\n\nOptions (key=value; ??? = required):\n" + "\n".join(f"  {line}" for line in options))
    if config_groups:
        print_config_groups()
    elif re.search(r"^  - (override )?data:", text, re.MULTILINE):
        every = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
        names = ", ".join(data_sets or every)
        print(f"\nData sets (data=<name>, then data.root=DIR and the set's own keys): {names}")
    print(f"\n{help_cfg.footer.rstrip()}")


def print_config_groups() -> None:
    """Each config group of conf/ (`model/encoder` too) with its options, for train.py's --help."""
    groups = sorted(str(path.parent.relative_to(CONF_DIR)) for path in CONF_DIR.glob("*/**/*.yaml"))
    lines = [f"  {group}: {', '.join(sorted(path.stem for path in (CONF_DIR / group).glob('*.yaml')))}"
             for group in dict.fromkeys(groups) if not group.startswith("hydra")]
    print(f"\nConfig groups (group=option, one per group; {openable_path(CONF_DIR)}/<group>/<option>.yaml explains its "
          "keys, each a key=value option too,\ne.g. model.optimizer.lr=1e-3 trainer.max_steps=500; --cfg job prints "
          "the composed config):\n"
          + "\n".join(lines) + f"\n  {LAUNCHERS}")


def check_required(cfg: DictConfig, config_name: str) -> None:
    """Options marked ??? that the command line did not give, as one line (not OmegaConf's traceback), and
    the command's flags (true or false in conf/<config_name>.yaml) given anything else: Hydra passes
    `overwrite=no` on as the text "no", which Python counts as true."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        where = sorted({openable_path(path) for key in missing if (path := _option_file(key))})
        raise SupraUserError(f"missing {', '.join(f'{key}=...' for key in missing)} "
                             + (f"(explained in {', '.join(where)})" if where else "(--help lists every option)"))
    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{config_name}.yaml"), resolve=False)
    check_switches({name: cfg.get(name) for name, default in defaults.items() if isinstance(default, bool)})


def _option_file(key: str) -> Path | None:
    """The file of a chosen config group option (model/encoder=pretrained: conf/model/encoder/pretrained.yaml)
    that marks `key`'s last part required (???): --help shows the defaults' options, not that option's own."""
    if not HydraConfig.initialized():
        return None
    leaf = re.compile(rf"^\s*{re.escape(key.rsplit('.', 1)[-1])}:\s*\?\?\?", re.MULTILINE)
    for group, choice in HydraConfig.get().runtime.choices.items():
        path = CONF_DIR / str(group) / f"{choice}.yaml"
        if choice and not str(group).startswith("hydra") and path.is_file() and leaf.search(path.read_text()):
            return path
    return None


# The data=<name> a command's --help lists where it takes fewer than every conf/data file
COMMAND_DATA_SETS = {"tokenize_media": ("media_folder", "shapes_images", "shapes_video")}


def exit_if_help_asked(config_name: str, argv: Sequence[str]) -> None:
    """The checks of `python -m supra.<config_name>`'s command line that come before its --help (Hydra's modes),
    then its --help (exit 0) where `argv` asks for it: from conf/ alone, which supra/__init__.py answers before the
    command's module is imported."""
    exit_if_modes_combined(argv)
    exit_if_hydra_cfg_resolved(argv)
    exit_if_shell_completion(argv, f"python -m supra.{config_name}")  # each command is its config's name
    if any(arg in ("-h", "--help") for arg in argv):
        print_help(config_name, data_sets=COMMAND_DATA_SETS.get(config_name))
        raise SystemExit(0)


def hydra_command(config_name: str, run: Callable[[DictConfig], Any],
                  interrupted: Callable[[DictConfig], str] | None = None) -> Callable[[], None]:
    """The `main` of a command: compose conf/<config_name>.yaml with the command line, then `run(cfg)`;
    a missing or unknown option (a misspelled nested one too: `paths.log_dri=`, `data.rooot=`) and a
    SupraUserError (even one Hydra wrapped) end it as `error: <one line>` with exit status 2, Ctrl-C or a
    SIGTERM as `interrupted: <what interrupted(cfg) says is left>` with status 130 (exit_on_ctrl_c); --help as
    exit_if_help_asked answers it."""

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def main(cfg: DictConfig) -> Any:
        left = (lambda: interrupted(cfg)) if interrupted else (lambda: "stopped before it finished")
        with exit_on_ctrl_c(left), exit_on_user_error():
            check_required(cfg, config_name)
            return run(cfg)

    def entry() -> None:
        exit_if_help_asked(config_name, sys.argv[1:])
        sys.argv[1:] = expand_home(sys.argv[1:])  # out=~/x as the shell gives it, dir=~/x too
        exit_if_run_dir_unwritable(sys.argv[1:])
        sys.argv[1:] = quote_values(sys.argv[1:])
        exit_if_unknown_key(config_name, sys.argv[1:], new_top_keys=False)  # fps=3, paths.log_dri=x: Hydra's error
        main()

    return entry
