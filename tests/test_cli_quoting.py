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
