"""The benchmarks' command lines refuse a bad value in one line before any timing (benchmarks/bench_common.py),
and their tables agree with themselves."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from PIL import Image

from supra.data.captioning.shapes import ShapesDataModule
from supra.data.images import normalize_images
from supra.models.vlm_nano import VLMNano
from supra.models.vqvae import VQVAE
from supra.tasks.captioning import CaptioningTask
from supra.utils.errors import SupraUserError

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCHMARKS / "bench_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark_script(name: str, monkeypatch):
    """benchmarks/<name>.py imported as a module (its main() not run)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # where the script, run as one, finds bench_common
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_exit(name: str, args: list[str], monkeypatch, capsys) -> tuple[int | str | None, str]:
    """benchmarks/<name>.py's main() run with `args` until it exits: the exit code (argparse's 2, or the message
    SystemExit carries) and the last line on stderr."""
    module = benchmark_script(name, monkeypatch)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    with pytest.raises(SystemExit) as end:
        module.main()
    return end.value.code, (capsys.readouterr().err.strip().splitlines() or [""])[-1]


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
    module = benchmark_script("train_throughput", monkeypatch)
    per_s, step_ms = module.median_speed([1.0, 2.0], samples=640, steps=10)  # 640 and 320 samples/s
    assert per_s == 480 and step_ms == pytest.approx(1000 * 64 / 480)  # not the median time's 150 ms


def test_the_throughput_tables_supra_row_counts_its_devices(monkeypatch):
    module = benchmark_script("train_throughput", monkeypatch)
    assert module.supra_row(1) == "(b) Supra task + Trainer (1 device)"
    assert module.supra_row(2) == "(b) Supra task + Trainer (2 devices)"


def test_beam_search_captions_the_shapes_images_with_a_captioner_trained_on_other_data(tmp_path, monkeypatch):
    net_cfg = {"_target_": "supra.models.vlm_nano.VLMNano", "IMG_SIZE": 64}
    net = VLMNano(IMG_SIZE=64)
    data_cfg = {"_target_": "supra.data.captioning.photos.PhotoCaptionsDataModule", "source": "folder",
                "root": str(tmp_path / "gone"), "batch_size": 64}  # its photos need not be here
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "supra": {"kind": "supra.captioning", "run_config": {"model": {"net": net_cfg}, "data": data_cfg}}},
               tmp_path / "photos.ckpt")
    model, images, which = benchmark_script("beam_search", monkeypatch).load_model_and_images(
        str(tmp_path / "photos.ckpt"), 2)
    assert model.config.IMG_SIZE == 64
    expected = ShapesDataModule(num_test=2, image_size=64).load_split("test").images
    assert torch.equal(images, normalize_images(expected))
    assert which == "shapes test images (shapes defaults; it was trained on folder data), 64px"


def test_beam_search_rebuilds_the_captioner_as_evaluate_does_and_says_a_checkpoint_it_cannot_use_in_one_line(
        tmp_path, monkeypatch):
    load = benchmark_script("beam_search", monkeypatch).load_model_and_images
    net_cfg = {"_target_": "supra.models.vlm_nano.VLMNano", "IMG_SIZE": 64}
    weights = {f"net.{k}": v for k, v in VLMNano(IMG_SIZE=64).state_dict().items()}

    def saved(name: str, state: dict, run_config: dict | None) -> str:
        torch.save({"state_dict": state, "supra": {"kind": "supra.captioning", "run_config": run_config}},
                   tmp_path / name)
        return str(tmp_path / name)

    with pytest.raises(SupraUserError, match=r"^ckpt=.*no_config.ckpt holds no captioner config \(model.net\): "):
        load(saved("no_config.ckpt", weights, None), 1)  # was omegaconf's traceback
    wide = saved("wide.ckpt", weights, {"model": {"net": {**net_cfg, "D_MODEL": 64}}, "data": {}})
    with pytest.raises(SupraUserError, match=r"^ckpt=.*wide.ckpt does not fit this model: .*wrong shape"):
        load(wide, 1)  # was torch's load_state_dict key list
    # a file's _target_ is not called (evaluate.py builds a captioner from its settings alone)
    elsewhere = saved("elsewhere.ckpt", weights, {"model": {"net": {**net_cfg, "_target_": "os.remove"}}, "data": {}})
    assert load(elsewhere, 1)[0].config.IMG_SIZE == 64


def test_beam_search_refuses_a_beam_wider_than_the_models_vocabulary_before_any_timing(monkeypatch, capsys):
    vocab_size = VLMNano().config.VOCAB_SIZE  # the random model's
    assert script_exit("beam_search", ["--images", "1", "--beam-width", str(vocab_size + 1)], monkeypatch, capsys) == (
        2, f"beam_search.py: error: --beam-width {vocab_size + 1} is more than the model's {vocab_size} tokens: give "
           f"--beam-width {vocab_size} or less")  # was torch's "selected index k out of range" traceback


def test_beam_search_says_how_many_images_a_batched_call_held(monkeypatch, capsys):
    module = benchmark_script("beam_search", monkeypatch)  # the table, not the searches: each caption [1, 2]
    monkeypatch.setattr(module, "beam_search_recompute", lambda model, image, *args, **kwargs: [1, 2])
    monkeypatch.setattr(module, "beam_search", lambda model, images, *args, **kwargs: [[1, 2]] * len(images))
    monkeypatch.setattr(sys, "argv", ["beam_search.py", "--images", "2", "--rounds", "1"])
    module.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| (b)")]
    assert len(rows) == 1 and rows[0].startswith("| (b) batched (2/call), KV cache ")  # not --batch-size's 256


