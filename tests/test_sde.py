"""SDE coefficients and kernels against the oracle's closed forms and the moment ODEs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scorecore_reference as ref
from hypothesis import given
from hypothesis import strategies as st

import scorecore as sc
from support import to_numpy

times = st.floats(0.0, 1.0)
ve_params = st.tuples(st.floats(1e-3, 1.0), st.floats(2.0, 100.0))
vp_params = st.tuples(st.floats(0.0, 1.0), st.floats(1.5, 30.0))


def pairs(kind, a, b):
    if kind == "ve":
        return sc.VESDE(sigma_min=a, sigma_max=b), ref.VE(sigma_min=a, sigma_max=b)
    if kind == "vp":
        return sc.VPSDE(beta_min=a, beta_max=b), ref.VP(beta_min=a, beta_max=b)
    return sc.SubVPSDE(beta_min=a, beta_max=b), ref.SubVP(beta_min=a, beta_max=b)


@given(kind=st.sampled_from(["ve", "vp", "subvp"]), params=st.data(), t=st.floats(0.01, 1.0))
def test_kernel_matches_forward_moment_ode(kind, params, t):
    a, b = params.draw(ve_params if kind == "ve" else vp_params)
    core, oracle = pairs(kind, a, b)
    m_ode, s_ode = ref.moments_by_ode(oracle, t)
    m, s = core.marginal(t)
    assert float(m) == pytest.approx(float(m_ode), rel=1e-7)
    assert float(s) == pytest.approx(float(s_ode), rel=1e-6)


@given(kind=st.sampled_from(["ve", "vp", "subvp"]), params=st.data(), t=times)
def test_coefficients_match_closed_forms(kind, params, t):
    a, b = params.draw(ve_params if kind == "ve" else vp_params)
    core, oracle = pairs(kind, a, b)
    x = np.linspace(-2.0, 2.0, 6).reshape(3, 2)
    assert float(core.diffusion(t)) == pytest.approx(float(oracle.diffusion(t)), rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(core.drift(x, t), oracle.drift(x, t), rtol=1e-12, atol=1e-300)
    m, s = core.marginal(t)
    assert float(m) == pytest.approx(float(oracle.mean_coeff(t)), rel=1e-12)
    # The oracle's √(σ² − σ_min²) cancels for t → 0 (an absolute error ~ 1e-8 σ_min);
    # the core's expm1 form does not.
    assert float(s) == pytest.approx(float(oracle.std(t)), rel=1e-10, abs=1e-7 * (a if kind == "ve" else 1e-8))


@given(t=times, params=vp_params)
def test_vp_preserves_unit_variance_and_subvp_is_below(t, params):
    vp, sub = sc.VPSDE(*params), sc.SubVPSDE(*params)
    m, s = vp.marginal(t)
    assert float(m**2 + s**2) == pytest.approx(1.0, rel=1e-12)
    assert float(sub.marginal(t)[1]) <= float(s) * (1 + 1e-12)
    assert float(sub.marginal(t)[0]) == float(m)


def test_vp_keeps_unit_variance_data_at_unit_variance():
    # x(0) ~ N(0, I) is stationary under VP: m² · 1 + s² = 1 for every t.
    sde = sc.VPSDE()
    t = np.linspace(0, 1, 11)
    m, s = sde.marginal(t)
    np.testing.assert_allclose(m**2 + s**2, 1.0, rtol=1e-13)


@given(kind=st.sampled_from(["ve", "vp", "subvp"]), t=st.floats(0.05, 0.95))
def test_discretize_converges_to_the_sde(kind, t):
    # f_i/Δt → f(x, t) and G_i/√Δt → g(t) as N grows, at first order in 1/N.
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    errs = []
    for N in (250, 1000, 4000):
        sde = {"ve": sc.VESDE, "vp": sc.VPSDE, "subvp": sc.SubVPSDE}[kind](N=N)
        dt = 1.0 / N
        # The chains index levels by round(t (N−1)); compare at a grid time.
        tg = round(t * (N - 1)) / (N - 1)
        f, G = sde.discretize(x, tg)
        err_f = np.max(np.abs(f / dt - sde.drift(x, tg)))
        err_g = abs(float(G) / math.sqrt(dt) - float(sde.diffusion(tg))) / float(sde.diffusion(tg))
        errs.append(err_f + err_g)
    # 16× more steps: a first-order scheme's error falls ~16×.
    assert errs[2] < errs[0] / 12 or errs[2] < 1e-10


@pytest.mark.parametrize("sde", [sc.VESDE(), sc.VPSDE(), sc.SubVPSDE()], ids=repr)
def test_time_of_std_inverts_the_kernel_std(sde):
    t = np.linspace(0.01, 1.0, 50)
    np.testing.assert_allclose(sde.time_of_std(sde.marginal(t)[1]), t, rtol=1e-10)


@pytest.mark.parametrize("sde", [sc.VESDE(), sc.VPSDE(), sc.SubVPSDE()], ids=repr)
def test_kernel_and_prior_densities_match_the_oracle(sde, backend):
    rng = np.random.default_rng(0)
    x0, z = rng.standard_normal((2, 7, 3))
    t = rng.uniform(0.05, 1.0, 7)
    oracle = {"VESDE": ref.VE, "VPSDE": ref.VP, "SubVPSDE": ref.SubVP}[type(sde).__name__]()
    m, s = oracle.mean_coeff(t)[:, None], oracle.std(t)[:, None]
    xt = m * x0 + s * z
    X0, Z, XT, T = (backend.asarray(a) for a in (x0, z, xt, t))
    np.testing.assert_allclose(to_numpy(backend, sde.perturb(X0, T, Z)), xt, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(backend, sde.kernel_log_prob(XT, X0, T)),
                               ref.kernel_log_prob(xt, x0, m[:, 0], s[:, 0]), rtol=1e-11)
    np.testing.assert_allclose(to_numpy(backend, sde.kernel_score(XT, X0, T)),
                               ref.kernel_score(xt, x0, m[:, 0], s[:, 0]), rtol=1e-11)
    np.testing.assert_allclose(to_numpy(backend, sde.prior_log_prob(Z)), oracle.prior_log_prob(z), rtol=1e-12)


@pytest.mark.parametrize("sde", [sc.VESDE(), sc.VPSDE(), sc.SubVPSDE()], ids=repr)
def test_reverse_drift_and_probability_flow(sde):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2))
    t = np.full(4, 0.4)
    score = lambda x, t: -x  # noqa: E731
    f, g = sde.drift(x, t), float(sde.diffusion(0.4))
    np.testing.assert_allclose(sde.reverse(score).drift(x, t), f + g**2 * x, rtol=1e-13)
    np.testing.assert_allclose(sde.probability_flow(score).drift(x, t), f + 0.5 * g**2 * x, rtol=1e-13)
    assert float(sde.probability_flow(score).diffusion(0.4)) == 0.0


def test_tweedie_denoiser_recovers_the_posterior_mean():
    # One Gaussian N(μ, v I): E[x0 | xt] = μ + m v (xt − m μ) / (m² v + s²).
    sde = sc.VPSDE()
    mu, v = 1.5, 0.3
    target = sc.GaussianMixture([1.0], [[mu, mu]], [v * np.eye(2)])
    xt = np.array([[0.2, -0.7], [2.0, 1.0]])
    t = np.full(2, 0.3)
    m, s = (float(a) for a in sde.marginal(0.3))
    expected = mu + m * v * (xt - m * mu) / (m * m * v + s * s)
    np.testing.assert_allclose(sde.tweedie(xt, t, target.score(xt, t, sde)), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: sc.VESDE(sigma_min=1.0, sigma_max=1.0), "sigma_min"),
        (lambda: sc.VESDE(sigma_min=2.0, sigma_max=1.0), "sigma_min"),
        (lambda: sc.VESDE(sigma_min=-1.0), "sigma_min"),
        (lambda: sc.VPSDE(beta_min=-0.1), "beta_min"),
        (lambda: sc.VPSDE(beta_min=5.0, beta_max=1.0), "beta_max"),
        (lambda: sc.SubVPSDE(N=1), "N"),
        (lambda: sc.VPSDE().marginal(1.5), r"t must lie in \[0, T=1.0\]"),
        (lambda: sc.VESDE().diffusion(-0.1), r"t must lie"),
    ],
)
def test_bad_parameters_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_sigma_max_inf_is_named():
    with pytest.raises(ValueError, match=r"sigma_max must be a finite number > 0, got inf"):
        sc.VESDE(sigma_max=float("inf"))


@pytest.mark.parametrize("make", [sc.VESDE, sc.VPSDE, sc.SubVPSDE])
def test_time_of_sigma_inverts_sigma_of_time_for_host_floats_and_arrays(make):
    """σ(t) = s(t)/m(t) and its closed-form inverse, one method each on the SDE: a Python float
    for a host number, an array of the input's kind otherwise."""
    sde = make()
    t = np.array([1e-4, 0.1, 0.5, 0.9, 1.0])
    m, s = sde.marginal(t)
    sigma = sde.sigma_of_time(t)
    np.testing.assert_allclose(sigma, s / m, rtol=1e-15)
    np.testing.assert_allclose(sde.time_of_sigma(sigma), t, rtol=1e-10)
    host = sde.sigma_of_time(0.5)
    assert type(host) is float and type(sde.time_of_sigma(host)) is float
    assert sde.time_of_sigma(host) == pytest.approx(0.5, rel=1e-12)


