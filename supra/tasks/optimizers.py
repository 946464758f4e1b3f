"""Muon for a transformer's hidden matrices, AdamW for the rest, as one optimizer; Muon's orthogonalisation
in float32, so that CPUs without native bf16 run it at fp32 speed and no result hangs on bf16 rounding."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import AdamW, Muon, Optimizer

from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_number, is_whole


def orthogonalize(update: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float, gram: bool | None = None) -> torch.Tensor:
    """Muon's quintic Newton-Schulz iteration (torch's coefficients): `update` with its singular values
    pushed towards 1 (not all the way: 0.6-1.2 for a gradient of condition number 30, as Muon intends), in
    the update's own dtype.

    `gram`: iterate on the small Gram matrix (gram_newton_schulz) rather than on the update itself; by
    default where that takes fewer FLOPs, for matrices at least 1.5x as long as they are wide (the GPT's
    MLP and qkv matrices: a third less time for its 16 matrices, benchmarks/muon_step.py)."""
    tall = update.size(0) > update.size(1)
    wide = update.T if tall else update  # the Gram matrix on the short side
    x = wide / wide.norm().clamp(min=eps)
    if gram is None:
        gram = x.size(1) >= 1.5 * x.size(0)  # where the Gram form's FLOPs are fewer
    if gram:
        x = gram_newton_schulz(x, coefficients, steps)
    else:
        a, b, c = coefficients
        for _ in range(steps):
            xxt = x @ x.T
            x = torch.addmm(x, torch.addmm(xxt, xxt, xxt, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def gram_newton_schulz(x: torch.Tensor, coefficients: tuple[float, float, float], steps: int) -> torch.Tensor:
    """The same iteration for a wide `x` (m x n, m <= n, norm <= 1), run on its m x m Gram matrix G = x x^T:
    each step is x <- p(G) x with p(G) = aI + bG + cG^2, so the steps' polynomials multiply into one m x m
    matrix, applied to x once at the end, while G follows as p G p: about 8m^3 FLOPs a step instead of
    4m^2 n + 2m^3 (Dao lab's "Gram Newton-Schulz", 2026). They restart from x midway because half precision
    drifts; in float32 the result is the plain iteration's to ~1e-4, relative (tests/test_optimizers.py),
    so no restart is needed."""
    a, b, c = coefficients
    gram = x @ x.T
    product = None
    for step in range(steps):
        polynomial = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        polynomial.diagonal().add_(a)
        product = polynomial if product is None else polynomial @ product
        if step < steps - 1:  # the last step's Gram matrix is never used
            gram = polynomial @ gram @ polynomial
    return product @ x if product is not None else x


def check_muon_arguments(momentum: object, ns_steps: object) -> None:
    """Muon's momentum from 0 to below 1 and ns_steps a whole number >= 1, else a ValueError naming the value, as
    torch's optimizers refuse theirs: torch's Muon takes both without a word, and a momentum of 1 or more made its
    buffer diverge, an ns_steps of 0 left out the Newton-Schulz iteration (train.py refuses both before any work,
    run_checks.check_muon_settings; this holds for an optimizer built from Python)."""
    if not (is_number(momentum) and 0 <= momentum < 1):  # type: ignore[operator]
        raise ValueError(f"Muon's momentum={momentum!r} must be a number from 0 to below 1, e.g. 0.95")
    if not is_whole(ns_steps, 1):
        raise ValueError(f"Muon's ns_steps={ns_steps!r} must be a whole number >= 1 (5: torch's default)")


class Float32Muon(Muon):
    """torch's Muon (its defaults, checks and state) with the Newton-Schulz iteration in float32 and
    updates scaled to AdamW's size (torch's `adjust_lr_fn="match_rms_adamw"`).

    Why not torch's step: it runs the iteration in bfloat16, which CPUs without native bf16 (AVX2-only)
    emulate: 4.8 s instead of 0.07 s a step for the a2a GPT's matrices with AVX2 kernels
    (benchmarks/muon_step.py), and whose rounding would make the result depend on the CPU."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5) -> None:
        check_muon_arguments(momentum, ns_steps)
        super().__init__(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                         ns_steps=ns_steps, adjust_lr_fn="match_rms_adamw")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if "momentum_buffer" not in state:  # torch's name: its checkpoints and ours agree
                    state["momentum_buffer"] = torch.zeros_like(param.grad)
                buffer = state["momentum_buffer"]
                buffer.lerp_(param.grad, 1 - group["momentum"])
                update = param.grad.lerp(buffer, group["momentum"]) if group["nesterov"] else buffer
                update = orthogonalize(update.float(), group["ns_coefficients"], group["ns_steps"], group["eps"])
                param.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled weight decay, as AdamW
                # match_rms_adamw: an update of AdamW's typical size, so both optimizers share lr and schedule
                param.add_(update.to(param.dtype), alpha=-group["lr"] * 0.2 * math.sqrt(max(param.shape)))
        return loss


