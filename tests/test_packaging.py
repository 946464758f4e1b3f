"""What pyproject.toml promises an install: dependency floors that hold the APIs Supra uses."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11's; the checks are of the file, not of the interpreter

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {(req := Requirement(line)).name.lower().replace("_", "-"): req for line in project["dependencies"]}


def _floor(name: str) -> Version:
    (floor,) = [Version(spec.version) for spec in _requirements()[name].specifier if spec.operator == ">="]
    return floor


@pytest.mark.parametrize(("name", "needed", "why"), [
    ("torch", "2.9", "torch.optim.Muon, MuonWithAdamW's (experiment=a2a_shapes)"),
    ("torchvision", "0.24", "the torchvision built with torch 2.9"),
    ("pyarrow", "12", "pc.struct_field by a field's name (data/caption_sources/hf_disk.py)"),
    ("fsspec", "2023.1", "fsspec.core.url_to_fs (write_shards.py), as datasets needs it"),
    ("huggingface-hub", "0.25", "huggingface_hub.errors' LocalEntryNotFoundError and the rest (artifacts/hub.py)"),
])
def test_each_floor_has_the_api_supra_uses(name, needed, why):
    assert _floor(name) >= Version(needed), f"{name}>={needed}: {why}"
