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


def _sdist_files(monkeypatch, cached: str) -> set[str]:
    """The files setuptools puts in the sdist by MANIFEST.in's rules (in-process: building one writes an egg-info
    into the checkout), from the checkout's files and a `cached` file; not from its dot-folders (.git, .venv) or
    run outputs, which walking takes seconds over."""
    from setuptools.command.egg_info import FileList

    monkeypatch.chdir(ROOT)  # MANIFEST.in's patterns are relative to the checkout
    files = FileList()
    files.allfiles = [cached] + [str(path.relative_to(ROOT)) for top in ROOT.iterdir()
                                 if not top.name.startswith(".") and top.name not in ("logs", "outputs", "multirun")
                                 for path in ([top] if top.is_file() else top.rglob("*")) if path.is_file()]
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            files.process_template_line(line)
    return set(files.files)


def test_the_sdist_holds_the_checkout_supra_runs_from_without_caches(monkeypatch):
    cached = "tests/__pycache__/conftest.cpython-311-pytest-8.pyc"
    shipped = _sdist_files(monkeypatch, cached)
    for needed in ("train.py", "evaluate.py", "conf/train.yaml", "conf/model/encoder/pretrained.yaml",
                   "docs/releases.md", "tests/conftest.py", "tests/caption_source_fixtures.py"):
        assert needed in shipped, needed
    for folder in ("conf", "docs", "tests", "benchmarks"):
        on_disk = {str(path.relative_to(ROOT)) for path in (ROOT / folder).rglob("*")
                   if path.is_file() and "__pycache__" not in path.parts}
        assert on_disk <= shipped, sorted(on_disk - shipped)
    assert cached not in shipped


def test_the_package_ships_its_typing_marker():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["supra"]
    assert (ROOT / "supra" / "py.typed").is_file()
