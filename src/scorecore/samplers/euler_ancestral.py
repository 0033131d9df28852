"""Euler ancestral sampling in σ (k-diffusion's ``sample_euler_ancestral``; Karras et al. 2022's
Euler step with the ancestral split of Ho et al. 2020's posterior), on any SDE through its σ-space.

From σ to σ' < σ the ancestral step splits σ'² = σ_↓² + σ_↑² with

    σ_↑ = min(σ', η √(σ'² (σ² − σ'²)/σ²)),   σ_↓ = √(σ'² − σ_↑²),

takes Euler's step of dx̂/dσ = (x̂ − D(x̂; σ))/σ down to σ_↓ and adds the noise back:

    x̂' = x̂ + (σ_↓ − σ) (x̂ − D(x̂; σ))/σ + S_noise σ_↑ z,   z ~ N(0, I),

one score evaluation per step. η = 1 draws from the Gaussian posterior of the forward
process (DDPM's ancestral step), η = 0 is the deterministic Euler (DDIM) step. The last step,
into σ = 0, is x̂ ← D(x̂; σ_{N−1}) without noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .base import Context, FixedProgram
from .sigma_grid import StochasticSigmaSampler


def ancestral_split(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """(σ_↓, σ_↑) with σ_↓² + σ_↑² = σ'² (k-diffusion's ``get_ancestral_step``); (σ', 0) at η = 0.

    σ_↑ = min(σ', η σ' √(1 − r²)) with r = σ'/σ, and σ_↓ = σ' √((1 − η²) + η² r²) written without
    the cancellation of √(σ'² − σ_↑²): when σ' ≪ σ that difference rounds to 0 (then log(σ/σ_↓)
    is infinite) although σ_↓ = σ'²/σ at η = 1."""
    if eta == 0 or sigma_next == 0:
        return sigma_next, 0.0
    r2 = (sigma_next / sigma) ** 2
    if eta * eta * (1.0 - r2) >= 1.0:  # η > 1 can ask for more noise than σ' holds
        return 0.0, sigma_next
    return sigma_next * math.sqrt((1.0 - eta * eta) + eta * eta * r2), eta * sigma_next * math.sqrt(1.0 - r2)


@dataclass(frozen=True)
class EulerAncestral(StochasticSigmaSampler):
    """Euler ancestral in σ: N steps, N score evaluations (options, η = 1 by default:
    :class:`.StochasticSigmaSampler`; η = 0 is Euler)."""

    name = "euler_ancestral"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        split = [ancestral_split(g.sig[k], g.sig[k + 1], self.eta) for k in range(g.N)]
        DOWN, UP = ctx.times([d for d, _ in split]), ctx.times([self.s_noise * u for _, u in split])
        noisy = any(u > 0 for _, u in split) and self.s_noise > 0

        def step(k, x, key, last):
            xh, den = g.start(k, x)
            if last:
                return den
            xh = xh + (DOWN[k] - g.SIG[k]) * ((xh - den) / g.SIG[k])
            if noisy:
                xh = xh + UP[k] * g.noise(k, key)
            return g.M[k + 1] * xh

        return g.program(g.N, step)


__all__ = ["EulerAncestral", "ancestral_split"]
