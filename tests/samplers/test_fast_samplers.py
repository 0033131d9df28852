"""The fast samplers (EDM, DDIM, DPM-Solver++(2M), adaptive SDE): accuracy at low NFE against
exact samples, exact NFE, finiteness at the σ → 0 end, determinism and batch invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scorecore as sc
from scorecore.metrics import noise_floor, sliced_wasserstein
from scorecore.samplers import SAMPLERS, AdaptiveSDE, Context
from scorecore.samplers.sigma_space import SCHEDULES, sigma_of_time, time_of_sigma

RING = sc.GaussianMixture.example("8-ring")


class CountingScore:
    """Wraps a score model and counts its calls (the NFE actually spent)."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.event_shape = getattr(model, "event_shape", None)

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


@pytest.mark.parametrize("sde", [sc.VPSDE(), sc.VESDE(), sc.SubVPSDE()], ids=["VP", "VE", "subVP"])
def test_time_of_sigma_inverts_sigma_of_time(sde):
    for t in (1e-5, 1e-3, 0.1, 0.5, 1.0):
        assert time_of_sigma(sde, sigma_of_time(sde, t)) == pytest.approx(t, rel=1e-10)


@pytest.fixture(scope="module")
def ring_floor():
    n = 4000
    exact = RING.sample(n, seed=7)
    return n, exact, noise_floor(lambda k, s: RING.sample(k, seed=s), n)


@pytest.mark.parametrize("sampler,steps", [("edm", 25), ("dpmpp_2m", 20), ("dpmpp_2m", 50)])
@pytest.mark.parametrize("sde", [sc.VPSDE(), sc.VESDE()], ids=["VP", "VE"])
def test_within_twice_the_noise_floor_at_50_nfe(ring_floor, sampler, steps, sde):
    # n = 4000: floor ≈ 0.16 here, and EDM with 5 levels (9 NFE) sits at 3.6, DPM-Solver++ with 5
    # steps at 0.34–0.65, so the check separates converged from unconverged runs.
    n, exact, floor = ring_floor
    x, info = sc.sample(RING.score_model(sde), sde, (n, 2), sampler=sampler, steps=steps, seed=3,
                        progress=False, return_info=True)
    assert info.nfe <= 50
    assert sliced_wasserstein(x, exact) < 2 * floor


@pytest.mark.parametrize("N", [2, 3, 10])
def test_edm_with_n_levels_costs_2n_minus_1_score_calls(N):
    for churn in (0.0, 5.0):
        model = CountingScore(RING.score_model(sc.VPSDE()))
        _, info = sc.sample(model, sc.VPSDE(), (16, 2), sampler="edm", steps=N, s_churn=churn,
                            progress=False, return_info=True)
        assert info.nfe == model.calls == 2 * N - 1


@pytest.mark.parametrize("sampler,options,expected", [
    ("ddim", {"steps": 7}, 7), ("ddim", {"steps": 7, "denoise": True, "eta": 1.0}, 8),
    ("dpmpp_2m", {"steps": 9}, 9), ("dpmpp_2m", {"steps": 9, "denoise": True}, 10),
    ("adaptive_sde", {"steps": 150, "rtol": 0.3, "atol": 0.3}, 301),
])
def test_reported_nfe_is_the_number_of_score_calls(sampler, options, expected):
    model = CountingScore(RING.score_model(sc.VPSDE()))
    _, info = sc.sample(model, sc.VPSDE(), (16, 2), sampler=sampler, progress=False, return_info=True, **options)
    assert info.nfe == model.calls == expected


@given(sampler=st.sampled_from(["edm", "ddim", "dpmpp_2m"]), N=st.sampled_from([2, 3, 4, 7, 14, 15]),
       schedule=st.sampled_from(SCHEDULES), rho=st.sampled_from([1.0, 3.0, 7.0]),
       sde=st.sampled_from([sc.VPSDE(), sc.VESDE(), sc.SubVPSDE()]), eps=st.sampled_from([1e-5, 1e-3]))
def test_finite_at_the_sigma_to_zero_end(sampler, N, schedule, rho, sde, eps):
    # The driver raises NonFiniteError on NaN/inf (e.g. log(0) in λ or a 0/0 at σ = 0); check again.
    opts = {"rho": rho} if sampler == "edm" else {"schedule": schedule, "rho": rho}
    x = sc.sample(RING.score_model(sde), sde, (64, 2), sampler=sampler, steps=N, eps=eps, seed=0,
                  progress=False, **opts)
    assert np.all(np.isfinite(x))


