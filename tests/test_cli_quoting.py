"""What a user types on a command line reaches the command as typed, through Hydra's override grammar."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from supra.utils.hydra_quoting import quote_prompt, quote_values
from tests.conftest import ROOT, command_lines, compose_config


@pytest.mark.parametrize("prompt", ["a ${oc.env:HOME} b", "a ${nope} b", "a red square\\", '"a" red square',
                                    "it's <TEXT>a red", "back\\'slash", "<TEXT>a red square</TEXT><IMAGE>"])
def test_a_generate_prompt_reaches_the_model_as_typed(prompt, tmp_path):
    """`python -m supra.generate prompt=...` quotes the prompt for Hydra's grammar: quotes, backslashes and
    `${...}` (which OmegaConf would resolve: `${oc.env:HOME}` became the home folder) come through."""
    assert compose_config("generate", tmp_path, quote_prompt([f"prompt={prompt}"])).prompt == prompt


@pytest.mark.parametrize("path", ["data/фото", "data/café", "photos (1)", "x[1]", "it's", "a#b", "a&b", "a=b",
                                  "me/~drafts", "${oc.env:HOME}/café"])
def test_a_path_hydras_grammar_cannot_read_bare_reaches_the_command_as_typed(path, tmp_path, monkeypatch):
    """`data.root=/data/café` was Hydra's multi-line LexerNoViableAltException: such values are quoted for
    it, interpolations still resolved."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (arg,) = quote_values([f"data.root={path}"])
    root = compose_config("train", tmp_path, ["data=caption_folder", arg]).data.root
    assert root == path.replace("${oc.env:HOME}", str(tmp_path / "home"))


def test_what_hydra_reads_bare_is_left_as_it_is():
    argv = ["model.net.D_MODEL=64,128", "model/encoder=pretrained", "~callbacks.model_summary", "data.root='q'",
            "+data.x=1", "-m", "--cfg", "job", "data.root=/plain/path"]
    assert quote_values(argv) == argv


