"""The adaptive-step reverse-SDE solver of Jolicoeur-Martineau et al. (2021), "Gotta Go Fast
When Generating Data with Score-Based Models" (Algorithm 1), with per-sample step sizes.

Reverse time runs from T to eps with μ(x, t) = f(x, t) − g(t)² s_θ(x, t). With one noise
draw z per try, a step of size h from t is

    x'  = x − h μ(x, t) + g(t) √h z                                  (Euler–Maruyama)
    x̃   = x − h μ(x', t − h) + g(t − h) √h z,   x'' = (x' + x̃)/2    (improved Euler, same z)
    δ   = max(ε_abs, ε_rel max(|x'|, |x'_prev|)),  E = ‖(x' − x'')/δ‖₂/√d   (elementwise δ)

accepted when E ≤ 1 (then x ← x'' — extrapolation to the higher-order value —, t ← t − h,
x'_prev ← x'), and in either case h ← min(t − eps, θ h E^{−r}) with θ = 0.9, r = 0.9.

One deviation from the paper: the growth factor θ E^{−r} is capped (``max_growth``, 10 by
default, as in Hairer–Wanner's controllers). In low dimension the drift and noise parts of
x' − x'' of one sample can cancel, E ≈ 0, and the uncapped rule then jumps in one step from
t ≈ T to eps (seen on the 2-D ring under VE: samples at |x| ≈ 1600).

Each sample has its own t and h. Under the driver's fixed-length loop the solver runs
``max_steps`` tries; a sample that has reached eps is masked (its step is h = 0, a no-op),
and its score evaluations stop counting in :class:`AdaptiveInfo`. The model is still called
on the whole batch every try, so ``Program.nfe`` (the calls made) is 2·max_steps (+1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._arrays import per_sample, sum_event
from .base import Context, Program, Sampler
from .ddim import final_denoise
from .langevin import _positive_float, _positive_int


@dataclass
class AdaptiveInfo:
    """Per-sample work of one adaptive run (NumPy arrays of shape (n,)).

    ``nfe``: score evaluations each sample needed (2 per try until it reached eps, +1 for
    the denoising step) — what a driver that stops finished samples would spend;
    ``accepted``/``rejected``: its accepted and rejected steps; ``done``: reached eps.
    """

    nfe: np.ndarray
    accepted: np.ndarray
    rejected: np.ndarray
    done: np.ndarray

    @property
    def mean_nfe(self) -> float:
        return float(np.mean(self.nfe))

    @property
    def max_nfe(self) -> int:
        """The NFE a batch-synchronous while-loop would spend: the slowest sample's."""
        return int(np.max(self.nfe))


@dataclass
class AdaptiveProgram(Program):
    """A :class:`Program` whose ``finish`` records the run's :class:`AdaptiveInfo` in ``info``.

    ``all_done(state)`` (a host bool) says every sample has reached eps: a driver with a
    while-loop can stop there instead of running all ``n_steps`` tries.
    """

    info: AdaptiveInfo | None = None
    finish_traceable: bool = False  # finish records ``info`` on the host
    all_done: Callable[[Any], bool] | None = None


