"""The speed switches of issue 9 do what they say and change no results: channels_last, fused AdamW,
pinned memory, torch.compile, bf16 on CPUs that compute it natively, caption metrics every N
validations, and the time accounting report."""

from __future__ import annotations

import csv
import json
import re
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import supra.callbacks.time_accounting as time_accounting
from supra.callbacks.sample_grid import Sample, SampleGridCallback
from supra.callbacks.time_accounting import ROWS, TimeAccounting, format_table, process_start_time
from supra.data.captioning.shapes import ShapesDataModule
from supra.models.vlm_nano import VLMNano
from supra.runner.training import train
from supra.tasks.captioning import CaptioningTask
from supra.utils import hardware
from supra.utils.errors import SupraUserError
from supra.utils.hardware import cpu_description, fast_precision
from tests.conftest import CONF, compose_config


def _loss(net: VLMNano, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return net(images, tokens[:, :-1], tokens[:, 1:])[1]


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 112, 112, generator=gen), torch.randint(3, 2048, (4, 10), generator=gen)


def test_channels_last_encoder_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    plain = VLMNano()
    nhwc = VLMNano(channels_last=True)
    nhwc.load_state_dict(plain.state_dict())
    assert nhwc.vis_enc.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.vis_enc.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)
    images, tokens = _inputs()
    a, b = _loss(plain, images, tokens), _loss(nhwc, images, tokens)
    a.backward()
    b.backward()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(plain.vis_enc.conv1[0].weight.grad, nhwc.vis_enc.conv1[0].weight.grad, rtol=1e-4, atol=1e-5)


def test_fused_optimizer_is_automatic_on_cuda_only_and_can_be_forced():
    adamw = partial(torch.optim.AdamW, lr=1e-3)
    auto = CaptioningTask(VLMNano(), optimizer=adamw).configure_optimizers()["optimizer"]
    assert auto.defaults["fused"] is None  # this task's module is on the CPU: AdamW's own default
    forced = CaptioningTask(VLMNano(), optimizer=adamw, fused_optimizer=True).configure_optimizers()["optimizer"]
    assert forced.defaults["fused"] is True
    # an optimizer factory without a `fused` argument is left alone under "auto"
    plain = CaptioningTask(VLMNano(), optimizer=lambda groups: torch.optim.Adagrad(groups)).configure_optimizers()
    assert isinstance(plain["optimizer"], torch.optim.Adagrad)


@pytest.mark.parametrize("workers", [-1, 1.5, True])
def test_num_workers_must_be_a_whole_number_from_0_said_in_one_line(workers):
    """-1 was torch's traceback at the first batch."""
    message = f"data.num_workers={workers!r} must be a whole number >= 0 (0: batches are made in the main process)"
    with pytest.raises(SupraUserError, match="^" + re.escape(message) + "$"):
        ShapesDataModule(num_workers=workers)


def test_pin_memory_auto_follows_cuda_and_bad_values_are_refused():
    assert ShapesDataModule(pin_memory="auto").pin_memory is torch.cuda.is_available()
    assert ShapesDataModule(pin_memory=True).pin_memory is True
    with pytest.raises(SupraUserError, match="data.pin_memory='yes'"):
        ShapesDataModule(pin_memory="yes")


def test_fast_precision_is_bf16_only_on_cpus_that_compute_it_natively_and_16_mixed_on_gpus(monkeypatch, tmp_path):
    real = hardware.cpu_has_native_bf16
    for variable in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):  # as if the CPU's own kernels were used
        monkeypatch.delenv(variable, raising=False)

    def cpu(flags: str) -> str:
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\nbugs\t\t:\n")
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: real(tmp_path / "cpuinfo"))
        return fast_precision("cpu")
    assert cpu("avx512f avx512_bf16") == cpu("amx_bf16 amx_tile") == "bf16-mixed"
    assert cpu("avx512f avx512bw") == "32-true"  # AVX-512 without BF16: emulated bf16 would be slower than fp32
    assert cpu("") == "32-true"
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # AVX-512 kernels off, as on an AVX2-only CPU
    assert cpu("avx512f avx512_bf16") == "32-true"
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", real)
    assert hardware.cpu_flags(tmp_path / "no_such_file") == frozenset()  # not Linux: the safe answer, fp32
    assert fast_precision("gpu") == "16-mixed"  # as trainer=gpu: T4s have no bf16
    # the resolver configs use, registered by importing supra.runner
    cfg = OmegaConf.create({"trainer": {"accelerator": "gpu", "precision": "${fast_precision:${trainer.accelerator}}"}})
    assert cfg.trainer.precision == "16-mixed"


