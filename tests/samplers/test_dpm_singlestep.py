"""Singlestep DPM-Solver-1/2/3, DPM-Solver-fast and DPM-Solver-adaptive: exact NFE, order of
convergence on a Gaussian, argument checks, and agreement with k-diffusion's ``DPMSolver``
(``dpm_solver_{1,2,3}_step``, ``sample_dpm_fast``, ``sample_dpm_adaptive``) to 1e-10 in float64
on the same denoiser, levels and noise. Every-backend oracle runs:
tests/conformance/test_samplers_every_backend.py; batch invariance: test_batch_invariance.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from kdiffusion_stub import load_sampling
from support import CountingScore
from support.ring import RING, gaussian, gaussian_flow

import scorecore as sc
from scorecore import streams
from scorecore.samplers import make_sampler
from scorecore.samplers.dpm_singlestep import fast_orders
from scorecore.samplers.sigma_space import karras_sigmas, sigma_of_time, sigma_steps, time_of_sigma

MU, LAM = np.array([1.0, -0.5, 2.0]), np.array([0.3, 1.0, 0.05]) ** 2
SDES = {"VP": sc.VPSDE(), "VE": sc.VESDE(), "subVP": sc.SubVPSDE()}
N_SAMPLES, SEED, TOL = 64, 3, 1e-10


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2, 7])
def test_dpm_solver_nfe_is_order_per_step(order, n):
    sde = sc.VPSDE()
    model = CountingScore(RING.score_model(sde))
    _, info = sc.sample(model, sde, (16, 2), sampler="dpm_solver", order=order, steps=n, progress=False,
                        return_info=True)
    assert info.nfe == model.calls == order * (n - 1) + 1  # the step into σ = 0 is x̂ ← D
    model = CountingScore(RING.score_model(sde))
    sig = sigma_steps(sde, "karras", n + 1, sigma_of_time(sde, sde.T), 0.01)
    _, info = sc.sample(model, sde, (16, 2), sampler="dpm_solver", order=order, sigmas=sig, progress=False,
                        return_info=True)
    assert info.nfe == model.calls == order * n


@pytest.mark.parametrize("nfe", [1, 2, 3, 4, 5, 6, 7, 20])
def test_dpm_fast_spends_exactly_its_budget(nfe):
    sde = sc.VESDE()
    model = CountingScore(RING.score_model(sde))
    _, info = sc.sample(model, sde, (16, 2), sampler="dpm_fast", steps=nfe, progress=False, return_info=True)
    assert info.nfe == model.calls == nfe == sum(fast_orders(nfe))
    assert fast_orders(nfe)[-1] in (1, 2) and set(fast_orders(nfe)[:-2]) <= {3}


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("error_norm", ["sample", "batch"])
def test_dpm_adaptive_nfe_is_order_per_try(order, error_norm):
    sde = sc.VPSDE()
    model = CountingScore(RING.score_model(sde))
    _, info = sc.sample(model, sde, (32, 2), sampler="dpm_adaptive", order=order, error_norm=error_norm,
                        progress=False, return_info=True)
    tries = np.asarray(info.stats["accepted"]) + np.asarray(info.stats["rejected"])
    # Every iteration calls the model on the whole batch until the last sample arrives.
    assert info.nfe == model.calls == order * int(tries.max())
    assert np.all(np.asarray(info.stats["status"]) == sc.samplers.status.CONVERGED)
    if error_norm == "batch":
        assert np.all(tries == tries[0])
    else:  # per-sample control: samples take their own numbers of steps
        assert tries.min() < tries.max()


# (sampler, options, budgets, order). dpm_solver runs on λ-uniform levels down to σ(eps) > 0,
# dpm_fast on its own; with budgets 3N + 2 its steps are order 3 but a last order-2 step, whose
# local error O(h³) keeps the global order 3 (3N + 1 ends with an Euler step: measured slopes
# 2.3, 2.2 under VP).
ORDER_CASES = [
    ("dpm_solver", {"order": 1}, (40, 80, 160), 1),
    ("dpm_solver", {"order": 2}, (20, 40, 80), 2),
    ("dpm_solver", {"order": 3}, (20, 40, 80), 3),
    ("dpm_fast", {}, (62, 122, 242), 3),
]
PAIRS = [(case, sde) for case in ORDER_CASES for sde in SDES]


@pytest.mark.parametrize("case,sde", PAIRS, ids=[f"{c[0]}{c[1].get('order', '')}-{s}" for c, s in PAIRS])
def test_order_of_convergence(case, sde):
    name, options, budgets, order = case
    sde = SDES[sde]
    eps = sc.api.default_eps(sde)
    top, low = sigma_of_time(sde, sde.T), sigma_of_time(sde, eps)
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((8, 3))
    truth = gaussian_flow(sde, MU, LAM, x_T, time_of_sigma(sde, low) if name == "dpm_solver" else eps)
    model = gaussian(MU, LAM).score_model(sde)

    def run(n):
        levels = dict(sigmas=sigma_steps(sde, "logsnr", n + 1, top, low)) if name == "dpm_solver" else dict(steps=n)
        return sc.sample(model, sde, (8, 3), sampler=name, x_init=x_T, progress=False, **levels, **options)

    errors = [np.abs(run(n) - truth).max() for n in budgets]
    slopes = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(p - order) < (0.1 if order == 1 else 0.35) for p in slopes), (errors, slopes)


@pytest.mark.parametrize("sde", SDES)
def test_dpm_adaptive_error_follows_the_tolerance(sde):
    # Measured max errors against the exact flow at rtol = atol = 1e-2 … 1e-5: 2e-2 … 4e-5
    # (DPM-Solver-12) and 4e-2 … 5e-5 (-23), the -23 pair at a quarter of -12's NFE at 1e-5.
    sde = SDES[sde]
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((8, 3))
    truth = gaussian_flow(sde, MU, LAM, x_T, sc.api.default_eps(sde))
    nfe = {}
    for order in (2, 3):
        errors = []
        for tol in (1e-2, 1e-3, 1e-4, 1e-5):
            x, info = sc.sample(gaussian(MU, LAM).score_model(sde), sde, (8, 3), sampler="dpm_adaptive", order=order,
                                rtol=tol, atol=tol, x_init=x_T, progress=False, return_info=True)
            errors.append(np.abs(x - truth).max())
        nfe[order] = info.nfe
        assert all(a > b for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-4, errors
    assert nfe[3] < nfe[2] / 2, nfe


@pytest.mark.parametrize("name,options,match", [
    ("dpm_solver", {"order": 4}, "order"), ("dpm_solver", {"order": 0}, "order"),
    ("dpm_solver", {"schedule": "cosine"}, "schedule"),
    ("dpm_fast", {"steps": 0}, "nfe"), ("dpm_fast", {"eta": -0.5}, "eta"),
    ("dpm_fast", {"s_noise": math.nan}, "s_noise"),
    ("dpm_fast", {"sigma_min": 0.0}, "sigma_min"), ("dpm_fast", {"sigma_max": 1e6}, "sigma_max"),
    ("dpm_fast", {"sigma_min": 2.0, "sigma_max": 1.0}, "sigma_max must exceed sigma_min"),
    ("dpm_adaptive", {"order": 1}, "order"), ("dpm_adaptive", {"rtol": 0.0}, "rtol"),
    ("dpm_adaptive", {"atol": -1.0}, "atol"), ("dpm_adaptive", {"h_init": 0.0}, "h_init"),
    ("dpm_adaptive", {"pcoeff": math.inf}, "pcoeff"), ("dpm_adaptive", {"accept_safety": 0.0}, "accept_safety"),
    ("dpm_adaptive", {"error_norm": "max"}, "error_norm"), ("dpm_adaptive", {"steps": 0}, "max_steps"),
    ("dpm_adaptive", {"eta": -1.0}, "eta"), ("dpm_adaptive", {"step_quantum": 0}, "step_quantum"),
])
def test_bad_options_are_named_before_the_model_runs(name, options, match):
    model = CountingScore(RING.score_model(sc.VPSDE()))
    with pytest.raises(ValueError, match=match):
        sc.sample(model, sc.VPSDE(), (4, 2), sampler=name, progress=False, **options)
    assert model.calls == 0


@pytest.mark.parametrize("sde_name", ["VP", "VE"])
def test_dpm_solver_1_and_2_are_euler_and_dpm_2_in_sigma(sde_name):
    # In x̂ and σ, σ'(e^h − 1) = σ − σ': DPM-Solver-1 is Euler's step of dx̂/dσ = ε̂, and
    # DPM-Solver-2 (r_1 = ½, the level √(σσ')) is DPM-2's midpoint step, written another way.
    sde = SDES[sde_name]
    kw = dict(steps=9, seed=1, progress=False)
    model = RING.score_model(sde)
    for ours, theirs in (({"order": 1}, dict(sampler="euler_ancestral", eta=0.0)),
                         ({"order": 2}, dict(sampler="dpm_2"))):
        x = sc.sample(model, sde, (64, 2), sampler="dpm_solver", **ours, **kw)
        np.testing.assert_allclose(x, sc.sample(model, sde, (64, 2), **theirs, **kw), rtol=0, atol=1e-11)


def test_registered():
    assert make_sampler("dpm_solver").order == 3 and make_sampler("dpm_fast", 12).nfe == 12
    assert make_sampler("dpm_adaptive", 50).max_steps == 50


def test_a_sample_that_runs_out_of_tries_is_reported():
    with pytest.raises(sc.samplers.BudgetExhaustedError):
        sc.sample(RING.score_model(sc.VPSDE()), sc.VPSDE(), (8, 2), sampler="dpm_adaptive", steps=3, progress=False)


# -- conformance with k-diffusion ------------------------------------------------------------

KD, WHY = load_sampling()
kd = pytest.mark.skipif(KD is None, reason=WHY)
KD_SDES = {"VE": sc.VESDE(), "VP": sc.VPSDE()}


def _kd_helpers():
    from test_kdiffusion_conformance import mixture_denoiser, x_start

    return mixture_denoiser, x_start


def _float64(fn):
    """Run ``fn`` with torch's default dtype float64: k-diffusion builds its λ grid and the
    tolerances from ``torch.tensor(float)``, float32 by default (1e-4 off in a float64 run)."""
    import torch

    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return fn()
    finally:
        torch.set_default_dtype(saved)


def _noise(keys):
    be = sc.get_backend("numpy")
    return [np.asarray(be.normal(k, (N_SAMPLES, 2), np.float64)) for k in keys]


def _step_keys(n):
    be = sc.get_backend("numpy")
    return [be.fold_in(be.key(SEED), k) for k in range(n)]


def _ends(sde):
    eps = sc.api.default_eps(sde)
    return sigma_of_time(sde, eps), sigma_of_time(sde, sde.T), float(sde.marginal(eps)[0])


def _run_sc(sde, sampler, x_T, **kw):
    return sc.sample(RING.score_model(sde), sde, (N_SAMPLES, 2), sampler=sampler, x_init=x_T, seed=SEED,
                     progress=False, return_info=True, **kw)


@kd
@pytest.mark.parametrize("sde_name", KD_SDES)
@pytest.mark.parametrize("n", [4, 12])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_dpm_solver_is_k_diffusions_singlestep_steps(order, n, sde_name):
    import torch

    mixture_denoiser, x_start = _kd_helpers()
    sde = KD_SDES[sde_name]
    s_min, s_max, _ = _ends(sde)
    sig = karras_sigmas(s_max, s_min, n) + [0.0]
    x_T, xh0 = x_start(sde, s_max)
    solver = KD.DPMSolver(mixture_denoiser(RING))
    step = getattr(solver, f"dpm_solver_{order}_step")
    x = torch.from_numpy(xh0.copy())
    lam = [-math.log(s) for s in sig[:-1]]
    for k in range(n - 1):
        x = step(x, torch.tensor(lam[k], dtype=torch.float64), torch.tensor(lam[k + 1], dtype=torch.float64))[0]
    want = solver.model(x, torch.full((N_SAMPLES,), sig[-2], dtype=torch.float64)).numpy()  # x̂_N = D(x̂; σ_{N−1})
    got, _ = _run_sc(sde, "dpm_solver", x_T, sigmas=sig, order=order)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@kd
@pytest.mark.parametrize("sde_name", KD_SDES)
@pytest.mark.parametrize("nfe", [1, 2, 3, 4, 5, 6, 10, 20])
@pytest.mark.parametrize("eta,s_noise", [(0.0, 1.0), (1.0, 1.0), (0.5, 0.8)])
def test_dpm_fast_is_sample_dpm_fast(eta, s_noise, nfe, sde_name):
    import torch

    mixture_denoiser, x_start = _kd_helpers()
    sde = KD_SDES[sde_name]
    s_min, s_max, m_end = _ends(sde)
    x_T, xh0 = x_start(sde, s_max)
    orders = fast_orders(nfe)
    # Order-3 step k draws from step k's key; the lower-order tail's j-th from fold_in(finish key, j).
    n3, be = orders.count(3), sc.get_backend("numpy")
    finish = streams.run_key(be, be.key(SEED), "finish")

    def kd_run(z):
        draws = iter(torch.from_numpy(v) for v in z)
        return _float64(lambda: KD.sample_dpm_fast(mixture_denoiser(RING), torch.from_numpy(xh0.copy()), s_min, s_max,
                                                   nfe, disable=True, eta=eta, s_noise=s_noise,
                                                   noise_sampler=lambda s, t: next(draws))).numpy()

    z = _noise(_step_keys(n3) + [be.fold_in(finish, j) for j in range(len(orders) - n3)])
    want = m_end * kd_run(z)
    got, info = _run_sc(sde, "dpm_fast", x_T, steps=nfe, eta=eta, s_noise=s_noise)
    assert info.nfe == nfe
    # 1e-10 of the samples' scale: at η = 1 with 2–3 steps (λ-steps of ~4) both runs leave the
    # ring (|x| up to 420, measured), and rounding there reads 7e-10 absolute, 2e-12 relative.
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL * max(1.0, np.abs(want).max()))
    if eta and len(orders) > 1:  # the noise matters (the last step adds none: σ_↓ = σ_min)
        assert np.abs(m_end * kd_run([-v for v in z]) - want).max() > 1e-2


@kd
@pytest.mark.parametrize("sde_name", KD_SDES)
@pytest.mark.parametrize("order,options", [(3, {}), (2, {}), (3, {"rtol": 0.01, "atol": 0.001}),
                                           (3, {"pcoeff": 0.3, "icoeff": 0.6, "dcoeff": 0.1, "h_init": 0.2}),
                                           (3, {"eta": 1.0}), (2, {"eta": 0.5, "s_noise": 0.9})])
def test_dpm_adaptive_with_one_batch_error_is_sample_dpm_adaptive(order, options, sde_name):
    import torch

    mixture_denoiser, x_start = _kd_helpers()
    sde = KD_SDES[sde_name]
    s_min, s_max, m_end = _ends(sde)
    x_T, xh0 = x_start(sde, s_max)
    z = _noise(_step_keys(200))
    D = mixture_denoiser(RING)
    calls = []

    def counted(x, sigma):
        calls.append(1)
        return D(x, sigma)

    # k-diffusion draws once per accepted try, after the try's `order` evaluations: try i gets z_i.
    x, kinfo = _float64(lambda: KD.sample_dpm_adaptive(
        counted, torch.from_numpy(xh0.copy()), s_min, s_max, disable=True, order=order, return_info=True,
        noise_sampler=lambda s, t: torch.from_numpy(z[len(calls) // order - 1]), **options))
    # k-diffusion takes raw step sizes: no quantum.
    got, info = _run_sc(sde, "dpm_adaptive", x_T, order=order, error_norm="batch", step_quantum=None, **options)
    np.testing.assert_allclose(got, m_end * x.numpy(), rtol=0, atol=TOL)
    assert info.nfe == kinfo["nfe"]
    assert np.all(np.asarray(info.stats["accepted"]) == kinfo["n_accept"])
    assert np.all(np.asarray(info.stats["rejected"]) == kinfo["n_reject"])