def test_ddim_eta_zero_is_deterministic_and_eta_one_is_not():
    sde = sc.VPSDE()
    x_init = np.random.default_rng(0).standard_normal((32, 2))
    runs = {(eta, seed): sc.sample(RING.score_model(sde), sde, (32, 2), sampler="ddim", steps=10, eta=eta,
                                   seed=seed, x_init=x_init, progress=False)
            for eta in (0.0, 1.0) for seed in (1, 2)}
    np.testing.assert_array_equal(runs[0.0, 1], runs[0.0, 2])
    assert np.abs(runs[1.0, 1] - runs[1.0, 2]).max() > 0.1


@pytest.mark.parametrize("sampler,options", [
    ("edm", {"steps": 8, "s_churn": 10.0}),
    ("adaptive_sde", {"steps": 100, "rtol": 0.3, "atol": 0.3}),
], ids=["edm-churn", "adaptive_sde"])
def test_batch_invariance(sampler, options):
    sde = sc.VPSDE()
    big = sc.sample(RING.score_model(sde), sde, (500, 2), sampler=sampler, seed=5, progress=False, **options)
    small = sc.sample(RING.score_model(sde), sde, (50, 2), sampler=sampler, seed=5, progress=False, **options)
    np.testing.assert_array_equal(big[:50], small)
    other = sc.sample(RING.score_model(sde), sde, (50, 2), sampler=sampler, seed=6, progress=False, **options)
    assert np.abs(other - small).max() > 0.1  # the noise matters: the check can fail


def test_adaptive_steps_differ_per_sample_and_are_counted():
    be = sc.get_backend("numpy")
    smp = AdaptiveSDE(rtol=0.3, atol=0.3, max_steps=100)
    x, info = sc.sample(RING.score_model(sc.VPSDE()), sc.VPSDE(), (200, 2), sampler=smp, seed=2,
                        progress=False, return_info=True)
    stats = smp.last_info
    assert stats.done.all()
    assert stats.accepted.min() < stats.accepted.max()  # per-sample step sizes
    np.testing.assert_array_equal(stats.nfe, 2 * (stats.accepted + stats.rejected) + 1)
    assert stats.max_nfe <= info.nfe
    # The program's all_done lets a while-loop stop early with the same samples.
    ctx = Context(be, be.dtype(None), (200, 2))
    prog = smp.program(RING.score_model(sc.VPSDE()), sc.VPSDE(), ctx, 1e-3)
    key = be.key(2)
    state = prog.init(sc.VPSDE().prior_sample(ctx.normal(be.fold_in(key, sc.api.PRIOR_TAG))))
    k = 0
    while not prog.all_done(state):
        state, k = prog.step(k, state, be.fold_in(key, k)), k + 1
    np.testing.assert_array_equal(prog.finish(state), x)
    assert 2 * k + 1 == stats.max_nfe


def test_adaptive_raises_when_max_steps_is_too_small():
    with pytest.raises(RuntimeError, match="had not reached eps after max_steps=5"):
        sc.sample(RING.score_model(sc.VPSDE()), sc.VPSDE(), (8, 2), sampler="adaptive_sde", steps=5, progress=False)


@pytest.mark.parametrize("sampler,options,match", [
    ("edm", {"steps": 1}, "n_steps"), ("edm", {"s_churn": -1.0}, "s_churn"),
    ("edm", {"sigma_max": 1e6}, "sigma_max"), ("ddim", {"eta": -0.5}, "eta"),
    ("ddim", {"schedule": "cosine"}, "schedule"), ("dpmpp_2m", {"steps": 0}, "n_steps"),
    ("adaptive_sde", {"rtol": 0.0}, "rtol"), ("adaptive_sde", {"max_growth": math.nan}, "max_growth"),
])
def test_bad_options_are_named(sampler, options, match):
    with pytest.raises(ValueError, match=match):
        sc.sample(RING.score_model(sc.VPSDE()), sc.VPSDE(), (4, 2), sampler=sampler, progress=False, **options)


def test_registered():
    for name in ("edm", "ddim", "dpmpp_2m", "adaptive_sde"):
        assert SAMPLERS[name][0].name == name


@pytest.mark.parametrize("sampler,options", [
    ("edm", {"steps": 4, "s_churn": 5.0}), ("ddim", {"steps": 5, "eta": 0.5}), ("dpmpp_2m", {"steps": 5}),
    ("adaptive_sde", {"steps": 60, "rtol": 0.5, "atol": 0.5}),
])
def test_same_numbers_on_every_core_backend(backend, sampler, options):
    sde = sc.VESDE()
    x = sc.sample(RING.score_model(sde), sde, (16, 2), sampler=sampler, backend=backend, seed=4, progress=False,
                  **options)
    ref = sc.sample(RING.score_model(sde), sde, (16, 2), sampler=sampler, backend="numpy", seed=4, progress=False,
                    **options)
    np.testing.assert_allclose(backend.to_numpy(x), ref, rtol=1e-12, atol=1e-12)
