"""The same log-likelihoods on every backend: array_api_strict equals NumPy to 1e-10; torch and
JAX (x64, the whole adaptive solve under jax.jit via lax.while_loop) in float64 equal NumPy to
1e-9, with the analytic divergence, the backend's autodiff Jacobian trace, and Hutchinson
probes through the backend's jvp."""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc

D16 = sc.GaussianMixture.example("16d")
RING = sc.GaussianMixture.example("8-ring")


def host(be, x):
    return np.asarray(be.to_numpy(x), dtype=np.float64)


def test_array_api_strict_equals_numpy():
    sde = sc.SubVPSDE()
    model = D16.score_model(sde)
    x = np.asarray(D16.sample(3, seed=8))
    for options in ({}, {"divergence": "hutchinson", "probe": "rademacher", "n_probes": 2}):
        a, ia = sc.log_likelihood(model, sde, x, backend="numpy", return_info=True, **options)
        b, ib = sc.log_likelihood(model, sde, x, backend="array_api_strict", return_info=True, **options)
        be = sc.get_backend("array_api_strict")
        np.testing.assert_allclose(host(be, b), a, rtol=1e-10, atol=1e-10)
        assert ia.nfe == ib.nfe


class Plain:
    """A score model with no derivatives of its own: the backend's autodiff must supply them."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, t):
        return self.model(x, t)


@pytest.fixture(scope="module")
def torch_be():
    torch = pytest.importorskip("torch")
    from scorecore_torch import TorchBackend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many-thread contention on a small CPU slows tiny ops 50×
    yield TorchBackend()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def jax_be():
    jax = pytest.importorskip("jax")
    from scorecore_jax import JaxBackend

    before = jax.config.jax_enable_x64
    yield JaxBackend(x64=True)
    jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_float64_frameworks_equal_numpy(framework, request):
    """Analytic divergence; Hutchinson through the framework's jvp (portable Rademacher probes,
    the NumPy backend's draws); on torch also the autodiff Jacobian trace (JAX's is covered by
    the backend tests; each JAX solve costs a whole-run compile). rtol = atol = 1e-4 keeps
    the solves short: the backends must agree at any tolerance, step for step."""
    be = request.getfixturevalue(f"{framework}_be")
    sde = sc.VPSDE()
    model = RING.score_model(sde)
    x = np.asarray(RING.sample(3, seed=9))
    tol = {"rtol": 1e-4, "atol": 1e-4}
    hutch = {"divergence": "hutchinson", "probe": "rademacher", "n_probes": 2, **tol}
    ref_exact, info = sc.log_likelihood(model, sde, x, return_info=True, **tol)
    ref_hutch = sc.log_likelihood(model, sde, x, **hutch)
    xb = be.asarray(x, dtype="float64")
    got, got_info = sc.log_likelihood(model, sde, xb, backend=be, return_info=True, **tol)
    assert got.dtype == be.xp.float64 and got_info.nfe == info.nfe
    np.testing.assert_allclose(host(be, got), ref_exact, rtol=1e-9)
    got_hutch = sc.log_likelihood(Plain(model), sde, xb, backend=sc.portable(be), **hutch)
    np.testing.assert_allclose(host(be, got_hutch), ref_hutch, rtol=1e-9)
    if framework == "torch":
        got_trace = sc.log_likelihood(Plain(model), sde, xb, backend=be, **tol)
        np.testing.assert_allclose(host(be, got_trace), ref_exact, rtol=1e-9)


class NaNWhere:
    """The exact ring score, NaN (for every sample) where ``bad(t)``: a model that breaks mid-solve."""

    def __init__(self, model, bad):
        self.model, self.bad, self.event_shape = model, bad, model.event_shape

    def __call__(self, x, t):
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
        s = self.model(x, t)
        return xp.where(xp.reshape(self.bad(t), (-1, 1)), xp.full_like(s, float("nan")), s)

    def divergence(self, x, t):
        return self.model.divergence(x, t)


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_a_model_turning_nan_or_an_exhausted_budget_raises_never_returns(framework, request):
    """A model that is NaN below t = 0.5 (so from the first evaluation at eps) and one that turns
    NaN above t = 0.5 (mid-solve, float64) raise NonFiniteError naming the sample or the step and
    time; ``max_steps=2`` raises BudgetExhaustedError. None returns a result, none hangs."""
    be = sc.get_backend("numpy") if framework == "numpy" else request.getfixturevalue(f"{framework}_be")
    sde = sc.VPSDE()
    model = RING.score_model(sde)
    x = be.asarray(np.asarray(RING.sample(4, seed=9)), dtype="float64")
    with pytest.raises(sc.NonFiniteError, match=r"log_likelihood: non-finite values \(NaN or inf\) first appeared at "
                                                r"step 0 \(t = 1e-05\), 4 of 4 samples stopped"):
        sc.log_likelihood(NaNWhere(model, lambda t: t < 0.5), sde, x, backend=be)
    with pytest.raises(sc.NonFiniteError, match=r"non-finite values \(NaN or inf\) first appeared at step \d+"):
        sc.log_likelihood(NaNWhere(model, lambda t: t > 0.5), sde, x, backend=be, rtol=1e-3, atol=1e-3)
    with pytest.raises(sc.BudgetExhaustedError, match=r"4 of 4 samples exhausted the step budget max_steps=2"):
        sc.log_likelihood(model, sde, x, backend=be, max_steps=2)
    logp, info = sc.log_likelihood(model, sde, x, backend=be, max_steps=2, return_info=True)
    assert np.all(np.isnan(host(be, logp))) and not info.converged


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_in_float32_a_model_turning_nan_mid_solve_is_never_a_silent_result(framework, request):
    """float32 (the default on torch and JAX): a model that turns NaN above t = 0.5 ends in an
    error — NonFiniteError where the solver sees the collapse, BudgetExhaustedError where its trial
    steps stall below one ulp of t until the budget is spent — never in returned values."""
    be = request.getfixturevalue(f"{framework}_be")
    sde = sc.VPSDE()
    x = be.asarray(np.asarray(RING.sample(4, seed=9)), dtype="float32")
    with pytest.raises((sc.NonFiniteError, sc.BudgetExhaustedError)):
        sc.log_likelihood(NaNWhere(RING.score_model(sde), lambda t: t > 0.5), sde, x, backend=be, max_steps=300)
