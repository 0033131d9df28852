"""The adaptive-step reverse-SDE solver of Jolicoeur-Martineau et al. (2021), "Gotta Go Fast
When Generating Data with Score-Based Models" (Algorithm 1), with per-sample step sizes and
a Brownian path that rejected steps do not bias (Rackauckas & Nie 2017).

Reverse time runs from T to eps with μ(x, t) = f(x, t) − g(t)² s_θ(x, t). A try of size h
from t with the Brownian increment ΔW (variance h) is

    x'  = x − h μ(x, t) + g(t) ΔW                                   (Euler–Maruyama)
    x̃   = x − h μ(x', t − h) + g(t − h) ΔW,   x'' = (x' + x̃)/2      (improved Euler, same ΔW)
    δ   = max(ε_abs, ε_rel max(|x'|, |x'_prev|)),  E = ‖(x' − x'')/δ‖₂ / √d   (elementwise δ)

accepted when E ≤ 1 (then x ← x'', t ← t − h, x'_prev ← x'), and in either case
h ← min(t − eps, h min(θ E^{−r}, ``max_growth``)) with θ = r = 0.9; x'_prev is the EM
proposal of the last *accepted* step. After the last step, Tweedie's denoising step.

What was wrong with the first version (which drew a fresh z for every try, as Algorithm 1
does). Both the error and the tolerance depend on the noise of the try: x' − x'' =
½[h(μ(x', t−h) − μ(x, t)) + (g(t−h) − g(t)) ΔW] with μ(x', ·) − μ(x, ·) ≈ ∇μ · g ΔW, so
E ≈ |A ΔW| for a per-sample matrix A, and δ = ε_rel |x'| grows with the proposal itself.
"Reject and draw a new z" is therefore rejection sampling *on the noise*: the accepted
increments are not Gaussian and the sampled path is not a Brownian motion. In images E
averages ~10⁴ coordinates and concentrates, so the selection is negligible (the paper's
setting); in 2-D it decides which draws are accepted. Measured: with a zero score under VE
(pure noise, exact variance σ(T)² − σ(eps)²) the redraw injects 13–16 % too much variance
(accepted tries favour large |x'|, whose δ is loose), the stacked path gets it within ±2 %; on the
exact 8-ring (n = 2000, SW₂ as a multiple of the mean floor over 3 pairs) the redraw sits
at 1.2–1.8× under VP and 1.8–2.0× under VE, and gets *worse* as the tolerance tightens
(more rejections, more selection), where the fix gives 0.8–1.0× at the same tolerances
(VP 0.86× at 147 NFE, VE 0.75× at 245 NFE at the defaults). (The 4.8–12 of the first
benchmark table did not reproduce at this commit, with either mixture implementation; that
table predates the one-driver merge.) Its loop ran a fixed ``max_steps`` tries with finished
samples masked and reported per-sample NFE a while-loop would have spent; it now runs under
the driver's while-loop and ``info.nfe`` is the calls made.

The fix keeps the paper's estimate and controller but makes the Brownian path independent
of the accept/reject decisions — rejection sampling with memory (RSwM, Rackauckas & Nie
2017, "Adaptive methods for stochastic differential equations via natural embeddings and
rejection sampling with memory"): a rejected try's (h, ΔW) is pushed on a per-sample stack
of future increments; the next, shorter try splits it with the Brownian bridge
ΔW₁ = (h₁/h) ΔW + √(h₁ (h − h₁)/h) z, keeping the remainder (h − h₁, ΔW − ΔW₁) on the
stack; later tries consume the stack before drawing fresh noise. Every sample's path is
then exactly Brownian whatever steps are tried. ``brownian_memory=False`` is the paper's
redraw, kept for comparison. The stack has ``stack_depth`` entries; a push beyond it (as
many consecutive rejections) merges with the neighbouring entry, counted in the
``stack_merges`` statistic (zero in our runs).

Each sample has its own t, h and stack; the driver runs ``while some sample has t > eps``
(``Program.cond``), finished samples take no-op tries, and the NFE is the batch calls made:
2 per iteration (+1 for the denoising step). Noise of iteration k is drawn from
``fold_in(key, k)`` (fresh) and ``fold_in(fold_in(key, k), 1)`` (bridge), row i from
(key, offset + i) only, so samples are batch invariant.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._arrays import per_sample, sum_event
from .base import Context, Program, Sampler
from .ddim import final_denoise
from .langevin import _positive_float, _positive_int
from .ode import BUDGET, CONVERGED, NONFINITE, RUNNING


class AdaptiveState(NamedTuple):
    """The solver's carry; fixed shapes: (n, ...), (n,), (n, D), (n, D, ...) or 0-D."""

    x: object          # (n, ...) current accepted state
    x_prev: object     # (n, ...) EM proposal of the last accepted step (x'_prev)
    t: object          # (n,) time reached
    h: object          # (n,) next step size
    stack_dt: object   # (n, D) future Brownian intervals (top = index depth − 1)
    stack_dw: object   # (n, D, ...) their increments
    depth: object      # (n,) int32
    accepted: object   # (n,) int32
    rejected: object   # (n,) int32
    merges: object     # (n,) int32: pushes beyond the stack depth
    status: object     # (n,) int32: RUNNING, CONVERGED, BUDGET, NONFINITE
    nfe: object        # 0-D int32: batch calls of the score model


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
        The per-sample budget of tries (accepted + rejected); a sample that exhausts it stops
        with status BUDGET and a RuntimeWarning.
    h_init:
        The first step size (paper: 0.01).
    safety, exponent:
        θ and r in h ← θ h E^{−r} (paper: 0.9, 0.9).
    max_growth:
        The largest factor h may grow by in one try (``math.inf``: the paper's rule).
    brownian_memory:
        Keep rejected increments (RSwM); ``False`` redraws the noise after a rejection, as the
        paper's Algorithm 1 does (biased in low dimension).
    stack_depth:
        Entries of the per-sample stack of future increments.
    denoise:
        Finish with Tweedie's step at eps (the paper does).

    ``info.stats`` holds per-sample ``accepted``, ``rejected``, ``status`` and ``stack_merges``.
    """

    name = "adaptive_sde"

    def __init__(self, rtol: float = 0.1, atol: float = 0.05, max_steps: int = 4000, h_init: float = 0.01,
                 safety: float = 0.9, exponent: float = 0.9, max_growth: float = 10.0,
                 brownian_memory: bool = True, stack_depth: int = 16, denoise: bool = True):
        self.rtol, self.atol = _positive_float("rtol", rtol), _positive_float("atol", atol)
        self.max_steps = _positive_int("max_steps", max_steps)
        self.h_init = _positive_float("h_init", h_init)
        self.safety, self.exponent = _positive_float("safety", safety), _positive_float("exponent", exponent)
        self.max_growth = _positive_float("max_growth", max_growth) if max_growth != math.inf else math.inf
        self.brownian_memory = bool(brownian_memory)
        self.stack_depth = _positive_int("stack_depth", stack_depth)
        self.denoise = bool(denoise)

    def program(self, model, sde, ctx: Context, eps: float) -> Program:
        xp, be = ctx.xp, ctx.backend
        d = math.prod(ctx.shape[1:])
        n, D = ctx.shape[0], self.stack_depth
        theta, r = self.safety, self.exponent
        dev = be.device
        slots = xp.reshape(xp.arange(D, dtype=xp.int32, device=dev), (1, D))
        h_min = 1e-12 * sde.T

        def at(index):
            """(n, D) mask of slot ``index`` (n,) per sample; all false where index < 0."""
            return slots == xp.reshape(index, (n, 1))

        def on_event(mask):
            """(n, D) mask -> (n, D, 1, ...) to broadcast against the increments."""
            return xp.reshape(mask, (n, D) + (1,) * (len(ctx.shape) - 1))

        def move(x_at, t, h, dw):
            """The increment −h μ(x_at, t) + g(t) ΔW, with per-sample t and h of shape (n,)."""
            mu = sde.reverse_drift(x_at, t, model(x_at, t))
            return -per_sample(h, x_at) * mu + per_sample(sde.diffusion(t), x_at) * dw

        def init(x):
            ones = xp.ones((n,), dtype=ctx.dtype, device=dev)
            izeros = xp.zeros((n,), dtype=xp.int32, device=dev)
            return AdaptiveState(
                x, x, sde.T * ones, min(self.h_init, sde.T - eps) * ones,
                xp.zeros((n, D), dtype=ctx.dtype, device=dev),
                xp.zeros((n, D) + tuple(ctx.shape[1:]), dtype=ctx.dtype, device=dev),
                izeros, izeros, izeros, izeros, izeros + RUNNING, xp.asarray(0, dtype=xp.int32, device=dev))

        def step(k, s: AdaptiveState, key):
            running = s.status == RUNNING
            remaining = s.t - eps
            h = xp.where(running, xp.minimum(s.h, remaining), 0.0 * s.h)
            z = ctx.normal(key)
            if self.brownian_memory:
                # Take the increment of [t, t − h] from the stack's top, splitting it with the
                # Brownian bridge if h is shorter; draw it fresh when the stack is empty.
                top = at(s.depth - 1)
                has = xp.logical_and(running, s.depth > 0)
                dt_top = xp.sum(xp.where(top, s.stack_dt, 0.0 * s.stack_dt), axis=1)
                dw_top = xp.sum(xp.where(on_event(top), s.stack_dw, 0.0 * s.stack_dw), axis=1)
                h = xp.where(has, xp.minimum(h, dt_top), h)
                split = xp.logical_and(has, h < dt_top)
                frac = h / xp.where(has, dt_top, 1.0 + 0.0 * dt_top)
                spread = xp.sqrt(xp.maximum(h * (1.0 - frac), 0.0 * h))
                bridge = per_sample(frac, z) * dw_top + per_sample(spread, z) * ctx.normal(be.fold_in(key, 1))
                fresh = per_sample(xp.sqrt(h), z) * z
                dw = xp.where(per_sample(has, z), xp.where(per_sample(split, z), bridge, dw_top), fresh)
                rest = xp.logical_and(top, xp.reshape(split, (n, 1)))
                stack_dt = xp.where(rest, s.stack_dt - xp.reshape(h, (n, 1)), s.stack_dt)
                stack_dw = xp.where(on_event(rest), s.stack_dw - xp.expand_dims(dw, axis=1), s.stack_dw)
                depth = s.depth - xp.astype(xp.logical_and(has, xp.logical_not(split)), xp.int32)
            else:
                dw = per_sample(xp.sqrt(h), z) * z
            last = h >= remaining
            t_next = xp.where(last, 0.0 * s.t + eps, s.t - h)  # land on eps exactly
            x_em = s.x + move(s.x, s.t, h, dw)
            x_heun = 0.5 * (x_em + s.x + move(x_em, t_next, h, dw))
            delta = xp.maximum(self.atol, self.rtol * xp.maximum(xp.abs(x_em), xp.abs(s.x_prev)))
            err = xp.sqrt(sum_event(xp, ((x_em - x_heun) / delta) ** 2) / d)
            finite = xp.isfinite(err)
            accept = xp.logical_and(running, xp.logical_and(finite, err <= 1.0))
            reject = xp.logical_and(running, xp.logical_not(accept))
            acc_x = per_sample(accept, s.x)
            x, x_prev = xp.where(acc_x, x_heun, s.x), xp.where(acc_x, x_em, s.x_prev)
            t = xp.where(accept, t_next, s.t)
            factor = xp.minimum(theta * xp.pow(xp.maximum(err, 1e-10 + 0.0 * err), -r), self.max_growth)
            # NaN must not reach the step size (0·NaN is NaN): shrink fivefold instead.
            factor = xp.where(finite, factor, 0.2 + 0.0 * factor)
            h_next = xp.where(running, xp.minimum(t - eps, h * factor), s.h)
            merges = s.merges
            if self.brownian_memory:
                # A rejected try's interval goes back on the stack: the path keeps its increment.
                full = depth >= D
                slot = at(xp.where(full, depth - 1, depth))
                put = xp.logical_and(slot, xp.reshape(reject, (n, 1)))
                merge = xp.reshape(full, (n, 1))
                hh = xp.reshape(h, (n, 1))
                stack_dt = xp.where(put, xp.where(merge, stack_dt + hh, hh), stack_dt)
                dw1 = xp.expand_dims(dw, axis=1)
                stack_dw = xp.where(on_event(put), xp.where(per_sample(full, stack_dw), stack_dw + dw1, dw1), stack_dw)
                pushed = xp.logical_and(reject, xp.logical_not(full))
                depth = depth + xp.astype(pushed, xp.int32)
                merges = merges + xp.astype(xp.logical_and(reject, full), xp.int32)
            else:
                stack_dt, stack_dw, depth = s.stack_dt, s.stack_dw, s.depth
            accepted = s.accepted + xp.astype(accept, xp.int32)
            rejected = s.rejected + xp.astype(reject, xp.int32)
            status = xp.where(xp.logical_and(accept, last), CONVERGED + 0 * s.status, s.status)
            stuck = xp.logical_and(reject, xp.logical_and(xp.logical_not(finite), h <= h_min))
            status = xp.where(stuck, NONFINITE + 0 * status, status)
            out = xp.logical_and(status == RUNNING, accepted + rejected >= self.max_steps)
            status = xp.where(out, BUDGET + 0 * status, status)
            return AdaptiveState(x, x_prev, t, h_next, stack_dt, stack_dw, depth, accepted, rejected, merges,
                                 status, s.nfe + 2)

        fin = final_denoise(model, sde, ctx, eps) if self.denoise else (lambda x: x)

        def sample_of(s):
            # A sample stuck on a non-finite score is reported through the driver's NaN check.
            return xp.where(per_sample(s.status == NONFINITE, s.x), float("nan") + 0.0 * s.x, s.x)

        def time_of_state(s):
            return xp.max(xp.where(s.status == NONFINITE, s.t, -math.inf + 0.0 * s.t))

        def info_of(s):
            status = be.to_numpy(s.status)
            n_budget = int((status == BUDGET).sum())
            return {
                "accepted": s.accepted, "rejected": s.rejected, "status": s.status, "stack_merges": s.merges,
                "warning": (f"{n_budget} of {n} samples exhausted the step budget max_steps={self.max_steps} "
                            f"before reaching eps={eps}; raise max_steps or rtol/atol") if n_budget else None,
            }

        return Program(
            n_steps=self.max_steps, nfe=0, init=init, step=step, finish=lambda s: fin(s.x),
            time_of_step=lambda k: sde.T, sample_of=sample_of,
            cond=lambda s: xp.any(s.status == RUNNING),
            nfe_of=lambda s: s.nfe + int(self.denoise), info_of=info_of, time_of_state=time_of_state,
        )
