"""The layout holds: imports run one way with no cycles, no code is copied, every command answers --help
with its own usage, and no file points at a document the repository does not have."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.conftest import ROOT, command_lines

COMMANDS = sorted(p.stem for p in (ROOT / "supra").glob("*.py") if p.stem != "__init__")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), i.e. every import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def module_imports() -> dict[str, set[str]]:
    graph = grimp.build_graph("supra")  # every import statement, those inside functions too
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_no_import_cycle_between_modules(module_imports):
    assert _cycles(module_imports) == []


def test_no_import_cycle_between_first_level_packages(module_imports):
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, imported in module_imports.items():
        packages.setdefault(package(module), set()).update(package(i) for i in imported if package(i) != package(module))
    assert _cycles(packages) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_keep_the_layers_of_pyproject():
    """pyproject's contracts: the layers (models import no data, task or runner module), and models, tokens and
    the procedural world import no Lightning, Hydra or OmegaConf, directly or through another module."""
    lint_imports = Path(sys.executable).with_name("lint-imports")  # import-linter's command, beside this python
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


def test_no_six_line_block_is_copied_in_the_package():
    # pylint's similarity checker: the same six lines (comments, docstrings and imports aside) in two places
    result = subprocess.run(
        [sys.executable, "-m", "pylint", "--disable=all", "--enable=duplicate-code", "--min-similarity-lines=6",
         "--score=n", "supra"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "R0801" not in result.stdout, result.stdout[-3000:]


# every supra.X command has the entry of hydra_command: one of them stands for all
COMPLETION_ENTRIES = [str(ROOT / "train.py"), str(ROOT / "evaluate.py")]
TWO_MODES_ENTRIES = [str(ROOT / "train.py"), str(ROOT / "evaluate.py"), "caption"]


@pytest.fixture(scope="module")
def work_folder(tmp_path_factory) -> Path:
    """The empty folder this module's command lines are run from; shapes_gifs writes beside it (out=../clips)."""
    work = tmp_path_factory.mktemp("commands") / "work"
    work.mkdir()
    return work


@pytest.fixture(scope="module")
def command_runs(work_folder) -> dict[str, list[subprocess.CompletedProcess]]:
    """This module's command lines, by what they check, all run in one interpreter (command_lines) from
    work_folder: an interpreter for each group would pay Lightning's import again."""
    groups = {
        "help": [[command, "--help"] for command in COMMANDS],
        "completion": [*([entry, "-sc", "install=bash"] for entry in COMPLETION_ENTRIES),
                       *([entry, "--shell-completion", "install=bash"] for entry in COMPLETION_ENTRIES),
                       *([entry, "--shell-completion"] for entry in COMPLETION_ENTRIES)],
        "module completion": [["sweep_report", "-sc", "install=bash"], ["sweep_report", "--shell", "query=bash"]],
        "two modes": [*([entry, "-m", "--cfg", "job"] for entry in TWO_MODES_ENTRIES),
                      [TWO_MODES_ENTRIES[0], "--cfg=job", "--info"], [TWO_MODES_ENTRIES[0], "-sc", "install=bash", "--multirun"]],
        "shapes_gifs": [["shapes_gifs", f"out={work_folder.parent / 'clips'}", "n=1"]],
    }
    results = iter(command_lines(*(run for runs in groups.values() for run in runs), cwd=work_folder))
    return {name: [next(results) for _ in runs] for name, runs in groups.items()}


@pytest.fixture(scope="module")
def help_texts(command_runs) -> dict[str, subprocess.CompletedProcess]:
    """`python -m supra.<command> --help` of every command."""
    return dict(zip(COMMANDS, command_runs["help"], strict=True))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help_with_its_own_usage_and_examples(command, help_texts):
    code, text = help_texts[command].returncode, help_texts[command].stdout
    assert code == 0, text
    assert f"python -m supra.{command}" in text.splitlines()[0]  # its own usage first, not train.py's
    assert "Options (key=value" in text and ("Examples:" in text or "Example:" in text)


def test_the_entry_points_take_hydras_shell_completion_as_documented_and_a_bare_flag_in_one_line(command_runs):
    runs = command_runs["completion"]
    installed, bare = runs[:-len(COMPLETION_ENTRIES)], runs[-len(COMPLETION_ENTRIES):]
    for result in installed:  # Hydra's bash script, as `eval "$(python train.py -sc install=bash)"` takes it
        assert result.returncode == 0 and "complete -o nospace" in result.stdout, result.args
    for entry, result in zip(COMPLETION_ENTRIES, bare, strict=True):
        assert (result.returncode, result.stderr) == (2, (
            "error: --shell-completion (-sc) takes one of install=SHELL, uninstall=SHELL, query=SHELL, SHELL one of "
            f'bash, fish, zsh: e.g. eval "$(python {Path(entry).name} -sc install=bash)"\n')), result.args


