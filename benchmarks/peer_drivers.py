"""The peers' samplers driven on an exact mixture denoiser, in float64, from a given x̂(T).

Every driver returns ``(x̂, nfe, σ_end)``: the samples in data space x̂ = x/m at the level σ_end
where the run stopped (0 after a final denoising step), and the number of denoiser calls. Both
libraries see the model through σ: x̂ = x(0) + σ n with the exact denoiser D(x̂; σ) =
E[x(0) | x̂], the σ-space form of the score model (Karras et al. 2022, eq. 3), so VP and VE differ
only in the levels σ(T) > … > σ(eps) they are given.

* k-diffusion (0.1.1.post1) is called as its users call it, ``sample_*(model, x̂_T, sigmas)``.
* diffusers (0.42) schedulers build their levels from a 1,000-step discrete chain. Here each
  scheduler keeps its own structure (its timesteps, repeated levels, final level 0 or not) and its
  distinct levels are replaced, in order, by float64 levels between σ(T) and σ(eps) (the
  σ-replacement of tests/samplers/test_diffusers_conformance.py; for DDIM and PNDM, which index
  ᾱ by timestep, the ᾱ entries of their timesteps). The model is asked for ε = (x̂ − D)/σ (every
  scheduler accepts it) at the level of the call.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np


class Denoiser:
    """D(x̂; σ) = Σ_k r_k(x̂) (μ_k + C_k (C_k + σ² I)⁻¹ (x̂ − μ_k)) of a Gaussian mixture on NumPy arrays,
    σ a scalar or one per sample; the covariances' eigenbases are computed once, so a call costs
    O(n K d²) whatever σ."""

    def __init__(self, target):
        self.logw = np.log(np.asarray(target.weights, dtype=np.float64))
        self.mu = np.asarray(target.means, dtype=np.float64)
        lam, self.U = np.linalg.eigh(np.asarray(target.covs, dtype=np.float64))
        self.lam = lam
        self.calls = 0

    def __call__(self, xh, sigma):
        self.calls += 1
        s2 = np.broadcast_to(np.asarray(sigma, dtype=np.float64) ** 2, xh.shape[:1])[None, :, None]
        z = (xh[None] - self.mu[:, None, :]) @ self.U  # (K, n, d): eigen-coordinates, batched matmul
        v = self.lam[:, None, :] + s2
        logp = self.logw[:, None] - 0.5 * np.sum(z * z / v + np.log(v), axis=2)
        r = np.exp(logp - logp.max(axis=0, keepdims=True))
        r /= r.sum(axis=0, keepdims=True)
        post = self.mu[:, None, :] + (self.lam[:, None, :] * z / v) @ np.swapaxes(self.U, 1, 2)
        return np.einsum("kn,knd->nd", r, post)


# -- k-diffusion --------------------------------------------------------------------------------

def load_kdiffusion():
    """k-diffusion's sampling module (through the tests' stub package) or (None, why)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "samplers"))
    from kdiffusion_stub import load_sampling

    return load_sampling()


def run_kdiffusion(kd, fn, opts, steps, den, xh_T, levels, seed):
    """``kd.<fn>`` on ``levels`` (σ(T) … σ(eps) then 0, from ``levels(N)``) with N = ``steps``; the
    fixed-σ-range solvers (dpm_fast, dpm_adaptive) get σ(T) and σ(eps) and N as their NFE."""
    import torch

    torch.manual_seed(seed)
    model = lambda x, s: torch.from_numpy(den(x.numpy(), s.numpy()))  # noqa: E731
    x = torch.from_numpy(xh_T.copy())
    den.calls = 0
    sig = levels(steps or 2)  # dpm_adaptive: only its ends σ(T), σ(eps)
    if fn in ("sample_dpm_fast", "sample_dpm_adaptive"):
        extra = {"n": steps} if fn == "sample_dpm_fast" else {}
        out = getattr(kd, fn)(model, x, sig[-2], sig[0], disable=True, **extra, **opts)
        return out.numpy(), den.calls, sig[-2]
    out = getattr(kd, fn)(model, x, torch.tensor(sig, dtype=torch.float64), disable=True, **opts)
    return out.numpy(), den.calls, sig[-1]


