"""DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models"), for VP and its
analogue for VE and sub-VP, with the final Tweedie denoising step shared by the fast samplers.

With ε̂ = −s(t) s_θ(x, t) (the noise prediction) and x̂₀ = (x − s ε̂)/m (Tweedie), one step
from t to t' < t is, with σ = s/m and σ' = s'/m',

    c = η σ' √(1 − σ'²/σ²),   x' = m' x̂₀ + m' √(σ'² − c²) ε̂ + m' c z.

For VP (m² = ᾱ) this is DDIM's eq. 12 with σ_t(η) = η √((1−ᾱ')/(1−ᾱ)) √(1 − ᾱ/ᾱ'); η = 0 is
the deterministic sampler (Euler's method on the probability flow in σ-space, first order),
η = 1 the ancestral (DDPM) one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram
from .time_grid import TimeGridSampler


def denoised_finish(model, sde, ctx: Context, eps: float, denoise: bool, sample_of=lambda state: state):
    """``finish(state, key)``: the state's sample x, then — if ``denoise`` — Tweedie's
    E[x(0) | x(eps)] = (x + s² s_θ(x, eps))/m at the last time eps (one more NFE)."""
    t, score = ctx.times([eps])[0], ctx.batched(model)

    def finish(state, key):
        x = sample_of(state)
        return sde.tweedie(x, t, score(x, t)) if denoise else x

    return finish


def ddim_coefficients(sde, ts, eta: float):
    """Host lists (m_k, s_k, m_{k+1} √(σ_{k+1}² − c_k²), m_{k+1} c_k) of the steps t_k → t_{k+1}:
    x_{k+1} = m_{k+1} x̂₀ + (third) ε̂ + (fourth) z, c_k = η σ_{k+1} √(1 − σ_{k+1}²/σ_k²)."""
    N = len(ts) - 1
    ms, ss = zip(*((float(a) for a in sde.marginal(t)) for t in ts))
    sig = [s / m for m, s in zip(ms, ss)]
    c = [eta * sig[k + 1] * math.sqrt(1 - (sig[k + 1] / sig[k]) ** 2) for k in range(N)]
    eps_coef = [ms[k + 1] * math.sqrt(max(sig[k + 1] ** 2 - c[k] ** 2, 0.0)) for k in range(N)]
    return list(ms), list(ss), eps_coef, [ms[k + 1] * c[k] for k in range(N)]


@dataclass(frozen=True)
class DDIM(TimeGridSampler):
    """DDIM with ``n_steps`` steps (= NFE, plus one if ``denoise``) from T to eps, on DDIM's
    time-uniform grid by default (time-grid options: :class:`.TimeGridSampler`); ``eta`` = η ≥ 0,
    0 deterministic, 1 ancestral."""

    n_steps: int = 50
    schedule: str = "uniform"
    eta: float = option(0.0, validation.nonneg_float)

    name = "ddim"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        N, ts = self.n_steps, self.time_grid(sde, eps)
        ms, ss, eps_coef, noise_coef = ddim_coefficients(sde, ts, self.eta)
        T, M, S = ctx.times(ts), ctx.times(ms), ctx.times(ss)
        E, C = ctx.times(eps_coef), ctx.times(noise_coef)

        def step(k, x, key):
            score = model(x, ctx.batch_time(T[k]))
            x0 = (x + S[k] * S[k] * score) / M[k]
            x = M[k + 1] * x0 - (E[k] * S[k]) * score  # ε̂ = −s·score
            return x + C[k] * ctx.normal(key) if self.eta > 0 else x

        return FixedProgram(tuple(ts), N + int(self.denoise), step,
                            finish=denoised_finish(model, sde, ctx, ts[-1], self.denoise))


__all__ = ["DDIM", "ddim_coefficients", "denoised_finish"]
