"""The σ-level grid shared by the k-diffusion-style samplers (LMS, DPM-2, Euler ancestral,
DPM-Solver++ 2S/2M SDE/3M): their common options, the levels, the denoiser, the callback.

These samplers integrate dx̂/dσ = (x̂ − D(x̂; σ))/σ (or its exponential-integrator form in
λ = −log σ) over levels σ_0 > σ_1 > … > σ_N, where σ_N = 0 by default: N levels from a
schedule (:func:`.sigma_space.sigma_steps`) with a zero appended, as k-diffusion's
``get_sigmas_*`` do. Level σ_k lives at time t_k = σ⁻¹(σ_k) (t = 0 for σ = 0) and the state
at level k is x_k = m(t_k) x̂_k, so that trajectories and non-finite reports read x-space.
The denoiser is Tweedie's D(x̂; σ) = (x + s² s_θ(x, t))/m at x = m x̂: the model is never
evaluated at σ = 0. A step into σ = 0 cannot be traced with the others (it has its own form,
usually x̂ ← D), so it runs as the program's final map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar
from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Context, FixedProgram, Sampler
from .sigma_space import SCHEDULES, sigma_of_time, sigma_range, sigma_steps, time_of_sigma

#: The number of steps when neither ``n_steps`` nor explicit levels are given.
DEFAULT_STEPS = 20
#: What a ``noise_sampler`` option must be.
NOISE_SAMPLER = "noise_sampler(sigma, sigma_next)"


def explicit_levels(sampler, opt: str, *, end_at_zero: bool) -> None:
    """For a sampler with explicit levels in option ``opt`` (``sigmas`` or ``times``): check the
    sequence's shape (again against σ(T) or T in ``program``), keep it as a tuple of floats, and
    set ``n_steps`` to len − 1 (an ``n_steps`` other than its default that disagrees is an error)."""
    levels = getattr(sampler, opt)
    if levels is None:
        return
    levels = validation.decreasing(opt, levels, hi=float("inf"), end_at_zero=end_at_zero)
    default = type(sampler).__dataclass_fields__["n_steps"].default
    if sampler.n_steps not in (None, default, len(levels) - 1):
        raise ValueError(f"n_steps must be len({opt}) − 1 = {len(levels) - 1} when {opt} are given, "
                         f"got {sampler.n_steps}")
    object.__setattr__(sampler, opt, levels)
    object.__setattr__(sampler, "n_steps", len(levels) - 1)


@dataclass(frozen=True)
class SigmaSampler(Sampler):
    """Options every σ-grid sampler shares.

    Parameters
    ----------
    n_steps:
        N, the number of steps: N levels σ_0 > … > σ_{N−1} then σ_N = 0 (default 20).
    schedule, rho:
        How the N levels are spaced between sigma_max and sigma_min (see
        :func:`.sigma_space.sigma_steps`): ``"karras"`` (the default, ρ = 7), ``"logsnr"`` /
        ``"exponential"``, ``"polyexponential"`` (degree ρ), ``"vp"``, ``"uniform"`` in t.
    sigma_min, sigma_max:
        σ_{N−1} and σ_0; defaults σ(eps) and σ(T). sigma_max may not exceed σ(T).
    sigmas:
        Explicit levels σ_0 > … > σ_N ≥ 0 instead of a schedule (σ_0 ≤ σ(T)); the run ends at
        σ_N, with the denoised sample if σ_N = 0. N = len(sigmas) − 1.
    times:
        Explicit times T ≥ t_0 > … > t_N ≥ 0 instead (σ_k = σ(t_k), t = 0 meaning σ = 0).
    callback:
        ``callback(i, x, t, denoised)`` before step i moves on: the state x at time t = t_i and
        the denoiser's first output E[x(0) | x] there. Eager backends only (a Python call
        inside the step cannot be traced).
    noise_sampler:
        ``noise_sampler(sigma, sigma_next) -> z``, a standard normal array of x's shape for the step
        from σ_i to σ_{i+1} (0-D arrays), as k-diffusion's; used by the stochastic samplers (Euler
        ancestral, DPM-Solver++ 2S ancestral, 2M SDE, 3M SDE) instead of the run's batch-invariant
        draw of step i. Called inside the step: on a compiled backend it must be traceable, and
        its rows follow the batch only if it makes them so.
    """

    n_steps: int | None = option(None, validation.steps)
    schedule: str = option("karras", validation.choice, choices=SCHEDULES)
    rho: float = option(7.0, validation.positive_float)
    sigma_min: float | None = option(None, validation.positive_float)
    sigma_max: float | None = option(None, validation.positive_float)
    sigmas: tuple | None = None
    times: tuple | None = None
    callback: Callable | None = option(None, validation.function, signature="callback(i, x, t, denoised)")
    noise_sampler: Callable | None = option(None, validation.function, signature=NOISE_SAMPLER)

    def __post_init__(self):
        super().__post_init__()
        if self.sigmas is not None and self.times is not None:
            raise ValueError("give sigmas or times, not both")
        for opt in ("sigmas", "times"):
            explicit_levels(self, opt, end_at_zero=True)

    def levels(self, sde, eps: float) -> list[float]:
        """σ_0 > … > σ_N (σ_N = 0 unless explicit levels end above it)."""
        top = sigma_of_time(sde, sde.T)
        if self.times is not None:
            validation.decreasing("times", self.times, hi=sde.T)
            return [sigma_of_time(sde, t) if t > 0 else 0.0 for t in self.times]
        if self.sigmas is not None:
            validation.decreasing("sigmas", self.sigmas, hi=top * (1 + 1e-12))
            return list(self.sigmas)
        s_max, s_min = sigma_range(sde, eps, self.sigma_min, self.sigma_max)
        n = DEFAULT_STEPS if self.n_steps is None else self.n_steps
        return (sigma_steps(sde, self.schedule, n, s_max, s_min, self.rho) if n >= 2 else [s_max]) + [0.0]

    def grid(self, sde, ctx: Context, eps: float, model) -> Grid:
        if self.callback is not None and not ctx.backend.eager:
            raise ValueError(f"callback runs on eager backends only, not on {ctx.backend.name!r} "
                             "(its loop is compiled)")
        return Grid(sde, ctx, self.levels(sde, eps), model, self.callback, self.noise_sampler)


@dataclass(frozen=True)
class StochasticSigmaSampler(SigmaSampler):
    """The σ-grid options plus the noise of the stochastic σ samplers (Euler ancestral,
    DPM-Solver++ 2S ancestral, 2M/3M SDE).

    Parameters
    ----------
    eta:
        η ≥ 0, how much of each step's noise is redrawn: 0 is the deterministic solver of the
        probability flow, 1 the ancestral / SDE sampler (each sampler's default is its preset's).
    s_noise:
        S_noise ≥ 0, the scale of the added noise.
    """

    eta: float = 1.0
    s_noise: float = option(1.0, validation.nonneg_float)

    #: The largest η the sampler's step admits (None: any).
    eta_max: ClassVar[float | None] = None

    def __post_init__(self):
        super().__post_init__()
        validation.real("eta", self.eta, lo=0.0, hi=self.eta_max)


def step_noise(ctx: Context, key, noise_sampler, sigma, sigma_next):
    """The run's standard normal draw from a step's ``key``, or ``noise_sampler(σ, σ_next)``
    checked to be an array of the samples' shape and dtype (static facts: checked under jit too)."""
    if noise_sampler is None:
        return ctx.normal(key)
    z = noise_sampler(sigma, sigma_next)
    validation.array_shape("noise_sampler(sigma, sigma_next)", z, ctx.shape)
    if z.dtype != ctx.dtype:
        raise TypeError(f"noise_sampler(sigma, sigma_next) must return the run's dtype {ctx.dtype}, got {z.dtype}")
    return z


