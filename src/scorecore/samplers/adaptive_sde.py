"""The adaptive-step reverse-SDE solver of Jolicoeur-Martineau et al. (2021), "Gotta Go Fast
When Generating Data with Score-Based Models" (Algorithm 1), with per-sample step sizes and
a Brownian path that rejected steps do not bias (Rackauckas & Nie 2017).

Reverse time runs from T to eps with μ(x, t) = f(x, t) − g(t)² s_θ(x, t). A try of size h
from t with the Brownian increment ΔW (variance h) is

    x'  = x − h μ(x, t) + g(t) ΔW                                   (Euler–Maruyama)
    x̃   = x − h μ(x', t − h) + g(t − h) ΔW,   x'' = (x' + x̃)/2      (improved Euler, same ΔW)
    δ   = max(ε_abs, ε_rel max(|x'|, |x'_prev|)),  E = ‖(x' − x'')/δ‖₂ / √d   (elementwise δ)

accepted when E ≤ 1 (then x ← x'', t ← t − h, x'_prev ← x'), and in either case
h ← min(t − eps, h min(θ E^{−r}, f_max)) with θ = r = 0.9 and f_max = 10 (``controller``); x'_prev is the EM
proposal of the last *accepted* step. After the last step, Tweedie's denoising step.

Why the Brownian path must remember rejected increments. The error and the tolerance both
depend on the try's noise: x' − x'' ≈ ½[h ∇μ · g ΔW + (g(t−h) − g(t)) ΔW], so E ≈ |A ΔW| for
a per-sample matrix A, and δ grows with |x'|. "Reject and draw a new z" (the paper's
Algorithm 1, ``brownian_memory=False``) is then rejection sampling on the noise: accepted
increments are not Gaussian. In images E averages ~10⁴ coordinates and the selection is
negligible; in 2-D it is not — with a zero score under VE (exact variance σ(T)² − σ(eps)²)
redrawing injects 13–16 % too much variance, and on the exact 8-ring (n = 2000) it sits at
1.2–2.0× the noise floor, worse as the tolerance tightens. Keeping rejected increments on
a per-sample :class:`~.adaptive.BrownianStack` makes every path exactly Brownian: ±2 % on
the variance, 0.8–1.0× the floor at the same tolerances (VP 0.86× at 147 NFE, VE 0.75× at
245 NFE at the defaults).

Each sample has its own t, h and stack; the driver runs while some sample is running, finished
samples take no-op tries, and the NFE is the batch calls made: 2 per iteration (+1 for the
denoising step). Iteration k draws the fresh noise from its step key and the bridge noise from
its ``bridge`` stream (:mod:`scorecore.streams`); row i from (key, offset + i) only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .. import validation
from ..validation import option
from .._arrays import per_sample, sum_event
from .adaptive import BrownianStack, Controller, Stack, advance, decide, quantize_step, time_floor
from .base import AdaptiveProgram, Context, Sampler
from .status import RUNNING
from .ddim import denoised_finish


class AdaptiveState(NamedTuple):
    """The solver's carry; fixed shapes: (n, ...), (n,) or 0-D, and the Brownian stack."""

    x: object          # (n, ...) current accepted state
    x_prev: object     # (n, ...) EM proposal of the last accepted step (x'_prev)
    t: object          # (n,) time reached
    h: object          # (n,) next step size
    stack: Stack       # future Brownian increments per sample
    accepted: object   # (n,) int32
    rejected: object   # (n,) int32
    status: object     # (n,) int32, see status.STATUS_MESSAGES
    nfe: object        # 0-D int32: batch calls of the score model