@pytest.mark.parametrize(("switch", "value", "message"), [
    ("compile", "no", "model.compile='no' must be true or false"),  # "no" would compile: a string counts as true
    ("fused_optimizer", "off", "model.fused_optimizer='off' must be true, false or auto"),  # fused=True on a CPU
    ("loss_in_progress_bar", "no", "model.loss_in_progress_bar='no' must be true, false or auto"),
])
def test_a_switch_given_anything_but_true_or_false_is_refused_when_the_task_is_built(switch, value, message):
    with pytest.raises(SupraUserError, match="^" + re.escape(message) + "$"):
        CaptioningTask(VLMNano(), optimizer=torch.optim.AdamW, **{switch: value})
    CaptioningTask(VLMNano(), optimizer=torch.optim.AdamW, **{switch: False})


@pytest.mark.parametrize(("every", "message"), [
    (0, "model.score_every_n_val=0 must be >= 1: caption scores every n-th validation (1: every one)"),
    (1.5, "model.score_every_n_val=1.5 must be a whole number"),
])
def test_score_every_n_val_must_be_a_whole_number_from_1_said_in_one_line(every, message):
    with pytest.raises(SupraUserError, match="^" + re.escape(message) + "$"):
        CaptioningTask(VLMNano(), optimizer=torch.optim.AdamW, score_every_n_val=every)


@pytest.mark.slow
def test_compile_keeps_state_dict_names_and_loss():
    torch.manual_seed(0)
    net = VLMNano()
    images, tokens = _inputs()
    eager = _loss(net, images, tokens)
    names = list(net.state_dict())
    net.compile()
    torch.testing.assert_close(_loss(net, images, tokens), eager, rtol=1e-4, atol=1e-5)
    assert list(net.state_dict()) == names  # checkpoints and release export keep the release's names


def _rows(path: Path, key: str) -> list[int]:
    with path.open() as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get(key)]


def test_scores_every_second_validation_and_the_last_with_loss_every_time_and_accounts_time(train_config):
    # validations at steps 2, 4, 6, 8: scored are the 1st, the 3rd and the last (the 4th)
    cfg = train_config("model.score_every_n_val=2", "trainer.max_steps=8", "trainer.val_check_interval=2",
                       "model.val_metrics=[CIDEr]", "model.test_metrics=[CIDEr]")  # no METEOR: its JVM is slow to start
    _, metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    logged = run / "csv" / "metrics.csv"
    assert _rows(logged, "val/loss") == [1, 3, 5, 7]  # the logger counts steps from 0
    assert _rows(logged, "val/CIDEr") == [1, 5, 7]
    # the skipped validation left the monitor's last value in place: no crash, best.ckpt from a scored one
    assert (run / "checkpoints" / "best.ckpt").is_file() and "test/CIDEr" in metrics

    report = json.loads((run / "time_accounting.json").read_text())
    assert report["after"] == "test" and set(report["seconds"]) == set(ROWS)
    assert report["counts"]["train_steps"] == 8 and report["counts"]["validations"] == 4
    assert sum(report["seconds"].values()) == pytest.approx(report["wall_s"], rel=1e-6)
    assert report["seconds"]["train_steps"] > 0 and report["seconds"]["val_scoring"] > 0
    assert 0 < report["outside_train_val_test_steps"] < report["outside_train_val_steps"] < 1
    assert report["machine"] == cpu_description()  # what the times hold on (the study's table names it)