def test_beam_search_says_each_round_on_stderr_as_it_ends_before_the_table(monkeypatch, capsys):
    module = benchmark_script("beam_search", monkeypatch)  # the lines, not the searches: rounds took minutes, silent
    monkeypatch.setattr(module, "beam_search_recompute", lambda model, image, *args, **kwargs: [1, 2])
    monkeypatch.setattr(module, "beam_search", lambda model, images, *args, **kwargs: [[1, 2]] * len(images))
    monkeypatch.setattr(sys, "argv", ["beam_search.py", "--images", "2", "--rounds", "2"])
    module.main()
    said = capsys.readouterr()
    assert [line.split(":")[0] for line in said.err.splitlines()] == ["round 1/2", "round 2/2"]
    assert all(" s, (b) " in line for line in said.err.splitlines()) and "round 1/2" not in said.out


def test_a_round_ends_in_one_line_of_each_sides_figure_by_its_name_in_the_table(capsys):
    common = bench_common()
    assert common.progress_line(2, 5, {"(a)": "1.23 s", "(b)": "0.45 s"}) == "round 2/5: (a) 1.23 s, (b) 0.45 s"
    common.say_progress("round 1/1: (a) 1 s")
    assert capsys.readouterr() == ("", "round 1/1: (a) 1 s\n")  # stdout keeps the table alone


def test_muon_step_says_each_round_on_stderr_as_it_ends_before_the_table(monkeypatch, capsys):
    module = benchmark_script("muon_step", monkeypatch)  # the lines, not the steps: its rounds took minutes, silent
    monkeypatch.setattr(module, "training_step", lambda optimizer_name: lambda: None)
    monkeypatch.setattr(module, "iteration_alone", lambda dtype, gram: lambda: None)
    monkeypatch.setattr(sys, "argv", ["muon_step.py", "--rounds", "2", "--steps", "1"])
    module.main()
    said = capsys.readouterr()
    lines = said.err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["round 1/2", "round 2/2"]
    assert all([part.split()[0] for part in line.split(": ", 1)[1].split(", ")] == ["(a)", "(b)", "(c)", "(d)", "(e)",
                                                                                    "(f)"] for line in lines)
    assert "round 1/2" not in said.out and said.out.splitlines()[-1].startswith("machine load at end: ")


def test_beam_search_whose_two_sides_caption_differently_says_so_in_one_line_and_exits_non_zero(monkeypatch, capsys):
    module = benchmark_script("beam_search", monkeypatch)  # (b) gives the second image another caption
    monkeypatch.setattr(module, "beam_search_recompute", lambda model, image, *args, **kwargs: [1, 2])
    monkeypatch.setattr(module, "beam_search", lambda model, images, *args, **kwargs: [[1, 2], [1, 3]][:len(images)])
    monkeypatch.setattr(sys, "argv", ["beam_search.py", "--images", "2", "--rounds", "1"])
    with pytest.raises(SystemExit) as end:  # it printed "identical captions: 1/2" and exited 0
        module.main()
    assert end.value.code == ("error: 1 of 2 captions differ between (a) and (b), so the speed-up compares different "
                              "work; tests/test_caption_generation.py checks that the two searches agree: run it")
    out = capsys.readouterr().out  # the table and the load at the end are still there
    assert "identical captions: 1/2" in out and out.splitlines()[-1].startswith("machine load at end: ")


def test_a_benchmark_whose_compared_sides_agree_goes_on(monkeypatch):
    assert bench_common().exit_if_sides_differ("captions", 0, 2, "(a) and (b)", "advice") is None


def test_vqvae_throughput_loads_a_vqvae_checkpoint_as_evaluate_does_weights_that_do_not_fit_in_one_line(
        tmp_path, monkeypatch):
    load_vqvae = benchmark_script("vqvae_throughput", monkeypatch).load_vqvae
    net_cfg = {"_target_": "supra.models.vqvae.VQVAE"}
    weights = {f"net.{k}": v for k, v in VQVAE().state_dict().items()}
    for name, state in (("vqvae.ckpt", weights), ("other.ckpt", {**weights, "net.extra": torch.zeros(1)})):
        torch.save({"state_dict": state, "supra": {"kind": "supra.vqvae", "run_config": {"model": {"net": net_cfg}}}},
                   tmp_path / name)
    assert load_vqvae(str(tmp_path / "vqvae.ckpt"), 0)[1] == f"from {tmp_path / 'vqvae.ckpt'}"
    with pytest.raises(SupraUserError, match=r"^ckpt=.*other.ckpt does not fit this model: .*unexpected \['extra'\]"):
        load_vqvae(str(tmp_path / "other.ckpt"), 0)  # was torch's multi-line load_state_dict error


def test_vqvae_throughput_whose_two_encodes_differ_says_so_in_one_line_and_exits_non_zero(monkeypatch, capsys):
    module = benchmark_script("vqvae_throughput", monkeypatch)
    encode = module.supra_encode

    def one_code_off(model: VQVAE, images: torch.Tensor) -> torch.Tensor:  # (b) picks another code at one position
        codes = encode(model, images).clone()
        codes[0, 0, 0] = (codes[0, 0, 0] + 1) % model.quantizer.codebook.shape[0]
        return codes

    monkeypatch.setattr(module, "supra_encode", one_code_off)
    monkeypatch.setattr(sys, "argv", ["vqvae_throughput.py", "--batch-size", "1", "--repeats", "1", "--gifs", "3",
                                      "--frames-per-gif", "4", "--gif-size", "40", "40"])
    with pytest.raises(SystemExit) as end:  # the checks line said "identical codes 63/64" and the run exited 0
        module.main()
    assert end.value.code == ("error: 1 of 64 code positions differ between (a) and (b) of encode beyond ties within "
                              "rounding, so the speed-up compares different work; VQVAE.encode no longer picks each "
                              "position's nearest code")
    assert "checks: identical codes 63/64 positions;" in capsys.readouterr().out


