"""The core's Gaussian mixture against the oracle, on NumPy and on array-api-strict."""

from __future__ import annotations

import numpy as np
import pytest
import scorecore_reference as ref
from hypothesis import given
from hypothesis import strategies as st

import scorecore as sc
from support import to_numpy

SDES = {"ve": sc.VESDE, "vp": sc.VPSDE, "subvp": sc.SubVPSDE}
ORACLE_SDES = {"ve": ref.VE, "vp": ref.VP, "subvp": ref.SubVP}


def random_mixture(seed, K, D):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, D, D))
    covs = A @ np.swapaxes(A, 1, 2) / D + 0.1 * np.eye(D)
    w = rng.dirichlet(np.ones(K))
    return np.array(w), 2.0 * rng.standard_normal((K, D)), covs


def assert_rel(actual, expected, rel):
    scale = np.maximum(np.abs(expected), 1.0)
    np.testing.assert_array_less(np.abs(actual - expected) / scale, rel)


@given(seed=st.integers(0, 10**6), K=st.sampled_from([1, 3, 6]), D=st.sampled_from([1, 2, 5, 16]),
       kind=st.sampled_from(sorted(SDES)), t=st.floats(0.02, 1.0))
def test_mixture_matches_oracle(backend, seed, K, D, kind, t):
    w, mu, cov = random_mixture(seed, K, D)
    core = sc.GaussianMixture(w, mu, cov)
    oracle_sde = ORACLE_SDES[kind]()
    oracle_t = ref.GaussianMixture(w, mu, cov).at_time(oracle_sde, t)
    x = np.random.default_rng(seed + 1).standard_normal((5, D)) * 3.0
    X, T = backend.asarray(x), backend.asarray(np.full(5, t))
    sde = SDES[kind]()
    assert_rel(to_numpy(backend, core.log_prob(X, T, sde)), oracle_t.log_prob(x), 1e-10)
    assert_rel(to_numpy(backend, core.score(X, T, sde)), oracle_t.score(x), 1e-10)
    assert_rel(to_numpy(backend, core.divergence(X, T, sde)), oracle_t.laplacian(x), 1e-10)


def test_data_density_and_per_sample_times(backend):
    target = sc.GaussianMixture.example("16d")
    oracle = ref.GaussianMixture(target.weights, target.means, target.covs)
    x = oracle.sample(6, np.random.default_rng(3))
    X = backend.asarray(x)
    assert_rel(to_numpy(backend, target.log_prob(X)), oracle.log_prob(x), 1e-10)
    sde, osde = sc.VESDE(), ref.VE()
    t = np.linspace(0.05, 1.0, 6)
    assert_rel(to_numpy(backend, target.score(X, backend.asarray(t), sde)), oracle.score_t(x, osde, t), 1e-10)


@pytest.mark.parametrize("name", ["8-ring", "5x5-grid", "16d"])
def test_exact_samples_have_the_mixture_moments(name):
    target = sc.GaussianMixture.example(name)
    oracle = ref.GaussianMixture(target.weights, target.means, target.covs)
    n = 40_000
    x = target.sample(n, seed=7)
    assert x.shape == (n, target.dim)
    mean, cov = oracle.mean(), oracle.cov()
    # Standard error of the mean is √(diag Σ / n); 5 of them is a 1-in-10⁶ event per coordinate.
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(np.diag(cov) / n))
    # The sample covariance's error is O(Σ/√n) entrywise.
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    np.testing.assert_array_less(np.abs(np.cov(x.T) - cov) / scale, 8 / np.sqrt(n))


def test_exact_samples_of_p_t_match_the_perturbed_mixture():
    target = sc.GaussianMixture.example("8-ring")
    sde = sc.VPSDE()
    x = target.sample(40_000, seed=2, t=0.3, sde=sde)
    oracle = ref.GaussianMixture(target.weights, target.means, target.covs).at_time(ref.VP(), 0.3)
    np.testing.assert_array_less(np.abs(x.mean(0) - oracle.mean()), 5 * np.sqrt(np.diag(oracle.cov()) / 40_000))
    np.testing.assert_allclose(np.cov(x.T), oracle.cov(), atol=0.05)


def test_exact_samples_are_batch_invariant():
    target = sc.GaussianMixture.example("5x5-grid")
    big = target.sample(1000, seed=4)
    np.testing.assert_array_equal(target.sample(100, seed=4), big[:100])
    np.testing.assert_array_equal(target.sample(100, seed=4, offset=300), big[300:400])


def test_score_model_exposes_divergence_and_event_shape():
    target = sc.GaussianMixture.example("8-ring")
    model = target.score_model(sc.VESDE())
    x = target.sample(3, seed=0)
    t = np.full(3, 0.5)
    np.testing.assert_array_equal(model(x, t), target.score(x, t, sc.VESDE()))
    assert model.divergence(x, t).shape == (3,)
    assert model.event_shape == (2,)


@pytest.mark.parametrize(
    "args, match",
    [
        (([0.5, 0.5], [[0.0, 0.0]], [np.eye(2)]), "weights must have shape"),
        (([1.0], [[0.0, 0.0]], [np.eye(3)]), "covs must have shape"),
        (([1.0], [[0.0, 0.0]], [-np.eye(2)]), "positive definite"),
        (([0.3, 0.3], [[0.0], [1.0]], np.ones((2, 1, 1))), "sum to 1"),
        (([1.0], [[np.nan, 0.0]], [np.eye(2)]), "finite"),
    ],
)
def test_bad_mixtures_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        sc.GaussianMixture(*args)


def test_shape_mismatch_is_named():
    target = sc.GaussianMixture.example("8-ring")
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        target.score(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="name must be one of"):
        sc.GaussianMixture.example("9-ring")


@pytest.mark.parametrize("t", [2.0, -0.5, np.array([0.5, 1.5, 0.2])])
def test_sample_at_a_time_outside_0_T_is_refused(t):
    target = sc.GaussianMixture.example("8-ring")
    n = 3
    with pytest.raises(ValueError, match=r"t must be (a finite number ≥ 0 and ≤ 1|times in \[0, T=1\])"):
        target.sample(n, t=t, sde=sc.VPSDE())
    with pytest.raises(ValueError, match="sde is required when t is given"):
        target.sample(n, t=0.5)