def test_the_discrete_chains_come_from_the_sde():
    """β_i = (β_min + i (β_max − β_min)/(N − 1))/N at i = round(t (N − 1)/T) for host and array t;
    ᾱ its cumulative product; the DDPM step G_i = √β_i."""
    sde = sc.VPSDE(N=11)
    i = np.arange(11)
    want = (0.1 + i * (19.9 / 10)) / 11
    np.testing.assert_allclose([sde.discrete_beta(k) for k in range(11)], want, rtol=1e-15)
    np.testing.assert_allclose(sde.discrete_alphas_cumprod(), np.cumprod(1 - want), rtol=1e-14)
    assert sde.chain_index(0.34) == 3 and float(sde.chain_index(np.array(0.34))) == 3.0
    x = np.ones((1, 2))
    _, G = sde.discretize(x, np.array([0.34]))
    np.testing.assert_allclose(G, np.sqrt(want[3]), rtol=1e-15)


@given(kind=st.sampled_from(["ve", "vp", "subvp"]), params=st.data(), t=st.floats(0.0, 1.0))
def test_flow_coefficients_are_the_oracles_drift_and_half_squared_diffusion(kind, params, t):
    """f̃ = a x + c s_θ with a x = f (the oracle's drift; a None for VE, whose f = 0) and
    c = −½ g² (the oracle's g), each SDE's own fewest-ops form, on an array of times."""
    a_, b_ = params.draw(ve_params if kind == "ve" else vp_params)
    sde, oracle = pairs(kind, a_, b_)
    ts = np.array([t, 0.5 * t, 1.0])
    a, c = sde.flow_coefficients(ts)
    ones = np.ones((3, 1))
    drift = np.array([oracle.drift(ones[i], ts[i])[0] for i in range(3)])
    g = np.array([oracle.diffusion(ts[i]) for i in range(3)])
    np.testing.assert_allclose(c, -0.5 * g ** 2, rtol=1e-12)
    if kind == "ve":
        assert a is None and np.all(drift == 0.0)
    else:
        np.testing.assert_allclose(a, drift, rtol=1e-12, atol=1e-300)