def test_vqvae_throughput_whose_two_decodes_differ_beyond_rounding_says_so_in_one_line_and_exits_non_zero(
        monkeypatch, capsys):
    """The decode check printed the largest gap and went on whatever it was: decoded images that differ now end
    the run as differing codes do."""
    module = benchmark_script("vqvae_throughput", monkeypatch)
    decode = module.supra_decode

    def one_pixel_off(model: VQVAE, codes: torch.Tensor) -> torch.Tensor:  # (b) gives another image
        images = decode(model, codes).clone()
        images[0, 0, 0, 0] += 0.01
        return images

    monkeypatch.setattr(module, "supra_decode", one_pixel_off)
    monkeypatch.setattr(sys, "argv", ["vqvae_throughput.py", "--batch-size", "1", "--repeats", "1", "--gifs", "3",
                                      "--frames-per-gif", "4", "--gif-size", "40", "40"])
    with pytest.raises(SystemExit) as end:
        module.main()
    assert end.value.code == ("error: 1 of 1 decoded images differ between (a) and (b) of decode beyond float "
                              "rounding, so the speed-up compares different work; VQVAE.decode no longer gives "
                              "decoder(codebook[codes]) of the codes it is given")
    assert "decode max |a - b| = 1.00e-02" in capsys.readouterr().out


def test_vqvae_throughput_takes_decoded_images_apart_by_float_rounding_alone_as_the_same(monkeypatch):
    images_not_matching = benchmark_script("vqvae_throughput", monkeypatch).images_not_matching
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    assert images_not_matching(images, images + 1e-7) == 0  # float32 rounding
    other = images.clone()
    other[1, 2, 7, 7] += 1e-3  # one pixel of one image
    assert images_not_matching(images, other) == 1


def test_vqvae_throughput_takes_two_codes_at_one_distance_as_a_tie_not_a_wrong_code(monkeypatch):
    """cdist and VQVAE's expanded distance round differently: between two codes at one distance either may win."""
    codes_not_nearest = benchmark_script("vqvae_throughput", monkeypatch).codes_not_nearest
    model = VQVAE()
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        first_position = model.encoder(images)[0, :, 0, 0]
        model.quantizer.codebook[0] = model.quantizer.codebook[1] = first_position  # both at distance 0 from it
    nearest = model.encode(images)
    assert int(nearest[0, 0, 0]) in (0, 1)
    tie = nearest.clone()
    tie[0, 0, 0] = 1 - nearest[0, 0, 0]  # the other code at the same distance
    assert codes_not_nearest(model, images, nearest, tie) == 0
    wrong = nearest.clone()
    wrong[0, 0, 0] = 2  # another code, farther away
    assert codes_not_nearest(model, images, nearest, wrong) == 1


def test_vqvae_throughput_counts_the_clips_the_datamodule_does_not_give_as_the_reader_does(tmp_path, monkeypatch):
    clips_not_given = benchmark_script("vqvae_throughput", monkeypatch).clips_not_given
    supra_out = [torch.zeros(2, 4, 3, 8, 8)]  # one GIF, two clips
    given = {"a.gif#clip 0": torch.zeros(4, 3, 8, 8), "a.gif#clip 1": torch.zeros(4, 3, 8, 8)}
    assert clips_not_given(given, [tmp_path / "a.gif"], supra_out) == 0
    other = {**given, "a.gif#clip 1": torch.ones(4, 3, 8, 8), "b.gif#clip 0": torch.zeros(4, 3, 8, 8)}
    assert clips_not_given(other, [tmp_path / "a.gif"], supra_out) == 2  # one other, one more
    assert clips_not_given({}, [tmp_path / "a.gif"], supra_out) == 2  # both missing