def test_score_every_n_val_counts_the_validations_of_the_whole_run_across_a_resume(monkeypatch):
    # validations at steps 2, 4, 6, 8 with N=2: the 1st, the 3rd and the last scored, whether the run was resumed
    # after its first validation or not (a resumed run counted from 0: it scored steps 4 and 8, not 6 and 8)
    def scored_steps(task: CaptioningTask, steps: list[int]) -> list[int]:
        scored: list[int] = []
        monkeypatch.setattr(task, "_score_epoch", lambda *_: scored.append(task.trainer.global_step))
        for step in steps:
            task._trainer = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn="fit"), max_steps=8,
                                            global_step=step, max_epochs=-1)
            task.on_validation_epoch_end()
        return scored

    def task() -> CaptioningTask:
        return CaptioningTask(VLMNano(), optimizer=torch.optim.AdamW, score_every_n_val=2)

    assert scored_steps(task(), [2, 4, 6, 8]) == [2, 6, 8]
    first, checkpoint = task(), {}
    assert scored_steps(first, [2]) == [2]
    first.on_save_checkpoint(checkpoint)
    resumed = task()
    resumed.on_load_checkpoint(checkpoint)
    assert scored_steps(resumed, [4, 6, 8]) == [6, 8]
    # a checkpoint written before the count was kept: the resumed run counts from its resume
    del checkpoint["supra"]["validations"]
    resumed.on_load_checkpoint(checkpoint)
    assert scored_steps(resumed, [4, 6, 8]) == [4, 8]


def test_meteors_java_starts_as_the_validations_that_score_it_begin(monkeypatch):
    # validations at steps 2, 4, 6, 8 with N=2 score the 1st, the 3rd and the last: METEOR's Java (seconds to load)
    # starts as each of those begins, to load while its captions are decoded; a sanity check scores nothing
    from supra.tasks import captioning

    started: list[int] = []
    task = CaptioningTask(VLMNano(), optimizer=torch.optim.AdamW, score_every_n_val=2,
                          val_metrics=["METEOR", "CIDEr"])
    monkeypatch.setattr(task, "_score_epoch", lambda *_: None)
    monkeypatch.setattr(captioning, "start_meteor", lambda: started.append(task.trainer.global_step))
    for step, sanity in [(0, True), (2, False), (4, False), (6, False), (8, False)]:
        task._trainer = SimpleNamespace(sanity_checking=sanity, state=SimpleNamespace(fn="fit"), max_steps=8,
                                        global_step=step, max_epochs=-1, is_global_zero=True)
        task.on_validation_epoch_start()
        task.on_validation_epoch_end()
    assert started == [2, 6, 8]


