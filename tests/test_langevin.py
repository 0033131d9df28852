"""Annealed Langevin dynamics: the oracle's loop with the same noise, the mixture reproduced,
exact NFE, and errors named."""

from __future__ import annotations

import numpy as np
import pytest
import scorecore_reference as ref

import scorecore as sc
from support import CountingScore, to_numpy


def test_equals_the_oracle_loop_with_the_same_noise(backend):
    target = sc.GaussianMixture.example("8-ring")
    sde = sc.VESDE()
    model = target.score_model(sde)
    L, T, n, seed = 6, 4, 16, 3
    smp = sc.AnnealedLangevin(n_levels=L, n_steps_each=T, step_lr=3e-5)
    sigmas, times = smp.levels(sde, 1e-5)
    x_init = np.random.default_rng(0).standard_normal((n, 2)) * 50.0
    x = sc.sample(model, sde, (n, 2), sampler=smp, backend=backend, seed=seed,
                  x_init=backend.asarray(x_init), progress=False)
    # The noise of step k is normal(fold_in(key, k)): rebuild it for the oracle.
    be, key = sc.get_backend("numpy"), sc.get_backend("numpy").key(seed)
    noises = np.stack([be.normal(be.fold_in(key, k), (n, 2)) for k in range(L * T)]).reshape(L, T, n, 2)
    oracle = ref.GaussianMixture(target.weights, target.means, target.covs)
    expected = ref.annealed_langevin(lambda x, t: oracle.score_t(x, ref.VE(), t), x_init, sigmas, times,
                                     3e-5, T, noises, denoise=True)
    np.testing.assert_allclose(to_numpy(backend, x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sde", [sc.VESDE(), sc.VPSDE()], ids=["VE", "VP"])
def test_reproduces_the_mixture(sde):
    # 1000 steps on the exact score of the 8-ring; every statistic within 4–4.5 standard errors
    # (24 covariance entries, 16 mean coordinates and 8 weights are compared).
    target = sc.GaussianMixture.example("8-ring")
    n = 4000
    x = sc.sample(target.score_model(sde), sde, (n, 2), sampler="ald", steps=100, n_steps_each=10,
                  seed=1, progress=False)
    oracle = ref.GaussianMixture(target.weights, target.means, target.covs)
    labels = oracle.posterior_labels(x).argmax(axis=1)
    freq = np.bincount(labels, minlength=8) / n
    np.testing.assert_array_less(np.abs(freq - target.weights), 4 * np.sqrt(target.weights * (1 - target.weights) / n))
    for k in range(8):
        xk = x[labels == k]
        nk, S = len(xk), target.covs[k]
        np.testing.assert_array_less(np.abs(xk.mean(axis=0) - target.means[k]), 4 * np.sqrt(np.diag(S) / nk))
        se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / nk)
        np.testing.assert_array_less(np.abs(np.cov(xk.T) - S), 4.5 * se)


def test_nfe_is_the_number_of_score_calls():
    target = sc.GaussianMixture.example("8-ring")
    for denoise, steps_each in [(True, 3), (False, 5)]:
        model = CountingScore(target.score_model(sc.VPSDE()))
        _, info = sc.sample(model, sc.VPSDE(), (8, 2), sampler="ald", steps=7, n_steps_each=steps_each, denoise=denoise,
                            progress=False, return_info=True)
        assert info.nfe == model.calls == 7 * steps_each + denoise
        assert info.n_steps == 7 * steps_each


def test_same_seed_same_samples():
    # Same batch, same kernels: bit for bit. Across batch sizes see samplers/test_batch_invariance.py.
    target = sc.GaussianMixture.example("8-ring")
    sde = sc.VESDE()
    kw = dict(sampler="ald", steps=5, n_steps_each=2, seed=11, progress=False)
    big = sc.sample(target.score_model(sde), sde, (300, 2), **kw)
    np.testing.assert_array_equal(sc.sample(target.score_model(sde), sde, (300, 2), **kw), big)
    assert np.abs(sc.sample(target.score_model(sde), sde, (300, 2), **(kw | dict(seed=12))) - big).max() > 0.1


def test_plain_langevin_targets_a_gaussian():
    # Unadjusted Langevin on N(0, v) with step ε has stationary variance v / (1 − ε/(4v)).
    v, eps = 0.5, 0.05
    target = sc.GaussianMixture([1.0], [[0.0]], [[[v]]])
    sde = sc.VESDE()
    model = lambda x, t: target.score(x)  # noqa: E731
    x = sc.sample(model, sde, (20_000, 1), sampler="langevin", steps=400, step_size=eps, seed=0,
                  x_init=np.zeros((20_000, 1)), progress=False)
    assert abs(x.var() - v / (1 - eps / (4 * v))) < 5 * v * np.sqrt(2 / 20_000)


def test_non_finite_score_is_reported_with_step_and_time():
    def bad(x, t):
        # Finite until the noise level falls below 1, then NaN.
        return np.where(t[:, None] < 0.6, np.nan, -x)

    with pytest.raises(sc.NonFiniteError, match=r"first appeared at step (\d+) \(t = 0\.5") as err:
        sc.sample(bad, sc.VESDE(), (4, 2), sampler="ald", steps=11, n_steps_each=2, progress=False)
    assert err.value.step > 0 and err.value.time < 0.6


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(shape=(10, 3)), ValueError, r"shape \(10, 3\) does not match the model's event shape \(2,\)"),
        (dict(shape=(10,)), ValueError, "shape must be"),
        (dict(eps=1.5), ValueError, r"eps must be a finite number > 0 and < 1, got 1.5"),
        (dict(sampler="euler-mayhem"), ValueError, "sampler must be one of"),
        (dict(steps=0), ValueError, "n_levels must be"),
        (dict(step_lr=-1.0), ValueError, "step_lr must be"),
        (dict(n_step_each=3), TypeError, "n_step_each"),
        (dict(backend="mlx"), ValueError, "backend 'mlx' is not registered"),
        (dict(dtype="float16"), ValueError, "dtype must be"),
    ],
)
def test_bad_arguments_are_named_before_work_starts(kwargs, exc, match):
    target = sc.GaussianMixture.example("8-ring")
    model = CountingScore(target.score_model(sc.VESDE()))
    args = dict(shape=(10, 2), sampler="ald", progress=False) | kwargs
    with pytest.raises(exc, match=match):
        sc.sample(model, sc.VESDE(), **args)
    assert model.calls == 0


def test_model_and_sde_types_are_checked():
    with pytest.raises(TypeError, match="model must be a callable"):
        sc.sample(None, sc.VESDE(), (4, 2))
    with pytest.raises(TypeError, match="sde must be a scorecore SDE"):
        sc.sample(lambda x, t: x, "ve", (4, 2))
