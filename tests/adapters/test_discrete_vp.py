"""The discrete VP chain as an SDE: ``VPSDE.from_betas`` / ``from_alphas_cumprod``.

ᾱ_i is exact at t_i = (i + 1) T/N (timestep τ(t) = t N/T − 1), log ᾱ is linear in t between the
knots, and β(t) = −d log ᾱ/dt, so the SDE's drift and diffusion are the ones whose kernel this is.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.ring import gaussian, gaussian_flow

import scorecore as sc
from scorecore.sde import DiscreteVPSDE, diffusers_betas

SCHEDULES = ["linear", "scaled_linear", "squaredcos_cap_v2"]
EPS64 = np.finfo(np.float64).eps


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_betas_are_diffusers_schedules(schedule):
    diffusers = pytest.importorskip("diffusers")
    theirs = diffusers.DDPMScheduler(beta_schedule=schedule).betas.double().numpy()  # float32 in diffusers
    ours = np.array(diffusers_betas(schedule, 1000, 0.0001, 0.02))
    np.testing.assert_allclose(ours, theirs, rtol=4 * np.finfo(np.float32).eps, atol=0)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_alphas_cumprod_are_exact_at_the_training_timesteps(schedule):
    betas = diffusers_betas(schedule, 1000)
    sde = sc.VPSDE.from_betas(betas)
    abar = np.cumprod(1.0 - np.array(betas))
    i = np.arange(1000)
    t = sde.time_of_timestep(i.astype(np.float64))
    np.testing.assert_allclose(sde.timestep(t), i, rtol=0, atol=1000 * EPS64)  # (i + 1)/N · N − 1, rounded
    m, s = sde.marginal(t)
    np.testing.assert_allclose(m**2, abar, rtol=50 * EPS64, atol=0)
    np.testing.assert_allclose(m**2 + s**2, 1.0, rtol=0, atol=4 * EPS64)
    # β_i = 1 − e^{B_{i−1} − B_i} from the knots B = −log ᾱ: rounding of B (≤ eps·B) over β_i
    np.testing.assert_allclose(sde.discrete_beta(i), betas, rtol=0, atol=8 * EPS64 * float(-np.log(abar[-1])))
    assert sde.marginal(0.0) == (1.0, 0.0)


def test_log_alphas_cumprod_is_linear_between_knots_and_beta_is_its_slope():
    sde = DiscreteVPSDE.from_betas(diffusers_betas("linear", 10))
    B = [-math.log(a) for a in (1.0,) + sde.alphas_cumprod]
    for k in range(10):
        for f in (0.25, 0.5, 0.9):
            t = (k + f) / 10
            np.testing.assert_allclose(float(sde.integrated_beta(t)), B[k] + f * (B[k + 1] - B[k]), rtol=1e-14)
            np.testing.assert_allclose(float(sde.beta(t)), (B[k + 1] - B[k]) * 10, rtol=1e-13)
            m = float(sde.marginal(t)[0])
            np.testing.assert_allclose(m, math.exp(-0.5 * (B[k] + f * (B[k + 1] - B[k]))), rtol=1e-14)


def test_time_maps_invert():
    sde = DiscreteVPSDE.from_betas(diffusers_betas("scaled_linear", 1000, 0.00085, 0.012))
    t = np.linspace(1e-4, 1.0, 301)
    np.testing.assert_allclose(sde.time_of_sigma(sde.sigma_of_time(t)), t, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(sde.time_of_std(sde.marginal(t)[1]), t, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sde.time_of_timestep(sde.timestep(t)), t, rtol=1e-14, atol=1e-16)


def test_array_api_strict_and_torch_give_numpys_marginal():
    sde = DiscreteVPSDE.from_betas(diffusers_betas("linear", 1000))
    t = np.array([0.0, 0.0005, 0.3337, 0.999, 1.0])
    want = sde.marginal(t)
    xps = pytest.importorskip("array_api_strict")
    got = sde.marginal(xps.asarray(t))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=4 * EPS64, atol=0)
    torch = pytest.importorskip("torch")
    got = sde.marginal(torch.from_numpy(t))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=4 * EPS64, atol=0)


@pytest.mark.parametrize("abar, message", [
    ([0.9], "at least 2"), ([0.9, 0.95], "decrease strictly"), ([1.0, 0.5], "alphas_cumprod\\[0\\]"),
    ([0.9, -0.1], "alphas_cumprod\\[1\\]"),
])
def test_bad_alphas_cumprod_are_named(abar, message):
    with pytest.raises(ValueError, match=message):
        sc.VPSDE.from_alphas_cumprod(abar)


def test_bad_betas_and_schedules_are_named():
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        sc.VPSDE.from_betas([0.1, 1.0])
    with pytest.raises(ValueError, match="beta_schedule"):
        diffusers_betas("cosine", 1000)


def test_ancestral_chain_uses_the_trained_betas():
    betas = diffusers_betas("linear", 1000)
    sde = sc.VPSDE.from_betas(betas)
    x = np.ones((1, 2))
    f, G = sde.discretize(x, sde.time_of_timestep(417.0))
    np.testing.assert_allclose(G, math.sqrt(betas[417]), rtol=1e3 * EPS64)
    np.testing.assert_allclose(f, (math.sqrt(1 - betas[417]) - 1) * x, rtol=1e-10)


def test_diffusers_dpm_final_steps_against_the_exact_flow_on_a_gaussian():
    # diffusers' DPMSolverMultistepScheduler (10 steps, timesteps 999, 899, …, 99, then σ = 0) is
    # second order up to the last timestep and first order into σ = 0 (x̂₀ = D(x; σ_{K−1})), which is
    # scorecore's dpmpp_2m with lower_order_final=False and denoise=True (the conformance test).
    # scorecore's default lower_order_final=True also takes the step into timestep 99 at first order.
    # On a Gaussian, whose probability flow is known in closed form, diffusers' choice lands nearer
    # (measured max error 0.414 against 0.442 for 256 samples).
    sde = sc.VPSDE.from_betas(diffusers_betas("linear", 1000))
    mu, lam = np.array([1.0, -0.5]), np.array([0.3, 0.05]) ** 2
    model = gaussian(mu, lam).score_model(sde)
    x_T = np.random.default_rng(0).standard_normal((256, 2))
    times = [sde.time_of_timestep(float(k)) for k in range(999, 0, -100)]
    exact = gaussian_flow(sde, mu, lam, x_T, 0.0)

    def err(low):
        x = sc.sample(model, sde, x_T.shape, sampler="dpmpp_2m", steps=len(times) - 1, times=times, denoise=True,
                      lower_order_final=low, x_init=x_T, progress=False)
        return float(np.abs(x - exact).max())

    assert err(False) < err(True)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m", "dopri5"])
def test_samplers_on_the_chain_agree_on_every_backend(any_backend, sampler):
    # The knots enter through take/searchsorted/floor: traced under jax.jit, pure Array API on
    # array-api-strict. Same x(T) everywhere, float64; no BLAS kernel sits in the exact score.
    sde = sc.VPSDE.from_betas(diffusers_betas("scaled_linear", 1000, 0.00085, 0.012))
    model = gaussian(np.array([1.0, -0.5]), np.array([0.3, 0.05]) ** 2).score_model(sde)
    x_T = np.random.default_rng(3).standard_normal((16, 2))
    steps = 1000 if sampler == "dopri5" else 12  # dopri5: a step budget
    want = sc.sample(model, sde, x_T.shape, sampler=sampler, steps=steps, x_init=x_T, progress=False)
    got = sc.sample(model, sde, x_T.shape, sampler=sampler, steps=steps, x_init=any_backend.asarray(x_T, dtype="float64"),
                    backend=any_backend, dtype="float64", progress=False)
    # dopri5's accept/reject decisions hinge on rounding where β(t) jumps (at each of the 1000
    # knots), so its step sequence may differ by backend: agreement to its tolerance (measured 5e-5
    # on torch and JAX at the default rtol = atol = 1e-5); the fixed-step samplers agree to rounding.
    np.testing.assert_allclose(any_backend.to_numpy(got), want, rtol=0, atol=1e-3 if sampler == "dopri5" else 1e-12)
