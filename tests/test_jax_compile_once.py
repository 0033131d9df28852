"""JAX compiles a sampling run once: repeated ``sc.sample`` calls with the same sampler
options, shapes, dtype and model structure reuse it — with a new seed, a new but equal
analytic model, or an NNX module with new weights — and the pure ``sample_fn`` composes with
the caller's own ``jax.jit``. The backend leaves JAX's global matmul precision alone.

Every test runs in float32 (JAX's default, x64 off) and counts traces with a model that
records each call made while it is traced: a reused compiled run calls no Python model code.
"""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc
from support.models import tiny_nnx_net
from scorecore import run_cache

jax = pytest.importorskip("jax")
jnp = jax.numpy

SDE = sc.VPSDE()
TARGET = sc.targets.GaussianMixture.example("8-ring")


class CountingScore:
    """The exact 8-ring score, appending to ``calls`` each time Python runs it (at trace time
    under jit): the list is shared, so two CountingScores of it are one model structure."""

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


@pytest.mark.parametrize("sampler,steps", [("dpmpp_2m", 8), ("edm", 6), ("pc", 25), ("dopri5", 200)])
def test_second_call_and_new_seed_do_not_retrace(sampler, steps):
    calls: list = []
    run = lambda model, seed: sc.sample(model, SDE, (64, 2), sampler, steps, backend="jax", seed=seed,  # noqa: E731
                                        progress=False)
    x1 = run(CountingScore(calls), 0)
    traced = len(calls)
    assert traced > 0
    x2 = run(CountingScore(calls), 0)  # a new but equal model object
    assert len(calls) == traced
    x3 = run(CountingScore(calls), 1)
    assert len(calls) == traced
    # The same compiled program on the same inputs: bit-identical; another seed: other samples.
    np.testing.assert_array_equal(np.asarray(x2), np.asarray(x1))
    assert not np.allclose(np.asarray(x3), np.asarray(x1))
    # ... and the cached run computes what a run compiled afresh computes.
    run_cache.clear()
    x3_fresh = run(CountingScore(calls), 1)
    assert len(calls) > traced
    np.testing.assert_array_equal(np.asarray(x3_fresh), np.asarray(x3))


def test_analytic_score_model_hits_the_cache():
    run = lambda: sc.sample(TARGET.score_model(SDE), SDE, (32, 2), "dpmpp_2m", 5, backend="jax",  # noqa: E731
                            progress=False)
    run()
    assert len(run_cache._RUNS) == 1
    run()
    assert len(run_cache._RUNS) == 1


def test_other_options_shape_or_sde_compile_anew():
    calls: list = []
    base = dict(sampler="dpmpp_2m", steps=5, backend="jax", progress=False)
    sc.sample(CountingScore(calls), SDE, (16, 2), **base)
    n = len(calls)
    sc.sample(CountingScore(calls), SDE, (16, 2), **{**base, "steps": 6})
    assert len(calls) > n
    n = len(calls)
    sc.sample(CountingScore(calls), SDE, (24, 2), **base)
    assert len(calls) > n
    n = len(calls)
    sc.sample(CountingScore(calls), sc.VPSDE(beta_max=10.0), (16, 2), **base)
    assert len(calls) > n
    assert len(run_cache._RUNS) == 4


nnx = pytest.importorskip("flax.nnx")
NNX_CALLS: list = []
TinyNet = tiny_nnx_net(NNX_CALLS)


def test_nnx_module_with_new_weights_does_not_retrace():
    NNX_CALLS.clear()
    run = lambda net, seed=0: sc.sample(net, SDE, (32, 2), "dpmpp_2m", 6, backend="jax", seed=seed,  # noqa: E731
                                        progress=False)
    xa = run(TinyNet(0))
    traced = len(NNX_CALLS)
    assert traced > 0
    xb = run(TinyNet(1))  # other weights, same structure
    xc = run(TinyNet(1), seed=2)
    assert len(NNX_CALLS) == traced
    assert not np.allclose(np.asarray(xa), np.asarray(xb))
    run_cache.clear()
    np.testing.assert_array_equal(np.asarray(run(TinyNet(1))), np.asarray(xb))
    np.testing.assert_array_equal(np.asarray(run(TinyNet(1), seed=2)), np.asarray(xc))


