"""The benchmarks' command lines refuse a bad value in one line before any timing (benchmarks/bench_common.py),
and their tables agree with themselves."""

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


def test_the_throughput_table_gives_a_step_time_that_is_its_speed_inverted_with_an_even_number_of_windows(
        monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # where the script, run as one, finds bench_common
    spec = importlib.util.spec_from_file_location("train_throughput", BENCHMARKS / "train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    per_s, step_ms = module.median_speed([1.0, 2.0], samples=640, steps=10)  # 640 and 320 samples/s
    assert per_s == 480 and step_ms == pytest.approx(1000 * 64 / 480)  # not the median time's 150 ms
