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

from .. import validation
from ..sde import SDE

#: The step schedules: names -> how the N+1 points from t_max to t_min are spaced (see
#: :func:`sigma_steps`). ``"exponential"`` is k-diffusion's name for ``"logsnr"``.
SCHEDULES = ("karras", "uniform", "logsnr", "exponential", "polyexponential", "vp")

#: β_d = β_max − β_min and β_min of the VP-continuous σ spacing (Song et al. 2021's VP SDE).
VP_BETA_D, VP_BETA_MIN = 19.9, 0.1


def sigma_of_time(sde: SDE, t: float) -> float:
    """σ(t) = s(t)/m(t) at a host time, as a Python float (:meth:`SDE.sigma_of_time`)."""
    return sde.sigma_of_time(float(t))


def time_of_sigma(sde: SDE, sigma: float) -> float:
    """The inverse of σ(t) = s(t)/m(t) at a host level, as a Python float (:meth:`SDE.time_of_sigma`)."""
    return sde.time_of_sigma(float(sigma))


def sigma_range(sde: SDE, eps: float, sigma_min: float | None, sigma_max: float | None) -> tuple[float, float]:
    """(σ_max, σ_min) of a σ-space sampler: defaults σ(T) and σ(eps); σ_max may not exceed σ(T),
    where the prior sample lives, and σ_min must lie below σ_max."""
    top = sigma_of_time(sde, sde.T)
    s_max = top if sigma_max is None else sigma_max
    s_min = sigma_of_time(sde, eps) if sigma_min is None else sigma_min
    validation.real("sigma_max (at most σ(T) = s(T)/m(T))", s_max, hi=top * (1 + 1e-12))
    validation.ordered("sigma_min", s_min, "sigma_max", s_max)
    return s_max, s_min


def karras_sigmas(sigma_max: float, sigma_min: float, n: int, rho: float = 7.0) -> list[float]:
    """σ_i = (σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0..n−1 (Karras et al. 2022, eq. 5)."""
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sig = [(a + i / (n - 1) * (b - a)) ** rho for i in range(n)]
    sig[0], sig[-1] = sigma_max, sigma_min  # exact ends: the first level must be the prior's
    return sig


def exponential_sigmas(sigma_max: float, sigma_min: float, n: int) -> list[float]:
    """σ_i = exp(log σ_max + i/(n−1) (log σ_min − log σ_max)): λ = −log σ uniform."""
    r = math.log(sigma_min / sigma_max) / (n - 1)
    sig = [sigma_max * math.exp(i * r) for i in range(n)]
    sig[0], sig[-1] = sigma_max, sigma_min
    return sig


def polyexponential_sigmas(sigma_max: float, sigma_min: float, n: int, rho: float = 1.0) -> list[float]:
    """σ_i = exp(log σ_min + (1 − i/(n−1))^ρ (log σ_max − log σ_min)): log σ a polynomial in i
    (k-diffusion's ``get_sigmas_polyexponential``); ρ = 1 is :func:`exponential_sigmas`."""
    lo, span = math.log(sigma_min), math.log(sigma_max / sigma_min)
    sig = [math.exp(lo + (1 - i / (n - 1)) ** rho * span) for i in range(n)]
    sig[0], sig[-1] = sigma_max, sigma_min
    return sig


def vp_sigma(u: float, beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN) -> float:
    """σ(u) = √(exp(β_d u²/2 + β_min u) − 1): σ = s/m of the VP SDE with β(u) = β_min + β_d u."""
    return math.sqrt(math.expm1(0.5 * beta_d * u * u + beta_min * u))


def vp_time(sigma: float, beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN) -> float:
    """The inverse of :func:`vp_sigma`: u solving β_d u²/2 + β_min u = log(1 + σ²)."""
    b = math.log1p(sigma * sigma)
    return 2 * b / (beta_min + math.sqrt(beta_min * beta_min + 2 * beta_d * b))  # no cancellation at small σ


