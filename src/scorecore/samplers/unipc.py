"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
Diffusion Models"), data prediction, B(h) of bh1 or bh2, in λ = −log σ.

With data predictions m_j = D(x̂_j; σ_j), h = λ_{i+1} − λ_i, r_k = (λ_{i−k} − λ_i)/h and
Δ_k = (m_{i−k} − m_i)/r_k, the predictor UniP-p (Algorithm 2) is

    x̂_{i+1} = (σ_{i+1}/σ_i) x̂_i + (1 − e^{−h}) m_i − B(h) Σ_{k=1}^{p−1} a_k Δ_k,

with a solving Σ_k a_k r_k^{n−1} = b_n, n = 1 … p − 1, b_n = n! (−h) φ_{n+1}(−h)/B(h) and
φ_k(z) = (e^z − Σ_{j<k} z^j/j!)/z^k (a = ½ for p = 2, as the reference code does), B(h) = −h
(bh1) or e^{−h} − 1 (bh2) in this data-prediction form.
After the next evaluation m_{i+1} = D(x̂_{i+1}; σ_{i+1}), the corrector UniC-p
(Algorithm 1) replaces x̂_{i+1} by the same formula from x̂_i with the new data prediction as one
more node (r = 1) and c solving the full p × p system Σ_k c_k r_k^{n−1} = b_n, n = 1 … p
(c = ½ for p = 1):

    x̂ᶜ_{i+1} = (σ_{i+1}/σ_i) x̂_i + (1 − e^{−h}) m_i − B(h) (Σ_k c_k Δ_k + c_p (m_{i+1} − m_i)),

and m_{i+1} is kept: the corrector costs no evaluation, N steps cost N. Step i's order is
min(order, i + 1, N − i) (``lower_order_final``: the last steps drop to first order); the last
step into σ = 0 is x̂_N = m_{N−1}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import validation
from ..validation import option
from .base import Context, FixedProgram
from .sigma_grid import SigmaSampler


def _weights(lam: list[float], i: int, p: int, solver_type: str, corrector: bool):
    """The step from λ_i to λ_{i+1} of order p as coefficients (on m_i, m_{i−1}, m_{i−2}, m_{i−3},
    on the new prediction m_{i+1} (corrector only)), with the ratio σ_{i+1}/σ_i on x̂_i."""
    h = lam[i + 1] - lam[i]
    hh = -h
    h_phi_1 = math.expm1(hh)
    B = hh if solver_type == "bh1" else math.expm1(hh)
    r = [(lam[i - k] - lam[i]) / h for k in range(1, p)]  # the earlier predictions as nodes
    nodes = r + [1.0] if corrector else r
    # b_n = n! φ_{n+1}·(−h)/B(h), n = 1 … p, by h_phi_k ← h_phi_k/hh − 1/(k+1)!.
    b, h_phi_k, fact = [], h_phi_1 / hh - 1, 1.0
    for n in range(1, p + 1):
        b.append(h_phi_k * fact / B)
        fact *= n + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    if corrector:
        rho = [0.5] if p == 1 else list(np.linalg.solve(np.vander(nodes, increasing=True).T, b))
    else:
        rho = [] if p == 1 else [0.5] if p == 2 else list(np.linalg.solve(np.vander(r, increasing=True).T, b[:-1]))
    on = [-h_phi_1, 0.0, 0.0, 0.0, 0.0]
    for k in range(1, p):  # −B ρ_k (m_{i−k} − m_i)/r_k
        on[k] -= B * rho[k - 1] / r[k - 1]
        on[0] += B * rho[k - 1] / r[k - 1]
    if corrector:  # −B ρ_p (m_{i+1} − m_i)
        on[4] -= B * rho[-1]
        on[0] += B * rho[-1]
    return on, math.exp(-h)


@dataclass(frozen=True)
class UniPC(SigmaSampler):
    """UniPC with data prediction: N steps, N score evaluations (σ-grid options:
    :class:`.SigmaSampler`).

    Parameters
    ----------
    order:
        1 … 3, the predictor's order p (the corrector's order is then p + 1 in the paper's count).
    solver_type:
        ``"bh2"`` (B(h) = e^h − 1, diffusers' default) or ``"bh1"`` (B(h) = h).
    corrector:
        Apply UniC after each evaluation (False: UniP alone).
    lower_order_final:
        Lower the order over the last steps, min(order, N − i).
    """

    order: int = option(2, validation.integer, lo=1, hi=3)
    solver_type: str = option("bh2", validation.choice, choices=("bh1", "bh2"))
    corrector: bool = option(True, validation.boolean)
    lower_order_final: bool = option(True, validation.boolean)
    schedule: str = "logsnr"

    name = "unipc"

    def orders(self, N: int) -> list[int]:
        """The predictor's order at each step i < N."""
        return [min(self.order, i + 1, N - i if self.lower_order_final else self.order) for i in range(N)]

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        g = self.grid(sde, ctx, eps, model)
        lam = [-math.log(s) if s > 0 else math.inf for s in g.sig]
        p = self.orders(g.N)
        pred, corr = [], []
        for i in range(g.K):
            on, ratio = _weights(lam, i, p[i], self.solver_type, False)
            pred.append([ratio] + on[:4])
        for i in range(g.N):
            if i == 0 or not self.corrector:
                corr.append([1.0, 0.0] + [0.0] * 5)  # x̂ᶜ_i = x̂_i
            else:
                on, ratio = _weights(lam, i - 1, p[i - 1], self.solver_type, True)
                corr.append([0.0, ratio] + on)
        P = [ctx.times([row[j] for row in pred]) for j in range(5)]
        C = [ctx.times([row[j] for row in corr]) for j in range(7)]

        def step(k, state, key, last):
            x, x_prev, m1, m2, m3 = state  # x_prev: the corrected x̂_{k−1}; m_j = m_{k−j}
            xh, m0 = g.start(k, x)
            if last:
                return m0, xh, m0, m1, m2
            if self.corrector:
                # From x̂_{k−1} with m_{k−1}, m_{k−2}, m_{k−3} and the new m_k as nodes.
                xh = C[0][k] * xh + C[1][k] * x_prev + C[2][k] * m1 + C[3][k] * m2 + C[4][k] * m3 + C[6][k] * m0
            nxt = P[0][k] * xh + P[1][k] * m0 + P[2][k] * m1 + P[3][k] * m2
            return g.M[k + 1] * nxt, xh, m0, m1, m2

        def init(x):
            z = 0.0 * x
            return x, z, z, z, z

        return g.program(g.N, step, init=init, sample_of=lambda s: s[0])


__all__ = ["UniPC"]
