"""The benchmarks' command lines refuse a bad value in one line before any timing (benchmarks/bench_common.py)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCHMARKS / "bench_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_figures_file_that_cannot_be_written_is_refused_before_the_timing_not_after_it(tmp_path):
    output_file = bench_common().output_file
    assert output_file(str(tmp_path / "figures.json")) == tmp_path / "figures.json"
    with pytest.raises(argparse.ArgumentTypeError, match=r"^cannot write .*/no_such_folder/x.json \(No such file or "
                                                         r"directory\): give a file in a folder that exists"):
        output_file(str(tmp_path / "no_such_folder" / "x.json"))
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^{tmp_path} is a folder: give a file's path"):
        output_file(str(tmp_path))