def test_the_image_benchmarks_skip_the_jpegs_of_root_that_cannot_be_read_before_any_timing(tmp_path, capsys):
    readable_jpegs = bench_common().readable_jpegs
    for name in ("a", "c", "e"):
        Image.new("RGB", (50, 40), "red").save(tmp_path / f"{name}.jpg")
    (tmp_path / "b.jpg").write_bytes(b"x")  # no picture
    (tmp_path / "d.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:-10])  # cut short: its header reads
    (tmp_path / "e.jpg").write_bytes((tmp_path / "e.jpg").read_bytes() + b"\0" * 8)  # padded after its end: reads
    Image.new("RGB", (50, 40)).save(tmp_path / "f.jpg", format="PNG")  # a PNG named .jpg: reads
    assert readable_jpegs(tmp_path, 3) == [tmp_path / "a.jpg", tmp_path / "c.jpg", tmp_path / "e.jpg"]
    said = capsys.readouterr().err  # PIL's reason is cut at 100 characters: it names the file's whole path
    assert said.startswith(f"skipped 2 *.jpg files of --root {tmp_path} that cannot be read (first: b.jpg: "
                           "cannot identify image file ")
    assert said.endswith("); every pipeline reads the same 3 readable ones\n") and said.count("\n") == 1
    assert readable_jpegs(tmp_path, 10)[-1] == tmp_path / "f.jpg"
    for name in "cdef":
        (tmp_path / f"{name}.jpg").unlink()
    capsys.readouterr()
    assert readable_jpegs(tmp_path, 10) == [tmp_path / "a.jpg"]  # one of each, in the singular
    said = capsys.readouterr().err
    assert said.startswith(f"skipped 1 *.jpg file of --root {tmp_path} that cannot be read (first: b.jpg: ")
    assert said.endswith("); every pipeline reads the same 1 readable one\n") and said.count("\n") == 1
    (tmp_path / "d.jpg").write_bytes(b"x")
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(SystemExit, match=rf"^error: none of the 2 \*.jpg files of --root {tmp_path} can be read "
                                         r"\(first: b.jpg: .*\): give a folder of readable JPEGs$"):
        readable_jpegs(tmp_path, 10)


def test_train_throughput_refuses_ddp_ranks_started_by_spawn_before_any_work(monkeypatch, capsys):
    advice = "use --devices 2 with --trainer cpu (or gpu), this script's DDP measure"
    assert script_exit("train_throughput", ["--trainer", "ddp_sim"], monkeypatch, capsys) == (2, (
        "train_throughput.py: error: --trainer ddp_sim starts its DDP ranks with spawn, whose timings cannot come "
        f"back: {advice}"))
    code, line = script_exit("train_throughput", ["--trainer", "nope"], monkeypatch, capsys)
    assert code == 2 and "is not a conf/trainer option: cpu, " in line and "ddp_sim" not in line
    assert script_exit("train_throughput", ["+trainer.strategy=ddp_spawn"], monkeypatch, capsys) == (2, (
        "train_throughput.py: error: trainer.strategy=ddp_spawn starts the DDP ranks with spawn, whose timings "
        f"cannot come back: {advice}"))


def test_train_throughput_says_supras_errors_other_data_and_other_models_in_one_line(monkeypatch, capsys):
    tiny = ["--warmup", "1", "--steps", "1", "--rounds", "1", "--batch-size", "1"]
    assert script_exit("train_throughput", [*tiny, "model.net.D_MODEL=abc"], monkeypatch, capsys)[0] == (
        "error: model.net.D_MODEL='abc' must be a whole number")
    # a misspelled key: train.py's one line, before any work, not Hydra's advice to add it with + (then a traceback)
    assert script_exit("train_throughput", [*tiny, "model.nett.dropout=0.1"], monkeypatch, capsys) == (2, (
        "error: model.nett.dropout=0.1: no such option (did you mean model.net?)"))
    code, line = script_exit("train_throughput", [*tiny, "+model.nett.dropout=0.1"], monkeypatch, capsys)
    assert str(code).startswith("error: model") and "nett" in str(code) and "model.net" in str(code)
    assert script_exit("train_throughput", [*tiny, "data=flickr8k"], monkeypatch, capsys) == (2, (
        "train_throughput.py: error: this benchmark trains on the built-in shapes data (cached batches of it), not "
        "on Flickr8kDataModule: leave data= (and an experiment= of other data) out"))
    # not Hydra's "Could not override 'model.compile'" (an option the script adds) and its advice in two lines
    for other, task in (("model=vqvae_f8", "VQAutoencodingTask"), ("experiment=a2a_shapes", "A2ATask")):
        assert script_exit("train_throughput", [*tiny, other], monkeypatch, capsys) == (2, (
            f"train_throughput.py: error: this benchmark trains the captioner (model=vlm_nano), not {task}: leave "
            "model= (and an experiment= of another model) out"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a CUDA GPU")
def test_train_throughput_without_the_gpus_asked_for_gives_advice_in_its_own_options(monkeypatch, capsys):
    assert script_exit("train_throughput", ["--trainer", "gpu"], monkeypatch, capsys)[0] == ("error: trainer=gpu needs 1 CUDA GPU per node (1 in all) but this machine has 0: use --trainer "
                    "cpu (with --devices 2 for DDP on CPU processes)")  # not ddp_sim, which the script refuses


def test_train_throughput_says_what_it_times_then_each_round_on_stderr_as_it_ends(monkeypatch, capsys):
    module = benchmark_script("train_throughput", monkeypatch)  # a fit of 3 steps of 1 sample; the peak not measured
    monkeypatch.setattr(module, "matmul_peak", lambda device, dtype: 1e12)
    monkeypatch.setattr(sys, "argv", ["train_throughput.py", "--warmup", "1", "--steps", "1", "--rounds", "2",
                                      "--batch-size", "1"])
    module.main()
    said = capsys.readouterr()
    lines = [line for line in said.err.splitlines() if line.startswith(("timing ", "round "))]  # not Lightning's
    assert lines[0] == ("timing (a) and (b) in one Trainer fit: 1 warm-up step each, then 2 rounds of 1 step "
                        "each, taking turns")  # was "1 warm-up steps", "of 1 steps": the plural only where not 1
    assert [line.split(": (a) ")[0] for line in lines[1:]] == ["round 1/2", "round 2/2"]
    assert all(", (b) " in line for line in lines[1:]) and "round 1/2" not in said.out
    args = argparse.Namespace(devices=2, warmup=5, steps=5, rounds=20, compile=True)
    assert module.timing_plan(args) == (
        "timing (a): 5 warm-up steps (each net compiled first: about a minute), then 20 rounds of 5 steps; then (b) "
        "under DDP on 2 devices, one Trainer fit of 5 warm-up steps and 20 x 5 timed ones")


def test_train_throughput_names_the_dtype_its_peak_was_measured_in(monkeypatch, capsys):
    module = benchmark_script("train_throughput", monkeypatch)
    assert module.peak_dtype(torch.device("cpu"), "bf16-mixed") == torch.float32  # a CPU's peak is fp32's
    assert module.peak_dtype(torch.device("cuda"), "bf16-mixed") == torch.bfloat16
    args = argparse.Namespace(rounds=2, devices=1, steps=1, warmup=1, compile=False, batch_size=64, overrides=[])
    report = module.report_table(args, "a CPU", "bf16-mixed", {"(a)": [1.0, 1.0], "(b)": [1.0, 1.0]}, 64, [1.0, 1.0],
                                 1e9, 1e12, torch.float32)
    assert "measured peak (matmul float32): 1.00 TFLOP/s" in capsys.readouterr().out
    assert report["peak_dtype"] == "float32"


def test_train_throughput_json_holds_the_machine_load_its_console_lines_say(tmp_path, monkeypatch, capsys):
    module = benchmark_script("train_throughput", monkeypatch)
    module.finish({"ratio_b_over_a": 1.0}, tmp_path / "figures.json", load_at_start=0.5, cores=2)
    at_end = float(capsys.readouterr().out.split("machine load at end: ")[1].split(" ")[0])
    figures = json.loads((tmp_path / "figures.json").read_text())  # it had the table's figures alone
    assert figures["ratio_b_over_a"] == 1.0
    assert figures["machine_load"] == {"at_start": 0.5, "at_end": pytest.approx(at_end, abs=0.05), "cores": 2,
                                       "busy": at_end > 2}


def test_the_benchmarks_refusals_count_one_and_two_in_words(monkeypatch, capsys):
    """"1 CUDA GPU", "2 CUDA GPUs"; "1 JPEG is too few ... for 1 worker", "2 JPEGs are too few ... for 2 workers"."""
    common = bench_common()
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    for count, gpus in ((1, "1 CUDA GPU"), (2, "2 CUDA GPUs")):
        monkeypatch.setattr("torch.cuda.device_count", lambda count=count: count)
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            common.torch_device("cuda:2")
        assert str(refused.value) == f"cuda:2: this machine has {gpus}, cuda:0 to cuda:{count - 1}"
    for count, said in ((1, "1 JPEG is too few: 4 shards per worker, each of a batch (1), for 1 worker need 4"),
                        (2, "2 JPEGs are too few: 4 shards per worker, each of a batch (1), for 2 workers need 8")):
        assert script_exit("shard_pipeline", ["--images", str(count), "--batch-size", "1", "--workers", str(count)],
                           monkeypatch, capsys) == (
            2, f"shard_pipeline.py: error: {said} or more (--images; or a smaller --batch-size or --workers)")


def test_values_argparse_took_that_then_crashed_are_refused_in_one_line_before_any_work(tmp_path, monkeypatch,
                                                                                         capsys):
    common = bench_common()
    for device in ("mps", "meta"):  # torch not built for it / no data: RuntimeErrors once the model moved there
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^{device}: the benchmarks run on cpu or a CUDA GPU"):
            common.torch_device(device)
    assert common.seed(str(2**64 - 1)) == 2**64 - 1
    for bad, said in (("-1", "too small: it must be 0 or more"), (str(2**64), "too large")):  # default_rng, manual_seed
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            common.seed(bad)
    code, line = script_exit("vqvae_throughput", ["--gif-size", "1", "1", "--gifs", "3", "--frames-per-gif", "4"],
                             monkeypatch, capsys)
    assert code == 2 and line.startswith("vqvae_throughput.py: error: --gif-size 1 1: each side must be 40 or more")
    assert script_exit("vqvae_throughput", ["--seed", "-1"], monkeypatch, capsys) == (
        2, "vqvae_throughput.py: error: argument --seed: -1 is too small: it must be 0 or more")
    assert script_exit("a2a_sampling", ["--device", "mps"], monkeypatch, capsys) == (
        2, "a2a_sampling.py: error: argument --device: mps: the benchmarks run on cpu or a CUDA GPU (cuda, cuda:1, ...)")
    # a frame that repeats the one before (a Pillow TypeError when all did; else a GIF short of frames)
    with pytest.raises(SupraUserError, match=r"^--seed 0: frame 1 of GIF 0 repeats the one before"):
        benchmark_script("vqvae_throughput", monkeypatch).synthetic_gifs(tmp_path, 1, 4, (1, 1), 0)


def test_a_size_below_what_the_script_runs_is_refused_with_its_real_minimum_not_1(monkeypatch, capsys):
    # "0 is too small: it must be 1 or more" sent a user to 1, which the script then refused as well
    assert script_exit("a2a_sampling", ["--vocab", "0"], monkeypatch, capsys) == (2, (
        "a2a_sampling.py: error: argument --vocab: 0 is too small: it must be 280 or more (263 ids, 7 control tokens "
        "and 256 codes, then the prompt's text ids 0-16)"))
    for option, value, said in (("--frames-per-gif", "0", "it must be 4 or more (one clip)"),
                                ("--gifs", "0", "it must be 3 or more (the DataModule splits the folder into train, "
                                                "val and test by file)")):
        assert script_exit("vqvae_throughput", [option, value], monkeypatch, capsys) == (
            2, f"vqvae_throughput.py: error: argument {option}: {value} is too small: {said}")
    assert bench_common().at_least(3, "why")("3") == 3


def test_the_ddp_scaling_ratio_is_the_one_of_the_tables_median_speeds_with_an_even_number_of_windows(monkeypatch):
    module = benchmark_script("train_throughput", monkeypatch)
    # (a): 640 and 160 samples/s, median 400; (b) on 2 devices: 1280 and 640, median 960: 2.4x, where (a)'s
    # median time (2.5 s) gave ratios of 5 and 2.5, median 3.75
    ratios = module.scaling_ratios([1.0, 4.0], [1.0, 2.0], samples=640, steps=10, devices=2)
    assert ratios == pytest.approx([3.2, 1.6]) and module.statistics.median(ratios) == pytest.approx(960 / 400)


def test_a2a_sampling_cached_only_leaves_the_recompute_path_out(monkeypatch, capsys):
    module = benchmark_script("a2a_sampling", monkeypatch)
    calls = []

    def sampled(*args, use_cache: bool, **kwargs) -> torch.Tensor:  # the timing and the table, not the sampling
        calls.append(use_cache)
        return torch.zeros(1)

    monkeypatch.setattr(module, "generate_image", sampled)
    monkeypatch.setattr(module, "generate_video", sampled)
    monkeypatch.setattr(sys, "argv", ["a2a_sampling.py", "--vocab", "280", "--repeats", "1", "--cached-only"])
    module.main()
    assert calls == [True] * 6  # 3 outputs, a warm-up and a timed run each
    out = capsys.readouterr().out
    assert "median of 1 runs of the KV-cached path alone (--cached-only)" in out
    assert out.startswith("machine load at start: ") and out.splitlines()[-1].startswith("machine load at end: ")
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in out.splitlines() if line.startswith("|    280 |")]
    assert [row[2] for row in rows] == ["64x64 image", "image, g2 best4", "4-frame video"]
    for row in rows:  # recompute s and tok/s, speed-up and same tokens left out; the cache's seconds given
        assert row[4:6] == row[8:10] == ["-", "-"] and float(row[6]) >= 0


def test_a2a_sampling_says_each_cell_on_stderr_as_it_is_measured_before_the_table(monkeypatch, capsys):
    module = benchmark_script("a2a_sampling", monkeypatch)  # the lines, not the sampling: it took minutes, silent
    monkeypatch.setattr(module, "generate_image", lambda *args, **kwargs: torch.zeros(1))
    monkeypatch.setattr(module, "generate_video", lambda *args, **kwargs: torch.zeros(1))
    monkeypatch.setattr(sys, "argv", ["a2a_sampling.py", "--vocab", "280", "281", "--repeats", "1"])
    module.main()
    said = capsys.readouterr()
    lines = said.err.splitlines()
    assert [line.split(": KV cache ")[0] for line in lines] == [
        f"measured {done}/6: vocab {vocab}, {what}" for done, (vocab, what) in enumerate(
            [(vocab, what) for vocab in (280, 281) for what in ("64x64 image", "image, g2 best4", "4-frame video")], 1)]
    assert all(" s, recompute " in line for line in lines)
    assert "measured" not in said.out and said.out.splitlines()[-1].startswith("machine load at end: ")
    assert module.progress_line(1, 3, 4359, "4-frame video", 0.25, None) == (
        "measured 1/3: vocab 4,359, 4-frame video: KV cache 0.250 s")  # --cached-only: no recompute


def test_a2a_sampling_whose_two_paths_draw_different_tokens_says_so_in_one_line_and_exits_non_zero(monkeypatch,
                                                                                                     capsys):
    module = benchmark_script("a2a_sampling", monkeypatch)  # the cache's images draw other tokens; its videos agree
    monkeypatch.setattr(module, "generate_image", lambda *args, use_cache, **kwargs: torch.tensor([int(use_cache)]))
    monkeypatch.setattr(module, "generate_video", lambda *args, **kwargs: torch.zeros(1))
    monkeypatch.setattr(sys, "argv", ["a2a_sampling.py", "--vocab", "280", "--repeats", "1"])
    with pytest.raises(SystemExit) as end:  # the table said "NO" and the run exited 0
        module.main()
    assert end.value.code == ("error: 2 of 3 outputs differ between recompute and KV cache, so the speed-up compares "
                              "different work; tests/test_a2a_generation.py checks that the two paths sample alike: "
                              "run it")
    same_tokens = [line.split("|")[-2].strip() for line in capsys.readouterr().out.splitlines()
                   if line.startswith("|    280 |")]
    assert same_tokens == ["NO", "NO", "yes"]


def test_a_picture_size_past_what_the_benchmark_measures_is_refused_in_one_line_before_any_work(monkeypatch, capsys):
    # both were out-of-memory tracebacks once the images or GIFs were being made
    for script in ("image_pipeline", "shard_pipeline"):
        assert script_exit(script, ["--size", "100000"], monkeypatch, capsys) == (2, (
            f"{script}.py: error: argument --size: 100000 is too large: it must be 512 or less (the captioner reads "
            "112 px, 224 with a pretrained tower)"))
    assert script_exit("vqvae_throughput", ["--gif-size", "100000", "100000"], monkeypatch, capsys) == (2, (
        "vqvae_throughput.py: error: argument --gif-size: 100000 is too large: it must be 1024 or less (the clips are "
        "64x64: a larger GIF only adds pixels to decode)"))
    assert bench_common().at_most(512, "why")("512") == 512


def gpu_script(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """bash benchmarks/<args>, from the repository root as its header says, its outputs under tmp_path."""
    return subprocess.run(["bash", *args], cwd=BENCHMARKS.parent, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OUT": str(tmp_path / "out"), "JSON_DIR": str(tmp_path / "json"),
                               "PY": sys.executable, **env})


def test_the_gpu_scripts_say_their_usage_and_take_no_argument_they_do_not_know(tmp_path):
    for script in ("gpu_check.sh", "gpu_precision_by_batch.sh"):
        shown = gpu_script([f"benchmarks/{script}", "--help"], tmp_path)
        assert (shown.returncode, shown.stdout) == (0, shown.stdout) and shown.stdout.startswith(
            f"usage: bash benchmarks/{script}")
    wrong = gpu_script(["benchmarks/gpu_check.sh", "now"], tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.startswith("usage: bash benchmarks/gpu_check.sh")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a CUDA GPU")
def test_the_gpu_scripts_stop_at_once_without_a_cuda_gpu_saying_so_in_one_line(tmp_path):
    # they ran every step for a minute, each "failed or timed out", and exited 0
    for args in (["benchmarks/gpu_check.sh"], ["benchmarks/gpu_precision_by_batch.sh", "1"]):
        ended = gpu_script(args, tmp_path)
        assert ended.returncode == 1 and ended.stdout == ""
        assert ended.stderr.startswith("error: no CUDA GPU here (torch sees none): run this on the GPU machine")
        assert ended.stderr.count("\n") == 1


def test_a_gpu_script_whose_step_fails_says_why_and_ends_with_a_non_zero_status(tmp_path):
    # a dry run on a CPU (TRAINER=cpu), with a step given 1 s: it times out; then as if a second had failed too
    # (the first finish in a subshell, whose exit ends only it)
    ended = gpu_script(["-c", "source benchmarks/gpu_env.sh; bench short 1; (finish); FAILED+=(other); finish"],
                       tmp_path, TRAINER="cpu")
    assert ended.returncode == 1 and "short: failed (rc 124): timed out" in ended.stdout
    log = tmp_path / "out" / "gpu_check.log"
    assert ended.stderr.endswith(f"error: 1 step failed: short (see {log})\n"
                                 f"error: 2 steps failed: short other (see {log})\n")


def test_the_gpu_summary_gives_each_runs_machine_load_from_its_figures_file(tmp_path, monkeypatch, capsys):
    # the Python that gpu_env.sh's `summary` runs (its here-document), in-process: sourcing the script imports torch
    summary = (BENCHMARKS / "gpu_env.sh").read_text().split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    row = {"samples_per_s": 1000.0, "step_ms": 64.0, "mfu": 0.01}
    figures = {"device": "a GPU", "precision": "32-true", "compile": False, "batch_size": 64, "overrides": [],
               "rows": {"(a)": row, "(b)": row}, "ratio_b_over_a": 1.0, "flops_per_sample": 1e9, "peak_flops": 1e14}
    busy = {"at_start": 0.5, "at_end": 20.25, "cores": 16, "busy": True}
    (tmp_path / "b64_busy.json").write_text(json.dumps({**figures, "machine_load": busy}))
    (tmp_path / "b64_older.json").write_text(json.dumps(figures))  # written before the figures held the load
    monkeypatch.setenv("JSON_DIR", str(tmp_path))
    monkeypatch.setenv("EPOCH_DIR", "")
    exec(summary, {})
    lines = capsys.readouterr().out.splitlines()  # its lines showed the figures, not the load they were taken at
    assert lines[0].startswith("b64_busy ") and lines[0].endswith(
        "  load 0.5 -> 20.2 for 16 cores (busy: not comparable with an idle machine's)")
    assert lines[1].startswith("b64_older ") and lines[1].endswith("  load not recorded")


def test_the_avx2_profile_gives_each_part_the_median_of_its_rounds_ratios_and_lists_them(monkeypatch, capsys):
    module = benchmark_script("vqvae_step_profile", monkeypatch)
    # a busy spell in round 2 of (a): the ratio of medians would say 1.5x, each round says 1.0x or 2.0x
    here = [{"encoder": 10.0}, {"encoder": 30.0}, {"encoder": 10.0}]
    capped = [{"encoder": 10.0}, {"encoder": 30.0}, {"encoder": 20.0}]
    module.print_compared(here, capped, "capped CPU")
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| encoder")][0]
    assert [cell.strip() for cell in row.split("|")[1:-1]] == ["encoder", "10.00", "20.00", "1.00x",
                                                                "1.00 / 1.00 / 2.00"]


def test_the_vqvae_profile_warns_as_the_image_pipelines_do_when_a_timed_pass_is_too_short_to_trust(monkeypatch,
                                                                                                    capsys):
    module = benchmark_script("vqvae_step_profile", monkeypatch)  # a part of no work: a pass of microseconds
    monkeypatch.setattr(module, "step_parts", lambda batch_size: {"nothing": lambda: None})
    monkeypatch.setattr(sys, "argv", ["vqvae_step_profile.py", "--no-compare-avx2", "--rounds", "1", "--repeats", "1"])
    module.main()
    out = capsys.readouterr().out.splitlines()  # it printed the figures alone, however short the pass
    # --no-compare-avx2 prints no ratio: the warning said "its ratios are mostly noise" all the same
    assert out[-2].startswith("warning: the shortest timed pass lasted 0 ms, under 200 ms: its milliseconds are "
                              "mostly noise; raise --repeats or --batch-size (longer passes) or --rounds (more of")
    assert out[-3].startswith("| nothing ") and out[-1].startswith("machine load at end: ")


def test_the_vqvae_profile_says_each_round_on_stderr_as_it_ends_before_the_table(monkeypatch, capsys):
    module = benchmark_script("vqvae_step_profile", monkeypatch)  # the lines, not the parts: silent for minutes
    monkeypatch.setattr(module, "step_parts", lambda batch_size: {"nothing": lambda: None})
    monkeypatch.setattr(sys, "argv", ["vqvae_step_profile.py", "--no-compare-avx2", "--rounds", "2", "--repeats", "1"])
    module.main()
    said = capsys.readouterr()
    assert [line.split(": (a) ")[0] for line in said.err.splitlines()] == ["round 1/2", "round 2/2"]
    assert all(line.endswith(" s") and "(b)" not in line for line in said.err.splitlines())  # no capped column run
    assert "round 1/2" not in said.out


def test_the_avx2_baseline_caps_mkl_too_and_measures_a_round_when_asked(monkeypatch):
    module = benchmark_script("vqvae_step_profile", monkeypatch)
    child = module.CappedChild(batch_size=2, repeats=1)  # the quantiser's distances are MKL matmuls
    try:
        assert child.cpu.endswith("MKL_ENABLE_INSTRUCTIONS=AVX2") and "capped at AVX2" in child.cpu
        assert list(child.round()) == list(module.step_parts(2))
    finally:
        child.close()


def test_vqvae_throughput_compares_each_round_with_the_baseline_of_the_same_round(monkeypatch):
    module = benchmark_script("vqvae_throughput", monkeypatch)
    # (a) slowed in round 2: the ratio of medians (1.0 s / 1.0 s) would say 1.0x, each round says 2x, 6x, 2x
    rounds, _ = module.interleaved_rounds([lambda: "a", lambda: "b"], repeats=3)
    assert [len(seconds) for seconds in rounds] == [3, 3]
    assert module.speed_ups([0.5, 0.5, 1.0], baseline=[1.0, 3.0, 2.0]) == [2.0, 6.0, 2.0]


def test_the_plain_loops_adamw_is_fused_exactly_where_supras_is_and_a_run_where_they_differ_stops(monkeypatch):
    module = benchmark_script("train_throughput", monkeypatch)
    # (b) fuses on CUDA outside mixed precision (it clips): the plain loop ran the multi-tensor AdamW there
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert module.plain_adamw_fused(cuda, "32-true") is True
    assert not module.plain_adamw_fused(cuda, "16-mixed") and not module.plain_adamw_fused(cuda, "bf16-mixed")
    assert not module.plain_adamw_fused(cpu, "32-true")
    adamw = partial(torch.optim.AdamW, lr=3e-4)
    auto = CaptioningTask(VLMNano(), optimizer=adamw).configure_optimizers()["optimizer"]
    module.check_same_adamw(auto, module.plain_adamw_fused(cpu, "32-true"))  # both multi-tensor on a CPU
    forced = CaptioningTask(VLMNano(), optimizer=adamw, fused_optimizer=True).configure_optimizers()["optimizer"]
    with pytest.raises(SupraUserError, match=(
            r"^\(b\)'s optimizer AdamW has fused=True but the plain loop's AdamW fused=False, so the loops would time "
            r"different steps: leave model.fused_optimizer \(auto\), model.optimizer and trainer.gradient_clip_val as")):
        module.check_same_adamw(forced, module.plain_adamw_fused(cpu, "32-true"))


def test_each_benchmark_says_the_machines_load_and_when_it_is_busy_that_its_figures_are_not_comparable(capsys):
    common = bench_common()
    # the table looks the same on an idle machine and at load 8 on 2 cores, whose figures were up to 30x slower
    assert common.load_report("at start", 1.5, cores=2) == (
        "machine load at start: 1.5 (1-minute average), for the 2 cores this run uses")
    assert common.load_report("at start", 0.5, cores=1) == (
        "machine load at start: 0.5 (1-minute average), for the 1 core this run uses")
    assert common.load_report("at end", 8.2, cores=2) == (
        "machine load at end: 8.2 (1-minute average), for the 2 cores this run uses: busy, so these figures are not "
        "comparable with an idle machine's")
    common.print_machine_load("at start", cores=1)
    assert capsys.readouterr().out.startswith("machine load at start: ")


def test_shard_pipeline_says_identical_decodes_and_the_threads_of_its_workers_not_a_psnr_floor_or_1_threads(
        monkeypatch):
    module = benchmark_script("shard_pipeline", monkeypatch)
    # pictures no larger than the target, where draft mode changes nothing, printed "PSNR 138.1 dB" (a 1e-9 floor)
    assert module.difference_text(0.0, 0.0) == "identical"
    assert module.difference_text(1.5, 2.0) == "mean |difference| 1.50 of 255, PSNR 45.1 dB"
    # torch's threads of the main process ("1 threads") described neither it nor the workers that decode
    assert module.decoding_threads(2) == "1 thread per worker"
    assert module.decoding_threads(0) == "1 thread (the main process decodes)"
    # --workers 0: the rows and the cores line said "in the workers" and "per worker" of workers there were not
    assert module.table_rows(0)[1][0] == "(b) shards streamed, full JPEG decode in the main process"
    assert module.table_rows(2)[1][0] == "(b) shards streamed, full JPEG decode in the workers"
    assert (module.decoder(0), module.decoder(2)) == ("in the main process", "per worker")


def test_the_image_pipelines_say_each_round_on_stderr_as_it_ends_before_the_table(monkeypatch, capsys):
    # the lines, not the epochs (each a fixed 100 images/s here): both were silent for minutes at their defaults
    image_pipeline = benchmark_script("image_pipeline", monkeypatch)
    monkeypatch.setattr(image_pipeline, "images_per_second", lambda loader, normalise: 100.0)
    monkeypatch.setattr(sys, "argv", ["image_pipeline.py", "--images", "2", "--workers", "0", "--size", "8",
                                      "--rounds", "2"])
    image_pipeline.main()
    said = capsys.readouterr()
    assert said.err.splitlines() == [f"round {done}/2: (a) 100 images/s, (b) 100 images/s" for done in (1, 2)]
    assert "round 1/2" not in said.out
    shard_pipeline = benchmark_script("shard_pipeline", monkeypatch)
    monkeypatch.setattr(shard_pipeline, "images_per_second", lambda loader, normalise: 100.0)
    monkeypatch.setattr(shard_pipeline, "stream_images_per_second", lambda loader: 1000.0)
    monkeypatch.setattr(sys, "argv", ["shard_pipeline.py", "--images", "4", "--batch-size", "1", "--workers", "0",
                                      "--size", "8", "--rounds", "1"])
    shard_pipeline.main()
    assert capsys.readouterr().err.splitlines() == [
        "round 1/1: (a) 100 images/s, (b) full 1,000 images/s, (b) draft 1,000 images/s, (c) 100 images/s"]


def test_image_pipelines_warn_when_a_timed_pass_is_too_short_for_its_ratio_to_mean_anything(monkeypatch):
    common = bench_common()
    # 8 cached images, a few ms a pass: b/a was 81.8x, 12.5x and 94.7x in three runs
    advice = benchmark_script("image_pipeline", monkeypatch).SHORT_PASS_ADVICE
    assert common.short_passes_warning([0.5, 0.006, 0.3], advice) == (
        "warning: the shortest timed pass lasted 6 ms, under 200 ms: its ratios are mostly noise; raise --images "
        "(longer passes) or --rounds (more of them for the medians)")
    assert common.short_passes_warning([0.5, 0.2], advice) == ""
