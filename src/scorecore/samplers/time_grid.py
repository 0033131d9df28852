"""The options of the samplers that step in t over a host grid T = t_0 > … > t_N = eps
(DDIM, DPM-Solver++(2M)): N, the grid's spacing or explicit times, and the final denoising."""

from __future__ import annotations

from dataclasses import dataclass

from .. import validation
from ..validation import option
from .base import Sampler
from .sigma_grid import explicit_levels
from .sigma_space import SCHEDULES, time_steps


@dataclass(frozen=True)
class TimeGridSampler(Sampler):
    """Options every time-grid sampler shares.

    Parameters
    ----------
    n_steps:
        N, the number of steps (N + 1 times from T to eps).
    schedule, rho:
        The spacing of the times (:func:`.sigma_space.time_steps`): ``"uniform"`` in t,
        ``"karras"`` (σ(t) ρ-spaced) or ``"logsnr"`` (λ uniform, σ geometric), ….
    denoise:
        Finish with Tweedie's step at eps (one more score evaluation).
    times:
        Explicit times T ≥ t_0 > … > t_N > 0 instead of a schedule (N = len − 1; the run ends,
        and ``denoise`` denoises, at t_N).
    """

    n_steps: int = option(20, validation.steps)
    schedule: str = option("logsnr", validation.choice, choices=SCHEDULES)
    rho: float = option(7.0, validation.positive_float)
    denoise: bool = option(False, validation.boolean)
    times: tuple | None = None

    def __post_init__(self):
        super().__post_init__()
        explicit_levels(self, "times", end_at_zero=False)

    def time_grid(self, sde, eps: float) -> list[float]:
        """t_0 = T > … > t_N = eps (or the explicit ``times``, checked against T)."""
        if self.times is not None:
            return list(validation.decreasing("times", self.times, hi=sde.T, end_at_zero=False))
        return time_steps(sde, self.schedule, self.n_steps + 1, sde.T, eps, self.rho)


__all__ = ["TimeGridSampler"]