class AdaptiveSDE(Sampler):
    """Adaptive Euler–Maruyama / improved-Euler reverse-SDE solver (Jolicoeur-Martineau et al. 2021).

    Parameters
    ----------
    rtol, atol:
        ε_rel and ε_abs of the mixed tolerance. The paper's 0.05 and 0.0078 are for images in
        [−1, 1]ᵈ, where E averages thousands of coordinates; in low dimension E is noisy per
        sample and those values cost thousands of NFE, hence the looser defaults.
    max_steps:
        The number of tries the fixed-length loop runs (accepted + rejected per sample);
        a sample that has not reached eps after them raises a RuntimeError.
    h_init:
        The first step size (paper: 0.01).
    safety, exponent:
        θ and r in h ← θ h E^{−r} (paper: 0.9, 0.9).
    max_growth:
        The largest factor h may grow by in one try (``math.inf``: the paper's rule).
    denoise:
        Finish with Tweedie's step at eps (the paper does).

    After a run, ``last_info`` (and the program's ``info``) holds the per-sample
    :class:`AdaptiveInfo`.
    """

    name = "adaptive_sde"

    def __init__(self, rtol: float = 0.1, atol: float = 0.1, max_steps: int = 1000, h_init: float = 0.01,
                 safety: float = 0.9, exponent: float = 0.9, max_growth: float = 10.0, denoise: bool = True):
        self.rtol, self.atol = _positive_float("rtol", rtol), _positive_float("atol", atol)
        self.max_steps = _positive_int("max_steps", max_steps)
        self.h_init = _positive_float("h_init", h_init)
        self.safety, self.exponent = _positive_float("safety", safety), _positive_float("exponent", exponent)
        self.max_growth = _positive_float("max_growth", max_growth) if max_growth != math.inf else math.inf
        self.denoise = bool(denoise)
        self.last_info: AdaptiveInfo | None = None

    def program(self, model, sde, ctx: Context, eps: float) -> AdaptiveProgram:
        xp, be = ctx.xp, ctx.backend
        d = math.prod(ctx.shape[1:])
        n = ctx.shape[0]
        theta, r = self.safety, self.exponent

        def move(x_from, x_at, t, h, sqrt_h_z):
            """x_from − h μ(x_at, t) + g(t) √h z, with per-sample t and h of shape (n,)."""
            mu = sde.reverse_drift(x_at, t, model(x_at, t))
            return x_from - per_sample(h, x_from) * mu + per_sample(sde.diffusion(t), x_from) * sqrt_h_z

        def init(x):
            ones = xp.ones((n,), dtype=ctx.dtype, device=be.device)
            zeros = xp.zeros((n,), dtype=xp.int32, device=be.device)
            return x, x, sde.T * ones, min(self.h_init, sde.T - eps) * ones, zeros, zeros

        def step(k, state, key):
            x, x_prev, t, h, n_acc, n_rej = state
            active = t > eps
            h = xp.where(active, h, 0.0 * h)  # finished samples take a no-op step
            sqrt_h_z = per_sample(xp.sqrt(h), x) * ctx.normal(key)
            last = h >= t - eps
            t_next = xp.where(last, 0.0 * t + eps, t - h)  # land on eps exactly
            x_em = move(x, x, t, h, sqrt_h_z)
            x_heun = 0.5 * (x_em + move(x, x_em, t_next, h, sqrt_h_z))
            delta = xp.maximum(self.atol, self.rtol * xp.maximum(xp.abs(x_em), xp.abs(x_prev)))
            err = xp.sqrt(sum_event(xp, ((x_em - x_heun) / delta) ** 2) / d)
            accept = xp.logical_and(active, err <= 1.0)
            acc_x = per_sample(accept, x)
            x, x_prev = xp.where(acc_x, x_heun, x), xp.where(acc_x, x_em, x_prev)
            t = xp.where(accept, t_next, t)
            grow = h * xp.minimum(theta * xp.pow(xp.maximum(err, 1e-10), -r), self.max_growth)
            h = xp.where(t > eps, xp.minimum(t - eps, grow), 0.0 * h)
            rejected = xp.logical_and(active, xp.logical_not(accept))
            return x, x_prev, t, h, n_acc + xp.astype(accept, xp.int32), n_rej + xp.astype(rejected, xp.int32)

        fin = final_denoise(model, sde, ctx, eps) if self.denoise else (lambda x: x)

        def finish(state):
            x, _, t, _, n_acc, n_rej = state
            acc, rej = (np.asarray(be.to_numpy(v)) for v in (n_acc, n_rej))
            done = np.asarray(be.to_numpy(t <= eps))
            info = AdaptiveInfo(nfe=2 * (acc + rej) + int(self.denoise), accepted=acc, rejected=rej, done=done)
            program.info = self.last_info = info
            if not done.all():
                raise RuntimeError(
                    f"adaptive_sde: {int((~done).sum())} of {n} samples had not reached eps after "
                    f"max_steps={self.max_steps} tries; raise max_steps or loosen rtol/atol")
            return fin(x)

        program = AdaptiveProgram(
            n_steps=self.max_steps,
            nfe=2 * self.max_steps + int(self.denoise),
            init=init,
            step=step,
            finish=finish,
            time_of_step=lambda k: None,  # each sample has its own time
            sample_of=lambda state: state[0],
            all_done=lambda state: bool(xp.all(state[2] <= eps)),
        )
        return program