def test_a_python_m_command_refuses_shell_completion_in_one_line_naming_the_commands_that_have_it(command_runs):
    # Hydra's script completes `python FILE.py` only: the one a supra.X command printed completed nothing of it
    for result in command_runs["module completion"]:
        assert (result.returncode, result.stdout, result.stderr) == (2, "", (
            "error: python -m supra.sweep_report has no shell completion (Hydra's completes python FILE.py, not "
            'python -m): train.py and evaluate.py have it, e.g. eval "$(python train.py -sc install=bash)"\n')), \
            result.args


def test_two_of_hydras_modes_on_one_command_line_are_one_line_in_every_entry_point(command_runs):
    runs = command_runs["two modes"]
    for result in runs[:len(TWO_MODES_ENTRIES)]:
        assert (result.returncode, result.stdout, result.stderr) == (2, "", (
            "error: -m and --cfg cannot be given together: a command line takes one of --run, --multirun, --cfg, "
            "--info, --shell-completion; leave out all but one (--cfg prints one run's config: leave out the "
            "multirun flag)\n")), result.args
    assert [(r.returncode, r.stderr.split(":")[1]) for r in runs[len(TWO_MODES_ENTRIES):]] == [
        (2, " --cfg and --info cannot be given together"), (2, " --multirun and -sc cannot be given together")]


def test_a_command_writes_where_out_says_and_nothing_into_the_folder_it_is_run_from(command_runs, work_folder):
    # Hydra's default logging would add an empty <job>.log to the working directory of every command
    (result,) = command_runs["shapes_gifs"]
    assert result.returncode == 0, result.stderr
    assert list(work_folder.iterdir()) == []  # nor did any other command line of this module, run from there too
    assert (work_folder.parent / "clips" / "captions.jsonl").is_file()


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    others = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True).stdout.split()
    suffixes = {".py", ".md", ".yaml", ".toml", ".sh", ".txt", ".cfg"}
    return [ROOT / f for f in {*listed, *others} if Path(f).suffix in suffixes and (ROOT / f).is_file()]


def test_no_file_refers_to_a_document_outside_the_repository():
    outside = re.compile(r"SPEC\.md|STYLE\.md|DEVELOPERS\.md|\.\./shared")
    docs_path = re.compile(r"\b(docs/[\w./-]+\.(?:md|png|gif))")
    md_link = re.compile(r"\]\(([^)#\s]+)\)")
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.name == "test_architecture.py":
            continue
        assert not outside.search(text), f"{path.relative_to(ROOT)} refers to {outside.search(text).group(0)}"
        for mentioned in docs_path.findall(text):
            assert (ROOT / mentioned).exists(), f"{path.relative_to(ROOT)} mentions {mentioned}, which is not here"
        if path.suffix == ".md":
            for target in md_link.findall(text):
                if "://" not in target:
                    assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to {target}, which is not here"


def test_every_python_m_command_a_file_names_is_a_command():
    # a module without __main__ runs its imports and does nothing, without a word
    named = re.compile(r"python -m (supra(?:\.[a-z_]\w*)+)")  # not the placeholder supra.X
    for path in _tracked_text_files():
        for module in named.findall(path.read_text(encoding="utf-8", errors="replace")):
            file = ROOT / (module.replace(".", "/") + ".py")
            assert file.is_file() and '__name__ == "__main__"' in file.read_text(), \
                f"{path.relative_to(ROOT)} names python -m {module}, which is no command"


