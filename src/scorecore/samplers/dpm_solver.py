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
from .base import Context, FixedProgram, Sampler
from .ddim import denoised_finish
from .sigma_grid import explicit_levels
from .sigma_space import SCHEDULES, time_steps


@dataclass(frozen=True)
class DPMSolverPP(Sampler):
    """DPM-Solver++(2M), multistep data prediction, ``n_steps`` NFE (plus one if ``denoise``).

    Parameters
    ----------
    n_steps:
        N steps from T to eps, one score evaluation each (the previous data prediction is kept).
    schedule, rho:
        ``"logsnr"`` (uniform λ, the default), ``"uniform"`` in t, or ``"karras"``.
    lower_order_final:
        Take the last step first order when N < 15.
    denoise:
        Finish with Tweedie's step at eps.
    times:
        Explicit times T ≥ t_0 > … > t_N > 0 instead of a schedule (N = len − 1; the run ends,
        and ``denoise`` denoises, at t_N).
    """

    n_steps: int = 20
    schedule: str = "logsnr"
    rho: float = 7.0
    lower_order_final: bool = True
    denoise: bool = False
    times: tuple | None = None

    name = "dpmpp_2m"

    def __post_init__(self):
        validation.steps("n_steps", self.n_steps)
        validation.choice("schedule", self.schedule, SCHEDULES)
        validation.positive_float("rho", self.rho)
        validation.boolean("lower_order_final", self.lower_order_final)
        validation.boolean("denoise", self.denoise)
        explicit_levels(self, "times", end_at_zero=False)

    def coefficients(self, sde, eps: float):
        """(times, a, b, c): x_{i+1} = a_i x_i + b_i x_θ(x_i, t_i) + c_i x_θ(x_{i−1}, t_{i−1})."""
        N = self.n_steps
        ts = time_steps(sde, self.schedule, N + 1, sde.T, eps, self.rho) if self.times is None else \
            list(validation.decreasing("times", self.times, hi=sde.T, end_at_zero=False))
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
