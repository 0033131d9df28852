"""The eager likelihood solve evaluates only the samples still running (samplers.compaction.compacted_step):
the same steps, the same numbers up to round-off, fewer rows."""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc
from scorecore.samplers import compaction, ode
from support.tolerance import assert_close

D16 = sc.GaussianMixture.example("16d")


class RowCounter:
    """The exact score (with its analytic divergence and jvp), recording each call's batch size."""

    def __init__(self, model):
        self.model, self.sizes = model, []
        self.event_shape = (16,)

    def __call__(self, x, t):
        self.sizes.append(x.shape[0])
        return self.model(x, t)

    def divergence(self, x, t):
        return self.model.divergence(x, t)

    def jvp(self, x, t, v):
        return self.model.jvp(x, t, v)


def _solve(backend, options, below, monkeypatch):
    monkeypatch.setattr(compaction, "COMPACT_BELOW", below)
    monkeypatch.setattr(compaction, "COMPACT_MIN_FINISHED", 1)
    sde = sc.VESDE()
    model = RowCounter(D16.score_model(sde))
    x = np.asarray(D16.sample(24, seed=4))
    logp, info = sc.log_likelihood(model, sde, x, backend=backend, dtype="float64", return_info=True, **options)
    be = sc.get_backend(backend)
    return be.to_numpy(logp), info, model.sizes, be


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "torch"])
@pytest.mark.parametrize("options", [{}, {"divergence": "hutchinson", "probe": "rademacher", "n_probes": 2}],
                         ids=["exact", "hutchinson"])
def test_compaction_takes_the_same_steps_on_fewer_rows(backend, options, monkeypatch):
    """COMPACT_BELOW = 1 and COMPACT_MIN_FINISHED = 1 (compact as soon as one sample is done)
    against COMPACT_BELOW = 0 (never): the same
    per-sample accepted/rejected counts and NFE, log p equal to float64 round-off (elementwise
    ops give the same bits whatever the batch; a matmul at another batch size may round
    differently), and the model called on fewer rows once samples finish. The counts are
    compared exactly: a step decision could only flip for an error norm within the model's
    round-off (~1e-15) of 1, on any CPU or BLAS kernel."""
    if backend == "torch":
        pytest.importorskip("torch")
    full, info_full, sizes_full, be = _solve(backend, options, 0.0, monkeypatch)
    comp, info_comp, sizes_comp, _ = _solve(backend, options, 1.0, monkeypatch)
    assert info_comp.nfe == info_full.nfe and info_comp.converged
    for k in ("accepted", "rejected", "status"):
        np.testing.assert_array_equal(be.to_numpy(info_comp.stats[k]), be.to_numpy(info_full.stats[k]))
    assert_close(comp, full, 64 * np.finfo(np.float64).eps, what=backend)  # relative to max |log p|
    assert set(sizes_full) == {24} and min(sizes_comp) < 24 and sum(sizes_comp) < sum(sizes_full)


def _leaves(state):
    """Every array of a solver state (the controller's memory tuple flattened)."""
    return [leaf for v in state for leaf in _leaves(v)] if isinstance(state, tuple) else [state]


def test_compacted_step_equals_the_masked_step_bit_for_bit_on_independent_rows():
    """A right-hand side with per-row rates, dy/dt = −λ_i y (λ from 0.1 to 30: the rows finish
    at different iterations), elementwise only: every state field after every step is the
    masked step's, bit for bit, whichever rows are taken."""
    lam = np.linspace(0.1, 30.0, 9)[:, None]

    def make(rates):
        def F(y, t):
            return -rates * y

        F.rows = lambda idx: make(rates[idx])
        return F

    F = make(lam)
    step = lambda F_, s: ode.dopri5_step(F_, s, 1.0, direction=1.0, rtol=1e-6, atol=1e-6, span=1.0,  # noqa: E731
                                         controller=ode.CONTROLLERS["predictive"](ode.DOPRI5.embedded_order))
    s_full = s_comp = ode.dopri5_init(F, np.ones((9, 2)), 0.0, 1.0, rtol=1e-6, atol=1e-6)
    compacted = 0
    while (s_full.status == sc.samplers.status.RUNNING).any():
        compacted += bool(0 < (s_comp.status == sc.samplers.status.RUNNING).sum() < 9)
        s_full, s_comp = step(F, s_full), compaction.compacted_step(step, F, s_comp, below=1.0, min_finished=1)
        for a, b in zip(_leaves(s_full), _leaves(s_comp)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert compacted > 0
    np.testing.assert_allclose(s_full.y, np.exp(-lam) * np.ones((9, 2)), rtol=1e-4, atol=1e-5)  # atol = 10 × the solve's
