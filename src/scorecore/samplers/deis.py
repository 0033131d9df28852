"""DEIS with the time-AB (tAB) integrator in log ρ (Zhang & Chen 2023, "Fast Sampling of
Diffusion Models with Exponential Integrator"; diffusers' ``DEISMultistepScheduler``, "logrho").

In σ-space with ρ = σ the noise prediction is ε(x̂, σ) = (x̂ − D(x̂; σ))/σ and the flow is
dx̂/dρ = ε. tAB-p fits the Lagrange polynomial in u = log ρ through the last p predictions
ε_{i−j} (at u_{i−j}) and integrates it in ρ:

    x̂_{i+1} = x̂_i + Σ_{j<p} c_{ij} ε_{i−j},   c_{ij} = ∫_{ρ_i}^{ρ_{i+1}} ℓ_j(log ρ) dρ
            = ρ_i ∫_0^{V} ℓ_j(u_i + v) e^v dv,   V = log(ρ_{i+1}/ρ_i),

with ∫_0^V v^n e^v dv = F_n(V) − F_n(0), F_n(v) = e^v Σ_{k≤n} (−1)^k n!/(n−k)! v^{n−k} (and
F_n(−∞) = 0, so a step into ρ = 0 is the same formula). Order 1 is DDIM. One evaluation per
step; p = min(order, i + 1), and below 15 steps the last step is first order and the one
before at most second (``lower_order_final``, as diffusers does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import validation
from ..validation import option
from .lms import LMS


def _exp_moments(V: float, n: int) -> list[float]:
    """∫_0^V v^k e^v dv for k = 0 … n (V = −∞ allowed)."""
    out = []
    for k in range(n + 1):
        at0 = (-1) ** k * math.factorial(k)
        if V == -math.inf:
            out.append(-at0)
            continue
        poly = sum((-1) ** j * math.factorial(k) / math.factorial(k - j) * V ** (k - j) for j in range(k + 1))
        out.append(math.exp(V) * poly - at0)
    return out


def tab_weights(rho: list[float], rho_next: float) -> list[float]:
    """c_j = ∫_{ρ_0}^{ρ_next} ℓ_j(log ρ) dρ for the Lagrange basis in log ρ of the nodes
    ``rho`` (newest first)."""
    u = [math.log(r / rho[0]) for r in rho]  # shifted: the step starts at v = 0
    V = math.log(rho_next / rho[0]) if rho_next > 0 else -math.inf
    mom = _exp_moments(V, len(u) - 1)
    out = []
    for j, uj in enumerate(u):
        poly, denom = [1.0], 1.0
        for k, uk in enumerate(u):
            if k != j:
                poly = [(poly[i - 1] if i else 0.0) - uk * (poly[i] if i < len(poly) else 0.0)
                        for i in range(len(poly) + 1)]
                denom *= uj - uk
        out.append(rho[0] * sum(c * m for c, m in zip(poly, mom)) / denom)
    return out


@dataclass(frozen=True)
class DEIS(LMS):
    """DEIS tAB in log ρ: N steps, N score evaluations (σ-grid options: :class:`.SigmaSampler`).

    Parameters
    ----------
    order:
        1 … 3 (diffusers' default 2 is ``solver_order``; 3 is the paper's).
    lower_order_final:
        Below 15 steps, take the last step first order and the one before at most second.
    """

    order: int = option(3, validation.integer, lo=1, hi=3)
    lower_order_final: bool = option(True, validation.boolean)
    schedule: str = "logsnr"

    name = "deis"

    def orders(self, N: int) -> list[int]:
        """Each step's order."""
        p = [min(self.order, i + 1) for i in range(N)]
        if self.lower_order_final and N < 15:
            p[-1] = 1
            if N >= 2:
                p[-2] = min(p[-2], 2)
        return p

    def coefficients(self, sig: list[float]) -> list[list[float]]:
        rows = []
        for i, p in enumerate(self.orders(len(sig) - 1)):
            c = tab_weights([sig[i - j] for j in range(p)], sig[i + 1])
            rows.append(c + [0.0] * (self.order - p))
        return rows


__all__ = ["DEIS", "tab_weights"]
