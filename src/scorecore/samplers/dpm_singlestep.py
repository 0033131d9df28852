"""Singlestep DPM-Solver-1, -2, -3 (Lu et al. 2022, "DPM-Solver", Algorithms 1–3, noise
prediction) on σ levels, and DPM-Solver-fast (§3.4), as k-diffusion's ``DPMSolver``.

In λ = −log σ the flow of x̂ = x/m is dx̂/dλ = −σ ε̂(x̂, λ) with ε̂ = (x̂ − D(x̂; σ))/σ. A step
from σ to σ' = σ e^{−h} with intermediate levels σ_j = σ e^{−r_j h} and ε_0 = ε̂(x̂, σ) is

    DPM-Solver-1:  x̂' = x̂ − σ'(e^h − 1) ε_0                          (DDIM)
    DPM-Solver-2:  u_1 = x̂ − σ_1(e^{r_1 h} − 1) ε_0,                  r_1 = ½
                   x̂' = x̂ − σ'(e^h − 1) ε_0 − σ'(e^h − 1)/(2 r_1) (ε_1 − ε_0)
    DPM-Solver-3:  u_1 as above,                                      r_1 = ⅓, r_2 = ⅔
                   u_2 = x̂ − σ_2(e^{r_2 h} − 1) ε_0
                         − σ_2 (r_2/r_1)((e^{r_2 h} − 1)/(r_2 h) − 1)(ε_1 − ε_0)
                   x̂' = x̂ − σ'(e^h − 1) ε_0 − (σ'/r_2)((e^h − 1)/h − 1)(ε_2 − ε_0)

with ε_j = ε̂(u_j, σ_j): k score evaluations for DPM-Solver-k, local error O(h^{k+1}).
Since σ'(e^h − 1) = σ − σ', DPM-Solver-1 is Euler's step in σ and DPM-Solver-2 (r_1 = ½, the
level √(σσ')) is DPM-2's (Karras et al. 2022) midpoint step.
DPM-Solver-2 with r_1 = ⅓ is the embedded lower-order solution of DPM-Solver-3 (they share
ε_1), which :mod:`.dpm_adaptive` uses. The coefficients are computed from (σ, σ', h) by one
function for host floats (fixed levels) and per-sample arrays (adaptive steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .. import validation
from ..validation import option
from .._arrays import namespace
from .base import Context, FixedProgram, Sampler
from .euler_ancestral import ancestral_split
from .sigma_grid import Grid, SigmaSampler
from .sigma_space import exponential_sigmas, sigma_range

#: The intermediate fractions (r_1, r_2) of DPM-Solver-k's step (Lu et al., Algorithms 1–3).
FRACTIONS = {1: (0.0, 0.0), 2: (0.5, 0.0), 3: (1 / 3, 2 / 3)}


class Stages(NamedTuple):
    """One step's coefficients: x̂' = x̂ + b0 ε_0 + (w2 (ε_1 − ε_0) | w3 (ε_2 − ε_0)),
    u_1 = x̂ + a1 ε_0, u_2 = x̂ + c20 ε_0 + c21 (ε_1 − ε_0), at levels s1, s2."""

    b0: object
    a1: object
    w2: object
    c20: object
    c21: object
    w3: object
    s1: object
    s2: object


def stages(sigma, sigma_next, h, r1: float, r2: float) -> Stages:
    """The coefficients of a step from σ to σ' = σ e^{−h} (floats, or arrays of one shape)."""
    lib = math if isinstance(h, float) else namespace(h)
    e = lib.expm1(h)
    s1, s2 = sigma * lib.exp(-r1 * h), sigma * lib.exp(-r2 * h)
    e2 = lib.expm1(r2 * h)
    return Stages(b0=-sigma_next * e, a1=-s1 * lib.expm1(r1 * h), w2=-sigma_next * e / (2 * r1) if r1 else 0.0 * h,
                  c20=-s2 * e2, c21=-s2 * (r2 / r1) * (e2 / (r2 * h) - 1) if r2 else 0.0 * h,
                  w3=-(sigma_next / r2) * (e / h - 1) if r2 else 0.0 * h, s1=s1, s2=s2)


def dpm_step(order: int, xh, eps0, c: Stages, eps_at):
    """(DPM-Solver-``order``'s x̂', the embedded order − 1 solution or None) from x̂ and ε_0;
    ``eps_at(u, j)`` is ε̂ at stage j's level c.s1 / c.s2 (one score evaluation)."""
    first = xh + c.b0 * eps0
    if order == 1:
        return first, None
    d1 = eps_at(xh + c.a1 * eps0, 1) - eps0
    second = first + c.w2 * d1
    if order == 2:
        return second, first
    d2 = eps_at(xh + c.c20 * eps0 + c.c21 * d1, 2) - eps0
    return first + c.w3 * d2, second


def host_stages(g: Grid, ctx: Context, pairs, orders):
    """Per step k the :class:`Stages` of σ_k → σ'_k (``pairs``) at ``orders[k]`` as arrays
    indexed by k, and the stage levels' (t, m) as arrays (T1, M1, T2, M2)."""
    rows = []
    for (s, s_next), order in zip(pairs, orders):
        r1, r2 = FRACTIONS[order]
        rows.append(stages(s, s_next, math.log(s / s_next), r1, r2))
    cols = Stages(*(ctx.times([float(r[j]) for r in rows]) for j in range(len(Stages._fields))))
    levels = [[g.level(float(r.s1)) if order > 1 else (0.0, 1.0) for r, order in zip(rows, orders)],
              [g.level(float(r.s2)) if order > 2 else (0.0, 1.0) for r, order in zip(rows, orders)]]
    tm = [ctx.times([v[i] for v in lv]) for lv in levels for i in (0, 1)]
    return cols, tm