def test_a_python_m_commands_help_answers_before_its_module_imports_torch():
    """`python -m supra.X --help` is static text from conf/: answered as `supra` is imported, not after the
    command's module has loaded torch and Lightning (10 s and more), and the same text (its data sets too)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "supra.tokenize_media", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert done.returncode == 0 and "torch" not in imported and "lightning" not in imported
    assert done.stdout.splitlines()[0].startswith("python -m supra.tokenize_media: encode a media corpus")
    assert "Data sets (data=<name>, then data.root=DIR and the set's own keys): media_folder, shapes_images, " \
           "shapes_video" in done.stdout.splitlines()


def test_help_lists_only_the_data_sets_a_command_takes(help_texts):
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from supra.data.media.datamodule import MediaDataModule

    def listed(command: str) -> set[str]:
        line = next(t for t in help_texts[command].stdout.splitlines() if t.startswith("Data sets"))
        return set(line.split(": ", 1)[1].split(", "))

    every = {p.stem: OmegaConf.load(p).get("_target_") for p in (ROOT / "conf" / "data").glob("*.yaml")}
    media = {name for name, target in every.items() if issubclass(get_class(target), MediaDataModule)}
    assert listed("tokenize_media") == media  # the others it refuses (data=a2a_mixture, flickr8k, ...)


def test_the_layout_in_docs_architecture_names_every_module():
    layout = (ROOT / "docs" / "architecture.md").read_text()
    for folder in ("callbacks", "sweeps", "utils", "data"):  # their modules, each named in "what each folder holds"
        for path in sorted((ROOT / "supra" / folder).glob("*.py")):
            if path.name != "__init__.py":
                assert path.name in layout, f"docs/architecture.md does not say what {path.relative_to(ROOT)} holds"


def test_the_speed_switches_table_gives_each_data_sets_pin_memory():
    from omegaconf import OmegaConf

    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `data.pin_memory`"))
    default = row.split("|")[2]  # "auto; false for shapes_images, shapes_video, media_folder"
    # whole names: `shapes` is not listed by `shapes_images`
    false_for = set(re.findall(r"\w+", default.split("false for", 1)[1])) if "false for" in default else set()
    for path in sorted((ROOT / "conf" / "data").glob("*.yaml")):
        value = OmegaConf.load(path).get("pin_memory")
        assert value in ("auto", None, False), f"{path.stem}: pin_memory {value}, which the README's row does not say"
        assert (path.stem in false_for) == (value is False), path.stem


def test_the_a2a_sample_grid_options_are_documented_with_their_defaults(tmp_path):
    """callbacks=a2a's sample grids: each option its callback takes from the config is named in docs/a2a_nano.md
    with the value a run uses, and so is how to turn them off."""
    import inspect

    from supra.callbacks.a2a_samples import A2ASamplesCallback
    from tests.conftest import compose_config

    docs = (ROOT / "docs" / "a2a_nano.md").read_text()
    documented = dict(re.findall(r"`callbacks\.a2a_samples\.(\w+)` \((\d+)", docs))
    configured = compose_config("train", tmp_path, ["experiment=a2a_shapes"]).callbacks.a2a_samples
    taken = [name for name in inspect.signature(A2ASamplesCallback).parameters if name not in ("output_dir", "dirname")]
    assert {name: int(documented[name]) for name in taken if name in documented} == {
        name: configured.get(name, inspect.signature(A2ASamplesCallback).parameters[name].default) for name in taken}
    assert "`callbacks.a2a_samples=null`" in docs


def test_the_callbacks_row_of_the_readme_names_every_callback_of_each_set():
    """`callbacks.<name>=null` leaves one out: the row is where a user learns the names."""
    from omegaconf import OmegaConf

    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `callbacks/` |"))
    for path in sorted((ROOT / "conf" / "callbacks").glob("*.yaml")):
        named = [key for key, value in OmegaConf.load(path).items() if key != "defaults" and value is not None]
        assert f"`{path.stem}`" in row and all(f"`{key}`" in row for key in named), (path.stem, named)


def test_ci_runs_exactly_the_readmes_test_command_which_installs_java_and_chromium_when_missing():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.DOTALL)
    test_command = next(block for block in blocks if block.endswith("-m pytest"))
    assert (ROOT / ".ci" / "run").read_text().splitlines()[-1] == test_command
    assert "command -v java" in test_command and "default-jre-headless chromium chromium-driver" in test_command


def test_the_caches_paragraph_of_the_readme_names_every_cache_folder_of_a_data_config():
    readme = (ROOT / "README.md").read_text()
    caches = readme.split("**Caches.**", 1)[1].split("\n\n", 1)[0]
    folders = {m for path in (ROOT / "conf" / "data").glob("*.yaml")
               for m in re.findall(r"^cache_dir: \$\{paths\.cache_dir\}/(\w+)", path.read_text(), re.MULTILINE)}
    assert folders and all(f"`{folder}/`" in caches for folder in folders), sorted(folders)


def test_the_readmes_picture_options_are_the_default_callbacks_values():
    """The caption grid's and attention maps' options, as README names them, with the values a run takes."""
    from omegaconf import OmegaConf

    readme = (ROOT / "README.md").read_text()
    documented = re.findall(r"`callbacks\.(caption_grid|attention_maps)\.(\w+)` \((\d+)", readme)
    callbacks = OmegaConf.load(ROOT / "conf" / "callbacks" / "default.yaml")
    assert {(name, option) for name, option, _ in documented} == {
        ("caption_grid", "num_images"), ("caption_grid", "columns"), ("attention_maps", "num_images")}
    assert all(callbacks[name][option] == int(value) for name, option, value in documented)
