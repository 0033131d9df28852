import numpy as np
import pytest
from hypothesis import given, strategies as st

from reference_helpers import ORACLE_SETTINGS

from scorecore_reference import (VP, annealed_langevin, euler_maruyama_reverse,
                                 probability_flow_euler, gamma_ratio, gamma_equation,
                                 step_size, step_size_objective, max_pairwise_distance)


def test_annealed_langevin_reaches_gaussian_variance():
    # Target N(mu, v0) perturbed by sigma_i: exact score -(x - mu)/(v0 + sigma_i^2).
    mu, v0 = 1.5, 0.8
    sigmas = np.array([1.0, 0.5, 0.3])  # alpha_1 = eps/0.09 stays stable
    eps, T, n = 0.1, 100, 40_000
    rng = np.random.default_rng(7)
    noises = rng.standard_normal((3, T, n, 1))
    score_of = {i: (lambda x, t, v=v0 + sigmas[i] ** 2: -(x - mu) / v) for i in range(3)}
    score = lambda x, t: score_of[int(t)](x, t)
    x = annealed_langevin(score, rng.uniform(-5, 5, (n, 1)), sigmas, [0, 1, 2], eps, T, noises)
    # Unadjusted Langevin on N(mu, v) with step alpha is stationary at v / (1 - alpha / (4 v)).
    v = v0 + sigmas[-1] ** 2
    v_stat = v / (1 - eps / (4 * v))
    assert abs(x.mean() - mu) < 5 * np.sqrt(v_stat / n)
    assert abs(x.var() / v_stat - 1) < 5 * np.sqrt(2 / n)  # 5 SE of a sample variance


def test_annealed_langevin_single_step_by_hand():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 3))
    z = rng.standard_normal((2, 1, 2, 3))
    score = lambda x, t: -x * (1 + t)
    sig = np.array([2.0, 0.5])
    out = annealed_langevin(score, x0, sig, [1.0, 0.0], 0.01, 1, z, denoise=True)
    x = x0.copy()
    for i, t in enumerate([1.0, 0.0]):
        a = 0.01 * sig[i] ** 2 / 0.25
        x = x + a / 2 * score(x, t) + np.sqrt(a) * z[i, 0]
    x = x + 0.25 * score(x, 0.0)
    np.testing.assert_allclose(out, x, rtol=1e-15)


def _vp_gaussian_setup(mu, v0):
    sde = VP()
    score = lambda x, t: -(x - sde.mean_coeff(t) * mu) / (sde.mean_coeff(t) ** 2 * v0 + sde.std(t) ** 2)
    return sde, score


def test_reverse_em_recovers_gaussian_data():
    mu, v0, n, N = 2.0, 0.25, 20_000, 500
    sde, score = _vp_gaussian_setup(mu, v0)
    rng = np.random.default_rng(11)
    times = np.linspace(1.0, 1e-3, N + 1)
    x = euler_maruyama_reverse(score, sde, rng.standard_normal((n, 1)), times,
                               rng.standard_normal((N, n, 1)))
    m, s = sde.mean_coeff(1e-3), sde.std(1e-3)
    # Loose: Euler bias O(dt) plus ~5 SE of sampling error.
    assert abs(x.mean() - m * mu) < 0.03
    assert abs(x.std() / np.sqrt(m ** 2 * v0 + s ** 2) - 1) < 0.03


def test_probability_flow_recovers_gaussian_data():
    mu, v0, n, N = -1.0, 0.5, 20_000, 2000
    sde, score = _vp_gaussian_setup(mu, v0)
    rng = np.random.default_rng(12)
    times = np.linspace(1.0, 1e-3, N + 1)
    x = probability_flow_euler(score, sde, rng.standard_normal((n, 1)), times)
    m, s = sde.mean_coeff(1e-3), sde.std(1e-3)
    assert abs(x.mean() - m * mu) < 0.03
    assert abs(x.std() / np.sqrt(m ** 2 * v0 + s ** 2) - 1) < 0.03


@pytest.mark.parametrize("D", [5, 10, 100, 784, 3072, 256 * 256 * 3])
def test_gamma_ratio_solves_equation(D):
    g = gamma_ratio(D)
    assert g > 1
    assert abs(gamma_equation(g, D)) < 1e-12


def test_gamma_ratio_rejects_small_dimension():
    with pytest.raises(ValueError):
        gamma_ratio(2)


@ORACLE_SETTINGS
@given(T=st.integers(1, 20), sigma_L=st.floats(1e-3, 1.0), D=st.sampled_from([100, 3072]))
def test_step_size_minimises_objective(T, sigma_L, D):
    g = gamma_ratio(D)
    eps = step_size(g, sigma_L, T)
    assert 0 < eps < sigma_L ** 2
    best = abs(step_size_objective(eps, g, sigma_L, T) - 1)
    grid = np.linspace(1e-6, 1 - 1e-6, 20001) * sigma_L ** 2
    assert best <= np.abs(step_size_objective(grid, g, sigma_L, T) - 1).min() + 1e-9


def test_max_pairwise_distance():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert max_pairwise_distance(x) == 5.0
    x3 = np.random.default_rng(0).standard_normal((7, 2, 2))
    flat = x3.reshape(7, -1)
    brute = max(np.linalg.norm(flat[i] - flat[j]) for i in range(7) for j in range(7))
    np.testing.assert_allclose(max_pairwise_distance(x3), brute, rtol=1e-14)
