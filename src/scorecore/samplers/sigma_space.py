"""The noise-level view of an SDE that the fast samplers work in, and their step schedules.

Under a linear SDE the kernel is x(t) = m(t) (x(0) + σ(t) n) with σ(t) = s(t)/m(t), so
x̂ = x/m follows the variance-exploding flow of Karras et al. (2022) in σ, and
λ(t) = log(m/s) = −log σ is the half log-SNR of DPM-Solver (Lu et al. 2022). The
denoiser of x̂ at level σ is D(x̂; σ) = x̂ + σ² m s_θ(m x̂, t) (the score of x̂ is m times
the score of x), which is Tweedie's E[x(0) | x(t)] = (x + s² s_θ(x, t))/m.

Everything here runs once on the host and returns Python floats.
"""

from __future__ import annotations

import math

from ..sde import SDE

#: The step schedules: names -> how the N+1 points from t_max to t_min are spaced.
SCHEDULES = ("karras", "uniform", "logsnr")


def sigma_of_time(sde: SDE, t: float) -> float:
    """σ(t) = s(t)/m(t) at a host time, as a Python float (:meth:`SDE.sigma_of_time`)."""
    return sde.sigma_of_time(float(t))


def time_of_sigma(sde: SDE, sigma: float) -> float:
    """The inverse of σ(t) = s(t)/m(t) at a host level, as a Python float (:meth:`SDE.time_of_sigma`)."""
    return sde.time_of_sigma(float(sigma))


def karras_sigmas(sigma_max: float, sigma_min: float, n: int, rho: float = 7.0) -> list[float]:
    """σ_i = (σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0..n−1 (Karras et al. 2022, eq. 5)."""
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sig = [(a + i / (n - 1) * (b - a)) ** rho for i in range(n)]
    sig[0], sig[-1] = sigma_max, sigma_min  # exact ends: the first level must be the prior's
    return sig


def time_steps(sde: SDE, schedule: str, n: int, t_max: float, t_min: float, rho: float = 7.0) -> list[float]:
    """n ≥ 2 decreasing times t_0 = t_max > … > t_{n−1} = t_min.

    ``"karras"``: σ(t_i) ρ-spaced; ``"uniform"``: t_i linear in i; ``"logsnr"``: λ(t_i)
    linear in i (σ geometric).
    """
    check_schedule(schedule)
    if not 0.0 < t_min < t_max:
        raise ValueError(f"times must satisfy 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if schedule == "uniform":
        ts = [t_max + i / (n - 1) * (t_min - t_max) for i in range(n)]
    else:
        s_max, s_min = sigma_of_time(sde, t_max), sigma_of_time(sde, t_min)
        if schedule == "karras":
            sig = karras_sigmas(s_max, s_min, n, rho)
        else:
            r = math.log(s_min / s_max) / (n - 1)
            sig = [s_max * math.exp(i * r) for i in range(n)]
        ts = [time_of_sigma(sde, s) for s in sig]
    ts[0], ts[-1] = t_max, t_min
    return ts


def check_schedule(schedule) -> str:
    """``schedule`` if it names one of :data:`SCHEDULES`, else a ValueError."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    return schedule
