"""The likelihood's score and divergence from one set of model passes: the fast paths
(``value_and_jvp``, the batched ``value_and_divergence`` of torch and JAX) agree with the
plain ones (a separate call, the basis loop, the analytic derivatives) to float64 rounding,
the model is called once per evaluation of the right-hand side (no second call), and the
reported model passes are what the figures say."""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc
from scorecore import divergence as div
from scorecore.backend import Backend

D16 = sc.GaussianMixture.example("16d")
SDE = sc.VPSDE()
TIGHT = 1e-12  # float64: the same arithmetic in another order


class Counting:
    """The analytic 16d score without its derivatives (autodiff must give them); counts calls."""

    def __init__(self):
        self.inner, self.calls = D16.score_model(SDE), 0

    def __call__(self, x, t):
        self.calls += 1
        return self.inner(x, t)


class CountingAnalytic(Counting):
    """... with the analytic divergence and jvp, each call counted."""

    def divergence(self, x, t):
        self.calls += 1
        return self.inner.divergence(x, t)

    def jvp(self, x, t, v):
        self.calls += 1
        return self.inner.jvp(x, t, v)


@pytest.fixture(params=["torch", "jax"])
def be(request):
    if request.param == "torch":
        pytest.importorskip("torch")
        from scorecore_torch import TorchBackend

        yield TorchBackend()
        return
    jax = pytest.importorskip("jax")
    from scorecore_jax import JaxBackend

    before = jax.config.jax_enable_x64
    # Eager (jit=False): each Python call of the model is one evaluation.
    yield JaxBackend(x64=True, jit=False)
    jax.config.update("jax_enable_x64", before)


def inputs(be, n=5, M=3):
    x = be.asarray(np.asarray(D16.sample(n, seed=2)), dtype="float64")
    t = be.asarray(np.linspace(0.1, 0.9, n), dtype="float64")
    probes = be.rademacher(be.key(1), (n, M, 16), "float64")
    return x, t, probes


def host(be, a):
    return np.asarray(be.to_numpy(a))


def test_fast_paths_agree_with_the_plain_ones(be):
    model = D16.score_model(SDE)
    plain = Counting()
    x, t, probes = inputs(be)
    s, tr = div.score_and_exact(plain, be, x, t)
    loop = Backend.value_and_divergence(be, plain, x, t)  # D separate JVPs
    for got, want in ((s, model(x, t)), (s, loop[0]), (tr, model.divergence(x, t)), (tr, loop[1])):
        np.testing.assert_allclose(host(be, got), host(be, want), rtol=TIGHT, atol=TIGHT)
    s, est = div.score_and_hutchinson(plain, be, x, t, probes)
    np.testing.assert_allclose(host(be, s), host(be, model(x, t)), rtol=TIGHT, atol=TIGHT)
    np.testing.assert_allclose(host(be, est), host(be, div.hutchinson(model, be, x, t, probes)), rtol=TIGHT,
                               atol=TIGHT)


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_one_model_call_per_evaluation_and_the_passes_reported(be, divergence):
    x = np.asarray(D16.sample(4, seed=3))
    plain, analytic = Counting(), CountingAnalytic()
    lp, info = sc.log_likelihood(plain, SDE, x, backend=be, dtype="float64", divergence=divergence, n_probes=2,
                                 return_info=True)
    assert plain.calls == info.nfe  # the divergence's passes carry the score: no second call
    assert info.passes == (16 if divergence == "exact" else 2)
    assert info.model_nfe == info.nfe * info.passes
    lp_a, info_a = sc.log_likelihood(analytic, SDE, x, backend=be, dtype="float64", divergence=divergence,
                                     n_probes=2, return_info=True)
    assert analytic.calls == 2 * info_a.nfe  # a call and the analytic divergence / jvp
    assert info_a.passes == (2 if divergence == "exact" else 3)  # the jvp runs on the batch repeated twice
    np.testing.assert_allclose(host(be, lp), host(be, lp_a), rtol=1e-9)
    np.testing.assert_array_equal(info_a.model_nfe_per_sample, info_a.nfe_per_sample * info_a.passes)


def test_passes_rule():
    model = D16.score_model(SDE)
    assert div.passes(model, "exact", 1, 16) == 2 and div.passes(Counting(), "exact", 1, 16) == 16
    assert div.passes(model, "hutchinson", 4, 16) == 5 and div.passes(Counting(), "hutchinson", 4, 16) == 4
