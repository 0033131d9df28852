"""DPM-Solver++(2S), deterministic or ancestral (Lu et al. 2022, "DPM-Solver++", Algorithm 1
with r = ½; k-diffusion's ``sample_dpmpp_2s_ancestral``), in λ = −log σ.

Step i goes from σ_i to σ_↓ (the ancestral split of σ_{i+1}, see
:func:`.euler_ancestral.ancestral_split`; σ_↓ = σ_{i+1} at η = 0) with h = log(σ_i/σ_↓) and
the midpoint σ_s = √(σ_i σ_↓):

    x̂_s = (σ_s/σ_i) x̂_i − (e^{−h/2} − 1) D(x̂_i; σ_i),
    x̂_{i+1} = (σ_↓/σ_i) x̂_i − (e^{−h} − 1) D(x̂_s; σ_s) + S_noise σ_↑ z,

two score evaluations per step; the last step into σ = 0 is x̂_N = D(x̂_{N−1}; σ_{N−1}),
so N steps cost 2N − 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .base import Context, FixedProgram
from .euler_ancestral import ancestral_split
from .sigma_grid import StochasticSigmaSampler


@dataclass(frozen=True)
class DPMSolverPP2S(StochasticSigmaSampler):
    """DPM-Solver++(2S): N steps, 2N − 1 score evaluations when σ_N = 0 (options:
    :class:`.StochasticSigmaSampler`). η ∈ [0, 1], 0 by default (``"dpmpp_2s"``; 1 is
    ``"dpmpp_2s_ancestral"``): η > 1 would split σ_↓ = 0 off a step short of the end."""

    eta: float = 0.0
    eta_max = 1.0

    name = "dpmpp_2s"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        split = [ancestral_split(g.sig[k], g.sig[k + 1], self.eta) for k in range(g.K)]
        down = [d for d, _ in split]
        mid = [math.sqrt(g.sig[k] * down[k]) for k in range(g.K)]
        # σ_↓ = 0 on a step into σ = 0: h → ∞ is its limit (x̂ ← D), not a division by zero.
        h = [math.log(g.sig[k] / down[k]) if down[k] > 0 else math.inf for k in range(g.K)]
        tm = [g.level(s) for s in mid]
        T_MID, M_MID = ctx.times([t for t, _ in tm]), ctx.times([m for _, m in tm])
        A1, B1 = ctx.times([mid[k] / g.sig[k] for k in range(g.K)]), ctx.times([-math.expm1(-hk / 2) for hk in h])
        A2, B2 = ctx.times([down[k] / g.sig[k] for k in range(g.K)]), ctx.times([-math.expm1(-hk) for hk in h])
        UP = ctx.times([self.s_noise * u for _, u in split])
        noisy = self.s_noise > 0 and any(u > 0 for _, u in split)

        def step(k, x, key, last):
            xh, den = g.start(k, x)
            if last:
                return den
            x_s = A1[k] * xh + B1[k] * den
            xh = A2[k] * xh + B2[k] * g.denoise(x_s, T_MID[k], M_MID[k])
            if noisy:
                xh = xh + UP[k] * g.noise(k, key)
            return g.M[k + 1] * xh

        return g.program(2 * g.K + int(g.to_zero), step)


__all__ = ["DPMSolverPP2S"]
