"""Score ↔ ε ↔ EDM denoiser ↔ NCSNv2 on the exact Gaussian mixture, against the oracle's
independent posterior means (Gaussian conditioning, not Tweedie's formula)."""

from __future__ import annotations

import numpy as np
import pytest
import scorecore_reference as ref
from hypothesis import given
from hypothesis import strategies as st

import scorecore as sc
from support import to_numpy
from scorecore.models import (denoiser_from_score, eps_from_score, score_from_denoiser, score_from_eps,
                              score_from_ncsn, time_of_sigma)

SDES = {"ve": (sc.VESDE, ref.VE), "vp": (sc.VPSDE, ref.VP), "subvp": (sc.SubVPSDE, ref.SubVP)}
ORACLE_RTOL = 1e-9   # two different float64 computations of one quantity
ROUND_TRIP_RTOL = 1e-12


def assert_rel(actual, expected, rel):
    scale = np.maximum(np.abs(expected), 1.0)
    np.testing.assert_array_less(np.abs(actual - expected) / scale, rel)


def case(seed, kind, t, D=3, K=3, n=5):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, D, D))
    w, mu, cov = rng.dirichlet(np.ones(K)), 2.0 * rng.standard_normal((K, D)), A @ np.swapaxes(A, 1, 2) / D + 0.1 * np.eye(D)
    core_sde, oracle_sde = SDES[kind][0](), SDES[kind][1]()
    m, s = float(oracle_sde.mean_coeff(t)), float(oracle_sde.std(t))
    x = m * rng.standard_normal((n, D)) * 2.0 + s * rng.standard_normal((n, D))
    return sc.GaussianMixture(w, mu, cov), ref.GaussianMixture(w, mu, cov), core_sde, oracle_sde, m, s, x


cases = dict(seed=st.integers(0, 10**6), kind=st.sampled_from(sorted(SDES)), t=st.floats(0.05, 1.0))


@given(**cases)
def test_exact_score_gives_the_exact_eps_and_denoiser(backend, seed, kind, t):
    core, oracle, sde, osde, m, s, x = case(seed, kind, t)
    X, T = backend.asarray(x), backend.asarray(np.full(len(x), t))
    x0_hat = oracle.posterior_mean_x0(x, m, s)  # E[x(0) | x(t)]
    eps = to_numpy(backend, eps_from_score(core.score_model(sde), sde)(X, T))
    assert_rel(eps, (x - m * x0_hat) / s, ORACLE_RTOL)  # E[z | x(t)]
    # EDM: D(y; σ) = E[x(0) | x(0) + σ n = y] at y = x/m, σ = s/m.
    D = denoiser_from_score(core.score_model(sde), sde)
    sigma = backend.asarray(np.full(len(x), s / m))
    assert_rel(to_numpy(backend, D(backend.asarray(x / m), sigma)), x0_hat, ORACLE_RTOL)


@given(**cases)
def test_exact_eps_and_denoiser_give_the_exact_score(backend, seed, kind, t):
    core, oracle, sde, osde, m, s, x = case(seed, kind, t)
    X, T = backend.asarray(x), backend.asarray(np.full(len(x), t))
    score = oracle.score_t(x, osde, t)

    def oracle_eps(xb, tb):
        return backend.asarray((x - m * oracle.posterior_mean_x0(to_numpy(backend, xb), m, s)) / s)

    def oracle_denoiser(yb, sigma):  # independent of t: the EDM denoiser knows only σ
        return backend.asarray(oracle.posterior_mean_x0(to_numpy(backend, yb), 1.0, to_numpy(backend, sigma)[0]))

    assert_rel(to_numpy(backend, score_from_eps(oracle_eps, sde)(X, T)), score, ORACLE_RTOL)
    assert_rel(to_numpy(backend, score_from_denoiser(oracle_denoiser, sde)(X, T)), score, ORACLE_RTOL)
    # NCSNv2: a network f = s · score, divided by s(t), is the score.
    ncsn = score_from_ncsn(lambda xb, tb: backend.asarray(s * score), sde)
    assert_rel(to_numpy(backend, ncsn(X, T)), score, ORACLE_RTOL)


