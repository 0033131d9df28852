"""JAX compiles the likelihood once: repeated ``sc.log_likelihood`` calls with the same options,
shapes, dtype and model structure rerun the kept compiled solve — with new data, a new seed, a
new but equal analytic model, or an NNX module with new weights — and ``log_likelihood_fn`` is a
pure function the caller compiles with ``jax.jit`` (and maps with ``jax.vmap``).

float32 (JAX's default, x64 off); traces are counted with a model that records each Python
call, which under jit happens only while the solve is traced."""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc
from support.models import tiny_nnx_net
from scorecore import run_cache
from scorecore.samplers.status import EscapedError

jax = pytest.importorskip("jax")
jnp = jax.numpy

SDE = sc.VPSDE()
TARGET = sc.GaussianMixture.example("8-ring")
X = np.asarray(TARGET.sample(32, seed=4), dtype=np.float32)
OPTIONS = dict(divergence="hutchinson", probe="rademacher", backend="jax")
F32 = 200 * np.finfo(np.float32).eps  # relative: two compilations of the same solve, summed over ~100 steps


class CountingScore:
    """The exact 8-ring score (without its derivatives: the backend's autodiff gives them),
    appending to ``calls`` each time Python runs it; equal lists make equal model structures."""

    def __init__(self, calls: list):
        self.inner, self.calls = TARGET.score_model(SDE), calls
        self.event_shape = self.inner.event_shape

    def __call__(self, x, t):
        self.calls.append(1)
        return self.inner(x, t)


@pytest.fixture(autouse=True)
def fresh_cache():
    assert not jax.config.jax_enable_x64  # these tests are about float32 runs
    run_cache.clear()
    yield
    run_cache.clear()


def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=F32, atol=F32 * float(np.max(np.abs(b))))


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_second_call_new_seed_new_data_do_not_retrace(divergence):
    calls: list = []
    run = lambda x, seed=0: sc.log_likelihood(CountingScore(calls), SDE, x, seed=seed,  # noqa: E731
                                              **{**OPTIONS, "divergence": divergence})
    a = run(X)
    traced = len(calls)
    assert traced > 0
    b = run(X)
    c = run(X, seed=1)
    d = run(X[::-1].copy())  # other data, same shape
    assert len(calls) == traced
    np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    if divergence == "hutchinson":
        assert not np.allclose(np.asarray(c), np.asarray(a))  # other probes
    else:  # no probes: the seed changes nothing, and the same samples in another order give the same values
        np.testing.assert_array_equal(np.asarray(c), np.asarray(a))
        close(np.asarray(d)[::-1], a)
    run_cache.clear()
    c_fresh = run(X, seed=1)
    assert len(calls) > traced
    np.testing.assert_array_equal(np.asarray(c_fresh), np.asarray(c))


def test_other_shape_or_options_compile_anew():
    calls: list = []
    sc.log_likelihood(CountingScore(calls), SDE, X, **OPTIONS)
    n = len(calls)
    sc.log_likelihood(CountingScore(calls), SDE, X[:16], **OPTIONS)
    assert len(calls) > n
    n = len(calls)
    sc.log_likelihood(CountingScore(calls), SDE, X, rtol=1e-4, **OPTIONS)
    assert len(calls) > n
    assert len(run_cache._RUNS) == 3


def test_bits_per_dim_reuses_the_compiled_solve():
    calls: list = []
    levels = np.clip(np.round((X + 3.0) / 6.0 * 255), 0, 255)
    run = lambda seed: sc.bits_per_dim(CountingScore(calls), SDE, levels, n_levels=256,  # noqa: E731
                                       data_range=(-3.0, 3.0), seed=seed, **OPTIONS)
    run(0)
    traced = len(calls)
    assert run(1).mean == pytest.approx(run(1).mean) and len(calls) == traced


nnx = pytest.importorskip("flax.nnx")
NNX_CALLS: list = []
TinyNet = tiny_nnx_net(NNX_CALLS)


def test_nnx_module_with_new_weights_does_not_retrace():
    NNX_CALLS.clear()
    a = sc.log_likelihood(TinyNet(0), SDE, X, **OPTIONS)
    traced = len(NNX_CALLS)
    assert traced > 0
    b = sc.log_likelihood(TinyNet(1), SDE, X, **OPTIONS)
    assert len(NNX_CALLS) == traced
    assert not np.allclose(np.asarray(a), np.asarray(b))
    run_cache.clear()
    np.testing.assert_array_equal(np.asarray(sc.log_likelihood(TinyNet(1), SDE, X, **OPTIONS)), np.asarray(b))


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_log_likelihood_fn_under_the_users_jit_and_vmap(divergence):
    be = sc.get_backend("jax")
    calls: list = []
    opts = {**OPTIONS, "divergence": divergence}
    f = jax.jit(sc.log_likelihood_fn(CountingScore(calls), SDE, X.shape, **opts))
    x = be.asarray(X)
    got = f(x, be.key(3))
    traced = len(calls)
    got2 = f(x, be.key(4))
    assert len(calls) == traced  # a new key is an argument
    close(got, sc.log_likelihood(CountingScore([]), SDE, X, seed=3, **opts))
    close(got2, sc.log_likelihood(CountingScore([]), SDE, X, seed=4, **opts))
    many = jax.jit(jax.vmap(f, in_axes=(None, 0)))(x, jnp.stack([be.key(3), be.key(4)]))
    assert many.shape == (2, X.shape[0])
    close(many[1], got2)