class Grid:
    """The levels of one run on the host (``sig``, ``t``, ``m``) and as arrays (``SIG``, ``T``,
    ``M``), with the denoiser and the callback.

    ``K`` steps run in the loop; the last step is the final map when σ_N = 0 (``to_zero``)."""

    def __init__(self, sde, ctx: Context, sig: list[float], model, callback, noise_sampler=None):
        self.sde, self.ctx, self.sig, self.callback, self.noise_sampler = sde, ctx, sig, callback, noise_sampler
        self.t = [min(time_of_sigma(sde, s), sde.T) if s > 0 else 0.0 for s in sig]
        self.t[0] = sde.T if sig[0] == sigma_of_time(sde, sde.T) else self.t[0]  # σ_0 = σ(T): start at T
        self.m = [float(sde.marginal(t)[0]) for t in self.t]
        self.to_zero = sig[-1] == 0.0
        self.N = len(sig) - 1
        self.K = self.N - int(self.to_zero)
        self.SIG, self.T, self.M = ctx.times(sig), ctx.times(self.t), ctx.times(self.m)
        self._score = ctx.batched(model)

    def level(self, sigma: float) -> tuple[float, float]:
        """(t, m) of an intermediate level σ > 0 (a midpoint), on the host."""
        t = min(time_of_sigma(self.sde, sigma), self.sde.T)
        return t, float(self.sde.marginal(t)[0])

    def denoise(self, xh, t, m):
        """D(x̂; σ(t)) = (x + s(t)² s_θ(x, t))/m(t) at x = m x̂ (t, m 0-D arrays or floats)."""
        x = m * xh
        return self.sde.tweedie(x, t, self._score(x, t))

    def start(self, k, x):
        """(x̂_k, D(x̂_k; σ_k)) for the state x = m_k x̂_k at step k, after the user's callback."""
        xh = x / self.M[k]
        den = self.denoise(xh, self.T[k], self.M[k])
        self.report(k, x, den)
        return xh, den

    def noise(self, k, key):
        """z_k of the step from σ_k to σ_{k+1}: the user's ``noise_sampler(σ_k, σ_{k+1})``, else
        the run's draw from step k's key (row i from (key, offset + i))."""
        return step_noise(self.ctx, key, self.noise_sampler, self.SIG[k], self.SIG[k + 1])

    def report(self, k, x, denoised):
        """The user's callback at step k (eager runs only, where k is a Python int)."""
        if self.callback is not None:
            self.callback(int(k), x, self.t[int(k)], denoised)

    def program(self, nfe: int, step, init=lambda x: x, sample_of=lambda s: s, unrolled: int = 0) -> FixedProgram:
        """A FixedProgram over the levels: ``step(k, state, key, last)``, ``last`` true only for
        the final step into σ = 0, which runs as the final map."""
        if self.to_zero:
            K = self.K

            def finish(state, key):
                return sample_of(step(K, state, key, True))
        else:
            def finish(state, key):
                return sample_of(state)

        times = tuple(self.t[: self.K + 1])
        return FixedProgram(times, nfe, lambda k, s, key: step(k, s, key, False), init=init, finish=finish,
                            sample_of=sample_of, unrolled=unrolled)


__all__ = ["DEFAULT_STEPS", "Grid", "NOISE_SAMPLER", "SigmaSampler", "StochasticSigmaSampler", "explicit_levels",
           "step_noise"]
