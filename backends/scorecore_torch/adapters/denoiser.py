"""EDM / k-diffusion denoisers D(x̂; σ) as score models on any SDE, through its σ-space.

With σ(t) = s(t)/m(t) and x̂ = x/m, x̂ = x₀ + σ z, and (Karras et al. 2022, Tweedie)

    ∇ₓ log p_t(x) = (m D(x/m; σ) − x) / s²

(:func:`scorecore.models.score_from_denoiser`). EDM's preconditioning of a raw network F is

    D(x̂; σ) = c_skip(σ) x̂ + c_out(σ) F(c_in(σ) x̂; c_noise(σ)),
    c_skip = σ_d²/(σ² + σ_d²), c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ¼ ln σ.
"""

from __future__ import annotations

import torch

from scorecore import validation
from scorecore.models.parametrization import score_from_denoiser
from scorecore.sde import SDE


def _sigma_batch(sigma, x):
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


def _per_sample(c, x):
    return c.reshape((-1,) + (1,) * (x.ndim - 1))


def edm_denoiser(net, sigma_data: float = 0.5, **kwargs):
    """``D(x̂, σ)`` of a raw network ``net(c_in x̂, c_noise, **kwargs)`` under EDM's preconditioning.

    ``kwargs`` (e.g. ``class_labels=``) are passed to every call.
    """
    if not callable(net):
        raise TypeError(f"net must be callable as net(x, c_noise), got {type(net).__name__}")
    sd = validation.positive_float("sigma_data", sigma_data)

    def denoiser(xh, sigma):
        sig = _sigma_batch(sigma, xh)
        r = torch.sqrt(sig * sig + sd * sd)
        c_skip, c_out, c_in = sd * sd / (r * r), sig * sd / r, 1.0 / r
        f = net(_per_sample(c_in, xh) * xh, 0.25 * torch.log(sig), **kwargs)
        return _per_sample(c_skip, xh) * xh + _per_sample(c_out, xh) * f

    denoiser.sigma_data = sd
    return denoiser


def score_from_kdiffusion(denoiser, sde: SDE, **kwargs):
    """The score on ``sde`` of a k-diffusion-style denoiser ``denoiser(x̂, σ, **kwargs)`` (σ an (n,) tensor):
    ``∇ₓ log p_t(x) = (m D(x/m; σ(t)) − x)/s²``."""
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}")
    validation.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")

    def call(xh, sigma):
        return denoiser(xh, _sigma_batch(sigma, xh), **kwargs)

    return score_from_denoiser(call, sde)