def test_log_likelihood_fn_takes_nnx_parameters_as_arguments():
    be = sc.get_backend("jax")
    f = jax.jit(sc.log_likelihood_fn(TinyNet(0), SDE, X.shape, **OPTIONS))
    x, key = be.asarray(X), be.key(0)
    got = f(x, key, nnx.state(TinyNet(1)))
    close(got, sc.log_likelihood(TinyNet(1), SDE, X, **OPTIONS))
    assert not np.allclose(np.asarray(got), np.asarray(f(x, key)))


def test_log_likelihood_fn_returns_nan_for_an_unfinished_sample_and_checks_its_input():
    be = sc.get_backend("jax")
    f = jax.jit(sc.log_likelihood_fn(TARGET.score_model(SDE), SDE, X.shape, max_steps=3, **OPTIONS))
    assert bool(jnp.all(jnp.isnan(f(be.asarray(X), be.key(0)))))  # 3 tries reach no sample's end
    g = sc.log_likelihood_fn(TARGET.score_model(SDE), SDE, X.shape, **OPTIONS)
    with pytest.raises(ValueError, match="x must"):
        g(be.asarray(X[:4]), be.key(0))
    with pytest.raises(TypeError, match="params: the model"):
        g(be.asarray(X), be.key(0), {"w": jnp.zeros(2)})


class WrongFarAway:
    """tests/likelihood/test_escapes.py's score in array-API form: the stationary score −x of
    N(0, I) under VP inside mean(x²) ≤ 1, five times it outside, which pushes a trajectory out."""

    def __call__(self, x, t):
        out = jnp.mean(x * x, axis=1, keepdims=True) > 1.0
        return -jnp.where(out, 5.0, 1.0) * x


def test_the_kept_compiled_solve_reports_as_the_eager_solve_does():
    """One compiled call per log_likelihood (x's finite check, the solve and every check's input):
    its errors and statuses are the NumPy backend's, on the first call and on a kept rerun."""
    be = sc.get_backend("jax")
    x = np.array([[0.1, -0.2], [2.0, 2.0], [0.5, 0.3]], dtype=np.float32)
    bad = x.copy()
    bad[1, 1] = np.nan
    numpy_error = None
    try:
        sc.log_likelihood(TARGET.score_model(SDE), SDE, bad)
    except ValueError as e:
        numpy_error = str(e)
    assert numpy_error is not None and "x must be finite" in numpy_error
    for _ in range(2):  # the second call reruns the kept program
        with pytest.raises(ValueError) as got:
            sc.log_likelihood(TARGET.score_model(SDE), SDE, be.asarray(bad), **OPTIONS)
        assert str(got.value) == numpy_error
        logp, info = sc.log_likelihood(WrongFarAway(), SDE, be.asarray(x), return_info=True, **OPTIONS)
        np.testing.assert_array_equal(np.asarray(info.status), [1, 5, 1])  # CONVERGED, ESCAPED, CONVERGED
        assert np.isnan(np.asarray(logp)[1]) and np.all(np.isfinite(np.asarray(logp)[[0, 2]]))
        exact = -0.5 * np.sum(x.astype(np.float64) ** 2, axis=1) - np.log(2 * np.pi)  # the flow is zero there
        np.testing.assert_allclose(np.asarray(logp)[[0, 2]], exact[[0, 2]], rtol=F32)
        with pytest.raises(EscapedError, match=r"1 of 3 samples left the data region \(the first: sample 1"):
            sc.log_likelihood(WrongFarAway(), SDE, be.asarray(x), **OPTIONS)
        with pytest.raises(sc.BudgetExhaustedError, match=r"log_likelihood: [12] of 3 samples exhausted the step "
                                                          r"budget max_steps=2 \(the first: sample [01]"):
            sc.log_likelihood(WrongFarAway(), SDE, be.asarray(x), max_steps=2, **OPTIONS)
    assert any("log_likelihood" in program.compiled for program, _, _ in run_cache._RUNS.values())