def test_sample_fn_under_the_users_jit_and_vmap():
    be = sc.get_backend("jax")
    f = sc.sample_fn(TARGET.score_model(SDE), SDE, (64, 2), "dpmpp_2m", 8, backend=be)
    key = be.key(3)
    x = jax.jit(f)(key)
    ref = sc.sample(TARGET.score_model(SDE), SDE, (64, 2), "dpmpp_2m", 8, backend=be, seed=3, progress=False)
    scale = float(np.max(np.abs(np.asarray(ref))))
    np.testing.assert_allclose(np.asarray(x), np.asarray(ref), rtol=0,
                               atol=100 * np.finfo(np.float32).eps * scale)
    xs = jax.jit(jax.vmap(f))(jax.random.split(key, 3))
    assert xs.shape == (3, 64, 2) and bool(jnp.all(jnp.isfinite(xs)))


def test_sample_fn_takes_nnx_parameters_as_arguments():
    NNX_CALLS.clear()
    be = sc.get_backend("jax")
    f = jax.jit(sc.sample_fn(TinyNet(0), SDE, (32, 2), "edm", 5, backend=be))
    key = be.key(0)
    x0 = f(key)
    traced = len(NNX_CALLS)
    state1 = nnx.state(TinyNet(1))
    x1 = f(key, state1)
    # Passing parameters is another signature (retraced once); new values after that are not.
    traced = len(NNX_CALLS)
    x2 = f(key, nnx.state(TinyNet(2)))
    assert len(NNX_CALLS) == traced
    ref1 = sc.sample(TinyNet(1), SDE, (32, 2), "edm", 5, backend=be, seed=0, progress=False)
    np.testing.assert_allclose(np.asarray(x1), np.asarray(ref1), rtol=0,
                               atol=100 * np.finfo(np.float32).eps * float(np.max(np.abs(np.asarray(ref1)))))
    assert not np.allclose(np.asarray(x1), np.asarray(x2)) and not np.allclose(np.asarray(x0), np.asarray(x1))


def test_sample_fn_rejects_params_for_a_model_without_any():
    f = sc.sample_fn(TARGET.score_model(SDE), SDE, (8, 2), "edm", 3, backend="jax")
    with pytest.raises(TypeError, match="params: the model .* has no parameters"):
        f(sc.get_backend("jax").key(0), {"w": jnp.zeros(2)})


def test_backend_leaves_the_global_matmul_precision_alone():
    before = jax.config.jax_default_matmul_precision
    from scorecore_jax import JaxBackend

    be = JaxBackend(matmul_precision="highest")
    sc.sample(TARGET.score_model(SDE), SDE, (16, 2), "edm", 3, backend=be, progress=False)
    assert jax.config.jax_default_matmul_precision == before
    seen = []
    be.jit(lambda: seen.append(jax.config.jax_default_matmul_precision))()
    assert seen == ["highest"]  # ... while the backend's own runs are traced under "highest"
    assert jax.config.jax_default_matmul_precision == before


def test_matmul_precision_is_checked():
    from scorecore_jax import JaxBackend

    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        JaxBackend(matmul_precision="hi")


class WrongShapeNet(nnx.Module):
    def __init__(self):
        self.lin = nnx.Linear(2, 1, rngs=nnx.Rngs(0))

    def __call__(self, x, t):
        NNX_CALLS.append(1)
        return self.lin(x)


def test_an_nnx_model_with_a_bad_output_is_named():
    with pytest.raises(ValueError, match="WrongShapeNet"):
        sc.sample(WrongShapeNet(), SDE, (8, 2), "edm", 3, backend="jax", progress=False)