class MuonWithAdamW(Optimizer):
    """Float32Muon for the hidden matrices (the blocks' 2-D weights), torch's AdamW for everything else
    (embeddings, head, biases, norms: what Muon is not meant for), as one optimizer, so that Lightning's
    automatic optimization, one learning-rate schedule and one checkpointed state drive both.

    Why a class of our own: torch ships both optimizers but no combination, and Lightning steps one
    optimizer per LightningModule unless the module steps them by hand. This only splits the groups and
    steps the two; Muon's updates are scaled to AdamW's size, so both take the same `lr`, schedule and
    weight decay.

    `params`: the model's groups (weight decay per group, as `optimizer_groups` gives them);
    `hidden_matrices`: which of their parameters Muon takes (2-D each); the task passes the model's
    (`hidden_matrices()`), and a model without them is refused in one line."""

    def __init__(self, params: Iterable[dict[str, Any]] | Iterable[torch.Tensor],
                 hidden_matrices: Iterable[torch.Tensor] | None = None, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5) -> None:
        if hidden_matrices is None:
            raise SupraUserError("model.optimizer=MuonWithAdamW needs a model that names its hidden matrices "
                                 "(a2a_nano does); for this model keep model.optimizer._target_=torch.optim.AdamW")
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        hidden = {id(p) for p in hidden_matrices}
        matrix_groups, other_groups = [], []
        for group in groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            members = list(group["params"])
            matrices = [p for p in members if id(p) in hidden]
            others = [p for p in members if id(p) not in hidden]
            if matrices:
                matrix_groups.append({**settings, "params": matrices})
            if others:
                other_groups.append({**settings, "params": others})
        if not matrix_groups or not other_groups:
            raise SupraUserError(f"MuonWithAdamW needs hidden matrices for Muon and other parameters for AdamW; got "
                                 f"{sum(len(g['params']) for g in matrix_groups)} and "
                                 f"{sum(len(g['params']) for g in other_groups)}: use torch.optim.AdamW alone")
        self._n_adamw_groups = len(other_groups)
        self._adamw = AdamW(other_groups, lr=lr, betas=betas, eps=eps)
        self._muon = Float32Muon(matrix_groups, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps)
        # the same group dicts: a scheduler setting this optimizer's lr sets the inner ones'
        super().__init__(self._adamw.param_groups + self._muon.param_groups, {"lr": lr})
        self._link()

    def _link(self) -> None:
        """Point the inner optimizers at this one's groups and state (again after load_state_dict,
        which replaces both)."""
        n = self._n_adamw_groups
        self._adamw.param_groups, self._muon.param_groups = self.param_groups[:n], self.param_groups[n:]
        self._adamw.state = self._muon.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._link()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:  # Lightning's: forward and backward, once for both
            with torch.enable_grad():
                loss = closure()
        self._adamw.step()
        self._muon.step()
        return loss
