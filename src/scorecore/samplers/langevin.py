"""Langevin dynamics and annealed Langevin dynamics (Song & Ermon 2019).

Langevin dynamics with step ε at a fixed noise level:
    x_{k+1} = x_k + (ε/2) s_θ(x_k, t) + √ε z_k,           z_k ~ N(0, I).
Annealed Langevin dynamics (Algorithm 1) runs T such steps at each of the levels
σ_1 > … > σ_L with α_i = ε σ_i² / σ_L², and may finish with the denoising step
x + σ_L² s_θ(x, σ_L) (Tweedie's formula; (x + s² s_θ)/m for a mean coefficient m ≠ 1).

Levels are noise levels of the SDE's kernel: level i is the time t_i with
s(t_i) = σ_i, so the score model is queried at s_θ(x, t_i). Under an SDE whose
mean coefficient m(t) is not 1 (VP, sub-VP), entering level i rescales
x ← x · m(t_i)/m(t_{i−1}), carrying the data's scale along with the noise level:
Langevin steps of size ∝ σ_i² cannot move samples by the O(1 − m) that the mode
positions shift between fine levels. Under VE the factors are 1 and this is
Algorithm 1 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import validation
from ..validation import option
from ..noise_scales import geometric_sigmas
from .base import Context, FixedProgram, Sampler


def langevin_step(score_x, x, step_size, z):
    """x + (ε/2) s_θ(x) + √ε z, for array or scalar ε."""
    return x + (0.5 * step_size) * score_x + step_size**0.5 * z


@dataclass(frozen=True)
class AnnealedLangevin(Sampler):
    """Annealed Langevin dynamics, Algorithm 1 of Song & Ermon (2019).

    Parameters
    ----------
    n_levels:
        L ≥ 2, the number of noise levels σ_1 > … > σ_L (geometric).
    n_steps_each:
        T, the Langevin steps per level.
    step_lr:
        ε; α_i = ε σ_i²/σ_L². Default: 0.2 σ_L², i.e. NCSN's ε = 2·10⁻⁵ for σ_L = 0.01,
        which moves each step by √α_i = 0.45 σ_i whatever the scale.
    sigma_max, sigma_min:
        σ_1 and σ_L. Defaults: the SDE's s(T), and its ``sigma_min`` (VE) or s(eps).
    denoise:
        Finish with Tweedie's denoising step (one more score evaluation).
    """

    n_levels: int = option(100, validation.steps, lo=2)
    n_steps_each: int = option(10, validation.positive_int)
    step_lr: float | None = option(None, validation.positive_float)
    sigma_max: float | None = option(None, validation.positive_float)
    sigma_min: float | None = option(None, validation.positive_float)
    denoise: bool = option(True, validation.boolean)

    name = "ald"

    def __post_init__(self):
        super().__post_init__()
        validation.steps("n_levels × n_steps_each", self.n_levels * self.n_steps_each)

    def levels(self, sde, eps: float) -> tuple[list[float], list[float]]:
        """(σ_1..σ_L, t_1..t_L) for ``sde``: geometric σ, and t_i = s⁻¹(σ_i)."""
        s_max = self.sigma_max if self.sigma_max is not None else float(sde.marginal(sde.T)[1])
        s_min = self.sigma_min
        if s_min is None:
            s_min = getattr(sde, "sigma_min", None) or float(sde.marginal(eps)[1])
        validation.ordered("sigma_min", s_min, "sigma_max", s_max)
        sigmas = geometric_sigmas(s_max, s_min, self.n_levels)
        times = [min(sde.T, float(sde.time_of_std(s))) for s in sigmas]
        return sigmas, times

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        sigmas, times = self.levels(sde, eps)
        s_L2 = sigmas[-1] ** 2
        lr = self.step_lr if self.step_lr is not None else 0.2 * s_L2
        alphas = [lr * s * s / s_L2 for s in sigmas]
        T, L = self.n_steps_each, self.n_levels
        m = [float(sde.marginal(t)[0]) for t in times]
        rescale = [m[k // T] / m[k // T - 1] if k % T == 0 and k > 0 else 1.0 for k in range(L * T)]
        t_arr, a_arr, r_arr = ctx.times(times), ctx.times(alphas), ctx.times(rescale)

        def step(k, x, key):
            i = k // T
            x = r_arr[k] * x
            return langevin_step(model(x, ctx.batch_time(t_arr[i])), x, a_arr[i], ctx.normal(key))

        def finish(x, key):
            if not self.denoise:
                return x
            t = t_arr[L - 1]
            return sde.tweedie(x, t, ctx.batched(model)(x, t))

        # The state after step k is at level k // T's time; before any step, at the prior's T.
        grid = (sde.T,) + tuple(times[k // T] for k in range(L * T))
        return FixedProgram(grid, L * T + int(self.denoise), step, finish=finish)


@dataclass(frozen=True)
class Langevin(Sampler):
    """Langevin dynamics at one fixed time ``t`` (default: eps) with step ``step_size``:
    x_{k+1} = x_k + (ε/2) s_θ(x_k, t) + √ε z_k, for ``n_steps`` steps."""

    n_steps: int = option(1000, validation.steps)
    step_size: float = option(1e-3, validation.positive_float)
    t: float | None = option(None, validation.real, lo=0.0, lo_open=True)

    name = "langevin"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        t_val = eps if self.t is None else validation.time_in("t", self.t, sde.T, lo_open=True)
        t_arr = ctx.times([t_val])

        def step(k, x, key):
            return langevin_step(model(x, ctx.batch_time(t_arr[0])), x, self.step_size, ctx.normal(key))

        return FixedProgram((t_val,) * (self.n_steps + 1), self.n_steps, step)


__all__ = ["AnnealedLangevin", "Langevin", "langevin_step"]
