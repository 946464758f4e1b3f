"""What a user types on a command line reaches the command as typed, through Hydra's override grammar."""

from __future__ import annotations

import pytest

from supra.utils.cli import quote_prompt
from tests.conftest import compose_config


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
    from supra.utils.cli import quote_values

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (arg,) = quote_values([f"data.root={path}"])
    root = compose_config("train", tmp_path, ["data=caption_folder", arg]).data.root
    assert root == path.replace("${oc.env:HOME}", str(tmp_path / "home"))


def test_what_hydra_reads_bare_is_left_as_it_is():
    from supra.utils.cli import quote_values

    argv = ["model.net.D_MODEL=64,128", "model/encoder=pretrained", "~callbacks.model_summary", "data.root='q'",
            "+data.x=1", "-m", "--cfg", "job", "data.root=/plain/path"]
    assert quote_values(argv) == argv


def test_a_command_takes_a_folder_named_outside_ascii(tmp_path):
    from tests.conftest import command_line

    result = command_line("shapes_gifs", f"out={tmp_path / 'фото café'}", "n=1", "frames=2", "size=32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-500:]
    assert (tmp_path / "фото café" / "clip_00000.gif").is_file()