@dataclass(frozen=True)
class AdaptiveSDE(Sampler):
    """Adaptive Euler–Maruyama / improved-Euler reverse-SDE solver (Jolicoeur-Martineau et al.
    2021) with per-sample steps and a rejection-proof Brownian path (see the module docstring).

    Parameters
    ----------
    rtol, atol:
        ε_rel and ε_abs of the mixed tolerance. The paper's values for images in [−1, 1]ᵈ are
        0.05 and 0.0078; the defaults 0.1 and 0.05 reach the noise floor on the 2-D and 16-D
        mixtures (data of scale ~1) with ~150–250 NFE.
    max_steps:
        The per-sample budget of tries (accepted + rejected).
    h_init:
        The first step size (paper: 0.01).
    controller:
        The step-size rule h ← h · clip(θ E^{−r}, 0, max_factor) (:class:`~.adaptive.Controller`):
        θ = ``safety`` and r = ``exponent`` are the paper's 0.9, 0.9; ``max_factor`` = 10 bounds
        the growth in one try (``math.inf``: the paper's rule).
    brownian_memory:
        Keep rejected increments (RSwM); ``False`` redraws the noise after a rejection, as the
        paper's Algorithm 1 does (biased in low dimension).
    stack_depth:
        Entries of the per-sample stack of future increments.
    denoise:
        Finish with Tweedie's step at eps (the paper does).
    step_quantum:
        b: every step size is rounded down to a multiple of 2^−b·T, so the times stay exact and
        every backend takes the same steps (:func:`~.adaptive.quantize_step`; a step shrinks by
        less than 2^−b·T, 10⁻⁶ at the default b = 20); ``None`` keeps the raw sizes.

    ``info.stats`` holds per-sample ``status``, ``accepted``, ``rejected`` and ``stack_merges``.
    """

    rtol: float = option(0.1, validation.positive_float)
    atol: float = option(0.05, validation.positive_float)
    max_steps: int = option(4000, validation.steps)
    h_init: float = option(0.01, validation.positive_float)
    controller: Controller = option(Controller(safety=0.9, exponent=0.9, min_factor=0.0, max_factor=10.0),
                                    validation.instance, types=Controller, what="a samplers.adaptive.Controller")
    brownian_memory: bool = option(True, validation.boolean)
    stack_depth: int = option(16, validation.positive_int)
    denoise: bool = option(True, validation.boolean)
    step_quantum: int | None = option(20, validation.positive_int, none_ok=True)

    name = "adaptive_sde"

    def program(self, model, sde, ctx: Context, eps: float) -> AdaptiveProgram:
        xp, dev = ctx.xp, ctx.backend.device
        d = math.prod(ctx.shape[1:])
        n = ctx.shape[0]
        control = self.controller
        brownian = BrownianStack(self.stack_depth)
        quantum = None if self.step_quantum is None else 2.0 ** -self.step_quantum * sde.T

        def move(x_at, t, h, dw):
            """The increment −h μ(x_at, t) + g(t) ΔW, with per-sample t and h of shape (n,)."""
            mu = sde.reverse_drift(x_at, t, model(x_at, t))
            return -per_sample(h, x_at) * mu + per_sample(sde.diffusion(t), x_at) * dw

        def init(x):
            ones = xp.ones((n,), dtype=ctx.dtype, device=dev)
            izeros = xp.zeros((n,), dtype=xp.int32, device=dev)
            return AdaptiveState(x, x, sde.T * ones, min(self.h_init, sde.T - eps) * ones,
                                 brownian.empty(xp, ctx.shape, ctx.dtype, dev), izeros, izeros, izeros + RUNNING,
                                 xp.asarray(0, dtype=xp.int32, device=dev))

        def step(k, s: AdaptiveState, key):
            running = s.status == RUNNING
            remaining = s.t - eps
            h = xp.where(running, xp.minimum(s.h, remaining), xp.zeros_like(s.h))
            z = ctx.normal(key)
            if self.brownian_memory:
                dw, h, stack = brownian.take(s.stack, running, h, z, ctx.normal(key, "bridge"))
            else:
                dw, stack = per_sample(xp.sqrt(h), z) * z, s.stack
            last = h >= remaining
            t_next = xp.where(last, xp.full_like(s.t, eps), s.t - h)  # land on eps exactly
            x_em = s.x + move(s.x, s.t, h, dw)
            x_heun = 0.5 * (x_em + s.x + move(x_em, t_next, h, dw))
            delta = xp.maximum(self.atol, self.rtol * xp.maximum(xp.abs(x_em), xp.abs(s.x_prev)))
            err = xp.sqrt(sum_event(xp, ((x_em - x_heun) / delta) ** 2) / d)
            accept, reject, finite = decide(running, err)
            acc_x = per_sample(accept, s.x)
            t = xp.where(accept, t_next, s.t)
            proposed = h * control.factor(err)
            if quantum is not None:
                proposed = quantize_step(proposed, quantum)
            h_next = xp.where(running, xp.minimum(t - eps, proposed), s.h)
            if self.brownian_memory:
                stack = brownian.push(stack, reject, h, dw)
            status = advance(s.status, accept=accept, reject=reject, last=last, finite=finite, h_next=h_next,
                             floor=time_floor(s.t, sde.T))
            return AdaptiveState(xp.where(acc_x, x_heun, s.x), xp.where(acc_x, x_em, s.x_prev), t, h_next, stack,
                                 s.accepted + xp.astype(accept, xp.int32), s.rejected + xp.astype(reject, xp.int32),
                                 status, s.nfe + 2)

        return AdaptiveProgram(
            max_steps=self.max_steps, init=init, step=step, status_of=lambda s: s.status, time_of=lambda s: s.t,
            tries_of=lambda s: s.accepted + s.rejected, nfe_of=lambda s: s.nfe,
            finish=denoised_finish(model, sde, ctx, eps, self.denoise, lambda s: s.x),
            sample_of=lambda s: s.x, finish_nfe=int(self.denoise),
            stats_of=lambda s: {"accepted": s.accepted, "rejected": s.rejected, "stack_merges": s.stack.merges},
        )


__all__ = ["AdaptiveSDE", "AdaptiveState"]
