"""The linear multistep method in σ (k-diffusion's ``sample_lms``: variable-step
Adams–Bashforth on the probability flow dx̂/dσ = d(x̂, σ) = (x̂ − D(x̂; σ))/σ).

Step i fits the Lagrange polynomial through the last p = min(i + 1, order) slopes d_{i−j} at
σ_{i−j} and integrates it over [σ_i, σ_{i+1}]:

    x̂_{i+1} = x̂_i + Σ_{j<p} c_{ij} d_{i−j},   c_{ij} = ∫_{σ_i}^{σ_{i+1}} ℓ_j(τ) dτ,
    ℓ_j(τ) = Π_{k<p, k≠j} (τ − σ_{i−k}) / (σ_{i−j} − σ_{i−k}),

one score evaluation per step. The integrals are exact: ℓ_j is expanded into a polynomial in
u = τ − σ_i on the host and integrated term by term (k-diffusion uses adaptive quadrature).
The last step into σ = 0 is the same formula (no evaluation at σ = 0). There is no
``lower_order_final`` option: as in k-diffusion, the final steps keep order p (the multistep
samplers that lower it are :class:`.DPMSolverPP`, :class:`.DEIS` and :class:`.UniPC`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram
from .sigma_grid import SigmaSampler


def lagrange_weights(nodes: list[float], a: float, b: float) -> list[float]:
    """∫_a^b ℓ_j(τ) dτ for the Lagrange basis ℓ_j of ``nodes`` (exact polynomial integration)."""
    u = [x - a for x in nodes]  # shifted so that the lower limit is 0: no cancellation there
    h, out = b - a, []
    for j, uj in enumerate(u):
        poly, denom = [1.0], 1.0  # coefficients of Π_{k≠j} (u − u_k), lowest degree first
        for k, uk in enumerate(u):
            if k != j:
                poly = [(poly[i - 1] if i else 0.0) - uk * (poly[i] if i < len(poly) else 0.0)
                        for i in range(len(poly) + 1)]
                denom *= uj - uk
        out.append(sum(c * h ** (n + 1) / (n + 1) for n, c in enumerate(poly)) / denom)
    return out


def lms_coefficients(sig: list[float], order: int) -> list[list[float]]:
    """c_{ij} for each step i of the levels ``sig`` (j = 0 the newest slope), padded with zeros."""
    rows = []
    for i in range(len(sig) - 1):
        p = min(i + 1, order)
        c = lagrange_weights([sig[i - j] for j in range(p)], sig[i], sig[i + 1])
        rows.append(c + [0.0] * (order - p))
    return rows


@dataclass(frozen=True)
class LMS(SigmaSampler):
    """Adams–Bashforth in σ, x̂_{i+1} = x̂_i + Σ_j c_ij d_{i−j} (module docstring): N steps, N
    score evaluations (σ-grid options: :class:`.SigmaSampler`). ``order``, the number of slopes
    combined per step, is 1 … 6 (k-diffusion's default 4; order 1 is Euler)."""

    order: int = option(4, validation.integer, lo=1, hi=6)

    name = "lms"

    def coefficients(self, sig: list[float]) -> list[list[float]]:
        """Each step's weights on the newest slope first, padded with zeros to ``order``."""
        return lms_coefficients(sig, self.order)

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        p = self.order
        rows = self.coefficients(g.sig)
        C = [ctx.times([row[j] for row in rows]) for j in range(p)]

        def step(k, state, key, last):
            x, past = state[0], state[1:]
            xh, den = g.start(k, x)
            d = (xh - den) / g.SIG[k]
            slopes = (d,) + past
            xh = xh + C[0][k] * d
            for j in range(1, p):  # unused (zero) coefficients meet zero-initialised slopes
                xh = xh + C[j][k] * slopes[j]
            return (g.M[k + 1] * xh,) + slopes[: p - 1]

        return g.program(g.N, step, init=lambda x: (x,) + (0.0 * x,) * (p - 1), sample_of=lambda s: s[0])


__all__ = ["LMS", "lagrange_weights", "lms_coefficients"]
