"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
Diffusion Probabilistic Models", Algorithm 2), for VP, VE and sub-VP.

It integrates the probability flow in λ = log(m/s) (half the log-SNR) with the data
prediction x_θ(x, t) = (x + s² s_θ(x, t))/m (Tweedie). With h_i = λ_{t_i} − λ_{t_{i−1}} > 0
and r_i = h_{i−1}/h_i, step i from t_{i−1} to t_i is

    first order (DDIM):  x_i = (s_i/s_{i−1}) x_{i−1} − m_i (e^{−h_i} − 1) x_θ(x_{i−1}, t_{i−1})
    second order:        the same with x_θ replaced by
                         D_i = (1 + 1/(2r_i)) x_θ(x_{i−1}, t_{i−1}) − 1/(2r_i) x_θ(x_{i−2}, t_{i−2}),

one score evaluation per step (the previous data prediction is kept). The first step is
first order; so is the last when N < 15 (``lower_order_final``, as the authors do), which
keeps few-step runs stable as σ → 0. The solver ends at t = eps > 0, so every λ is finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram
from .ddim import denoised_finish
from .time_grid import TimeGridSampler


@dataclass(frozen=True)
class DPMSolverPP(TimeGridSampler):
    """DPM-Solver++(2M), multistep data prediction: N steps from T to eps, one score evaluation
    each (the previous data prediction is kept), plus one if ``denoise``; uniform λ by default
    (time-grid options: :class:`.TimeGridSampler`).

    Parameters
    ----------
    lower_order_final:
        Take the last step first order when N < 15.
    """

    lower_order_final: bool = option(True, validation.boolean)

    name = "dpmpp_2m"

    def coefficients(self, sde, eps: float):
        """(times, a, b, c): x_{i+1} = a_i x_i + b_i x_θ(x_i, t_i) + c_i x_θ(x_{i−1}, t_{i−1})."""
        N, ts = self.n_steps, self.time_grid(sde, eps)
        ms, ss = zip(*((float(v) for v in sde.marginal(t)) for t in ts))
        lam = [math.log(m / s) for m, s in zip(ms, ss)]
        h = [lam[k + 1] - lam[k] for k in range(N)]
        a, b, c = [], [], []
        for k in range(N):
            phi = -ms[k + 1] * math.expm1(-h[k])
            first = k == 0 or (self.lower_order_final and N < 15 and k == N - 1)
            w = 0.0 if first else h[k] / (2 * h[k - 1])  # 1/(2 r)
            a.append(ss[k + 1] / ss[k])
            b.append(phi * (1 + w))
            c.append(-phi * w)
        return ts, a, b, c

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        ts, a, b, c = self.coefficients(sde, eps)
        # Tweedie's x_θ = (x + s_k² s_θ)/m_k with m_k, s_k from the host grid: no marginal per step.
        ms, ss = zip(*((float(v) for v in sde.marginal(t)) for t in ts))
        T, A, B, C = (ctx.times(v) for v in (ts, a, b, c))
        S2, IM = ctx.times([s * s for s in ss]), ctx.times([1.0 / m for m in ms])
        score = ctx.batched(model)

        def step(k, state, key):
            x, prev = state
            x0 = (x + S2[k] * score(x, T[k])) * IM[k]
            return A[k] * x + B[k] * x0 + C[k] * prev, x0

        def sample_of(state):
            return state[0]

        return FixedProgram(tuple(ts), self.n_steps + int(self.denoise), step, init=lambda x: (x, 0.0 * x),
                            finish=denoised_finish(model, sde, ctx, ts[-1], self.denoise, sample_of),
                            sample_of=sample_of)


__all__ = ["DPMSolverPP"]
