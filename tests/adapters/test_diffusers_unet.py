"""A diffusers ``UNet2DModel`` sampled by scorecore equals diffusers' own scheduler loops.

With identical initial noise, scorecore's DDIM (η = 0) equals ``DDIMScheduler`` and its
DPM-Solver++(2M) equals ``DPMSolverMultistepScheduler`` on the same timesteps, to 1e-10 in
float64 and 1e-5 in float32. The chain's ᾱ_i are the scheduler's own (``from_alphas_cumprod``);
in float64 the schedulers' float32 tables are replaced by float64 ones so that both sides
compute with the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_nets import diffusers, tiny_unet

import scorecore as sc
from scorecore.sde import DiscreteVPSDE
from scorecore_torch.adapters import DiffusersUNet

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context")]
N_TRAIN, STEPS, BATCH = 1000, 10, 2
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def assert_same(got, want):
    """|got − want| ≤ tol · max(1, max |want|): a random-weight network's ε is no noise estimate, so
    its x̂₀ can reach O(100); float32 rounding is relative to that size."""
    scale = max(1.0, float(want.abs().max()))
    torch.testing.assert_close(got, want, rtol=0, atol=TOL[want.dtype] * scale)


def x_T(dtype):
    return torch.from_numpy(np.random.default_rng(0).standard_normal((BATCH, 3, 8, 8))).to(dtype)


def run_sc(model, sde, sampler, timesteps, x0, **options):
    times = [sde.time_of_timestep(float(t)) for t in timesteps]
    return sc.sample(model, sde, tuple(x0.shape), sampler=sampler, steps=len(times) - 1, times=times, denoise=True,
                     x_init=x0, backend="torch", dtype="float64" if x0.dtype == torch.float64 else "float32",
                     progress=False, **options)


def diffusers_loop(unet, sched, x, **step_options):
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, **step_options).prev_sample
    return x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_ddim_equals_diffusers_ddim_scheduler(dtype, prediction_type, beta_schedule):
    unet = tiny_unet(dtype)
    sched = diffusers.DDIMScheduler(num_train_timesteps=N_TRAIN, beta_schedule=beta_schedule,
                                    prediction_type=prediction_type, set_alpha_to_one=True, clip_sample=False)
    sched.set_timesteps(STEPS)
    sde = DiscreteVPSDE.from_alphas_cumprod(sched.alphas_cumprod.double().tolist())
    if dtype == torch.float64:
        sched.alphas_cumprod = sched.alphas_cumprod.double()
    want = diffusers_loop(unet, sched, x_T(dtype), eta=0.0)
    model = DiffusersUNet(unet, sde, prediction_type)
    with torch.no_grad():
        got = run_sc(model, sde, "ddim", sched.timesteps, x_T(dtype), eta=0.0)
    assert_same(got, want)
    if dtype == torch.float32:
        return
    # The last (denoising) step matters: without it scorecore stops at timestep 0's noise level.
    with torch.no_grad():
        other = sc.sample(model, sde, tuple(want.shape), sampler="ddim", steps=STEPS - 1,
                          times=[sde.time_of_timestep(float(t)) for t in sched.timesteps], x_init=x_T(dtype),
                          backend="torch", dtype=str(dtype).split(".")[1], progress=False)
    assert (other - want).abs().max() > 1e3 * TOL[dtype] * max(1.0, float(want.abs().max()))


def dpm_multistep_loop_float64(unet, sched, x):
    """``DPMSolverMultistepScheduler.step``'s loop in float64, on diffusers' own update functions.

    ``step`` rounds the sample to float32 before every update (its "upcast", diffusers 0.42 line
    ``sample = sample.to(torch.float32)``), so in float64 it agrees with any float64 solver only to
    float32's rounding. Here its ``convert_model_output``, ``dpm_solver_first_order_update`` and
    ``multistep_dpm_solver_second_order_update`` run in step's order without that cast: first order
    on the first step and on the last (into σ = 0, ``final_sigmas_type="zero"``), second order between.
    """
    outputs, K = [None, None], len(sched.timesteps)
    with torch.no_grad():
        for i, t in enumerate(sched.timesteps):
            sched._step_index = i
            d = sched.convert_model_output(unet(x, t).sample, sample=x)
            outputs = [outputs[1], d]
            sched.model_outputs = outputs
            x = sched.dpm_solver_first_order_update(d, sample=x) if i in (0, K - 1) else \
                sched.multistep_dpm_solver_second_order_update(outputs, sample=x)
    return x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_dpmpp_2m_equals_diffusers_multistep_scheduler(dtype, prediction_type):
    unet = tiny_unet(dtype)
    sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=N_TRAIN, prediction_type=prediction_type,
                                                  algorithm_type="dpmsolver++", solver_order=2)
    sched.set_timesteps(STEPS)
    sde = DiscreteVPSDE.from_alphas_cumprod(sched.alphas_cumprod.double().tolist())
    times = [sde.time_of_timestep(float(t)) for t in sched.timesteps]
    if dtype == torch.float64:
        sigmas = [float(sde.sigma_of_time(t)) for t in times] + [0.0]
        sched.sigmas = torch.tensor(sigmas, dtype=torch.float64)
    want = diffusers_loop(unet, sched, x_T(dtype)) if dtype == torch.float32 else \
        dpm_multistep_loop_float64(unet, sched, x_T(dtype))
    with torch.no_grad():
        # diffusers' last step goes into σ = 0 at first order, which is x̂₀ = D(x; σ_{K−1}): scorecore's
        # denoising finish. Its other steps are all second order (lower_order_final is about that last one).
        got = run_sc(DiffusersUNet(unet, sde, prediction_type), sde, "dpmpp_2m", sched.timesteps, x_T(dtype),
                     lower_order_final=False)
    assert_same(got, want)


def test_jvp_and_vjp_of_the_adapted_unet_are_its_jacobian():
    # J v against a central difference (error O(h²) ≈ 1e-8 relative at h = 1e-4 in float64), and
    # uᵀ(J v) = (Jᵀu)ᵀ v, which a transposed or mis-scaled product would break.
    unet = tiny_unet(torch.float64)
    sched = diffusers.DDPMScheduler(num_train_timesteps=N_TRAIN)
    sde = DiscreteVPSDE.from_alphas_cumprod(sched.alphas_cumprod.double().tolist())
    model = DiffusersUNet(unet, sde)
    g = np.random.default_rng(5)
    x, v, u = (torch.from_numpy(g.standard_normal((2, 3, 8, 8))) for _ in range(3))
    t = torch.full((2,), 0.3, dtype=torch.float64)
    jv = model.jvp(x, t, v)
    h = 1e-4
    with torch.no_grad():
        fd = (model(x + h * v, t) - model(x - h * v, t)) / (2 * h)
    torch.testing.assert_close(jv, fd, rtol=0, atol=1e-6 * float(fd.abs().max()))
    lhs, rhs = (u * jv).sum(), (model.vjp(x, t, u) * v).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=0)


def test_exact_divergence_is_the_trace_of_the_jacobian():
    # On a 1×4×4 network (D = 16): the trace from D reverse passes equals Σ_d e_dᵀ (J e_d) from the
    # (independent) double-reverse jvp, and a log-likelihood with it runs through the backend.
    unet = tiny_unet(torch.float64, sample_size=4, in_channels=1, out_channels=1)
    sde = DiscreteVPSDE.from_alphas_cumprod(diffusers.DDPMScheduler().alphas_cumprod.double().tolist())
    model = DiffusersUNet(unet, sde, "v_prediction")
    x = torch.from_numpy(np.random.default_rng(6).standard_normal((2, 1, 4, 4)))
    t = torch.full((2,), 0.2, dtype=torch.float64)
    want = torch.zeros(2, dtype=torch.float64)
    for d in range(16):
        e = torch.zeros(2, 16, dtype=torch.float64)
        e[:, d] = 1.0
        want = want + model.jvp(x, t, e.reshape(x.shape)).reshape(2, 16)[:, d]
    torch.testing.assert_close(model.divergence(x, t), want, rtol=1e-10, atol=1e-10 * float(want.abs().max()))
    logp = sc.log_likelihood(model, sde, x, backend="torch", dtype="float64", method="rk4", steps=2)
    assert logp.shape == (2,) and bool(torch.isfinite(logp).all())


def test_the_adapted_unet_runs_under_conditional_inpainting_and_keeps_the_known_pixels():
    # The adapters are score models like any other: scorecore.conditional wraps them unchanged.
    sde = DiscreteVPSDE.from_betas(diffusers_betas_linear())
    model = DiffusersUNet(tiny_unet(torch.float64), sde)
    mask = np.zeros((3, 8, 8))
    mask[:, :4, :] = 1.0  # the top half is measured
    y = np.random.default_rng(1).uniform(-1, 1, (3, 8, 8))
    meas = sc.conditional.Inpainting(mask, y)
    x = sc.sample(model, sde, (BATCH, 3, 8, 8), sampler=sc.conditional.Conditioned("reverse-sde", meas, steps=30),
                  backend="torch", dtype="float64", seed=3, progress=False)
    x = x.numpy()
    np.testing.assert_allclose(x[:, :, :4, :], np.broadcast_to(y[:, :4, :], x[:, :, :4, :].shape), rtol=0, atol=1e-12)
    assert np.all(np.isfinite(x)) and np.abs(x[:, :, 4:, :] - y[:, 4:, :]).max() > 1e-3  # unknown pixels are sampled


def diffusers_betas_linear():
    from scorecore.sde import diffusers_betas

    return diffusers_betas("linear", N_TRAIN, 1e-4, 0.02)
