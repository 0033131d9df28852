"""DPM-Solver-12 and -23 with adaptive steps in λ = −log σ (Lu et al. 2022, "DPM-Solver",
§3.4 and Algorithm 4; k-diffusion's ``sample_dpm_adaptive``), with per-sample step sizes.

Each try from λ_s takes λ_t = min(λ_end, λ_s + h) and the embedded pair of :mod:`.dpm_singlestep`
on one set of evaluations: DPM-Solver-3 and -2 (r_1 = ⅓) for ``order=3``, DPM-Solver-2 and -1
for ``order=2`` (``order`` score evaluations per try). Its error is

    E = ‖(x̂_low − x̂_high)/δ‖_RMS,   δ = max(atol, rtol · max(|x̂_low|, |x̂_prev|))

(x̂_prev the previous accepted x̂_low), and k-diffusion's PID controller (Söderlind 2003) sets
the next h from ε_j = 1/(E_j + 10⁻⁸) of this try and the last two accepted ones:

    f = 1 + atan(ε_0^{β_1} ε_1^{β_2} ε_2^{β_3} − 1),  β_1 = (p + i + d)/k, β_2 = −(p + 2d)/k, β_3 = d/k,

with k = ``order`` (1.5 when η > 0); the try is accepted when f ≥ accept_safety, and h ← f h
either way. Per-sample control (the default, ``error_norm="sample"``) judges and steps every
sample on its own, so a sample's path does not depend on the batch; ``error_norm="batch"`` takes
one E over the whole batch, as k-diffusion does (one h for all). With η > 0 an accepted try is
ancestral: it steps to σ_↓ (the split of σ_t, kept ≥ σ_min) and adds S_noise √(σ_t² − σ_↓²) z,
z from the try's key. A sample is done when an accepted try reaches λ_end − 10⁻⁵ (k-diffusion's
stopping rule); x = m(t) x̂ at its own last level. The controller is written here, not taken from
:mod:`.adaptive`, whose :class:`~.adaptive.Controller` is the clipped I/PI rule of the
Runge–Kutta pairs; its status bookkeeping (:func:`~.adaptive.advance`) is shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .. import validation
from ..validation import option
from .._arrays import per_sample
from .adaptive import advance, quantize_step, rms, time_floor
from .base import AdaptiveProgram, Context, Sampler
from .dpm_singlestep import FRACTIONS, Stages, dpm_step, stages
from .ode import ERROR_NORMS, _batch_rms
from .sigma_space import sigma_range
from .status import RUNNING

#: k-diffusion's stopping rule: a sample within this of λ_end (in λ) has arrived.
ARRIVED = 1e-5
#: The step-size factor after a try whose error is not finite.
NONFINITE_FACTOR = 0.2


class DPMState(NamedTuple):
    """The carry: x̂ (n, ...), x̂_prev (n, ...), λ (n,), h (n,), the last two accepted
    ε = 1/(E + 10⁻⁸) (n,), status, accepted and rejected tries (n,), batch calls (0-D)."""

    xh: object
    x_prev: object
    lam: object
    h: object
    inv1: object
    inv2: object
    status: object
    accepted: object
    rejected: object
    nfe: object


@dataclass(frozen=True)
class DPMAdaptive(Sampler):
    """Adaptive DPM-Solver-12 / -23 from sigma_max to sigma_min (k-diffusion's defaults).

    Parameters
    ----------
    order:
        3 (DPM-Solver-23) or 2 (DPM-Solver-12): score evaluations per try.
    rtol, atol:
        The tolerances of δ, > 0 and ≥ 0.
    h_init:
        The first try's step in λ, > 0.
    pcoeff, icoeff, dcoeff:
        The PID gains p, i, d (default 0, 1, 0: integral control, f = 1 + atan(ε^{1/k} − 1)).
    accept_safety:
        Accept a try when its factor f is at least this (> 0).
    eta, s_noise:
        η ≥ 0 (0: deterministic) and S_noise ≥ 0, the scale of the added noise.
    sigma_min, sigma_max:
        The end levels; defaults σ(eps) and σ(T).
    error_norm:
        ``"sample"`` (per-sample control) or ``"batch"`` (one error over the batch, k-diffusion's).
    max_steps:
        The budget of tries per sample (the ``steps`` of ``sample``).
    step_quantum:
        b: each proposed step in λ is rounded down to a multiple of 2⁻ᵇ (default 20; ``None``
        keeps k-diffusion's raw steps), so the last-bit differences of libm between backends no
        longer move a sample's steps (:func:`~.adaptive.quantize_step`).
    """

    order: int = option(3, validation.integer, lo=2, hi=3)
    rtol: float = option(0.05, validation.positive_float)
    atol: float = option(0.0078, validation.nonneg_float)
    h_init: float = option(0.05, validation.positive_float)
    pcoeff: float = option(0.0, validation.real)
    icoeff: float = option(1.0, validation.real)
    dcoeff: float = option(0.0, validation.real)
    accept_safety: float = option(0.81, validation.positive_float)
    eta: float = option(0.0, validation.nonneg_float)
    s_noise: float = option(1.0, validation.nonneg_float)
    sigma_min: float | None = option(None, validation.positive_float)
    sigma_max: float | None = option(None, validation.positive_float)
    error_norm: str = option("sample", validation.choice, choices=ERROR_NORMS)
    max_steps: int = option(1000, validation.steps)
    step_quantum: int | None = option(20, validation.positive_int, none_ok=True)

    name = "dpm_adaptive"

    def program(self, model, sde, ctx: Context, eps: float) -> AdaptiveProgram:
        xp, score = ctx.xp, ctx.batched(model)
        s_max, s_min = sigma_range(sde, eps, self.sigma_min, self.sigma_max)
        lam0, lam1 = -math.log(s_max), -math.log(s_min)
        k = 1.5 if self.eta else float(self.order)
        b1, b2, b3 = ((self.pcoeff + self.icoeff + self.dcoeff) / k, -(self.pcoeff + 2 * self.dcoeff) / k,
                      self.dcoeff / k)
        r1, r2 = FRACTIONS[self.order]
        order, eta, noisy = self.order, self.eta, self.eta > 0 and self.s_noise > 0

        def level(lam):
            """(σ, t, m) of per-sample levels λ (n,); t ≤ T where σ(T) rounds above its value."""
            sig = xp.exp(-lam)
            t = xp.minimum(sde.time_of_sigma(sig), xp.full_like(sig, sde.T))
            return sig, t, sde.marginal(t)[0]

        def eps_hat(u, lam):
            """ε̂ = (x̂ − D(x̂; σ))/σ at per-sample levels."""
            sig, t, m = level(lam)
            x = per_sample(m, u) * u
            return (u - sde.tweedie(x, t, score(x, t))) / per_sample(sig, u)

        def init(x0):
            n = x0.shape[0]
            lam = xp.full((n,), lam0, dtype=x0.dtype, device=ctx.backend.device)
            xh = x0 / per_sample(level(lam)[2], x0)
            zeros = xp.zeros((n,), dtype=xp.int32, device=ctx.backend.device)
            ones = xp.ones_like(lam)
            return DPMState(xh, xh, lam, self.h_init * ones, ones, ones, zeros + RUNNING, zeros, zeros,
                            xp.asarray(0, dtype=xp.int32, device=ctx.backend.device))

        def step(i, s: DPMState, key):
            running = s.status == RUNNING
            lam_t = xp.minimum(s.lam + s.h, xp.full_like(s.lam, lam1))
            sig_s, sig_t = xp.exp(-s.lam), xp.exp(-lam_t)
            lam_d, up = lam_t, None
            if eta:
                ratio = (sig_t / sig_s) ** 2
                sig_up = xp.minimum(sig_t, eta * sig_t * xp.sqrt(1.0 - ratio))
                down = xp.sqrt(xp.maximum(sig_t * sig_t - sig_up * sig_up, xp.zeros_like(sig_t)))
                # σ_↓ = 0 (η > 1) gives λ = inf: the min keeps σ_↓ ≥ σ_min, as k-diffusion's.
                lam_d = xp.minimum(-xp.log(down), xp.full_like(lam_t, lam1))
                sig_d = xp.exp(-lam_d)
                up = xp.sqrt(xp.maximum(sig_t * sig_t - sig_d * sig_d, xp.zeros_like(sig_t)))
            # A sample that is not running (or has arrived) takes h = 1 on its own state: no 0/0.
            h = xp.where(xp.logical_and(running, lam_d > s.lam), lam_d - s.lam, xp.ones_like(s.lam))
            c = stages(sig_s, xp.exp(-(s.lam + h)), h, r1, r2)
            cx = Stages(*(per_sample(v, s.xh) for v in c))
            lam_of = {1: s.lam + r1 * h, 2: s.lam + r2 * h}
            high, low = dpm_step(order, s.xh, eps_hat(s.xh, s.lam), cx, lambda u, j: eps_hat(u, lam_of[j]))

            scale = xp.maximum(xp.maximum(xp.abs(low), xp.abs(s.x_prev)) * self.rtol,
                               xp.full_like(low, self.atol))
            err = rms(xp, (low - high) / scale)
            if self.error_norm == "batch":
                err = _batch_rms(xp, err, running)
            finite = xp.isfinite(err)
            inv = xp.where(finite, 1.0 / (err + 1e-8), xp.ones_like(err))
            first = (s.accepted + s.rejected) == 0
            inv1, inv2 = xp.where(first, inv, s.inv1), xp.where(first, inv, s.inv2)
            f = 1.0 + xp.atan(inv ** b1 * inv1 ** b2 * inv2 ** b3 - 1.0)
            f = xp.where(finite, f, xp.full_like(f, NONFINITE_FACTOR))
            accept = xp.logical_and(running, xp.logical_and(finite, f >= self.accept_safety))
            reject = xp.logical_and(running, xp.logical_not(accept))
            proposed = s.h * f if self.step_quantum is None else quantize_step(s.h * f, 2.0 ** -self.step_quantum)
            h_next = xp.where(running, proposed, s.h)
            status = advance(s.status, accept=accept, reject=reject, last=lam_t >= lam1 - ARRIVED, finite=finite,
                             h_next=h_next, floor=time_floor(s.lam, lam1 - lam0))

            if noisy:
                high = high + per_sample(self.s_noise * up, high) * ctx.normal(key)
            acc = per_sample(accept, s.xh)
            keep = xp.logical_not(running)
            return DPMState(xp.where(acc, high, s.xh), xp.where(acc, low, s.x_prev), xp.where(accept, lam_t, s.lam),
                            h_next, xp.where(keep, s.inv1, xp.where(accept, inv, inv1)),
                            xp.where(keep, s.inv2, xp.where(accept, inv1, inv2)), status,
                            s.accepted + xp.astype(accept, xp.int32), s.rejected + xp.astype(reject, xp.int32),
                            s.nfe + order)

        def sample_of(s: DPMState):
            return per_sample(level(s.lam)[2], s.xh) * s.xh

        return AdaptiveProgram(
            max_steps=self.max_steps, step=step, init=init, status_of=lambda s: s.status,
            time_of=lambda s: level(s.lam)[1], tries_of=lambda s: s.accepted + s.rejected, nfe_of=lambda s: s.nfe,
            finish=lambda s, key: sample_of(s),
            sample_of=sample_of, stats_of=lambda s: {"accepted": s.accepted, "rejected": s.rejected})


__all__ = ["DPMAdaptive", "DPMState"]