# -- diffusers ----------------------------------------------------------------------------------

def _alphabar_indexed(sched) -> bool:
    """DDIM and PNDM look ᾱ up by timestep instead of keeping a list of σ's."""
    return getattr(sched, "sigmas", None) is None


def diffusers_steps(cls, kw, budget):
    """The largest N ≤ budget whose run makes at most ``budget`` model calls, or None."""
    for n in range(budget, 0, -1):
        sched = cls(**kw)
        try:
            sched.set_timesteps(n)
        except ValueError:
            continue
        if len(sched.timesteps) <= budget:
            return n
    return None


def run_diffusers(cls, kw, steps, den, xh_T, levels, seed, eta=0.0):
    """One diffusers sampling loop with the scheduler's distinct levels replaced by ``levels(M)``.

    ``levels(M)`` gives M levels from σ(T) to σ(eps) followed by 0 (M + 1 values); a scheduler
    whose own last level is above 0 keeps the M levels only. ``eta``: DDIM's, an argument of its step."""
    import torch

    sched = cls(**kw)
    sched.set_timesteps(steps)
    ts = [int(t) for t in sched.timesteps]
    if _alphabar_indexed(sched):
        ac = sched.alphas_cumprod.double().numpy()
        interval = sched.config.num_train_timesteps // sched.num_inference_steps
        prev = sorted({t - interval for t in ts if t - interval >= 0} | set(ts), reverse=True)
        own = [float(np.sqrt((1 - ac[t]) / ac[t])) for t in prev] + [0.0]  # final ᾱ = 1 (set_alpha_to_one)
    else:
        own = [float(s) for s in sched.sigmas.double()]
    distinct = sorted(set(own), reverse=True)
    to_zero = distinct[-1] == 0.0
    ours = levels(len(distinct) - int(to_zero))
    ours = ours if to_zero else ours[:-1]
    rank = {s: i for i, s in enumerate(distinct)}
    if _alphabar_indexed(sched):
        new = sched.alphas_cumprod.double().clone()
        for t, s in zip(prev, own):
            new[t] = 1.0 / (1.0 + ours[rank[s]] ** 2)
        sched.alphas_cumprod = new
        sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
        sigma_of = lambda k, t: float(np.sqrt(1.0 / float(new[t]) - 1.0))  # noqa: E731
    else:
        sched.sigmas = torch.tensor([ours[rank[s]] for s in own], dtype=torch.float64)
        sigma_of = None
    vp_form = float(sched.init_noise_sigma) == 1.0  # x = x̂/√(1 + σ²); else the sample is x̂ itself
    s_T = ours[0]
    x = torch.from_numpy(xh_T / np.sqrt(1 + s_T**2) if vp_form else xh_T.copy())
    gen = torch.Generator().manual_seed(seed)
    params = inspect.signature(sched.step).parameters
    extra = ({"generator": gen} if "generator" in params else {}) | ({"eta": eta} if "eta" in params else {})
    den.calls = 0
    for k, t in enumerate(sched.timesteps):
        xin = sched.scale_model_input(x, t)
        if sigma_of is not None:
            s = sigma_of(k, int(t))
        else:
            idx = 0 if sched.step_index is None else sched.step_index  # None until the first step
            s = float(sched.sigmas[idx])
        xh = xin.numpy() * np.sqrt(1 + s * s)
        eps = torch.from_numpy((xh - den(xh, s)) / s)
        x = sched.step(eps, t, x, **extra).prev_sample
    s_end = ours[-1]
    out = x.numpy()
    return (out * np.sqrt(1 + s_end**2) if vp_form else out), den.calls, s_end
