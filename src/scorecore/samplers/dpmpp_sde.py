"""Multistep DPM-Solver++ of order 2 and 3, deterministic or SDE (Lu et al. 2022,
"DPM-Solver++", §4 and Appendix; k-diffusion's ``sample_dpmpp_2m_sde`` and
``sample_dpmpp_3m_sde``), in λ = −log σ with data predictions D_i = D(x̂_i; σ_i).

Step i from σ_i to σ_{i+1} > 0, with h = log(σ_i/σ_{i+1}), H = (1 + η) h and
r_j = h_{i−j}/h (h_{i−j} the earlier steps' h):

    x̂_{i+1} = e^{−H} x̂_i + (1 − e^{−H}) D_i + (correction) + S_noise σ_{i+1} √(1 − e^{−2ηh}) z.

The correction uses the earlier data predictions (zero on the first step):

* second order (one earlier D): Δ = (D_i − D_{i−1})/r_1 times φ = ½(1 − e^{−H})
  (``solver_type="midpoint"``, DPM-Solver++(2M)) or φ₂ = 1 − (1 − e^{−H})/H (``"heun"``);
* third order (two earlier D): Δ₀ = (D_i − D_{i−1})/r_1, Δ₁ = (D_{i−1} − D_{i−2})/r_2,
  d₁ = Δ₀ + (Δ₀ − Δ₁) r_1/(r_1 + r_2), d₂ = (Δ₀ − Δ₁)/(r_1 + r_2), correction
  φ₂ d₁ − φ₃ d₂ with φ₂ = 1 − (1 − e^{−H})/H and φ₃ = φ₂/H − ½ (its second step uses φ₂ Δ₀).

  d₁ ≈ h D' and d₂ ≈ h² D''/2 (Taylor in λ), and the integral of the quadratic term over the
  step is (2φ₃ h)·d₂ (≈ h d₂/3), not φ₃·d₂ (≈ h d₂/6), which DPM-Solver's reference code,
  diffusers and k-diffusion take: their "third-order" step has local error O(h³), that of a
  second-order method (measured: halving h divides it by 2^3.2; with 2φ₃ by 2^3.96).
  ``taylor=True`` takes 2φ₃ (steps of local error O(h⁴)); the default is the peers' φ₃, so that
  ``"dpmpp_3m"`` means what k-diffusion's does.

η = 0 is the probability-flow solver (DPM-Solver++(2M), (3M)); η = 1 the SDE-DPM-Solver++ of
the paper's reverse SDE, whose noise σ_{i+1}√(1 − e^{−2h}) z is exact for that SDE's linear
part. One score evaluation per step; the last step into σ = 0 is x̂_N = D_{N−1}. The history
enters as host coefficients on D_i, D_{i−1}, D_{i−2}, so every step is one traced function.

There is no ``lower_order_final`` option (unlike :class:`.DPMSolverPP`, :class:`.DEIS` and
:class:`.UniPC`): as in k-diffusion, only the step into σ = 0 is first order (x̂_N = D_{N−1});
the steps before it keep the full order even at few steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram
from .sigma_grid import StochasticSigmaSampler


def multistep_coefficients(sig: list[float], order: int, eta: float, solver_type: str, taylor: bool = False):
    """Per step i < K (the steps into σ > 0): (a, b0, b1, b2, c) with
    x̂_{i+1} = a x̂_i + b0 D_i + b1 D_{i−1} + b2 D_{i−2} + c z (before S_noise)."""
    K = len(sig) - 1 - int(sig[-1] == 0.0)
    hs, rows = [], []
    for i in range(K):
        h = math.log(sig[i] / sig[i + 1])
        H = (1 + eta) * h
        one = -math.expm1(-H)  # 1 − e^{−H}
        a, b = math.exp(-H), [one, 0.0, 0.0]
        phi2 = 1 - one / H
        if order >= 3 and i >= 2:
            r0, r1 = hs[i - 1] / h, hs[i - 2] / h
            phi3 = (2 if taylor else 1) * (phi2 / H - 0.5)
            al = phi2 * (1 + r0 / (r0 + r1)) - phi3 / (r0 + r1)  # on Δ₀
            be = (phi3 - phi2 * r0) / (r0 + r1)                   # on Δ₁
            b = [b[0] + al / r0, -al / r0 + be / r1, -be / r1]
        elif i >= 1:
            r = hs[i - 1] / h
            w = (0.5 * one if (order == 2 and solver_type == "midpoint") else phi2) / r
            b = [b[0] + w, -w, 0.0]
        else:
            b = [b[0], 0.0, 0.0]
        c = sig[i + 1] * math.sqrt(-math.expm1(-2 * eta * h)) if eta > 0 else 0.0
        rows.append((a, *b, c))
        hs.append(h)
    return rows


@dataclass(frozen=True)
class DPMSolverPPMultistep(StochasticSigmaSampler):
    """Multistep DPM-Solver++ (2M SDE, 3M, 3M SDE): N steps, N score evaluations (σ-grid
    options, η and S_noise: :class:`.StochasticSigmaSampler`).

    Parameters
    ----------
    order:
        2 or 3: how many data predictions each step combines (fewer on the first steps).
    solver_type:
        Order 2's correction: ``"midpoint"`` (k-diffusion's default) or ``"heun"``.
    taylor:
        Order 3: weigh d₂ by the Taylor integral 2φ₃ (third-order steps) instead of the peers'
        φ₃ (see the module docstring).
    """

    order: int = option(3, validation.integer, lo=2, hi=3)
    solver_type: str = option("midpoint", validation.choice, choices=("midpoint", "heun"))
    taylor: bool = option(False, validation.boolean)

    name = "dpmpp_3m_sde"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        rows = multistep_coefficients(g.sig, self.order, self.eta, self.solver_type, self.taylor)
        A, B0, B1, B2, C = (ctx.times([r[j] * (self.s_noise if j == 4 else 1.0) for r in rows]) for j in range(5))
        noisy = self.eta > 0 and self.s_noise > 0

        def step(k, state, key, last):
            x, d1, d2 = state
            xh, den = g.start(k, x)
            if last:
                return den, den, d1
            xh = A[k] * xh + B0[k] * den + B1[k] * d1 + B2[k] * d2
            if noisy:
                xh = xh + C[k] * g.noise(k, key)
            return g.M[k + 1] * xh, den, d1

        return g.program(g.N, step, init=lambda x: (x, 0.0 * x, 0.0 * x), sample_of=lambda s: s[0])


__all__ = ["DPMSolverPPMultistep", "multistep_coefficients"]
