import numpy as np
import pytest
from hypothesis import given, strategies as st

from scorecore_reference import VE, VP, SubVP, moments_by_ode, kernel_log_prob, kernel_score
from reference_helpers import ORACLE_SETTINGS, random_mixture

times = st.floats(0.01, 1.0)
ve_params = st.tuples(st.floats(0.001, 0.5), st.floats(1.5, 100.0))
vp_params = st.tuples(st.floats(0.01, 1.0), st.floats(1.5, 25.0))


@ORACLE_SETTINGS
@given(t=times, p=ve_params)
def test_ve_closed_form_matches_ode(t, p):
    sde = VE(*p)
    m, s = moments_by_ode(sde, t, 200)
    np.testing.assert_allclose(sde.mean_coeff(t), m, rtol=1e-10)
    np.testing.assert_allclose(sde.std(t), s, rtol=1e-8)


@ORACLE_SETTINGS
@given(t=times, p=vp_params, cls=st.sampled_from([VP, SubVP]))
def test_vp_subvp_closed_form_matches_ode(t, p, cls):
    sde = cls(*p)
    m, s = moments_by_ode(sde, t, 200)
    np.testing.assert_allclose(sde.mean_coeff(t), m, rtol=1e-10)
    np.testing.assert_allclose(sde.std(t), s, rtol=1e-8)


@ORACLE_SETTINGS
@given(t=st.floats(0.0, 1.0), p=vp_params)
def test_subvp_std_below_vp_std(t, p):
    assert SubVP(*p).std(t) <= VP(*p).std(t) + 1e-15


def test_default_values_and_integrated_beta():
    vp = VP()
    t = np.linspace(0, 1, 7)
    np.testing.assert_allclose(vp.mean_coeff(t),
                               np.exp(-0.25 * t ** 2 * (20 - 0.1) - 0.5 * t * 0.1), rtol=1e-15)
    np.testing.assert_allclose(vp.integrated_beta(t),
                               [np.trapezoid(vp.beta(np.linspace(0, ti, 3)), np.linspace(0, ti, 3)) for ti in t],
                               rtol=1e-14)
    ve = VE()
    np.testing.assert_allclose(ve.sigma(1.0), 50.0)
    np.testing.assert_allclose(ve.std(0.0), 0.0)
    assert ve.prior_std == 50.0 and vp.prior_std == 1.0 and SubVP().prior_std == 1.0


@pytest.mark.parametrize("sde", [VE(), VP(), SubVP()])
def test_batched_time_broadcast(sde):
    rng = np.random.default_rng(0)
    t = rng.uniform(0.01, 1, size=4)
    x = rng.standard_normal((4, 3))
    f = sde.drift(x, t)
    for i in range(4):
        np.testing.assert_allclose(f[i], sde.drift(x[i:i + 1], t[i])[0], rtol=1e-15)
        np.testing.assert_allclose(sde.std(t)[i], sde.std(t[i]), rtol=1e-15)
        np.testing.assert_allclose(sde.diffusion(t)[i], sde.diffusion(t[i]), rtol=1e-15)


@pytest.mark.parametrize("sde", [VE(), VP(), SubVP()])
def test_prior_log_prob(sde):
    from scipy.stats import norm
    z = np.random.default_rng(1).standard_normal((3, 2, 2)) * sde.prior_std
    expected = norm.logpdf(z, scale=sde.prior_std).reshape(3, -1).sum(1)
    np.testing.assert_allclose(sde.prior_log_prob(z), expected, rtol=1e-13)


def test_kernel_score_is_gradient_and_matches_mixture():
    from scorecore_reference import GaussianMixture
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((5, 3))
    xt = rng.standard_normal((5, 3))
    m, s = rng.uniform(0.2, 1, 5), rng.uniform(0.3, 2, 5)
    ks = kernel_score(xt, x0, m, s)
    for i in range(5):
        # A one-component "mixture" at a point mass limit: N(m x0, s^2 I).
        g = GaussianMixture([1.0], m[i] * x0[i:i + 1], (s[i] ** 2 * np.eye(3))[None])
        np.testing.assert_allclose(ks[i], g.score(xt[i:i + 1])[0], rtol=1e-12)
        np.testing.assert_allclose(kernel_log_prob(xt, x0, m, s)[i], g.log_prob(xt[i:i + 1])[0], rtol=1e-12)


def test_per_sample_time_helpers_match_at_time():
    rng = np.random.default_rng(3)
    gm = random_mixture(rng, 2)
    sde = VP()
    t = np.array([0.1, 0.5, 0.1, 0.9])
    x = rng.standard_normal((4, 2))
    lp, sc, la = gm.log_prob_t(x, sde, t), gm.score_t(x, sde, t), gm.laplacian_t(x, sde, t)
    for i in range(4):
        pt = gm.at_time(sde, t[i])
        np.testing.assert_allclose(lp[i], pt.log_prob(x[i:i + 1])[0], rtol=1e-14)
        np.testing.assert_allclose(sc[i], pt.score(x[i:i + 1])[0], rtol=1e-14)
        np.testing.assert_allclose(la[i], pt.laplacian(x[i:i + 1])[0], rtol=1e-14)