def test_the_sanity_check_runs_the_validation_step_on_its_batchs_first_8_images_and_their_references(monkeypatch):
    # its outputs are discarded (nothing scores them): beam search over a whole 250-image batch cost seconds
    task = CaptioningTask(VLMNano(), optimizer=torch.optim.AdamW)
    seen = {}

    def loss(batch):
        seen["loss"] = batch
        return torch.tensor(0.0)

    def captions(images, decode):
        seen["captioned"] = len(images)
        return ["a caption"] * len(images)

    monkeypatch.setattr(task, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(task, "_caption_loss", loss)
    monkeypatch.setattr(task, "generate_captions", captions)
    references = torch.arange(20).repeat_interleave(2)  # 20 images, two reference captions each
    batch = {"images": torch.zeros(20, 3, 4, 4), "image_ids": torch.arange(100, 120),
             "tokens": torch.arange(40).unsqueeze(1).expand(40, 5), "caption_image": references}
    task._trainer = SimpleNamespace(sanity_checking=True)
    task._predictions = {}
    task.validation_step(batch, 0)
    assert seen["captioned"] == 8 and sorted(task._predictions) == list(range(100, 108))
    assert seen["loss"]["tokens"][:, 0].tolist() == list(range(16))
    assert seen["loss"]["caption_image"].tolist() == torch.arange(8).repeat_interleave(2).tolist()


def test_process_start_time_is_before_now():
    import time

    assert time.time() - 3600 * 24 < process_start_time() <= time.time()


def test_a_multiruns_later_job_counts_its_time_from_its_own_start_not_the_jobs_before_it(monkeypatch):
    from supra.callbacks import time_accounting

    monkeypatch.setattr(time_accounting, "_job_starts", [])
    time_accounting.mark_job_start()
    assert time_accounting.run_start_time() == process_start_time()  # the first run: imports are its start-up
    time_accounting.mark_job_start()  # the basic launcher's next job, in the same process
    assert time_accounting.run_start_time() == time_accounting._job_starts[-1] > process_start_time()


@pytest.mark.parametrize(("model", "precision"), [("vlm_nano", "bf16-true"), ("vqvae_f8", "64-true"), ("a2a_nano", "64-true")])
def test_true_precisions_train_validate_and_test_every_model_kind(model, precision, tmp_path, vqvae_ckpt):
    # the batches' images are uint8 when Lightning converts a batch's floats: they get the precision's dtype
    # after, as they are scaled to floats (data and code cache alike), and so do the grids' pictures
    from tests.conftest import TINY_RUN, compose_config
    from tests.test_a2a_training import a2a_run
    from tests.test_vq_training import VQ_RUN

    run = {"vlm_nano": [*TINY_RUN, "model.val_metrics=[CIDEr]", "model.test_metrics=[CIDEr]"],
           "vqvae_f8": [*TINY_RUN, *VQ_RUN], "a2a_nano": a2a_run(vqvae_ckpt, tmp_path / "cache")}[model]
    cfg = compose_config("train", tmp_path / "run", [*run, f"trainer.precision={precision}", "trainer.max_steps=2",
                                                      "trainer.val_check_interval=2"])
    _, metrics = train(cfg)
    assert "val/loss" in metrics and torch.isfinite(torch.tensor(metrics["test/loss"]))
    weights = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {
        {"bf16-true": torch.bfloat16, "64-true": torch.float64}[precision]}


def test_16_true_with_adams_float16_eps_of_0_is_refused_naming_the_precisions_that_train(train_config):
    from supra.runner.run_checks import check_precision, check_run_config

    with pytest.raises(SupraUserError, match=r"^trainer.precision=16-true keeps the optimizer's state in float16, "
                                             r"where its eps=1e-08 is 0: .* Use trainer.precision=bf16-true or "
                                             r"trainer.precision=bf16-mixed, or add \+model.optimizer.eps=1e-4$"):
        check_run_config(train_config("trainer.accelerator=cpu", "trainer.precision=16-true"))
    check_run_config(train_config("trainer.precision=16-true", "+model.optimizer.eps=1e-4", run="eps"))
    # on a GPU float16 arithmetic over float32 weights trains too
    with pytest.raises(SupraUserError, match=r" Use trainer.precision=16-mixed \(float16 arithmetic, float32 weights\), "
                                             r"trainer.precision=bf16-true or trainer.precision=bf16-mixed, or add "
                                             r"\+model.optimizer.eps=1e-4$"):
        check_precision(train_config("trainer.accelerator=gpu", "trainer.precision=16-true", run="gpu"))
    # an eps the config names already is set without the +, which Hydra would refuse there
    with pytest.raises(SupraUserError, match=r"or add model.optimizer.eps=1e-4$"):
        check_precision(train_config("trainer.precision=16-true", "+model.optimizer.eps=1e-8", run="named_eps"))


@pytest.mark.parametrize("precision", ["16-true", "16-mixed"])
def test_each_precision_advice_on_a_cpu_pastes_as_given_and_is_accepted_there(train_config, precision):
    """The advice once said "Use 16-mixed", which a CPU then refused: each override advised is taken literally."""
    from supra.runner.run_checks import check_run_config

    with pytest.raises(SupraUserError) as refused:
        check_run_config(train_config("trainer.accelerator=cpu", f"trainer.precision={precision}"))
    advice = re.split(r"\b[Uu]se ", str(refused.value))[-1]
    advised = re.findall(r"\+?(?:trainer|model)\.[\w.]+=[\w.-]+", advice)
    assert advised and "trainer.precision=16-mixed" not in advised
    assert not re.findall(r"(?<![\w=-])(?:bf)?(?:16|32|64)-(?:true|mixed)", advice)  # none named but as an override
    for number, override in enumerate(advised):
        overrides = ([override] if override.startswith("trainer.precision=") else [f"trainer.precision={precision}",
                                                                                  override])
        check_run_config(train_config("trainer.accelerator=cpu", *overrides, run=f"advice_{number}"))


@pytest.mark.parametrize(("override", "message"), [
    ("model.weight_decay=-1", "model.weight_decay=-1 must be a finite number >= 0"),  # torch checks no group's
    ("model.scheduler.min_lr=1", "model.scheduler.min_lr=1 is above model.optimizer.lr=0.001: the cosine schedule "
                                 "would climb to it, not decay; give a min_lr <= lr"),
    ("model.optimizer.lr=-1", "model.optimizer.lr=-1 must be a finite number >= 0"),  # torch: after data set-up
    ("model.optimizer.betas=[0.9]", "model.optimizer.betas=[0.9] must be two numbers from 0 to below 1, e.g. [0.9,0.95]"),
    ("model.optimizer.betas=[0.9,1.5]", "model.optimizer.betas=[0.9, 1.5] must be two numbers from 0 to below 1"),
    ("+model.optimizer.eps=-1", "model.optimizer.eps=-1 must be a finite number >= 0"),
    ("model.scheduler.warmup_steps=abc", "model.scheduler.warmup_steps='abc' must be a whole number"),
    ("model.scheduler.warmup_steps=-1", "model.scheduler.warmup_steps=-1 must be a finite number >= 0"),  # was clamped
    ("trainer.precision=16-mixed", "trainer.precision=16-mixed is for GPUs: on a CPU Lightning would train in "
                                   "bf16-mixed instead; use trainer.precision=32-true (every recipe's), or "
                                   "trainer.precision=bf16-mixed where the CPU has native bf16"),
    ("trainer.max_steps=-5", "trainer.max_steps=-5 must be >= 1 (or -1: bounded by trainer.max_epochs)"),
    ("trainer.precision=bogus", "trainer.precision=bogus is not a precision: choose one of 32-true, 64-true, "
                                "bf16-mixed, 16-true, bf16-true"),  # 16-mixed left out: on a CPU it is refused  # was Hydra's multi-line error, after data set-up
    # a bare value was inspect's TypeError traceback when the optimizer was built, after the data set-up
    ("model.optimizer=unknown", "model.optimizer=unknown must be an optimizer config: set model.optimizer._target_ to "
                                "one of torch.optim.AdamW (the captioner's), torch.optim.Adam (the VQ-VAE's), "
                                "supra.tasks.optimizers.MuonWithAdamW (a2a_shapes') or another torch.optim class"),
    ("model.optimizer=null", "model.optimizer=null must be an optimizer config: set model.optimizer._target_ to one of"),
    # was "model.scheduler.warmup_steps=None must be a whole number", an option the user never touched
    ("model.scheduler=cosine", "model.scheduler=cosine must be a schedule config (model.scheduler._target_="
                               "supra.tasks.lr_schedules.warmup_cosine: every recipe's warm-up and cosine decay) or "
                               "null (a constant learning rate)"),
    # a misspelt class was Hydra's multi-line error (exit 1) as the task was built
    ("model.optimizer._target_=torch.optim.AdamWW", "model.optimizer._target_=torch.optim.AdamWW names no class or "
                                                    "function: did you mean torch.optim.AdamW"),
    ("model.scheduler._target_=torch.optim.lr_scheduler.Nope", "model.scheduler._target_=torch.optim.lr_scheduler.Nope "
                                                               "names no class or function"),
])
def test_optimizer_schedule_and_precision_settings_that_would_train_wrong_or_fail_late_are_refused_first(
        train_config, override, message):
    from supra.runner.run_checks import check_run_config

    with pytest.raises(SupraUserError, match="^" + re.escape(message)):
        check_run_config(train_config("trainer.accelerator=cpu", override))


@pytest.mark.parametrize(("experiment", "optimizer"), [
    ("vlm_shapes", "torch.optim.AdamW"), ("vlm_shapes", "torch.optim.SGD"), ("a2a_shapes", "torch.optim.AdamW"),
    ("a2a_shapes", "supra.tasks.optimizers.MuonWithAdamW"),
])
def test_an_optimizer_weight_decay_the_models_groups_would_override_is_refused_pointing_at_model_weight_decay(
        tmp_path, experiment, optimizer):
    """The captioner's and a2a's parameter groups carry their own decay (model.weight_decay), which torch takes over
    the optimizer's: +model.optimizer.weight_decay=0.5 trained with 0.01 while the recorded config said 0.5."""
    from supra.runner.run_checks import check_optimization

    cfg = compose_config("train", tmp_path, [f"experiment={experiment}", f"model.optimizer._target_={optimizer}",
                                             "+model.optimizer.weight_decay=0.5"])
    with pytest.raises(SupraUserError) as refused:
        check_optimization(cfg)
    assert str(refused.value) == ("model.optimizer.weight_decay=0.5 is not used: the model's parameter groups set "
                                  "their own; use model.weight_decay=0.5")


def test_the_vqvae_takes_an_optimizer_weight_decay_as_its_one_group_has_none_of_its_own(tmp_path):
    from hydra.utils import instantiate

    from supra.runner.run_checks import check_optimization

    cfg = compose_config("train", tmp_path, ["experiment=vqvae_shapes", "+model.optimizer.weight_decay=0.5"])
    check_optimization(cfg)
    task = instantiate(cfg.model)
    optimizer = task.optimizer_factory(task.parameter_groups())
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.5]


