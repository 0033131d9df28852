"""DPM-2 (k-diffusion's ``sample_dpm_2``): the midpoint method in σ with the midpoint taken
geometrically, the second-order DPM-Solver step written as in Karras et al. (2022)'s Algorithm 2.

With d(x̂, σ) = (x̂ − D(x̂; σ))/σ and σ_m = √(σ_i σ_{i+1}) (log σ halfway), step i is

    x̂_m = x̂_i + (σ_m − σ_i) d(x̂_i, σ_i),   x̂_{i+1} = x̂_i + (σ_{i+1} − σ_i) d(x̂_m, σ_m),

two score evaluations; the last step into σ = 0 is Euler's, x̂_N = D(x̂_{N−1}; σ_{N−1}), so
N steps cost 2N − 1 evaluations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .base import Context, FixedProgram
from .sigma_grid import SigmaSampler


@dataclass(frozen=True)
class DPM2(SigmaSampler):
    """DPM-2: N steps, 2N − 1 score evaluations when σ_N = 0, else 2N (σ-grid options:
    :class:`.SigmaSampler`)."""

    name = "dpm_2"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        mid = [math.sqrt(g.sig[k] * g.sig[k + 1]) for k in range(g.K)]
        tm = [g.level(s) for s in mid]
        S_MID, T_MID, M_MID = ctx.times(mid), ctx.times([t for t, _ in tm]), ctx.times([m for _, m in tm])

        def step(k, x, key, last):
            xh, den = g.start(k, x)
            if last:
                return den
            x_m = xh + (S_MID[k] - g.SIG[k]) * ((xh - den) / g.SIG[k])
            d_m = (x_m - g.denoise(x_m, T_MID[k], M_MID[k])) / S_MID[k]
            return g.M[k + 1] * (xh + (g.SIG[k + 1] - g.SIG[k]) * d_m)

        return g.program(2 * g.K + int(g.to_zero), step)


__all__ = ["DPM2"]
