"""An EDM-preconditioned network, adapted by ``scorecore_torch.adapters``, sampled by scorecore
equals k-diffusion's ``sample_heun`` and ``sample_dpmpp_2m`` on the same denoiser and σ levels.

k-diffusion steps x̂ = x/m in σ; scorecore steps x on the SDE's time, through σ(t) = s/m. Under VE
(m = 1) both see the same numbers; under VP x(T) = m(T) x̂(σ_0), and a grid ending above σ = 0
compares x = m(t_N) x̂. Float64 throughout, agreement to 1e-10 (relative to the samples' size).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_nets import tiny_unet

import scorecore as sc
from scorecore.samplers.sigma_space import sigma_of_time
from scorecore_torch.adapters import edm_denoiser, score_from_kdiffusion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "samplers"))
from kdiffusion_stub import load_sampling  # noqa: E402

KD, WHY = load_sampling()
pytestmark = pytest.mark.skipif(KD is None, reason=WHY)
SDES = {"VE": sc.VESDE(sigma_max=20.0), "VP": sc.VPSDE()}
TIMES = [1.0, 0.6, 0.3, 0.1, 0.03]


def net_and_denoiser(labels=None):
    unet = tiny_unet(torch.float64, num_class_embeds=3 if labels is not None else None)

    def net(x, c_noise, class_labels=None):
        return unet(x, c_noise, class_labels=class_labels).sample

    return edm_denoiser(net, sigma_data=0.5, class_labels=labels)


def start(sde, sigma0, n=2):
    xh = torch.from_numpy(np.random.default_rng(1).standard_normal((n, 3, 8, 8))) * sigma0
    return float(sde.marginal(sde.T)[0]) * xh, xh


def close(got, want):
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10 * max(1.0, float(want.abs().max())))


@pytest.mark.parametrize("labels", [None, torch.tensor([0, 2])])
@pytest.mark.parametrize("sde_name", SDES)
def test_edm_is_sample_heun_on_the_adapted_denoiser(sde_name, labels):
    sde, D = SDES[sde_name], net_and_denoiser(labels)
    sig = [sigma_of_time(sde, t) for t in TIMES] + [0.0]
    x_T, xh = start(sde, sig[0])
    with torch.no_grad():
        want = KD.sample_heun(D, xh, torch.tensor(sig, dtype=torch.float64), disable=True)
        got = sc.sample(score_from_kdiffusion(D, sde), sde, tuple(x_T.shape), sampler="edm", sigmas=sig, x_init=x_T,
                        backend="torch", dtype="float64", progress=False)
    close(got, want)


@pytest.mark.parametrize("sde_name", SDES)
def test_dpmpp_2m_is_sample_dpmpp_2m_on_the_adapted_denoiser(sde_name):
    sde, D = SDES[sde_name], net_and_denoiser()
    sig = [sigma_of_time(sde, t) for t in TIMES]
    x_T, xh = start(sde, sig[0])
    with torch.no_grad():
        want = float(sde.marginal(TIMES[-1])[0]) * KD.sample_dpmpp_2m(D, xh, torch.tensor(sig, dtype=torch.float64),
                                                                      disable=True)
        got = sc.sample(score_from_kdiffusion(D, sde), sde, tuple(x_T.shape), sampler="dpmpp_2m", times=TIMES,
                        steps=len(TIMES) - 1, lower_order_final=False, x_init=x_T, backend="torch", dtype="float64",
                        progress=False)
    close(got, want)


def test_class_labels_reach_the_network():
    sde = SDES["VE"]
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 3, 8, 8)))
    t = torch.full((2,), 0.5, dtype=torch.float64)
    with torch.no_grad():
        a = score_from_kdiffusion(net_and_denoiser(torch.tensor([0, 0])), sde)(x, t)
        b = score_from_kdiffusion(net_and_denoiser(torch.tensor([1, 2])), sde)(x, t)
    assert (a - b).abs().max() > 1e-6


def test_edm_preconditioning_is_karras_table_1():
    # A network that returns its input reveals c_in; one that returns c_noise reveals c_noise.
    sd, sigma = 0.5, torch.tensor([0.2, 3.0], dtype=torch.float64)
    x = torch.ones((2, 1, 1, 1), dtype=torch.float64)
    D = edm_denoiser(lambda y, c: torch.zeros_like(y), sigma_data=sd)
    torch.testing.assert_close(D(x, sigma).flatten(), sd**2 / (sigma**2 + sd**2), rtol=1e-15, atol=0)
    D = edm_denoiser(lambda y, c: c.reshape(-1, 1, 1, 1) * torch.ones_like(y), sigma_data=sd)
    c_skip, c_out = sd**2 / (sigma**2 + sd**2), sigma * sd / torch.sqrt(sigma**2 + sd**2)
    torch.testing.assert_close(D(x, sigma).flatten(), c_skip + c_out * 0.25 * torch.log(sigma), rtol=1e-14, atol=0)
    D = edm_denoiser(lambda y, c: y, sigma_data=sd)
    torch.testing.assert_close(D(x, sigma).flatten(), c_skip + c_out / torch.sqrt(sigma**2 + sd**2), rtol=1e-14,
                               atol=0)