@given(**cases)
def test_round_trips_are_exact_and_carry_the_divergence(backend, seed, kind, t):
    core, oracle, sde, osde, m, s, x = case(seed, kind, t)
    X = backend.asarray(x)
    T = backend.asarray(np.linspace(t, max(t - 0.04, 0.01), len(x)))  # per-sample times
    exact = core.score_model(sde)
    score, div = to_numpy(backend, exact(X, T)), to_numpy(backend, exact.divergence(X, T))
    via_eps = score_from_eps(eps_from_score(exact, sde), sde)
    assert via_eps.event_shape == (3,)
    assert_rel(to_numpy(backend, via_eps(X, T)), score, ROUND_TRIP_RTOL)
    assert_rel(to_numpy(backend, via_eps.divergence(X, T)), div, ROUND_TRIP_RTOL)
    # Through the denoiser, score = (m D − x)/s² cancels terms of size |x|/s²: that, not
    # |score|, sets the scale of an exact float64 round trip (measured ≤ 2e-14 of it).
    s2 = to_numpy(backend, sde.marginal(T)[1]) ** 2
    via_d = score_from_denoiser(denoiser_from_score(exact, sde), sde)
    assert via_d.event_shape == (3,)
    err = np.abs(to_numpy(backend, via_d(X, T)) - score)
    np.testing.assert_array_less(err, ROUND_TRIP_RTOL * (np.abs(score) + np.abs(x) / s2[:, None]))
    err = np.abs(to_numpy(backend, via_d.divergence(X, T)) - div)  # ∇·: (∇·D − d)/s²
    np.testing.assert_array_less(err, ROUND_TRIP_RTOL * (np.abs(div) + 3 / s2))
    eps = eps_from_score(exact, sde)
    assert_rel(to_numpy(backend, eps_from_score(score_from_eps(eps, sde), sde)(X, T)),
               to_numpy(backend, eps(X, T)), ROUND_TRIP_RTOL)


def test_time_of_sigma_inverts_sigma_of_t(backend):
    t = backend.asarray(np.linspace(0.01, 1.0, 50))
    for make, _ in SDES.values():
        sde = make()
        m, s = sde.marginal(t)
        assert_rel(to_numpy(backend, time_of_sigma(sde, s / m)), to_numpy(backend, t), 1e-12)


def test_jvp_vjp_pass_through_and_absence_is_visible(backend):
    net = sc.models.MLP(dim=2, hidden=6)
    inner = net.bind(net.init(backend, seed=1))
    sde = sc.VPSDE()
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    X, V, T = backend.asarray(x), backend.asarray(v), backend.asarray(np.full(4, 0.4))
    model = score_from_denoiser(inner, sde)
    m, s = (to_numpy(backend, a)[0] for a in sde.marginal(T))
    # score = (m D(x/m) − x)/s²: jvp = (J_D v − v)/s², vjp likewise (J_D at x/m).
    jd = to_numpy(backend, inner.jvp(backend.asarray(x / m), s / m, V))
    assert_rel(to_numpy(backend, model.jvp(X, T, V)), (jd - v) / s**2, 1e-12)
    vd = to_numpy(backend, inner.vjp(backend.asarray(x / m), s / m, V))
    assert_rel(to_numpy(backend, model.vjp(X, T, V)), (vd - v) / s**2, 1e-12)
    bare = score_from_eps(lambda x, t: x, sde)
    assert not hasattr(bare, "divergence") and not hasattr(bare, "jvp") and not hasattr(bare, "event_shape")


def test_bad_input():
    with pytest.raises(TypeError, match="sde must be"):
        score_from_eps(lambda x, t: x, object())
    with pytest.raises(TypeError, match="model must be callable"):
        score_from_eps(3.0, sc.VPSDE())

    class Other(sc.SDE):
        def marginal(self, t):
            return t, t

    with pytest.raises(TypeError, match="VESDE, VPSDE or SubVPSDE"):
        time_of_sigma(Other(), np.ones(2))
