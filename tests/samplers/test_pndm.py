"""PNDM and PLMS (samplers/pndm.py): exact NFE, conformance with diffusers 0.42's
``PNDMScheduler`` (PRK warm-up and ``skip_prk_steps=True``) to 1e-10 in float64 on the same
exact model and levels, the order of convergence on a Gaussian, and the compiled (JAX) run
against the eager one. The every-backend oracle test and batch invariance: their shared files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import CountingScore
from support.backends import jax_x64
from support.ring import RING, gaussian, gaussian_flow

import scorecore as sc
from scorecore.sde import DiscreteVPSDE, diffusers_betas

SDE = sc.VPSDE()
#: score calls of N steps ending at σ = 0: three Runge–Kutta steps of four calls, or one Heun step of two
NFE = {"pndm": lambda n: n + 3 * min(3, n - 1), "plms": lambda n: n + int(n > 1)}


@pytest.mark.parametrize("name", ["pndm", "plms"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 9])
def test_reported_nfe_is_the_number_of_score_calls(name, n):
    model = CountingScore(RING.score_model(SDE))
    _, info = sc.sample(model, SDE, (16, 2), sampler=name, steps=n, progress=False, return_info=True)
    assert info.nfe == model.calls == NFE[name](n)


def diffusers_run(sde, n, skip_prk, to_zero, x0):
    """diffusers' PNDM loop in float64: its float32 ᾱ replaced by the chain's float64 ones."""
    diffusers = pytest.importorskip("diffusers", reason="diffusers not installed (pip install diffusers==0.42.1)")
    torch = pytest.importorskip("torch")
    sched = diffusers.PNDMScheduler(skip_prk_steps=skip_prk, set_alpha_to_one=to_zero)
    sched.alphas_cumprod = torch.tensor(sde.alphas_cumprod, dtype=torch.float64)
    sched.final_alpha_cumprod = torch.tensor(1.0 if to_zero else sde.alphas_cumprod[0], dtype=torch.float64)
    sched.set_timesteps(n)
    score = RING.score_model(sde)
    x, calls = torch.from_numpy(x0.copy()), 0
    for tau in sched.timesteps:
        t = sde.time_of_timestep(float(tau))
        s = float(sde.marginal(t)[1])
        eps = -s * score(x.numpy(), np.full(len(x0), t))  # ε = −s(t) s_θ(x, t)
        calls += 1
        x = sched.step(torch.from_numpy(eps), tau, x).prev_sample
    return x.numpy(), sched, calls


@pytest.mark.parametrize("skip_prk", [False, True])
@pytest.mark.parametrize("to_zero", [True, False])
@pytest.mark.parametrize("n", [5, 10, 25])
def test_agrees_with_diffusers_pndm_scheduler(skip_prk, to_zero, n):
    sde = DiscreteVPSDE.from_betas(diffusers_betas("linear", 1000))
    x0 = np.random.default_rng(4).standard_normal((32, 2))
    want, sched, calls = diffusers_run(sde, n, skip_prk, to_zero, x0)
    # diffusers' levels: the n "leading" timesteps, then σ = 0 (set_alpha_to_one) or ᾱ_0 again,
    # a step that changes nothing (there scorecore stops at timestep 0, one call sooner).
    taus = sorted({int(t) for t in sched.timesteps if int(t) % (1000 // n) == 0}, reverse=True)
    times = [sde.time_of_timestep(float(t)) for t in taus] + ([0.0] if to_zero else [])
    model = CountingScore(RING.score_model(sde))
    got, info = sc.sample(model, sde, x0.shape, sampler="plms" if skip_prk else "pndm", times=times, x_init=x0,
                          progress=False, return_info=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert model.calls == info.nfe == calls - int(not to_zero)
    # The warm-up matters: the other one lands elsewhere.
    other = sc.sample(RING.score_model(sde), sde, x0.shape, sampler="pndm" if skip_prk else "plms", times=times,
                      x_init=x0, progress=False)
    assert np.abs(other - want).max() > 1e-6


# (sampler, schedule, N, 2N, 4N, order). The Adams–Bashforth weights are those of equal steps;
# on Karras levels the σ steps are unequal, and the pseudo method is second order (measured).
ORDER_CASES = [("pndm", "karras", (40, 80, 160), 2), ("plms", "karras", (40, 80, 160), 2)]


@pytest.mark.parametrize("name,schedule,steps,order", ORDER_CASES)
def test_order_of_convergence(name, schedule, steps, order):
    mu, lam = np.array([1.0, -0.5, 2.0]), np.array([0.3, 1.0, 0.05]) ** 2
    x_T = SDE.prior_std * np.random.default_rng(0).standard_normal((8, 3))
    truth = gaussian_flow(SDE, mu, lam, x_T, 0.0)
    errors = [np.abs(sc.sample(gaussian(mu, lam).score_model(SDE), SDE, (8, 3), sampler=name, steps=n, x_init=x_T,
                               sigma_min=1e-4, schedule=schedule, progress=False) - truth).max() for n in steps]
    slopes = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(p - order) < 0.35 for p in slopes), (errors, slopes)


@pytest.mark.parametrize("name", ["pndm", "plms"])
def test_compiled_jax_run_equals_the_eager_one(name):
    pytest.importorskip("jax")
    from scorecore_jax import JaxBackend

    x0 = np.random.default_rng(2).standard_normal((8, 2))
    with jax_x64():  # restored after: other tests expect JAX's float32 default
        runs = [sc.sample(RING.score_model(SDE), SDE, (8, 2), sampler=name, steps=6, x_init=x0, progress=False,
                          backend=JaxBackend(jit=jit), dtype="float64") for jit in (True, False)]
    np.testing.assert_allclose(np.asarray(runs[0]), np.asarray(runs[1]), rtol=0, atol=1e-12)