@pytest.fixture(scope="module")
def command_runs(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """A command given a folder named outside ASCII, and a sweep whose choices Hydra's grammar cannot read
    (into tmp/sweep): (tmp, each one's result), run in one interpreter (command_lines) as typed."""
    tmp = tmp_path_factory.mktemp("typed")
    cases = {"outside ascii": ["shapes_gifs", f"out={tmp / 'фото café'}", "n=1", "frames=2", "size=32"],
             "sweep": [str(ROOT / "train.py"), "-m", "task_name=étude,test", f"hydra.sweep.dir={tmp / 'sweep'}"]}
    return tmp, dict(zip(cases, command_lines(*cases.values(), cwd=tmp), strict=True))


def test_a_command_takes_a_folder_named_outside_ascii(command_runs):
    tmp, results = command_runs
    result = results["outside ascii"]
    assert result.returncode == 0, result.stderr[-500:]
    assert (tmp / "фото café" / "clip_00000.gif").is_file()


def read_by_hydra(override: str):
    """What Hydra's grammar reads from `key=value`: a sweep's choices (a glob's patterns), or the value."""
    value = OverridesParser.create().parse_override(override).value()
    items = getattr(value, "list", None) or getattr(value, "include", None)
    return value if items is None else [getattr(item, "text", item) for item in items]


@pytest.mark.parametrize(("arg", "example", "meant"), [
    ("task_name=étude,test", "task_name='étude',test", ["étude", "test"]),
    ("tags=[café,dev]", "tags=['café',dev]", ["café", "dev"]),
    ("k={a:é,b:1}", "k={a:'é',b:1}", {"a": "é", "b": 1}),
    ("data.root=choice(/a/é,/b)", "data.root=choice('/a/é',/b)", ["/a/é", "/b"]),
    ("x=glob(*é)", "x=glob('*é')", ["*é"]),
])
def test_a_sweep_list_dict_or_function_hydra_cannot_read_is_refused_with_its_elements_quoted(arg, example, meant,
                                                                                           capsys):
    """Quoted whole, each became one string: `python train.py -m task_name=étude,test` ran one job named
    "étude,test". The refusal's example reads as what was meant."""
    with pytest.raises(SystemExit) as refused:
        quote_values([arg])
    assert refused.value.code == 2
    error = capsys.readouterr().err
    key, _, value = example.partition("=")
    assert error.startswith(f"error: {arg}: ") and error.endswith(f'e.g. {key}="{value}"\n')
    assert read_by_hydra(example) == meant


def test_a_sweep_hydra_cannot_read_launches_nothing(command_runs):
    tmp, results = command_runs
    result = results["sweep"]
    assert result.returncode == 2 and "quote those, e.g. task_name=\"'étude',test\"" in result.stderr
    assert not (tmp / "sweep").exists()


@pytest.mark.parametrize("path", ["${oc.env:DATA,/tmp}/café", "x[1,2]/é", "img(é)"])
def test_a_comma_or_bracket_inside_one_plain_element_keeps_it_one_path(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    (arg,) = quote_values([f"data.root={path}"])
    root = compose_config("train", tmp_path, ["data=caption_folder", arg]).data.root
    assert root == path.replace("${oc.env:DATA,/tmp}", str(tmp_path / "data"))


@pytest.mark.parametrize(("command", "args", "message"), [
    ("caption", ["ckpt=x.ckpt", "images="], "images= is empty: give an image file or a folder of images"),
    ("caption", ["ckpt=x.ckpt", "images=photos", "out=' '"], "out= is empty: give the folder to write captions to"),
    ("write_shards", ["source=coco", "root=", "out=shards"], "root= is empty: give the source's folder"),
    ("write_shards", ["source=coco", "root=coco", "out="], "out= is empty: give the folder to write the shards to"),
    ("tokenize_media", ["ckpt=x.ckpt", "out="], "out= is empty: give the folder to write the codes to"),
    ("shapes_gifs", ["out=", "n=1"], "out= is empty: give the folder to write the clips to"),
    ("study_report", ["dir=logs/study/x", "out="], "out= is empty: give the folder to write the table to"),
    ("sweep_report", ["dir="], "dir= is empty: give a multirun directory (logs/train/multiruns/<date>)"),
])
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(command, args, message, tmp_path, monkeypatch,
                                                                    capsys):
    """Path("") is ".": `caption images=` captioned every picture under the folder it ran in, `out=` wrote there."""
    from tests.conftest import run_command

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        run_command(command, *args, run_dir=tmp_path)
    assert capsys.readouterr().err.startswith(f"error: {message}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("command", "args"), [
    ("tokenize_media", ["ckpt=x.ckpt", "out=s3://bucket/codes"]),
    ("shapes_gifs", ["out=memory://g/clips", "n=1"]),
])
def test_an_out_url_is_refused_by_commands_that_write_a_local_folder_not_written_as_a_folder_named_after_it(
        command, args, tmp_path, monkeypatch, capsys):
    """Path("s3://bucket/codes") is s3:/bucket/codes: the codes went into a folder `s3:` in the current one."""
    from tests.conftest import run_command

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        run_command(command, *args, run_dir=tmp_path)
    url = next(a for a in args if a.startswith("out=")).removeprefix("out=")
    assert capsys.readouterr().err == (f"error: out={url} is a URL: this command writes a local folder, which runs "
                                       "read; give a local folder as out\n")
    assert list(tmp_path.iterdir()) == []


def test_an_out_given_as_a_file_url_is_taken_as_its_local_folder(tmp_path, capsys):
    from tests.conftest import run_command

    run_command("shapes_gifs", f"out=file://{tmp_path / 'clips'}", "n=1", run_dir=tmp_path)
    assert (tmp_path / "clips" / "clip_00000.gif").is_file()
    assert f"to {tmp_path / 'clips'} and" in capsys.readouterr().out


@pytest.mark.parametrize("path", ["photos é [1]/a=b,c.png", "dc/a,b.png", "[2024] fotos", "{a} b", "[x,y]/é"])
def test_a_comma_or_a_leading_bracket_in_an_option_holding_one_path_is_part_of_its_name(path, tmp_path):
    """`data.root=dc/a,b.png` was Hydra's multi-line "Ambiguous value" (a sweep outside -m), `data.root=[2024] fotos`
    a refusal whose advice, taken, refused again: an option holding one path is quoted whole and read as typed."""
    (arg,) = quote_values([f"data.root={path}"])
    assert compose_config("train", tmp_path, ["data=caption_folder", arg]).data.root == path


def test_a_value_no_quoting_of_its_elements_makes_a_list_is_one_value_not_a_refusal(tmp_path):
    (arg,) = quote_values(["task_name=[2024] fotos"])  # it advised task_name="['2024] fotos'", refused the same
    assert compose_config("train", tmp_path, [arg]).task_name == "[2024] fotos"


def test_a_path_options_sweep_hydra_cannot_read_is_refused_with_advice_for_a_sweep_and_for_one_path(capsys):
    """Under -m a comma may be a sweep of paths: both readings are offered, and each reads as it says."""
    with pytest.raises(SystemExit):
        quote_values(["-m", "data.root=fotos é/a=b,c.png"])
    assert capsys.readouterr().err == (
        "error: data.root=fotos é/a=b,c.png: Hydra's grammar reads some elements of this sweep only quoted, and "
        "quoting it whole would make it one string: quote those, e.g. data.root=\"'fotos é/a=b',c.png\", "
        "or data.root=\"'fotos é/a=b,c.png'\" for one path\n")
    assert read_by_hydra("data.root='fotos é/a=b',c.png") == ["fotos é/a=b", "c.png"]
    assert read_by_hydra("data.root='fotos é/a=b,c.png'") == "fotos é/a=b,c.png"
