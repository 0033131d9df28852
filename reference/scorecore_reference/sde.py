"""Closed-form coefficients of the VE, VP and sub-VP SDEs (Song et al. 2021).

All three are linear SDEs on t in [0, T], T = 1, run forward from data at t = 0:

    dx = a(t) x dt + g(t) dw,

so the transition kernel p_0t(x(t) | x(0)) = N(m(t) x(0), s(t)^2 I) is known in
closed form.  Every coefficient accepts a scalar t or an array of times; methods
taking ``x`` broadcast a time array of shape (n,) over the non-batch dims of x.
"""
import numpy as np
from scipy.integrate import solve_ivp

T_END = 1.0


def _as_time(t):
    return np.asarray(t, dtype=np.float64)


def _expand_to(coef, x):
    """Reshape a per-sample coefficient (n,) so it multiplies x of shape (n, ...)."""
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim == 0:
        return coef
    return coef.reshape(coef.shape + (1,) * (np.ndim(x) - coef.ndim))


class _LinearSDE:
    """Shared plumbing: drift f(x, t) = a(t) x and a Gaussian prior N(0, prior_std^2 I)."""

    T = T_END
    prior_std = 1.0

    def linear_drift_coeff(self, t):
        """a(t) in f(x, t) = a(t) x."""
        raise NotImplementedError

    def drift(self, x, t):
        """f(x, t) = a(t) x."""
        x = np.asarray(x, dtype=np.float64)
        return _expand_to(self.linear_drift_coeff(t), x) * x

    def prior_log_prob(self, z):
        """log N(z; 0, prior_std^2 I), summed over every non-batch dim of z (n, ...)."""
        z = np.asarray(z, dtype=np.float64)
        s2 = self.prior_std ** 2
        elementwise = -0.5 * np.log(2.0 * np.pi * s2) - 0.5 * z ** 2 / s2
        return elementwise.reshape(z.shape[0], -1).sum(axis=1)

    def prior_sample(self, shape, rng):
        """z ~ N(0, prior_std^2 I) of the given shape."""
        return self.prior_std * rng.standard_normal(shape)


class VE(_LinearSDE):
    """Variance-exploding SDE (SMLD / NCSN limit).

    sigma(t) = sigma_min (sigma_max / sigma_min)^t,   f(x, t) = 0,
    g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min)),
    m(t) = 1,   s(t) = sqrt(sigma(t)^2 - sigma_min^2),   prior N(0, sigma_max^2 I).
    """

    def __init__(self, sigma_min=0.01, sigma_max=50.0):
        if not 0.0 < sigma_min < sigma_max:
            raise ValueError("VE needs 0 < sigma_min < sigma_max")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.prior_std = self.sigma_max

    def sigma(self, t):
        """sigma(t) = sigma_min (sigma_max / sigma_min)^t."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** _as_time(t)

    def linear_drift_coeff(self, t):
        """a(t) = 0."""
        return np.zeros_like(_as_time(t))

    def diffusion(self, t):
        """g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min)), i.e. g^2 = d sigma^2 / dt."""
        return self.sigma(t) * np.sqrt(2.0 * np.log(self.sigma_max / self.sigma_min))

    def mean_coeff(self, t):
        """m(t) = 1."""
        return np.ones_like(_as_time(t))

    def std(self, t):
        """s(t) = sqrt(sigma(t)^2 - sigma_min^2): the exact variance accrued since t = 0."""
        return np.sqrt(self.sigma(t) ** 2 - self.sigma_min ** 2)


class VP(_LinearSDE):
    """Variance-preserving SDE (DDPM limit).

    beta(t) = beta_min + t (beta_max - beta_min),   f(x, t) = -1/2 beta(t) x,
    g(t) = sqrt(beta(t)),
    m(t) = exp(-1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min) = exp(-1/2 int_0^t beta),
    s(t) = sqrt(1 - m(t)^2),   prior N(0, I).
    """

    def __init__(self, beta_min=0.1, beta_max=20.0):
        if not 0.0 <= beta_min <= beta_max or beta_max <= 0.0:
            raise ValueError("VP needs 0 <= beta_min <= beta_max, beta_max > 0")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.prior_std = 1.0

    def beta(self, t):
        """beta(t) = beta_min + t (beta_max - beta_min)."""
        return self.beta_min + _as_time(t) * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        """int_0^t beta(u) du = beta_min t + 1/2 t^2 (beta_max - beta_min)."""
        t = _as_time(t)
        return self.beta_min * t + 0.5 * t ** 2 * (self.beta_max - self.beta_min)

    def linear_drift_coeff(self, t):
        """a(t) = -1/2 beta(t)."""
        return -0.5 * self.beta(t)

    def diffusion(self, t):
        """g(t) = sqrt(beta(t))."""
        return np.sqrt(self.beta(t))

    def mean_coeff(self, t):
        """m(t) = exp(-1/2 int_0^t beta)."""
        return np.exp(-0.5 * self.integrated_beta(t))

    def std(self, t):
        """s(t) = sqrt(1 - m(t)^2) = sqrt(1 - exp(-int_0^t beta))."""
        # -expm1 keeps s accurate for tiny t where 1 - m^2 would cancel.
        return np.sqrt(-np.expm1(-self.integrated_beta(t)))


class SubVP(VP):
    """Sub-VP SDE.

    Same beta(t) and f(x, t) = -1/2 beta(t) x as VP;
    g(t) = sqrt(beta(t) (1 - exp(-2 int_0^t beta))),
    m(t) as VP,   s(t) = 1 - exp(-int_0^t beta) = 1 - m(t)^2,   prior N(0, I).
    """

    def diffusion(self, t):
        """g(t) = sqrt(beta(t) (1 - exp(-2 int_0^t beta)))."""
        return np.sqrt(self.beta(t) * -np.expm1(-2.0 * self.integrated_beta(t)))

    def std(self, t):
        """s(t) = 1 - exp(-int_0^t beta)."""
        return -np.expm1(-self.integrated_beta(t))


def moments_by_ode(sde, t, n_steps=100):
    """Integrate the forward moment ODEs of dx = a(t) x dt + g(t) dw numerically.

    m'(t) = a(t) m(t),          m(0) = 1,
    v'(t) = 2 a(t) v(t) + g(t)^2, v(0) = 0,

    with scipy.integrate.solve_ivp (DOP853, rtol 1e-12).  ``n_steps`` caps the step
    size at t / n_steps so the solver cannot skip over the coefficients' variation.
    Returns (m(t), sqrt(v(t))); t may be a scalar or an array (solved per entry).
    """
    t_arr = _as_time(t)
    if t_arr.ndim > 0:
        pairs = [moments_by_ode(sde, ti, n_steps) for ti in t_arr.ravel()]
        m = np.array([p[0] for p in pairs]).reshape(t_arr.shape)
        s = np.array([p[1] for p in pairs]).reshape(t_arr.shape)
        return m, s
    t_end = float(t_arr)
    if t_end == 0.0:
        return 1.0, 0.0

    def rhs(u, y):
        a = float(sde.linear_drift_coeff(u))
        g = float(sde.diffusion(u))
        return [a * y[0], 2.0 * a * y[1] + g * g]

    sol = solve_ivp(rhs, (0.0, t_end), [1.0, 0.0], method="DOP853",
                    rtol=1e-12, atol=1e-14, max_step=t_end / max(int(n_steps), 1))
    if not sol.success:
        raise RuntimeError(f"moment ODE failed: {sol.message}")
    m, v = sol.y[:, -1]
    return float(m), float(np.sqrt(max(v, 0.0)))