def vp_sigmas(sigma_max: float, sigma_min: float, n: int, beta_d: float = VP_BETA_D,
              beta_min: float = VP_BETA_MIN) -> list[float]:
    """σ_i = vp_sigma(u_i), u_i uniform from vp_time(σ_max) to vp_time(σ_min): the spacing of
    uniform time steps of the VP-continuous SDE, on any σ range. k-diffusion's
    ``get_sigmas_vp(n, β_d, β_min, ε_s)`` is σ_max = vp_sigma(1), σ_min = vp_sigma(ε_s)."""
    a, b = vp_time(sigma_max, beta_d, beta_min), vp_time(sigma_min, beta_d, beta_min)
    sig = [vp_sigma(a + i / (n - 1) * (b - a), beta_d, beta_min) for i in range(n)]
    sig[0], sig[-1] = sigma_max, sigma_min
    return sig


def sigma_steps(sde: SDE, schedule: str, n: int, sigma_max: float, sigma_min: float, rho: float = 7.0) -> list[float]:
    """n ≥ 2 decreasing levels σ_0 = σ_max > … > σ_{n−1} = σ_min spaced by ``schedule``:

    ``"karras"``: σ^{1/ρ} linear (:func:`karras_sigmas`); ``"logsnr"`` = ``"exponential"``:
    λ = −log σ linear; ``"polyexponential"``: log σ polynomial of degree ρ in i;
    ``"vp"``: the VP-continuous spacing (:func:`vp_sigmas`); ``"uniform"``: σ(t_i) at t_i
    linear between the times of σ_max and σ_min of ``sde``.
    """
    check_schedule(schedule)
    validation.integer("the number of levels of a schedule", n, lo=2)
    validation.ordered_range("sigma_min", sigma_min, "sigma_max", sigma_max)
    if schedule == "karras":
        return karras_sigmas(sigma_max, sigma_min, n, rho)
    if schedule in ("logsnr", "exponential"):
        return exponential_sigmas(sigma_max, sigma_min, n)
    if schedule == "polyexponential":
        return polyexponential_sigmas(sigma_max, sigma_min, n, rho)
    if schedule == "vp":
        return vp_sigmas(sigma_max, sigma_min, n)
    t_max, t_min = time_of_sigma(sde, sigma_max), time_of_sigma(sde, sigma_min)
    sig = [sigma_of_time(sde, t_max + i / (n - 1) * (t_min - t_max)) for i in range(n)]
    sig[0], sig[-1] = sigma_max, sigma_min
    return sig


def time_steps(sde: SDE, schedule: str, n: int, t_max: float, t_min: float, rho: float = 7.0) -> list[float]:
    """n ≥ 2 decreasing times t_0 = t_max > … > t_{n−1} = t_min.

    ``"uniform"``: t_i linear in i; every other schedule spaces σ(t_i) as :func:`sigma_steps`
    does (``"karras"``: ρ-spaced, ``"logsnr"``: λ(t_i) linear in i, σ geometric, ...).
    """
    check_schedule(schedule)
    validation.ordered_range("t_min", t_min, "t_max", t_max)
    if schedule == "uniform":
        ts = [t_max + i / (n - 1) * (t_min - t_max) for i in range(n)]
    else:
        sig = sigma_steps(sde, schedule, n, sigma_of_time(sde, t_max), sigma_of_time(sde, t_min), rho)
        ts = [time_of_sigma(sde, s) for s in sig]
    ts[0], ts[-1] = t_max, t_min
    return ts


def check_schedule(schedule) -> str:
    """``schedule`` if it names one of :data:`SCHEDULES`, else a ValueError."""
    return validation.choice("schedule", schedule, SCHEDULES)


__all__ = [
    "SCHEDULES", "check_schedule", "exponential_sigmas", "karras_sigmas", "polyexponential_sigmas",
    "sigma_of_time", "sigma_range", "sigma_steps", "time_of_sigma", "time_steps", "vp_sigma", "vp_sigmas",
    "vp_time",
]
