"""Conformance with k-diffusion 0.1.1.post1: where a scorecore sampler and one of k-diffusion's
implement the same method, both run in float64 on the same exact 8-ring denoiser, the same σ
levels (float64, built here: k-diffusion's schedules are float32) and, for the stochastic ones,
the same noise (k-diffusion's ``noise_sampler`` hands out scorecore's draws of each step), and
agree to 1e-10.

k-diffusion works on x̂ = x/m in σ; scorecore runs in x on the SDE's own time, so each case runs
under VE (m = 1) and VP (x(T) = m(T) x̂(σ_0)), and compares the final samples (σ_N = 0: m = 1, or
x = m(t_N) x̂ for grids ending above 0). Where the steps differ by design the test pins the
difference and checks which matches the exact flow.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.ring import RING, gaussian, gaussian_flow
from kdiffusion_stub import load_sampling

import scorecore as sc
from scorecore.samplers.ddim import DDIM
from scorecore.samplers.dpm_solver import DPMSolverPP
from scorecore.samplers.sigma_space import (exponential_sigmas, karras_sigmas, polyexponential_sigmas,
                                            sigma_of_time, time_steps, vp_sigma, vp_sigmas)

KD, WHY = load_sampling()
pytestmark = pytest.mark.skipif(KD is None, reason=WHY)
torch = pytest.importorskip("torch") if KD is not None else None

SDES = {"VE": sc.VESDE(), "VP": sc.VPSDE()}
N_SAMPLES, SEED = 64, 3
TOL = 1e-10


def mixture_denoiser(target: sc.GaussianMixture):
    """k-diffusion's model(x̂, σ) = E[x(0) | x(0) + σ n = x̂] for the Gaussian mixture, in NumPy:
    Σ_k r_k(x̂) (μ_k + Σ_k (Σ_k + σ² I)⁻¹ (x̂ − μ_k)), responsibilities r_k ∝ w_k N(x̂; μ_k, Σ_k + σ² I)
    (independent of scorecore's mixture code)."""
    w, mu, cov = (np.asarray(a, dtype=np.float64) for a in (target.weights, target.means, target.covs))
    eye = np.eye(mu.shape[1])

    def D(x, sigma):
        xn, s = x.numpy(), sigma.numpy()[:, None, None, None]
        c = cov[None] + s**2 * eye  # (n, K, d, d)
        diff = xn[:, None, :] - mu[None]  # (n, K, d)
        sol = np.linalg.solve(c, diff[..., None])[..., 0]
        logp = np.log(w)[None] - 0.5 * np.einsum("nkd,nkd->nk", diff, sol) - 0.5 * np.linalg.slogdet(c)[1]
        r = np.exp(logp - logp.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        post = mu[None] + np.einsum("kde,nke->nkd", cov, sol)
        return torch.from_numpy(np.einsum("nk,nkd->nd", r, post))

    return D


def step_noise(shape, seed=SEED):
    """Scorecore's step-k draw z_k = normal(fold_in(key(seed), k)) on NumPy, for every k < 64."""
    be = sc.get_backend("numpy")
    key = be.key(seed)
    return [np.asarray(be.normal(be.fold_in(key, k), shape, np.float64)) for k in range(64)]


def noise_sampler(sigmas, z):
    """k-diffusion's noise_sampler(σ_i, σ_{i+1}), handing out scorecore's z_i."""
    levels = [float(s) for s in sigmas]
    return lambda s, s_next: torch.from_numpy(z[levels.index(float(s))])


def x_start(sde, sigma0):
    """(x(T) for scorecore, x̂ at σ_0 for k-diffusion): the same prior draw."""
    x_T = np.random.default_rng(SEED).standard_normal((N_SAMPLES, 2)) * sigma0
    m_T = float(sde.marginal(sde.T)[0])
    return m_T * x_T, x_T


def run_kd(fn, sigmas, xh0, **kw):
    sig = torch.tensor(sigmas, dtype=torch.float64)
    if "noise_sampler" in kw:
        kw["noise_sampler"] = noise_sampler(sigmas, kw["noise_sampler"])
    out = fn(mixture_denoiser(RING), torch.from_numpy(xh0.copy()), sig, disable=True, **kw)
    return out.numpy()


def run_sc(sde, sampler, x_T, **kw):
    return sc.sample(RING.score_model(sde), sde, (N_SAMPLES, 2), sampler=sampler, x_init=x_T, seed=SEED,
                     progress=False, **kw)


def top_levels(sde, n, eps=None):
    eps = sc.api.default_eps(sde) if eps is None else eps
    return karras_sigmas(sigma_of_time(sde, sde.T), sigma_of_time(sde, eps), n) + [0.0]


# (scorecore sampler, its options, k-diffusion sampler, its options, stochastic)
SAME = [
    ("euler_ancestral", {}, "sample_euler_ancestral", {}, True),
    ("euler_ancestral", {"eta": 0.5, "s_noise": 0.9}, "sample_euler_ancestral", {"eta": 0.5, "s_noise": 0.9}, True),
    ("lms", {}, "sample_lms", {}, False),
    ("lms", {"order": 3}, "sample_lms", {"order": 3}, False),
    ("dpm_2", {}, "sample_dpm_2", {}, False),
    ("dpmpp_2s", {}, "sample_dpmpp_2s_ancestral", {"eta": 0.0}, False),
    ("dpmpp_2s_ancestral", {}, "sample_dpmpp_2s_ancestral", {}, True),
    ("dpmpp_2m_sde", {}, "sample_dpmpp_2m_sde", {}, True),
    ("dpmpp_2m_sde", {"solver_type": "heun", "eta": 0.7}, "sample_dpmpp_2m_sde", {"solver_type": "heun", "eta": 0.7},
     True),
    ("dpmpp_2m_sde", {"eta": 0.0}, "sample_dpmpp_2m", {}, False),  # 2M SDE at η = 0 is 2M into σ = 0
    ("dpmpp_3m", {}, "sample_dpmpp_3m_sde", {"eta": 0.0}, False),
    ("dpmpp_3m_sde", {}, "sample_dpmpp_3m_sde", {}, True),
    ("dpmpp_3m_sde", {"s_noise": 0.5}, "sample_dpmpp_3m_sde", {"s_noise": 0.5}, True),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(SAME)]


@pytest.mark.parametrize("sde_name", SDES)
@pytest.mark.parametrize("n", [4, 12])
@pytest.mark.parametrize("ours,options,theirs,their_options,stochastic", SAME, ids=IDS)
def test_agrees_with_k_diffusion_on_the_same_levels_and_noise(ours, options, theirs, their_options, stochastic,
                                                              n, sde_name):
    sde = SDES[sde_name]
    sigmas = top_levels(sde, n)
    x_T, xh0 = x_start(sde, sigmas[0])
    kw = dict(their_options)
    if stochastic:
        kw["noise_sampler"] = step_noise((N_SAMPLES, 2))
    want = run_kd(getattr(KD, theirs), sigmas, xh0, **kw)
    got = run_sc(sde, ours, x_T, sigmas=sigmas, **options)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    if stochastic:  # the noise matters: the same run with other noise lands elsewhere
        other = run_kd(getattr(KD, theirs), sigmas, xh0, **(kw | {"noise_sampler": step_noise((N_SAMPLES, 2), 9)}))
        assert np.abs(other - want).max() > 1e-2


@pytest.mark.parametrize("sde_name", SDES)
def test_edm_is_sample_heun(sde_name):
    sde = SDES[sde_name]
    sigmas = top_levels(sde, 10)
    x_T, xh0 = x_start(sde, sigmas[0])
    got = run_sc(sde, "edm", x_T, steps=10)
    np.testing.assert_allclose(got, run_kd(KD.sample_heun, sigmas, xh0), rtol=0, atol=TOL)


@pytest.mark.parametrize("sde_name", SDES)
@pytest.mark.parametrize("schedule", ["uniform", "karras", "logsnr"])
def test_ddim_is_sample_euler_on_its_levels(sde_name, schedule):
    sde, n = SDES[sde_name], 12
    eps = sc.api.default_eps(sde)
    ts = time_steps(sde, schedule, n + 1, sde.T, eps)
    sigmas = [sigma_of_time(sde, t) for t in ts]  # ends at σ(eps) > 0: DDIM stops at eps
    x_T, xh0 = x_start(sde, sigmas[0])
    got = run_sc(sde, DDIM(n_steps=n, schedule=schedule), x_T)
    want = float(sde.marginal(eps)[0]) * run_kd(KD.sample_euler, sigmas, xh0)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@pytest.mark.parametrize("sde_name", SDES)
def test_edm_ddim_and_dpmpp_2m_take_explicit_levels(sde_name):
    sde = SDES[sde_name]
    eps = sc.api.default_eps(sde)
    sig = [sigma_of_time(sde, sde.T)] + [sigma_of_time(sde, t) for t in (0.6, 0.3, 0.1, 0.03, eps)]
    x_T, xh0 = x_start(sde, sig[0])
    np.testing.assert_allclose(run_sc(sde, "edm", x_T, sigmas=sig + [0.0]), run_kd(KD.sample_heun, sig + [0.0], xh0),
                               rtol=0, atol=TOL)
    times = [sde.T, 0.6, 0.3, 0.1, 0.03, eps]
    m_end = float(sde.marginal(eps)[0])
    np.testing.assert_allclose(run_sc(sde, "ddim", x_T, times=times), m_end * run_kd(KD.sample_euler, sig, xh0),
                               rtol=0, atol=TOL)
    np.testing.assert_allclose(run_sc(sde, "dpmpp_2m", x_T, times=times, lower_order_final=False),
                               m_end * run_kd(KD.sample_dpmpp_2m, sig, xh0), rtol=0, atol=TOL)


@pytest.mark.parametrize("sde_name", SDES)
def test_dpmpp_2m_is_sample_dpmpp_2m_without_the_lower_order_final_step(sde_name):
    sde = SDES[sde_name]
    for n in (8, 20):
        eps = sc.api.default_eps(sde)
        ts = time_steps(sde, "logsnr", n + 1, sde.T, eps)
        sigmas = [sigma_of_time(sde, t) for t in ts]
        x_T, xh0 = x_start(sde, sigmas[0])
        want = float(sde.marginal(eps)[0]) * run_kd(KD.sample_dpmpp_2m, sigmas, xh0)
        plain = run_sc(sde, DPMSolverPP(n_steps=n, lower_order_final=False), x_T)
        np.testing.assert_allclose(plain, want, rtol=0, atol=TOL)
        default = run_sc(sde, DPMSolverPP(n_steps=n), x_T)
        if n >= 15:  # lower_order_final acts below 15 steps only
            np.testing.assert_array_equal(default, plain)
        else:
            assert np.abs(default - want).max() > 1e-3


@pytest.mark.parametrize("sde_name", SDES)
def test_which_final_step_is_nearer_the_exact_flow_depends_on_the_target(sde_name):
    # Measured (VE / VP, errors first-order-final / k-diffusion's second-order final step):
    # on one Gaussian, where the flow is known in closed form, k-diffusion's is nearer at 3 and
    # 5 steps (max error 0.30/0.23 and 0.051/0.016 under VE); on the 8-ring, against a 1000-step
    # solve (3e-4 from a 2000-step one), scorecore's default is nearer at 5 steps (RMS 0.93/1.09
    # under VE, 0.49/0.70 under VP). The last step's order matters most where D(x̂; σ) bends
    # sharply as σ → 0 (between the ring's modes), which a single Gaussian lacks.
    sde = SDES[sde_name]
    eps = sc.api.default_eps(sde)
    mu, lam = np.array([1.0, -0.5]), np.array([0.3, 0.05]) ** 2
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((32, 2))

    def err(model, n, low, x0, truth, norm):
        x = sc.sample(model, sde, x0.shape, sampler=DPMSolverPP(n_steps=n, lower_order_final=low), x_init=x0,
                      progress=False)
        return norm(x - truth)

    def max_abs(e):
        return np.abs(e).max()

    def rms(e):
        return float(np.sqrt(np.mean(np.sum(e**2, axis=1))))

    flat = gaussian(mu, lam).score_model(sde)
    exact = gaussian_flow(sde, mu, lam, x_T, eps)
    for n in (3, 5):
        assert err(flat, n, False, x_T, exact, max_abs) < err(flat, n, True, x_T, exact, max_abs)
    ring = RING.score_model(sde)
    x_R = sde.prior_std * np.random.default_rng(0).standard_normal((256, 2))
    reference = sc.sample(ring, sde, x_R.shape, sampler=DPMSolverPP(n_steps=1000), x_init=x_R, progress=False)
    assert err(ring, 5, True, x_R, reference, rms) < 0.9 * err(ring, 5, False, x_R, reference, rms)


def test_schedules_are_k_diffusions():
    # k-diffusion builds its levels in torch's default dtype (float32: up to 2e-4 off where
    # get_sigmas_vp takes exp(·) − 1 of a small number); with float64 as the default they agree
    # with ours to float64 rounding (exp − 1 against our expm1 costs a few digits at σ ≈ 0.01).
    s_max, s_min, n = 80.0, 0.002, 12
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        theirs = {"karras": KD.get_sigmas_karras(n, s_min, s_max),
                  "exponential": KD.get_sigmas_exponential(n, s_min, s_max), "vp": KD.get_sigmas_vp(n)}
        theirs |= {f"poly{rho}": KD.get_sigmas_polyexponential(n, s_min, s_max, rho) for rho in (0.5, 1.0, 2.0)}
    finally:
        torch.set_default_dtype(saved)
    ours = {"karras": karras_sigmas(s_max, s_min, n), "exponential": exponential_sigmas(s_max, s_min, n),
            "vp": vp_sigmas(vp_sigma(1.0), vp_sigma(1e-3), n)}
    ours |= {f"poly{rho}": polyexponential_sigmas(s_max, s_min, n, rho) for rho in (0.5, 1.0, 2.0)}
    for name, levels in theirs.items():
        assert levels.dtype == torch.float64 and float(levels[-1]) == 0.0
        np.testing.assert_allclose(ours[name], levels.numpy()[:-1], rtol=1e-11, atol=0, err_msg=name)
