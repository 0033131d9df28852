"""The discrete noise scales of NCSN (Song & Ermon 2019) and NCSNv2's rules for choosing them
(Song & Ermon 2020, "Improved Techniques for Training Score-Based Generative Models").

These run once, on the host, before sampling or training; they return Python floats.
"""

from __future__ import annotations

import math

from . import validation as v
from ._arrays import namespace


def _levels(sigma_max, sigma_min) -> tuple[float, float]:
    sigma_min, sigma_max = v.ordered_range("sigma_min", sigma_min, "sigma_max", sigma_max)
    return sigma_max, sigma_min


def geometric_sigmas(sigma_max: float, sigma_min: float, L: int) -> list[float]:
    """σ_1 > σ_2 > … > σ_L, a geometric sequence: σ_i = σ_1 (σ_L/σ_1)^((i−1)/(L−1))."""
    L = v.integer("L", L, lo=2)
    sigma_max, sigma_min = _levels(sigma_max, sigma_min)
    ratio = math.log(sigma_min / sigma_max) / (L - 1)
    return [sigma_max * math.exp(i * ratio) for i in range(L)]


def max_pairwise_distance(x, chunk: int = 1024) -> float:
    """Technique 1: σ_1 = max_{i,j} ‖x_i − x_j‖ over the training data (n, ...)."""
    xp = namespace(x)
    x = xp.reshape(x, (x.shape[0], -1))
    best = 0.0
    for a in range(0, x.shape[0], chunk):
        xa = x[a : a + chunk]
        d2 = xp.sum((xa[:, None, :] - x[None, :, :]) ** 2, axis=2)
        best = max(best, float(xp.max(d2)))
    return math.sqrt(best)


def _phi(v: float) -> float:
    return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))


def _bisect(f, lo: float, hi: float, iters: int = 200) -> float:
    flo = f(lo)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


def ncsnv2_gamma(D: int) -> float:
    """Technique 2: the ratio γ = σ_{i−1}/σ_i > 1 solving
    Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ) = ½."""
    D = v.positive_int("D (data dimension)", D)
    c = math.sqrt(2.0 * D)
    if c <= 3.0:
        # The left side tends to 1 as γ → ∞ and exceeds ½ for every γ > 1 when √(2D) ≤ 3.
        raise ValueError(f"D must be ≥ 5 for technique 2 to have a root γ > 1, got D={D}")

    def f(g):
        return _phi(c * (g - 1) + 3 * g) - _phi(c * (g - 1) - 3 * g) - 0.5

    hi = 2.0
    while f(hi) > 0:
        hi *= 2.0
    return _bisect(f, 1.0, hi)


def ncsnv2_num_scales(sigma_max: float, sigma_min: float, D: int) -> int:
    """The number of levels L for which the geometric ratio is at most ``ncsnv2_gamma(D)``."""
    sigma_max, sigma_min = _levels(sigma_max, sigma_min)
    return max(2, 1 + math.ceil(math.log(sigma_max / sigma_min) / math.log(ncsnv2_gamma(D))))


def _technique4(eps: float, gamma: float, sigma_L: float, T: int) -> float:
    s2 = sigma_L * sigma_L
    q = 1.0 - eps / s2
    c = 2.0 * eps / (s2 - s2 * q * q)
    return q ** (2 * T) * (gamma * gamma - c) + c


def ncsnv2_step_size(gamma: float, sigma_L: float, T: int) -> float:
    """Technique 4: the step ε in (0, σ_L²) making
    (1 − ε/σ_L²)^{2T} (γ² − 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²)) + 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²) ≈ 1,
    so that T Langevin steps at each level carry the variance of level i−1 to that of level i."""
    gamma = v.real("gamma", gamma, lo=1.0, lo_open=True)
    T = v.positive_int("T (steps per level)", T)
    sigma_L = v.positive_float("sigma_L", sigma_L)
    s2 = sigma_L * sigma_L
    # The expression falls from γ² (ε → 0) towards ~1; take the root of expr = 1 in log ε,
    # or the minimiser of |expr − 1| if it never crosses.
    lo, hi = math.log(s2 * 1e-12), math.log(s2 * (1 - 1e-9))
    f = lambda le: _technique4(math.exp(le), gamma, sigma_L, T) - 1.0  # noqa: E731
    if f(hi) < 0:
        return math.exp(_bisect(f, lo, hi))
    h = (hi - lo) / 4000
    best = min((lo + h * i for i in range(4001)), key=lambda le: abs(f(le)))
    return math.exp(_golden_min(lambda le: abs(f(le)), max(lo, best - h), min(hi, best + h)))


def _golden_min(f, a: float, b: float, iters: int = 100) -> float:
    """The minimiser of a unimodal ``f`` on [a, b] by golden-section search."""
    r = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - r * (b - a), a + r * (b - a)
    for _ in range(iters):
        if f(c) < f(d):
            b, d = d, c
            c = b - r * (b - a)
        else:
            a, c = c, d
            d = a + r * (b - a)
    return 0.5 * (a + b)


__all__ = ["geometric_sigmas", "max_pairwise_distance", "ncsnv2_gamma", "ncsnv2_num_scales", "ncsnv2_step_size"]
