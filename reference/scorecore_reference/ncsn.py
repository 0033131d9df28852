"""NCSNv2 noise-schedule heuristics (Song & Ermon 2020, "Improved techniques")."""
import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.spatial.distance import pdist
from scipy.stats import norm


def gamma_equation(gamma, D):
    """Phi(sqrt(2D)(gamma-1) + 3 gamma) - Phi(sqrt(2D)(gamma-1) - 3 gamma) - 1/2 (root = gamma_ratio)."""
    c = np.sqrt(2.0 * D) * (gamma - 1.0)
    return norm.cdf(c + 3.0 * gamma) - norm.cdf(c - 3.0 * gamma) - 0.5


def gamma_ratio(D):
    """The ratio gamma = sigma_{i-1}/sigma_i > 1 solving
    Phi(sqrt(2D)(gamma-1) + 3 gamma) - Phi(sqrt(2D)(gamma-1) - 3 gamma) = 1/2 (Technique 2).

    At gamma = 1 the left side is Phi(3) - Phi(-3) > 1/2; it only drops below 1/2 for large
    gamma when sqrt(2D) > 3, so small D (D <= 4) has no root and raises ValueError.
    """
    D = float(D)
    if np.sqrt(2.0 * D) <= 3.0:
        raise ValueError(f"no gamma > 1 solves the NCSNv2 equation for D={D}")
    hi = 2.0
    while gamma_equation(hi, D) > 0.0:
        hi *= 2.0
        if hi > 1e12:
            raise ValueError("could not bracket the gamma root")
    return brentq(gamma_equation, 1.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, args=(D,))


def step_size_objective(eps, gamma, sigma_L, T):
    """(1 - eps/sigma_L^2)^{2T} (gamma^2 - 2 eps / (sigma_L^2 - sigma_L^2 (1 - eps/sigma_L^2)^2))
    + 2 eps / (sigma_L^2 - sigma_L^2 (1 - eps/sigma_L^2)^2)   (Technique 4; target value 1)."""
    s2 = sigma_L ** 2
    u = eps / s2
    # sigma^2 - sigma^2 (1 - u)^2 = sigma^2 u (2 - u), written factored to avoid cancellation at small eps.
    frac = 2.0 * eps / (s2 * u * (2.0 - u))
    return (1.0 - u) ** (2 * T) * (gamma ** 2 - frac) + frac


def step_size(gamma, sigma_L, T):
    """eps in (0, sigma_L^2) making step_size_objective(eps) closest to 1.

    A log-spaced grid locates the best basin; a bounded minimize_scalar of
    |objective - 1| between the neighbouring grid points refines it.
    """
    s2 = sigma_L ** 2
    u_grid = np.concatenate([np.logspace(-14, -1e-12, 4000), 1.0 - np.logspace(-1, -12, 1000)])
    u_grid = np.unique(u_grid[(u_grid > 0) & (u_grid < 1)])
    err = np.abs(step_size_objective(u_grid * s2, gamma, sigma_L, T) - 1.0)
    i = int(np.argmin(err))
    lo, hi = u_grid[max(i - 1, 0)], u_grid[min(i + 1, u_grid.size - 1)]
    res = minimize_scalar(lambda u: abs(step_size_objective(u * s2, gamma, sigma_L, T) - 1.0),
                          bounds=(lo, hi), method="bounded", options={"xatol": 1e-16 + 1e-12 * hi})
    u = res.x if res.fun <= err[i] else u_grid[i]
    return float(u * s2)


def max_pairwise_distance(x):
    """max_{i<j} ||x_i - x_j||_2 over the flattened samples (Technique 1: sigma_1)."""
    x = np.asarray(x, dtype=np.float64)
    return float(pdist(x.reshape(x.shape[0], -1)).max())