def test_a_fused_optimizer_lightning_cannot_clip_is_refused_first_and_the_others_are_taken(train_config):
    """Lightning refuses to clip the gradients of a fused optimizer under mixed precision: that was its traceback at
    the first step, after the data set-up. auto never fuses there (fuses_on_auto), and without clipping true is
    taken."""
    from supra.runner.run_checks import check_run_config

    with pytest.raises(SupraUserError, match="^" + re.escape(
            "model.fused_optimizer=true with trainer.precision=bf16-mixed and trainer.gradient_clip_val=1.0: Lightning "
            "cannot clip a fused optimizer's gradients under mixed precision; use model.fused_optimizer=auto (fuses "
            "where it can) or false, or trainer.gradient_clip_val=0 (no clipping)") + "$"):
        check_run_config(train_config("trainer.precision=bf16-mixed", "model.fused_optimizer=true"))
    for number, overrides in enumerate([("model.fused_optimizer=auto",), ("trainer.gradient_clip_val=0",),
                                        ("trainer.precision=32-true",)]):
        check_run_config(train_config("trainer.precision=bf16-mixed", "model.fused_optimizer=true", *overrides,
                                      run=f"taken_{number}"))


@pytest.mark.parametrize("switch", ["false", "auto", "true"])
def test_an_optimizer_fused_beside_the_captioners_fused_optimizer_is_refused_pointing_at_it(tmp_path, switch):
    """The captioner passes fused to its optimizer as model.fused_optimizer says: with +model.optimizer.fused=true,
    false silently won, and auto (nothing passed off CUDA) let the optimizer's fuse, past the check above. a2a and
    the VQ-VAE have no switch of their own: the optimizer's is theirs."""
    from supra.runner.run_checks import check_fused_optimizer

    cfg = compose_config("train", tmp_path / "vlm", [f"model.fused_optimizer={switch}", "+model.optimizer.fused=true"])
    with pytest.raises(SupraUserError) as refused:
        check_fused_optimizer(cfg)
    assert str(refused.value) == ("model.optimizer.fused=true: the model passes the optimizer's fused itself, as "
                                  "model.fused_optimizer says (auto, true or false); use model.fused_optimizer=true")
    for experiment in ("a2a_shapes", "vqvae_shapes"):
        check_fused_optimizer(compose_config("train", tmp_path / experiment, [f"experiment={experiment}",
                                                                             "+model.optimizer.fused=true"]))


