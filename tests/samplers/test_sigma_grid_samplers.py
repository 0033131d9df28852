"""The σ-grid samplers (Euler ancestral, LMS, DPM-2, DPM-Solver++ 2S / 2S ancestral / 2M SDE /
3M / 3M SDE): exact NFE, order of convergence on a Gaussian, explicit levels, the callback,
the schedules, argument checks and agreement across backends. Conformance with k-diffusion:
test_kdiffusion_conformance.py; batch invariance: test_batch_invariance.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import CountingScore
from support.ring import RING, gaussian, gaussian_flow
from hypothesis import given
from hypothesis import strategies as st

import scorecore as sc
from scorecore.samplers import SAMPLERS, make_sampler
from scorecore.samplers.lms import lagrange_weights
from scorecore.samplers.sigma_space import SCHEDULES, sigma_of_time, sigma_steps

MU, LAM = np.array([1.0, -0.5, 2.0]), np.array([0.3, 1.0, 0.05]) ** 2
SDES = {"VP": sc.VPSDE(), "VE": sc.VESDE(), "subVP": sc.SubVPSDE()}
NEW = ["euler_ancestral", "lms", "dpm_2", "dpmpp_2s", "dpmpp_2s_ancestral", "dpmpp_2m_sde", "dpmpp_3m", "dpmpp_3m_sde",
       "unipc", "unipc_bh1", "deis", "dpm_solver"]
#: score calls of N steps on levels ending at σ = 0 (the step into 0 evaluates once, at σ_{N−1})
NFE = {"euler_ancestral": lambda n: n, "lms": lambda n: n, "dpm_2": lambda n: 2 * n - 1,
       "dpmpp_2s": lambda n: 2 * n - 1, "dpmpp_2s_ancestral": lambda n: 2 * n - 1, "dpmpp_2m_sde": lambda n: n,
       "dpmpp_3m": lambda n: n, "dpmpp_3m_sde": lambda n: n, "unipc": lambda n: n, "unipc_bh1": lambda n: n,
       "deis": lambda n: n, "dpm_solver": lambda n: 3 * n - 2}
TWO_STAGE = {"dpm_2", "dpmpp_2s", "dpmpp_2s_ancestral"}
THREE_STAGE = {"dpm_solver"}  # DPM-Solver-3, the default order


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("n", [1, 2, 7])
def test_reported_nfe_is_the_number_of_score_calls(name, n):
    sde = sc.VPSDE()
    model = CountingScore(RING.score_model(sde))
    _, info = sc.sample(model, sde, (16, 2), sampler=name, steps=n, progress=False, return_info=True)
    assert info.nfe == model.calls == NFE[name](n)
    # Levels ending above σ = 0: every step is a full one (two calls for the two-stage methods).
    sig = sigma_steps(sde, "karras", n + 1, sigma_of_time(sde, sde.T), 0.01)
    model = CountingScore(RING.score_model(sde))
    _, info = sc.sample(model, sde, (16, 2), sampler=name, sigmas=sig, progress=False, return_info=True)
    assert info.nfe == model.calls == (3 * n if name in THREE_STAGE else 2 * n if name in TWO_STAGE else n)


# (sampler, options, step counts N, 2N, 4N, order). All run on Karras levels down to σ_min =
# 1e-4, then σ = 0, where the flow is known in closed form.
# LMS(4) and DPM-Solver++(3M) start with an Euler step, whose local error O(h²) caps the global
# order at 2 for small enough h; LMS's constant is tiny (slopes 3.4, 3.7, 3.9 from 40 to 320
# steps under VP), 3M's is not (1.2, 1.8, 1.9 over the same range), so 3M's asymptotic order is 2.
CASES = [
    ("euler_ancestral", {"eta": 0.0}, (40, 80, 160), 1),
    ("lms", {}, (80, 160, 320), 4),
    ("lms", {"order": 2}, (40, 80, 160), 2),
    ("dpm_2", {}, (40, 80, 160), 2),
    ("dpmpp_2s", {}, (40, 80, 160), 2),
    ("dpmpp_2m_sde", {"eta": 0.0}, (40, 80, 160), 2),
    ("dpmpp_3m", {"schedule": "logsnr"}, (80, 160, 320), 2),
    # UniP-p has order p; its corrector UniC raises it to p + 1 at no extra evaluation.
    ("unipc", {"order": 1, "corrector": False}, (40, 80, 160), 1),
    ("unipc", {"order": 1}, (40, 80, 160), 2),
    ("unipc_bh1", {"order": 1}, (40, 80, 160), 2),
    ("unipc", {"order": 2, "corrector": False}, (40, 80, 160), 2),
    ("unipc", {"order": 2}, (40, 80, 160), 3),
    ("unipc_bh1", {"order": 2}, (40, 80, 160), 3),
    ("deis", {"order": 1}, (40, 80, 160), 1),
    ("deis", {"order": 2}, (40, 80, 160), 2),
]
PAIRS = [(case, sde) for case in CASES for sde in SDES]


@pytest.mark.parametrize("case,sde", PAIRS, ids=[f"{c[0]}{c[1].get('order', '')}-{s}" for c, s in PAIRS])
def test_order_of_convergence(case, sde):
    name, options, steps, order = case
    sde = SDES[sde]
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((8, 3))
    truth = gaussian_flow(sde, MU, LAM, x_T, 0.0)
    errors = [np.abs(sc.sample(gaussian(MU, LAM).score_model(sde), sde, (8, 3), sampler=name, steps=n, x_init=x_T,
                               sigma_min=1e-4, progress=False, **options) - truth).max() for n in steps]
    slopes = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(p - order) < (0.1 if order == 1 else 0.35) for p in slopes), (errors, slopes)


def _exact_history():
    """(sde, model, ctx, flow, den) on the Gaussian under VE: the exact flow x̂(σ) from one x_T and
    its denoiser D(σ) = E[x(0) | x(σ)], for local-error tests from an exact state and history."""
    sde = sc.VESDE()
    model = gaussian(MU, LAM).score_model(sde)
    x_T = sde.prior_std * np.random.default_rng(1).standard_normal((8, 3))
    ctx = sc.samplers.Context(sc.get_backend("numpy"), np.float64, (8, 3))

    def flow(s):
        return gaussian_flow(sde, MU, LAM, x_T, sc.samplers.sigma_space.time_of_sigma(sde, s))

    def den(s):
        return MU + LAM / (LAM + s * s) * (flow(s) - MU)

    return sde, model, ctx, flow, den


@pytest.mark.parametrize("taylor,order", [(False, 2), (True, 3)])
def test_dpmpp_3m_local_error_from_exact_history(taylor, order):
    # One 3M step whose state and two earlier data predictions are exact (the Gaussian's flow
    # and its denoiser) has local error O(h^(order+1)): the peers' φ₃ weight on d₂ leaves it
    # O(h³) (second order), the Taylor weight 2φ₃ makes it O(h⁴).
    sde, model, ctx, flow, den = _exact_history()

    errs = []
    for h in (0.04, 0.02, 0.01):
        sig = [math.exp(-h * j) for j in range(4)] + [0.0]  # σ = 1 then three λ-steps of h
        prog = make_sampler("dpmpp_3m", sigmas=sig, taylor=taylor).program(model, sde, ctx, 1e-3)
        x_next, _, _ = prog.step(2, (flow(sig[2]), den(sig[1]), den(sig[0])), None)
        errs.append(np.abs(x_next - flow(sig[3])).max())
    slopes = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert all(abs(p - (order + 1)) < 0.35 for p in slopes), (errs, slopes)


def test_deis_3_local_error_from_exact_history():
    # tAB-3 from an exact state and two exact earlier noise predictions: local error O(h⁴).
    # (Globally, on this Gaussian, its slopes read 3.1–3.9 from 10 to 320 steps: the Euler
    # start's O(h²) term has a tiny constant here, as LMS's does.)
    sde, model, ctx, flow, den = _exact_history()

    def eps(s):
        return (flow(s) - den(s)) / s  # (x̂ − D)/σ

    errs = []
    for h in (0.04, 0.02, 0.01):
        sig = [math.exp(-h * j) for j in range(20)]  # ≥ 15 steps: no lower-order final steps
        prog = make_sampler("deis", sigmas=sig).program(model, sde, ctx, 1e-3)
        x_next = prog.step(2, (flow(sig[2]), eps(sig[1]), eps(sig[0])), None)[0]
        errs.append(np.abs(x_next - flow(sig[3])).max())
    slopes = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert all(abs(p - 4) < 0.35 for p in slopes), (errs, slopes)


def test_deis_weights_integrate_polynomials_in_log_sigma_exactly():
    # Σ_j c_j p(log ρ_j) = ∫ p(log ρ) dρ for p of degree < 3; ∫ (log ρ)^k dρ by parts.
    from scorecore.samplers.deis import tab_weights

    nodes, b = [2.0, 3.0, 5.0], 0.7
    w = tab_weights(nodes, b)
    prims = [lambda r: r, lambda r: r * (math.log(r) - 1), lambda r: r * (math.log(r) ** 2 - 2 * math.log(r) + 2)]
    for k, F in enumerate(prims):
        assert sum(wj * math.log(x) ** k for wj, x in zip(w, nodes)) == pytest.approx(F(b) - F(nodes[0]), rel=1e-12)
    # Into ρ = 0 the integrals converge: ∫_0^a (log ρ)^k dρ = F(a).
    w0 = tab_weights(nodes, 0.0)
    for k, F in enumerate(prims):
        assert sum(wj * math.log(x) ** k for wj, x in zip(w0, nodes)) == pytest.approx(-F(nodes[0]), rel=1e-12)


def test_lms_weights_integrate_polynomials_exactly():
    # ∫_a^b Σ_j w_j p(node_j) = ∫_a^b p for every p of degree < number of nodes.
    nodes, a, b = [3.0, 4.5, 7.0, 12.0], 3.0, 1.2
    w = lagrange_weights(nodes, a, b)
    for deg in range(4):
        want = (b ** (deg + 1) - a ** (deg + 1)) / (deg + 1)
        assert sum(wj * x**deg for wj, x in zip(w, nodes)) == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("name", NEW)
def test_explicit_sigmas_and_times_give_the_same_run(name):
    sde = sc.VPSDE()
    sig = sigma_steps(sde, "logsnr", 6, sigma_of_time(sde, sde.T), 0.01) + [0.0]
    times = [sc.samplers.sigma_space.time_of_sigma(sde, s) for s in sig[:-1]] + [0.0]
    kw = dict(sampler=name, seed=2, progress=False)
    by_sigma = sc.sample(RING.score_model(sde), sde, (32, 2), sigmas=sig, **kw)
    by_time = sc.sample(RING.score_model(sde), sde, (32, 2), times=times, **kw)
    by_schedule = sc.sample(RING.score_model(sde), sde, (32, 2), steps=6, schedule="logsnr", sigma_min=0.01, **kw)
    np.testing.assert_allclose(by_time, by_sigma, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(by_schedule, by_sigma)


def test_a_grid_ending_above_zero_ends_there_in_x_space():
    # DPM-Solver++(2M) at η = 0 ending at σ(eps) is scorecore's dpmpp_2m without its lower-order
    # final step: the same method on the same times, written in x instead of x̂.
    sde, n = sc.VPSDE(), 20
    eps = sc.api.default_eps(sde)
    ts = sc.samplers.sigma_space.time_steps(sde, "logsnr", n + 1, sde.T, eps)
    kw = dict(x_init=np.random.default_rng(0).standard_normal((32, 2)), progress=False)
    ours = sc.sample(RING.score_model(sde), sde, (32, 2), sampler="dpmpp_2m_sde", eta=0.0, times=ts, **kw)
    ref = sc.sample(RING.score_model(sde), sde, (32, 2), sampler="dpmpp_2m", steps=n, **kw)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", NEW)
def test_callback_sees_every_step(name):
    seen = []
    sde = sc.VESDE()
    x, info = sc.sample(RING.score_model(sde), sde, (8, 2), sampler=name, steps=5, seed=1, progress=False,
                        return_info=True, callback=lambda i, x, t, d: seen.append((i, t, np.array(x), np.array(d))))
    assert [i for i, *_ in seen] == list(range(5))
    ts = [t for _, t, _, _ in seen]
    assert ts[0] == sde.T and all(a > b > 0 for a, b in zip(ts, ts[1:]))
    # The last step into σ = 0 is the denoiser's output itself (LMS's combines earlier slopes).
    if name != "lms":
        np.testing.assert_array_equal(seen[-1][3], x)


@given(name=st.sampled_from(NEW), N=st.sampled_from([1, 2, 3, 4, 7, 14, 15]), schedule=st.sampled_from(SCHEDULES),
       rho=st.sampled_from([1.0, 3.0, 7.0]), sde=st.sampled_from(list(SDES.values())),
       eps=st.sampled_from([1e-5, 1e-3]))
def test_finite_at_the_sigma_to_zero_end(name, N, schedule, rho, sde, eps):
    # The driver raises NonFiniteError on NaN/inf (log 0 in λ, 0/0 at σ = 0); check again.
    x = sc.sample(RING.score_model(sde), sde, (64, 2), sampler=name, steps=N, schedule=schedule, rho=rho, eps=eps,
                  seed=0, progress=False)
    assert np.all(np.isfinite(x))


def test_callback_is_refused_on_a_compiled_backend():
    pytest.importorskip("jax")
    with pytest.raises(ValueError, match="callback runs on eager backends only"):
        sc.sample(RING.score_model(sc.VPSDE()), sc.VPSDE(), (4, 2), sampler="lms", steps=3, backend="jax",
                  callback=lambda *a: None, progress=False)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("sde", list(SDES.values()), ids=list(SDES))
def test_schedules_span_the_levels_decreasingly(schedule, sde):
    top, low = sigma_of_time(sde, sde.T), sigma_of_time(sde, 1e-3)
    for rho in (1.0, 7.0):
        sig = sigma_steps(sde, schedule, 9, top, low, rho)
        assert sig[0] == top and sig[-1] == low and all(a > b for a, b in zip(sig, sig[1:])), sig


def test_named_schedules_are_the_documented_spacings():
    sde, top, low = sc.VPSDE(), 80.0, 0.002
    lam = [-math.log(s) for s in sigma_steps(sde, "exponential", 7, top, low)]
    np.testing.assert_allclose(np.diff(lam), np.diff(lam)[0], rtol=1e-12)
    assert sigma_steps(sde, "exponential", 7, top, low) == sigma_steps(sde, "logsnr", 7, top, low)
    assert sigma_steps(sde, "polyexponential", 7, top, low, 1.0) == pytest.approx(
        sigma_steps(sde, "exponential", 7, top, low), rel=1e-13)
    # "vp" on the VP SDE with its own β (β_min = 0.1, β_d = 19.9) is uniform in t.
    s_T, s_e = sigma_of_time(sde, 1.0), sigma_of_time(sde, 1e-3)
    np.testing.assert_allclose(sigma_steps(sde, "vp", 7, s_T, s_e), sigma_steps(sde, "uniform", 7, s_T, s_e),
                               rtol=1e-11)


@pytest.mark.parametrize("name,options,match", [
    ("lms", {"order": 0}, "order"), ("lms", {"order": 7}, "order"), ("lms", {"steps": 0}, "n_steps"),
    ("euler_ancestral", {"eta": -1.0}, "eta"), ("euler_ancestral", {"s_noise": math.nan}, "s_noise"),
    ("dpmpp_2s_ancestral", {"eta": 1.5}, "eta"), ("dpmpp_3m_sde", {"order": 4}, "order"),
    ("dpmpp_2m_sde", {"solver_type": "rk"}, "solver_type"), ("dpm_2", {"schedule": "cosine"}, "schedule"),
    ("dpm_2", {"rho": 0.0}, "rho"), ("lms", {"sigma_max": 1e6}, "sigma_max"),
    ("lms", {"sigmas": [3.0, 4.0, 0.0]}, "sigmas must be a strictly decreasing"),
    ("lms", {"sigmas": [1e6, 1.0, 0.0]}, r"sigmas must be .* in \(0, 1"),
    ("lms", {"sigmas": [3.0, 1.0, 0.0], "steps": 5}, "n_steps must be len"),
    ("lms", {"times": [2.0, 0.5, 0.0]}, r"times must be .* in \(0, 1\]"),
    ("lms", {"sigmas": [3.0, 0.0], "times": [1.0, 0.0]}, "sigmas or times"),
    ("unipc", {"order": 4}, "order"), ("unipc", {"solver_type": "bh3"}, "solver_type"),
    ("deis", {"order": 4}, "order"),
    ("edm", {"sigmas": [3.0, 1.0]}, "the last of sigmas"), ("edm", {"sigmas": [1e6, 1.0, 0.0]}, "sigmas must be"),
    ("ddim", {"times": [1.0, 0.5, 0.0]}, r"times must be .* in \(0, inf\]"),
    ("dpmpp_2m", {"times": [2.0, 1.0]}, r"times must be .* in \(0, 1\]"),
    ("ddim", {"times": [1.0, 0.5], "steps": 3}, "n_steps must be len"),
])
def test_bad_options_are_named_before_the_model_runs(name, options, match):
    model = CountingScore(RING.score_model(sc.VPSDE()))
    with pytest.raises(ValueError, match=match):
        sc.sample(model, sc.VPSDE(), (4, 2), sampler=name, progress=False, **options)
    assert model.calls == 0


def test_a_callback_that_is_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match="callback must be a callable"):
        make_sampler("lms", callback="print")


def test_registered():
    for name in NEW:
        assert name in SAMPLERS
    assert make_sampler("dpmpp_3m").eta == 0.0 and make_sampler("dpmpp_3m_sde").eta == 1.0
    assert make_sampler("dpmpp_2m_sde").order == 2 and make_sampler("dpmpp_2s_ancestral").eta == 1.0
    assert make_sampler("unipc").solver_type == "bh2" and make_sampler("unipc_bh1").solver_type == "bh1"


@pytest.mark.parametrize("name", NEW)
def test_same_numbers_on_every_core_backend(backend, name):
    sde = sc.VESDE()
    kw = dict(sampler=name, steps=5, seed=4, progress=False)
    x = sc.sample(RING.score_model(sde), sde, (16, 2), backend=backend, **kw)
    ref = sc.sample(RING.score_model(sde), sde, (16, 2), backend="numpy", **kw)
    np.testing.assert_allclose(backend.to_numpy(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NEW)
def test_jax_runs_compiled_in_float32(name):
    # Deterministic samplers from the same x(T) agree with NumPy's float64 run to float32
    # rounding carried through the run; stochastic ones draw JAX's noise, so only finiteness
    # and the trace are checked for them.
    pytest.importorskip("jax")
    sde = sc.VPSDE()
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((64, 2))
    kw = dict(sampler=name, steps=8, seed=4, x_init=x_T, progress=False)
    x = np.asarray(sc.sample(RING.score_model(sde), sde, (64, 2), backend="jax", dtype="float32", **kw))
    assert x.dtype == np.float32 and np.all(np.isfinite(x))
    if make_sampler(name).__dict__.get("eta", 0.0) == 0.0:
        ref = sc.sample(RING.score_model(sde), sde, (64, 2), **kw)
        np.testing.assert_allclose(x, ref, rtol=0, atol=4096 * np.finfo(np.float32).eps * np.abs(ref).max())
