"""The perturbation kernel p_0t(x(t) | x(0)) = N(x(t); m x(0), s^2 I) of a linear SDE."""
import numpy as np


def _expand_to(coef, x):
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim == 0:
        return coef
    return coef.reshape(coef.shape + (1,) * (x.ndim - coef.ndim))


def kernel_log_prob(xt, x0, m, s):
    """log N(x_t; m x_0, s^2 I), summed over the non-batch dims of x_t (n, ...).

    m, s: scalars or per-sample arrays (n,).
    """
    xt = np.asarray(xt, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    m_b, s_b = _expand_to(m, xt), _expand_to(s, xt)
    elementwise = -0.5 * np.log(2.0 * np.pi * s_b ** 2) - 0.5 * ((xt - m_b * x0) / s_b) ** 2
    return elementwise.reshape(xt.shape[0], -1).sum(axis=1)


def kernel_score(xt, x0, m, s):
    """grad_{x_t} log p_0t(x_t | x_0) = -(x_t - m x_0) / s^2 (the DSM regression target)."""
    xt = np.asarray(xt, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    m_b, s_b = _expand_to(m, xt), _expand_to(s, xt)
    return -(xt - m_b * x0) / s_b ** 2