@pytest.mark.parametrize("experiment", ["a2a_shapes", "vqvae_shapes"])
def test_a2a_and_the_vqvae_fused_by_their_optimizers_option_are_refused_where_lightning_cannot_clip(tmp_path, experiment):
    """+model.optimizer.fused=true under mixed precision with clipping was Lightning's traceback at the first step
    (after a minute of a2a's set-up): refused first, as the captioner's model.fused_optimizer=true is; without
    clipping it is taken."""
    from supra.runner.run_checks import check_fused_optimizer

    overrides = [f"experiment={experiment}", "+model.optimizer.fused=true", "trainer.precision=bf16-mixed"]
    with pytest.raises(SupraUserError) as refused:
        check_fused_optimizer(compose_config("train", tmp_path / "clipped", [*overrides, "trainer.gradient_clip_val=1"]))
    assert str(refused.value) == (
        "model.optimizer.fused=true with trainer.precision=bf16-mixed and trainer.gradient_clip_val=1: Lightning "
        "cannot clip a fused optimizer's gradients under mixed precision; leave model.optimizer.fused out, or "
        "trainer.gradient_clip_val=0 (no clipping)")
    check_fused_optimizer(compose_config("train", tmp_path / "unclipped", [*overrides, "trainer.gradient_clip_val=0"]))


