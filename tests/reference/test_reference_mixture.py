import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.integrate import quad
from scipy.stats import norm

from scorecore_reference import GaussianMixture
from reference_helpers import ORACLE_SETTINGS, random_mixture

dims = st.sampled_from([1, 2, 3, 5])
seeds = st.integers(0, 2**32 - 1)


def central_diff(f, x, h):
    """Central differences of f: (n, D) -> (n, ...) along each coordinate, output (n, ..., D)."""
    cols = []
    for d in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, d] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=-1)


@ORACLE_SETTINGS
@given(D=dims, seed=seeds)
def test_score_is_gradient_of_log_prob(D, seed):
    rng = np.random.default_rng(seed)
    gm = random_mixture(rng, D)
    x = gm.sample(6, rng) + rng.standard_normal((6, D))
    fd = central_diff(gm.log_prob, x, 1e-5)
    np.testing.assert_allclose(gm.score(x), fd, rtol=1e-6, atol=1e-6)


@ORACLE_SETTINGS
@given(D=dims, seed=seeds)
def test_hessian_is_jacobian_of_score(D, seed):
    rng = np.random.default_rng(seed)
    gm = random_mixture(rng, D)
    x = gm.sample(4, rng) + rng.standard_normal((4, D))
    fd = central_diff(gm.score, x, 1e-5)  # fd[n, i, j] = d s_i / d x_j
    H = gm.hessian(x)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(H, np.swapaxes(H, 1, 2), atol=1e-12)
    np.testing.assert_allclose(gm.laplacian(x), np.trace(H, axis1=1, axis2=2), rtol=1e-14, atol=1e-14)


@ORACLE_SETTINGS
@given(seed=seeds, m=st.floats(0.05, 1.5), s=st.floats(0.05, 3.0))
def test_perturbed_matches_1d_convolution(seed, m, s):
    rng = np.random.default_rng(seed)
    gm = random_mixture(rng, 1)
    pt = gm.perturbed(m, s)
    w, mus, sds = gm.weights, gm.means[:, 0], np.sqrt(gm.covs[:, 0, 0])

    def p0(x0):
        # Scalar 1-D mixture density written out directly (fast inside quad).
        return float(np.sum(w * np.exp(-0.5 * ((x0 - mus) / sds) ** 2) / (np.sqrt(2 * np.pi) * sds)))

    lo, hi = (mus - 12 * sds).min(), (mus + 12 * sds).max()
    # Points within ~2 std of p_t, so the density is not below quadrature resolution.
    for x in rng.normal(pt.mean()[0], 2.0 * np.sqrt(pt.cov()[0, 0]), size=3):
        # Break points at the mixture modes and at the kernel's peak x/m, where mass concentrates.
        pts = sorted(set(np.clip(np.append(mus, x / m), lo, hi).tolist()))
        val, _ = quad(lambda x0: p0(x0) * norm.pdf(x, m * x0, s), lo, hi, points=pts,
                      limit=400, epsabs=0, epsrel=1e-10)
        np.testing.assert_allclose(pt.log_prob(np.array([[x]]))[0], np.log(val), rtol=0, atol=1e-7)


def test_exact_sample_moments():
    rng = np.random.default_rng(1234)
    gm = random_mixture(rng, 3, K=3)
    n = 100_000
    x, labels = gm.sample_with_labels(n, rng)
    assert set(np.unique(labels)) <= {0, 1, 2}
    # Tolerance: 5 standard errors; SE(mean_d) = sqrt(C_dd / n),
    # SE(cov_ij) ~= std((x_i - mu_i)(x_j - mu_j)) / sqrt(n) (estimated from the sample).
    mu, C = gm.mean(), gm.cov()
    se_mean = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(x.mean(0) - mu) < 5 * se_mean)
    xc = x - mu
    prods = xc[:, :, None] * xc[:, None, :]
    se_cov = prods.std(0) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(0) - C) < 5 * se_cov)
    # Label frequencies: binomial SE.
    freq = np.bincount(labels, minlength=3) / n
    assert np.all(np.abs(freq - gm.weights) < 5 * np.sqrt(gm.weights * (1 - gm.weights) / n))


def test_marginal_matches_quadrature():
    rng = np.random.default_rng(1234)
    gm = random_mixture(rng, 2, K=3)
    marg = gm.marginal([0])
    for x0 in rng.normal(gm.mean()[0], 2.0, size=3):
        val, _ = quad(lambda y: np.exp(gm.log_prob(np.array([[x0, y]]))[0]), -np.inf, np.inf,
                      epsabs=0, epsrel=1e-11, limit=200)
        np.testing.assert_allclose(marg.log_prob(np.array([[x0]]))[0], np.log(val), atol=1e-7)


@ORACLE_SETTINGS
@given(D=st.sampled_from([2, 3, 5]), seed=seeds)
def test_conditional_is_bayes_rule(D, seed):
    rng = np.random.default_rng(seed)
    gm = random_mixture(rng, D)
    n_known = int(rng.integers(1, D))
    known = np.sort(rng.choice(D, size=n_known, replace=False))
    unknown = np.array([i for i in range(D) if i not in known])
    x = gm.sample(5, rng)
    x_known = x[0, known]
    x[:, known] = x_known  # every row shares the conditioning value
    cond = gm.conditional(known, x_known)
    assert cond.dim == unknown.size
    expected = gm.log_prob(x) - gm.marginal(known).log_prob(x_known[None, :])[0]
    np.testing.assert_allclose(cond.log_prob(x[:, unknown]), expected, rtol=1e-9, atol=1e-9)


@ORACLE_SETTINGS
@given(D=dims, seed=seeds)
def test_posterior_labels_sum_to_one_and_match_bayes(D, seed):
    rng = np.random.default_rng(seed)
    gm = random_mixture(rng, D)
    x = gm.sample(5, rng)
    r = gm.posterior_labels(x)
    np.testing.assert_allclose(r.sum(1), 1.0, rtol=1e-13)
    single = [GaussianMixture([1.0], gm.means[k:k + 1], gm.covs[k:k + 1]) for k in range(gm.n_components)]
    joint = np.stack([np.log(gm.weights[k]) + single[k].log_prob(x) for k in range(gm.n_components)], 1)
    np.testing.assert_allclose(np.log(r), joint - gm.log_prob(x)[:, None], atol=1e-9)


def test_validation_errors():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([0.5, 0.6], np.zeros((2, 1)), np.ones((2, 1, 1)))
    with pytest.raises(ValueError, match="means"):
        GaussianMixture([1.0], np.zeros((2, 1)), np.ones((1, 1, 1)))
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture([1.0], np.zeros((1, 2)), np.ones((1, 1, 1)))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([1.0], np.zeros((1, 2)), np.array([[[1.0, 2.0], [2.0, 1.0]]]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture([1.0], np.zeros((1, 2)), np.array([[[1.0, 0.1], [0.0, 1.0]]]))
