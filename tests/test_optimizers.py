"""Muon in float32 (the step torch's Muon takes, without its bfloat16; its iteration on the Gram matrix where
that is cheaper, to the same result), and MuonWithAdamW: Muon on the GPT's
hidden matrices and torch's AdamW on the rest, stepped as one optimizer, with one schedule and one state
that a checkpoint saves and restores."""

from __future__ import annotations

import copy
import io
import logging
import re

import pytest
import torch
import torch.nn.functional as F

from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.tasks import optimizers
from supra.tasks.lr_schedules import squeezed_warmup, warmup_cosine, warmup_within
from supra.tasks.optimizers import Float32Muon, MuonWithAdamW, orthogonalize
from supra.utils.errors import SupraUserError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NS = (3.4445, -4.775, 2.0315)  # torch's Muon coefficients
TINY = {"vocab_size": 50, "context": 16, "n_layers": 2, "d_model": 32, "n_heads": 2, "d_mlp": 64}


def gpt() -> A2ANano:
    torch.manual_seed(0)
    return A2ANano(A2AConfig(**TINY))


def train_steps(model: A2ANano, optimizer: torch.optim.Optimizer, steps: int, scheduler=None, first: int = 0) -> None:
    for step in range(first, first + steps):
        idx = torch.randint(0, TINY["vocab_size"], (4, 12), generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(idx)[0][:, :-1].flatten(0, 1), idx[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def muon_with_adamw(model: A2ANano, lr: float = 1e-2) -> MuonWithAdamW:
    return MuonWithAdamW(model.optimizer_groups(0.1), hidden_matrices=model.hidden_matrices(), lr=lr)


def test_the_hidden_matrices_are_the_blocks_2d_weights_and_not_the_embeddings_or_head():
    model = gpt()
    hidden = {id(p) for p in model.hidden_matrices()}
    assert len(hidden) == 4 * TINY["n_layers"]  # qkv, attention out, MLP in, MLP out per block
    assert not hidden & {id(model.tok_emb.weight), id(model.pos_emb.weight), id(model.lm_head.weight)}


def test_orthogonalizing_pushes_every_singular_value_towards_one_whatever_the_scale():
    torch.manual_seed(0)
    for shape, scale in (((64, 16), 1e-4), ((16, 64), 1.0), ((32, 32), 1e3)):
        skewed = torch.randn(shape) @ torch.diag(torch.logspace(0, 1.5, shape[1])) * scale  # condition number ~30
        out = orthogonalize(skewed, NS, steps=5, eps=1e-7)
        assert out.shape == shape and out.dtype == torch.float32
        singular = torch.linalg.svdvals(out)
        assert singular.min() > 0.5 and singular.max() < 1.3, singular


def test_the_gram_form_gives_the_plain_iterations_result_for_ill_conditioned_matrices():
    # float64 plain iteration as the reference; singular values spread over 1 to 1e-6
    torch.manual_seed(0)
    for shape in ((48, 160), (160, 48), (96, 48)):
        short, long = min(shape), max(shape)
        left, _ = torch.linalg.qr(torch.randn(short, short, dtype=torch.float64))
        right, _ = torch.linalg.qr(torch.randn(long, short, dtype=torch.float64))
        matrix = (left * torch.logspace(0, -6, short, dtype=torch.float64)) @ right.T
        matrix = matrix if shape[0] <= shape[1] else matrix.T
        reference = orthogonalize(matrix, NS, steps=5, eps=1e-7, gram=False)
        gram = orthogonalize(matrix.float(), NS, steps=5, eps=1e-7, gram=True)
        assert gram.shape == shape
        assert (gram.double() - reference).norm() < 1e-3 * reference.norm()
        assert (gram.double() - reference).norm() > 0  # float32, not the reference itself


def test_the_gram_form_is_taken_where_it_saves_flops_and_not_for_near_square_matrices(monkeypatch):
    taken = []
    real = optimizers.gram_newton_schulz
    monkeypatch.setattr(optimizers, "gram_newton_schulz", lambda *a: taken.append(a[0].shape) or real(*a))
    for shape in ((256, 1024), (768, 256), (256, 256), (300, 256)):
        orthogonalize(torch.randn(shape), NS, steps=5, eps=1e-7)
    assert taken == [(256, 1024), (256, 768)]  # the long side at least 1.5x the short one


def test_float32_muon_takes_the_step_torchs_muon_takes_up_to_its_bfloat16_rounding():
    torch.manual_seed(0)
    start = torch.randn(48, 24)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    pair = (Float32Muon([ours], lr=0.01, weight_decay=0.1),
            torch.optim.Muon([theirs], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"))
    for step in range(3):  # momentum, Nesterov, weight decay and the lr scaling all take part
        grad = torch.randn(48, 24, generator=torch.Generator().manual_seed(step))
        for param, optimizer in zip((ours, theirs), pair, strict=True):
            param.grad = grad.clone()
            optimizer.step()
    moved_ours, moved_theirs = ours.detach() - start, theirs.detach() - start
    assert (moved_ours - moved_theirs).norm() < 0.02 * moved_theirs.norm()  # bf16 keeps ~3 digits
    assert (moved_ours - moved_theirs).norm() > 0  # and ours is not bf16
    assert pair[0].state[ours].keys() == pair[1].state[theirs].keys()  # the same state layout


def test_it_steps_exactly_as_float32_muon_and_adamw_stepped_side_by_side():
    ours, theirs = gpt(), gpt()
    hidden = {id(p) for p in theirs.hidden_matrices()}
    groups = theirs.optimizer_groups(0.1)
    adamw = torch.optim.AdamW([{**g, "params": [p for p in g["params"] if id(p) not in hidden]} for g in groups],
                              lr=1e-2, betas=(0.9, 0.95))
    muon = Float32Muon(theirs.hidden_matrices(), lr=1e-2, weight_decay=0.1)

    class Both(torch.optim.Optimizer):  # the reference: the two optimizers, one step each
        def __init__(self):
            super().__init__(theirs.parameters(), {})

        def step(self, closure=None):
            adamw.step()
            muon.step()

    train_steps(ours, muon_with_adamw(ours), 3)
    train_steps(theirs, Both(), 3)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(ours.blocks[0].mlp.fc1.weight, gpt().blocks[0].mlp.fc1.weight)  # it did train


def test_one_schedule_sets_the_learning_rate_of_both():
    model = gpt()
    optimizer = muon_with_adamw(model)
    scheduler = warmup_cosine(optimizer, total_steps=10, warmup_steps=4, min_lr=1e-4)
    train_steps(model, optimizer, 2, scheduler)
    expected = scheduler.get_last_lr()[0]
    assert expected < 1e-2
    assert {g["lr"] for g in optimizer._adamw.param_groups} == {g["lr"] for g in optimizer._muon.param_groups} == {expected}


def test_the_schedule_is_torchs_warmup_and_cosine_then_holds_min_lr_where_torchs_would_climb_again():
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    def lrs(make, steps: int) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
        scheduler = make(optimizer)
        out = []
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
            out.append(scheduler.get_last_lr()[0])
        return out

    def torchs(optimizer):
        return SequentialLR(optimizer, [LinearLR(optimizer, 0.25, 1.0, total_iters=4),
                                        CosineAnnealingLR(optimizer, T_max=6, eta_min=1e-4)], milestones=[4])

    ours = lrs(lambda o: warmup_cosine(o, total_steps=10, warmup_steps=4, min_lr=1e-4), 20)
    assert ours[:10] == lrs(torchs, 10)  # the run as planned: to the digit
    assert ours[9:] == [1e-4] * 11  # resumed past its end (max_steps raised): min_lr, not back up to 1e-2
    assert max(lrs(torchs, 20)[10:]) > 1e-3  # what torch's periodic cosine did


def test_a_schedule_without_warm_up_resumes_into_a_run_whose_warm_up_is_not_clamped_away():
    # a run of max_steps=1 has no room for a warm-up; resumed with more steps, its schedule (the cosine
    # alone) goes on, as any resumed run keeps its checkpoint's schedule
    def schedule(total_steps: int):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
        return optimizer, warmup_cosine(optimizer, total_steps=total_steps, warmup_steps=4, min_lr=1e-4)

    optimizer, short = schedule(total_steps=1)
    optimizer.step()
    short.step()
    _, resumed = schedule(total_steps=10)
    resumed.load_state_dict(short.state_dict())
    uninterrupted = []
    for _ in range(3):
        optimizer.step()
        short.step()
        resumed.step()
        uninterrupted.append(short.get_last_lr())
        assert resumed.get_last_lr() == uninterrupted[-1]

    # the other way round there is no cosine alone to go on with: one line that says what to change
    _, warmed = schedule(total_steps=10)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    without = warmup_cosine(optimizer, total_steps=10, warmup_steps=0, min_lr=1e-4)
    with pytest.raises(SupraUserError, match=r"starts with a warm-up, this run's has none \(model.scheduler.warmup_steps=0\)"):
        without.load_state_dict(warmed.state_dict())


def test_a_saved_state_resumes_the_same_run():
    whole = gpt()
    optimizer = muon_with_adamw(whole)
    train_steps(whole, optimizer, 3)
    saved_model, buffer = copy.deepcopy(whole.state_dict()), io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    train_steps(whole, optimizer, 2, first=3)

    resumed = gpt()
    resumed.load_state_dict(saved_model)
    optimizer = muon_with_adamw(resumed)
    buffer.seek(0)
    optimizer.load_state_dict(torch.load(buffer))
    assert optimizer._muon.state is optimizer.state and optimizer._adamw.param_groups[0] is optimizer.param_groups[0]
    train_steps(resumed, optimizer, 2, first=3)
    for (name, a), b in zip(whole.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_parameters_without_hidden_matrices_are_refused_in_one_line():
    model = gpt()
    with pytest.raises(SupraUserError, match="needs hidden matrices") as err:
        MuonWithAdamW(model.optimizer_groups(0.1), hidden_matrices=[])
    assert "\n" not in str(err.value)
    # a task whose model names none (vlm_nano's) passes nothing: what to use instead, in one line
    with pytest.raises(SupraUserError, match="keep model.optimizer._target_=torch.optim.AdamW") as err:
        MuonWithAdamW(model.optimizer_groups(0.1))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("setting", "error"), [
    ({"momentum": 1.5}, "Muon's momentum=1.5 must be a number from 0 to below 1, e.g. 0.95"),
    ({"momentum": -0.1}, "Muon's momentum=-0.1 must be a number from 0 to below 1"),
    ({"ns_steps": 0}, "Muon's ns_steps=0 must be a whole number >= 1"),
    ({"ns_steps": 2.5}, "Muon's ns_steps=2.5 must be a whole number >= 1"),
])
def test_muon_settings_train_py_refuses_are_refused_by_the_optimizer_built_from_python_too(setting, error):
    """As torch's optimizers refuse a bad lr: a ValueError naming the value, not a momentum buffer that diverges
    or an update left without its Newton-Schulz iteration."""
    model = gpt()
    for build in (lambda: MuonWithAdamW(model.optimizer_groups(0.1), model.hidden_matrices(), **setting),
                  lambda: Float32Muon(model.hidden_matrices(), **setting)):
        with pytest.raises(ValueError, match=f"^{re.escape(error)}"):
            build()


def test_the_cosine_schedule_of_a_run_without_end_is_refused_in_one_line():
    # Lightning's step count for trainer.max_steps=-1 with trainer.max_epochs=-1 (train.py refuses it up front)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(SupraUserError, match=r"^the cosine learning-rate schedule needs a finite run: set "
                                             r"trainer.max_steps or trainer.max_epochs"):
        warmup_cosine(optimizer, total_steps=float("inf"))


def test_the_cosine_schedule_of_a_run_of_unknown_length_is_refused_in_one_line():
    # Lightning's step count for a train loader without a length (shards without _stats.json) and
    # trainer.max_steps=-1: it would otherwise be a schedule over 1 step, at min_lr from the first
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(SupraUserError, match=r"needs the run's length in steps, unknown here: .* set "
                                             r"trainer.max_steps=N") as err:
        warmup_cosine(optimizer, total_steps=-1)
    assert "\n" not in str(err.value)


def test_a_warm_up_not_shorter_than_the_run_is_squeezed_into_it_as_before_and_said():
    # the numbers every tiny run and shipped recipe trains with: a 20-step warm-up in a 5-step run takes 4 steps
    # and ends the run at the peak learning rate (not the configured slope, which would reach 0.24 at step 4)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_cosine(optimizer, total_steps=5, warmup_steps=20, min_lr=0.1)
    lrs = []
    for _ in range(5):
        lrs.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert lrs == [0.25, 0.4375, 0.625, 0.8125, 1.0]
    assert warmup_within(5, 20) == warmup_within(5, 5) == 4 and warmup_within(1, 20) == 0
    assert squeezed_warmup(5, 20) == (
        "model.scheduler.warmup_steps=20 is not below the run's 5 steps: the warm-up used is 4 steps, so the "
        "learning rate climbs to its peak faster than configured and the run ends at it; set "
        "model.scheduler.warmup_steps below 5 for a warm-up of its own length")
    assert squeezed_warmup(5, 4) is squeezed_warmup(5, 0) is None  # the warm-up it was given
    assert "the warm-up used is 1 step, so" in squeezed_warmup(2, 20)  # one step, not "1 steps"


def test_a_fit_whose_warm_up_is_squeezed_is_told_once_before_training_but_fast_dev_run_is_not(train_config, caplog):
    """A run shortened to try something (trainer.max_steps=3 under a recipe's 100 warm-up steps) trained at a
    learning rate far above the one asked for, without a word. fast_dev_run's single step is Lightning's choice, not
    the user's: nothing to say there."""
    from supra.runner.training import train

    short = ["data.num_train=16", "trainer.max_steps=3", "trainer.val_check_interval=3", "test=false",
             "+trainer.limit_val_batches=0"]
    with caplog.at_level(logging.WARNING, logger="supra.tasks.base"):
        train(train_config(*short, "model.scheduler.warmup_steps=20", run="squeezed"))
        assert caplog.messages == [squeezed_warmup(3, 20)]
        caplog.clear()
        train(train_config("debug=fast_dev_run", "data.num_train=16", "test=false", run="fast_dev_run"))  # its recipe's 100 warm-up steps
    assert not caplog.messages