@pytest.mark.parametrize(("override", "message"), [
    # torch's Muon takes them without a word: the momentum buffer diverged, or no Newton-Schulz iteration ran
    ("+model.optimizer.momentum=1.5", "model.optimizer.momentum=1.5 must be a number from 0 to below 1, e.g. 0.95"),
    ("+model.optimizer.momentum=-0.1", "model.optimizer.momentum=-0.1 must be a number from 0 to below 1"),
    ("+model.optimizer.ns_steps=0", "model.optimizer.ns_steps=0 must be a whole number >= 1: the Newton-Schulz "
                                    "iterations that orthogonalise Muon's update (5: torch's default)"),
    ("+model.optimizer.ns_steps=-3", "model.optimizer.ns_steps=-3 must be a whole number >= 1"),
    ("+model.optimizer.ns_steps=2.5", "model.optimizer.ns_steps=2.5 must be a whole number >= 1"),
])
def test_muon_settings_that_would_train_no_muon_are_refused_first(tmp_path, override, message):
    from supra.runner.run_checks import check_optimization

    cfg = compose_config("train", tmp_path / "run", ["experiment=a2a_shapes", override])
    assert cfg.model.optimizer._target_ == "supra.tasks.optimizers.MuonWithAdamW"
    with pytest.raises(SupraUserError, match="^" + re.escape(message)):
        check_optimization(cfg)
    check_optimization(compose_config("train", tmp_path / "taken", ["experiment=a2a_shapes",
                                                                    "+model.optimizer.momentum=0.9",
                                                                    "+model.optimizer.ns_steps=3"]))


class _SlowPictures(SampleGridCallback):
    """A picture callback whose drawing takes a known 0.2 s (a stand-in for an a2a model's generated grids)."""

    needs = "sample_images"

    def draw(self, trainer: object, pl_module: object, split: str, step: int) -> list[Sample]:
        time.sleep(0.2)
        return [Sample("slow", Image.new("RGB", (8, 8)))]


def test_the_sample_pictures_have_their_own_row_not_other(tmp_path):
    # validation's pictures are drawn after its steps and scoring: their time is theirs, out of "other"
    accounting, pictures = TimeAccounting(str(tmp_path)), _SlowPictures(1, 1, "slow", str(tmp_path))
    trainer = SimpleNamespace(callbacks=[accounting, pictures], is_global_zero=True, sanity_checking=False,
                              received_sigterm=False, global_step=2, loggers=[],
                              datamodule=SimpleNamespace(sample_images=lambda *_: None))
    model = torch.nn.Linear(1, 1)
    model.device = torch.device("cpu")
    for callback in (accounting, pictures):
        callback.on_validation_end(trainer, model)
    accounting.teardown(trainer, model, "fit")

    report = json.loads((tmp_path / "time_accounting.json").read_text())
    assert pictures.seconds_drawing >= 0.2
    assert report["seconds"]["pictures"] == pytest.approx(pictures.seconds_drawing)
    assert report["seconds"]["other"] < report["wall_s"] - 0.2
    assert "| sample pictures (grids, GIFs)" in format_table(report)
    assert (tmp_path / "slow" / "val_step_000002.png").is_file()


def test_the_callbacks_config_says_where_time_accountings_place_first_is_explained():
    # "see its docstring" sent the reader to TimeAccounting's, which says nothing of the order
    said = " ".join(line.lstrip("# ") for line in (CONF / "callbacks" / "default.yaml").read_text().splitlines()[:2])
    assert said == ("time_accounting comes first: its hooks then run before the other callbacks' (see "
                    "supra/callbacks/time_accounting.py's module docstring)")
    assert "Put this callback first in the\ncallbacks config" in time_accounting.__doc__
