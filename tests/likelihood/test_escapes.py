"""A score that is wrong far from the data cannot produce a silent absurd or non-finite
log-likelihood: the sample is flagged with its status (ESCAPED / NONFINITE) in ``info``, NaN,
and left out of ``bits_per_dim``'s mean with a warning and a count."""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

import scorecore as sc
from scorecore.samplers import status as codes


class WrongFarAway:
    """The score of N(0, I) (which VP keeps stationary: the flow is zero) inside q = mean(x²) ≤ 1,
    and k = 1 + c times it outside: s = −k x. There the forward flow dx/dt = ½β c x pushes
    outward, by exp(½c∫β dt) = e²⁰ for c = 4 — the MLP's failure mode on the digits (a score far
    too confident off the data): a finite, absurd log-density. ``nan``: NaN outside instead."""

    def __init__(self, c=4.0, nan=False):
        self.c, self.nan = c, nan

    def _k(self, x):
        out = np.mean(x * x, axis=1, keepdims=True) > 1.0
        return out, np.where(out, 1.0 + self.c, 1.0)

    def __call__(self, x, t):
        out, k = self._k(x)
        return np.where(out, np.nan, -k * x) if self.nan else -k * x

    def divergence(self, x, t):
        out, k = self._k(x)
        div = -x.shape[1] * k[:, 0]
        return np.where(out[:, 0], np.nan, div) if self.nan else div


X = np.array([[0.1, -0.2], [2.0, 2.0], [0.5, 0.3]])


def test_an_escaping_trajectory_is_flagged_not_averaged():
    sde = sc.VPSDE()
    logp, info = sc.log_likelihood(WrongFarAway(), sde, X, return_info=True)
    status = np.asarray(info.status)
    np.testing.assert_array_equal(status, [codes.CONVERGED, codes.ESCAPED, codes.CONVERGED])
    assert np.isnan(logp[1]) and not info.converged
    # The others are exact: the flow is zero, so log p = log N(x; 0, I).
    exact = -0.5 * np.sum(X ** 2, axis=1) - math.log(2 * math.pi)
    np.testing.assert_allclose(logp[[0, 2]], exact[[0, 2]], atol=1e-8)
    # Frozen at the bound R = 10 (max|x(eps)| + 1) = 30, not run off to overflow.
    z = np.asarray(info.z)
    assert np.all(np.isnan(z[1]))
    with pytest.raises(codes.EscapedError, match=r"1 of 3 samples left the data region \(the first: sample 1"):
        sc.log_likelihood(WrongFarAway(), sde, X)
    # Without the bound the same trajectory is the silent absurd number this guards against:
    # x(T) ≈ 2e⁴⁰, a finite log-density of about −1e17 nats.
    off, off_info = sc.log_likelihood(WrongFarAway(), sde, X, escape_factor=float("inf"), return_info=True)
    assert off_info.converged and np.isfinite(off[1]) and off[1] < -1e15


@pytest.mark.parametrize("nan", [False, True], ids=["escapes", "non-finite"])
def test_bits_per_dim_counts_flagged_samples_and_leaves_them_out_of_the_mean(nan):
    sde = sc.VPSDE()
    # In [−4, 4) with K = 16 levels 7 and 8 dequantize into [−0.5, 0.5) (q < 1, the model's
    # right region) and level 15 into [3.5, 4) (q > 1).
    levels = np.array([[8, 7], [15, 15], [8, 8], [7, 7]])
    with pytest.warns(RuntimeWarning, match=r"1 of 4 samples have no log-density"):
        res = sc.bits_per_dim(WrongFarAway(nan=nan), sde, levels, n_levels=16, data_range=(-4.0, 4.0), n_dequant=2)
    want = codes.NONFINITE if nan else codes.ESCAPED
    assert res.n_flagged == 1 and res.flagged.tolist() == [False, True, False, False]
    np.testing.assert_array_equal(res.status[:, 1], want)
    assert res.status_counts == {codes.STATUS_MESSAGES[codes.CONVERGED]: 6, codes.STATUS_MESSAGES[want]: 2}
    assert np.all(np.isnan(res.per_draw[:, 1])) and np.all(np.isfinite(res.per_draw[:, [0, 2, 3]]))
    assert res.mean == pytest.approx(np.mean(res.per_draw[:, [0, 2, 3]]), rel=1e-12)
    assert math.isfinite(res.stderr) and math.isfinite(res.median)


class WrongFarAwayAPI(WrongFarAway):
    """The same score and divergence in Array API form (any backend)."""

    def _k(self, x):
        xp = array_api_compat.array_namespace(x)
        out = xp.mean(x * x, axis=1, keepdims=True) > 1.0
        return out, xp.where(out, 1.0 + self.c, 1.0)

    def __call__(self, x, t):
        return -self._k(x)[1] * x

    def divergence(self, x, t):
        return -x.shape[1] * self._k(x)[1][:, 0]


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_an_escape_is_flagged_whether_the_solver_ends_the_row_or_the_flow_freezes_it(backend, method):
    # An adaptive solve on an eager backend ends a row at its first accepted state beyond the
    # bound (the solver's event); a fixed-step one freezes the row there (its derivative is zero).
    be = sc.get_backend(backend)
    logp, info = sc.log_likelihood(WrongFarAwayAPI(), sc.VPSDE(), be.asarray(X, dtype=be.xp.float64), backend=be,
                                   method=method, return_info=True)
    np.testing.assert_array_equal(be.to_numpy(info.status), [codes.CONVERGED, codes.ESCAPED, codes.CONVERGED])
    logp = be.to_numpy(logp)
    exact = -0.5 * np.sum(X ** 2, axis=1) - math.log(2 * math.pi)
    np.testing.assert_allclose(logp[[0, 2]], exact[[0, 2]], atol=1e-8)
    assert np.isnan(logp[1]) and np.all(np.isnan(be.to_numpy(info.z)[1]))
