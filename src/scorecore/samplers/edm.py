"""The EDM sampler (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models", Algorithm 2), on any of our SDEs through its σ-space.

With x̂ = x/m(t) and σ = s(t)/m(t) (see :mod:`.sigma_space`) the probability-flow ODE is
dx̂/dσ = (x̂ − D(x̂; σ))/σ. Over the levels σ_0 > … > σ_{N−1} > σ_N = 0, step i:

    γ_i = min(S_churn/N, √2 − 1) if S_tmin ≤ σ_i ≤ S_tmax else 0,  σ̂_i = σ_i (1 + γ_i)
    x̂_i ← x_i + √(σ̂_i² − σ_i²) S_noise ε_i                         (churn: add noise)
    d_i = (x̂_i − D(x̂_i; σ̂_i))/σ̂_i,   x_{i+1} = x̂_i + (σ_{i+1} − σ̂_i) d_i      (Euler)
    if σ_{i+1} ≠ 0:  d'_i = (x_{i+1} − D(x_{i+1}; σ_{i+1}))/σ_{i+1},
                     x_{i+1} = x̂_i + (σ_{i+1} − σ̂_i) (d_i + d'_i)/2          (Heun)

so N levels cost 2N − 1 score evaluations. The last step, Euler to σ = 0, is the
denoiser itself: x_N = D(x̂_{N−1}; σ̂_{N−1}); the score is never evaluated at σ = 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram, Sampler
from .sigma_grid import NOISE_SAMPLER, explicit_levels, step_noise
from .sigma_space import karras_sigmas, sigma_of_time, sigma_range, time_of_sigma


@dataclass(frozen=True)
class EDM(Sampler):
    """Karras et al. (2022) Algorithm 2: Heun's method on ρ-spaced σ levels, with optional churn.

    Parameters
    ----------
    n_steps:
        N ≥ 2, the number of levels σ_0..σ_{N−1} (then σ_N = 0); 2N − 1 score evaluations.
    sigma_min, sigma_max:
        σ_{N−1} and σ_0; defaults σ(eps) and σ(T) = s(T)/m(T), which sigma_max may not exceed.
    rho:
        ρ of the spacing σ_i = (σ_max^{1/ρ} + i/(N−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ (paper: 7).
    s_churn, s_tmin, s_tmax, s_noise:
        Stochasticity: noise is added at levels S_tmin ≤ σ_i ≤ S_tmax (σ, not t) to raise σ_i
        by the factor 1 + min(S_churn/N, √2 − 1), capped so that σ̂_i ≤ σ(T) where the SDE ends;
        S_noise scales that noise. S_churn = 0 (the default) is the deterministic sampler.
    sigmas:
        Explicit levels σ_0 > … > σ_{N−1} > σ_N = 0 instead of the ρ-spacing (k-diffusion's
        convention; σ_0 ≤ σ(T), N = len − 1).
    noise_sampler:
        ``noise_sampler(sigma, sigma_hat) -> z``: the churn's standard normal at σ_i raised to σ̂_i
        (0-D arrays), instead of the run's batch-invariant draw (:class:`.SigmaSampler`).
    """

    n_steps: int = option(18, validation.steps, label="n_steps (the levels σ_0 > … > σ_(N−1))", lo=2)
    sigma_min: float | None = option(None, validation.positive_float)
    sigma_max: float | None = option(None, validation.positive_float)
    rho: float = option(7.0, validation.positive_float)
    s_churn: float = option(0.0, validation.nonneg_float)
    s_tmin: float = option(0.0, validation.nonneg_float)
    s_tmax: float = option(math.inf, validation.nonneg_float, finite=False)
    s_noise: float = option(1.0, validation.nonneg_float)
    sigmas: tuple | None = None
    noise_sampler: Callable | None = option(None, validation.function, signature=NOISE_SAMPLER)

    name = "edm"

    def __post_init__(self):
        super().__post_init__()
        explicit_levels(self, "sigmas", end_at_zero=True)

    def levels(self, sde, eps: float) -> list[float]:
        """σ_0 > … > σ_{N−1} (σ_N = 0 is implicit)."""
        top = sigma_of_time(sde, sde.T)
        if self.sigmas is not None:
            sig = validation.decreasing("sigmas", self.sigmas, hi=top * (1 + 1e-12))
            validation.real("the last of sigmas (EDM's last step is the denoiser)", sig[-1], lo=0.0, hi=0.0)
            return list(sig[:-1])
        s_max, s_min = sigma_range(sde, eps, self.sigma_min, self.sigma_max)
        return karras_sigmas(s_max, s_min, self.n_steps, self.rho)

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        N = self.n_steps
        sig = self.levels(sde, eps)
        top = sigma_of_time(sde, sde.T)
        # σ̂_i is capped at σ(T): the SDE, its kernel and the score end at t = T.
        gamma = [min(self.s_churn / N, math.sqrt(2) - 1, top / s - 1) if self.s_tmin <= s <= self.s_tmax else 0.0
                 for s in sig]
        hat = [s * (1 + g) for s, g in zip(sig, gamma)]
        t_lvl = [time_of_sigma(sde, s) for s in sig]
        t_lvl[0] = min(t_lvl[0], sde.T)  # σ_0 = σ(T) exactly: keep the round trip inside [0, T]
        t_hat = [t if g == 0 else min(time_of_sigma(sde, h), sde.T) for t, g, h in zip(t_lvl, gamma, hat)]
        m_lvl = [float(sde.marginal(t)[0]) for t in t_lvl]
        m_hat = [float(sde.marginal(t)[0]) for t in t_hat]
        churn = [self.s_noise * math.sqrt(h * h - s * s) for s, h in zip(sig, hat)]
        stochastic = any(c > 0 for c in churn)
        # Per-step constants as arrays indexed by the (possibly traced) step k.
        T_lvl, T_hat = ctx.times(t_lvl), ctx.times(t_hat)
        M_lvl, M_hat, S_lvl, S_hat, C = (ctx.times(v) for v in (m_lvl, m_hat, sig, hat, churn))

        def D(x, t, m, s):
            """The denoiser of x̂ = x/m at level σ: x̂ + σ² m s_θ(m x̂, t)."""
            return x + (s * s * m) * model(m * x, ctx.batch_time(t))

        def churned(x, k, key):
            """x̂_k = x/m_k (the state is x-space), raised to σ̂_k by the churn's noise."""
            x = x / M_lvl[k]
            return x + C[k] * step_noise(ctx, key, self.noise_sampler, S_lvl[k], S_hat[k]) if stochastic else x

        def heun(k, x, key):
            """From σ_k to σ_{k+1} > 0, churn first."""
            x = churned(x, k, key)
            d = (x - D(x, T_hat[k], M_hat[k], S_hat[k])) / S_hat[k]
            dt = S_lvl[k + 1] - S_hat[k]
            x_e = x + dt * d
            d2 = (x_e - D(x_e, T_lvl[k + 1], M_lvl[k + 1], S_lvl[k + 1])) / S_lvl[k + 1]
            return M_lvl[k + 1] * (x + (0.5 * dt) * (d + d2))

        def finish(x, key):
            # Euler to σ_N = 0 is the denoiser itself: the score is never evaluated at σ = 0.
            x = churned(x, N - 1, key)
            return D(x, T_hat[N - 1], M_hat[N - 1], S_hat[N - 1])

        return FixedProgram(tuple(t_lvl), 2 * N - 1, heun, finish=finish)

__all__ = ["EDM"]