def grid_step(g: Grid, cols: Stages, tm, order: int, k, xh, den):
    """DPM-Solver-``order``'s step k on the grid's levels, from x̂_k and D(x̂_k; σ_k)."""
    T1, M1, T2, M2 = tm
    c = Stages(*(col[k] for col in cols))
    level = {1: (c.s1, T1[k], M1[k]), 2: (c.s2, T2[k], M2[k])}

    def eps_at(u, j):
        s, t, m = level[j]
        return (u - g.denoise(u, t, m)) / s

    return dpm_step(order, xh, (xh - den) / g.SIG[k], c, eps_at)[0]


@dataclass(frozen=True)
class DPMSolver(SigmaSampler):
    """Singlestep DPM-Solver-k on σ levels: ``order`` score evaluations per step; N steps into
    σ = 0 cost order·(N − 1) + 1 (the last is x̂_N = D(x̂_{N−1}; σ_{N−1})), order·N on levels
    ending above 0 (σ-grid options: :class:`.SigmaSampler`).

    Parameters
    ----------
    order:
        k ∈ {1, 2, 3}: DPM-Solver-1 (DDIM), -2 (r_1 = ½), -3 (r_1 = ⅓, r_2 = ⅔).
    """

    order: int = option(3, validation.integer, lo=1, hi=3)

    name = "dpm_solver"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        cols, tm = host_stages(g, ctx, [(g.sig[k], g.sig[k + 1]) for k in range(g.K)], [self.order] * g.K)

        def step(k, x, key, last):
            xh, den = g.start(k, x)
            if last:
                return den
            return g.M[k + 1] * grid_step(g, cols, tm, self.order, k, xh, den)

        return g.program(self.order * g.K + int(g.to_zero), step)


def fast_orders(nfe: int) -> list[int]:
    """DPM-Solver-fast's orders for a budget of ``nfe`` evaluations (Lu et al. §3.4): K = ⌊nfe/3⌋ + 1
    steps, order 3 but for the last: [3, …, 3, 2, 1] when 3 divides nfe, else [3, …, 3, nfe mod 3]."""
    k = nfe // 3 + 1
    return [3] * (k - 2) + [2, 1] if nfe % 3 == 0 else [3] * (k - 1) + [nfe % 3]


@dataclass(frozen=True)
class DPMFast(Sampler):
    """DPM-Solver-fast: exactly ``nfe`` score evaluations in K = ⌊nfe/3⌋ + 1 singlestep steps on
    levels uniform in λ from sigma_max to sigma_min (:func:`fast_orders`), as k-diffusion's
    ``sample_dpm_fast``. The run ends at σ_min > 0 (x = m(t_min) x̂), not denoised.

    With η > 0 each step is ancestral: from σ_k it steps down to σ_↓ (the split of σ_{k+1},
    :func:`.euler_ancestral.ancestral_split`, kept ≥ σ_min) and adds S_noise √(σ_{k+1}² − σ_↓²) z.
    The order-3 steps run in the loop, draw z from step k's key; the one or two lower-order
    steps at the end run in the final map, the j-th drawing from fold_in(finish key, j).

    Parameters
    ----------
    nfe:
        The budget, ≥ 1 (the ``steps`` of ``sample``).
    sigma_min, sigma_max:
        The end levels; defaults σ(eps) and σ(T).
    eta, s_noise:
        η ≥ 0 (0: deterministic) and S_noise ≥ 0, the scale of the added noise.
    """

    nfe: int = option(20, validation.steps)
    sigma_min: float | None = option(None, validation.positive_float)
    sigma_max: float | None = option(None, validation.positive_float)
    eta: float = option(0.0, validation.nonneg_float)
    s_noise: float = option(1.0, validation.nonneg_float)

    name = "dpm_fast"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        s_max, s_min = sigma_range(sde, eps, self.sigma_min, self.sigma_max)
        orders = fast_orders(self.nfe)
        g = Grid(sde, ctx, exponential_sigmas(s_max, s_min, len(orders) + 1), model, None)
        # σ_↓ may not pass σ_min (k-diffusion's t_next_ = min(t_end, t(σ_↓))); the rest is noise.
        down = [max(ancestral_split(g.sig[k], g.sig[k + 1], self.eta)[0], s_min) for k in range(g.K)]
        up = [self.s_noise * math.sqrt(max(g.sig[k + 1] ** 2 - d * d, 0.0)) for k, d in enumerate(down)]
        cols, tm = host_stages(g, ctx, list(zip(g.sig, down)), orders)
        UP, noisy = ctx.times(up), any(u > 0 for u in up)
        n3 = orders.count(3)

        def move(k, x, key, order=3):
            xh, den = g.start(k, x)
            xh = grid_step(g, cols, tm, order, k, xh, den)
            if noisy:
                xh = xh + UP[k] * ctx.normal(key)
            return g.M[k + 1] * xh

        # The order-3 steps are the loop (one traced function); the lower-order tail is the final map.
        def finish(x, key):
            for j, k in enumerate(range(n3, g.K)):
                x = move(k, x, ctx.backend.fold_in(key, j), orders[k])
            return x

        return FixedProgram(tuple(g.t[: n3 + 1]), self.nfe, move, finish=finish)


__all__ = ["DPMFast", "DPMSolver", "FRACTIONS", "Stages", "dpm_step", "fast_orders", "stages"]
