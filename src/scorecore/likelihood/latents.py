"""Encoding and decoding by the probability-flow ODE, and interpolation between latents.

:func:`encode` integrates dx/dt = f(x, t) − ½ g(t)² s_θ(x, t) from eps to T and :func:`decode`
back from T to eps: exact inverses up to the solver's tolerance. :func:`interpolate` is
spherical interpolation between latents (Shoemake 1985; White 2016), which keeps
interpolants at the typical norm of a Gaussian latent; ``decode(..., temperature=τ)``
decodes τ z (τ < 1: nearer the modes).
"""

from __future__ import annotations

import math

from .. import validation as v
from .._arrays import namespace, per_sample, sum_event
from ..backend import get_backend
from ..sde import SDE
from .change_of_variables import flow
from .solve import as_batch, check_common, check_finite, solve


def _solve_flow(what, model, sde, x, t0, t1, *, backend, dtype, rtol, atol, method, steps, max_steps, return_info):
    v.boolean("return_info", return_info)
    be = get_backend(backend)
    x = as_batch(be, x, dtype, model, name="x" if what == "encode" else "z")
    out, info = solve(flow(model, sde), x, t0, t1, what=what, backend=be, method=method, steps=steps, rtol=rtol,
                      atol=atol, max_steps=max_steps, allow_budget=return_info)
    check_finite(what, out, info, t1)
    return (out, info) if return_info else out


def encode(model, sde: SDE, x, *, backend=None, dtype=None, eps: float | None = None, rtol: float = 1e-5,
           atol: float = 1e-5, method: str = "dopri5", steps: int = 100, max_steps: int = 10_000,
           return_info: bool = False):
    """The latent z = x(T) of data x = x(eps) by the probability-flow ODE
    dx/dt = f(x, t) − ½ g(t)² s_θ(x, t), integrated forward from eps (default 1e-5) to T.

    Deterministic and invertible: :func:`decode` maps z back to x up to the solver's
    tolerance. Options as in :func:`~scorecore.likelihood.log_likelihood`; with
    ``return_info``, ``(z, ODEInfo)``. Samples that exhaust ``max_steps`` raise
    :class:`~scorecore.samplers.BudgetExhaustedError` (with ``return_info``: NaN, and their status)."""
    eps = check_common(model, sde, eps)
    return _solve_flow("encode", model, sde, x, eps, sde.T, backend=backend, dtype=dtype, rtol=rtol, atol=atol,
                       method=method, steps=steps, max_steps=max_steps, return_info=return_info)


def decode(model, sde: SDE, z, *, temperature: float = 1.0, backend=None, dtype=None, eps: float | None = None,
           rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5", steps: int = 100,
           max_steps: int = 10_000, return_info: bool = False):
    """Data x(eps) from the latent x(T) = τ z by the probability-flow ODE, integrated
    backward from T to eps (default 1e-5); τ = ``temperature`` (τ < 1 trades diversity
    for typicality, as in Kingma & Dhariwal 2018). The inverse of :func:`encode` at τ = 1.

    Decoding a prior draw z ~ N(0, prior_std² I) is sampling (``sc.sample`` with the
    ``"dopri5"`` sampler). Options and budget errors as in :func:`encode`."""
    eps = check_common(model, sde, eps)
    temperature = v.positive_float("temperature", temperature)
    be = get_backend(backend)
    z = as_batch(be, z, dtype, model, name="z")
    if temperature != 1.0:
        z = temperature * z
    return _solve_flow("decode", model, sde, z, sde.T, eps, backend=be, dtype=z.dtype, rtol=rtol, atol=atol,
                       method=method, steps=steps, max_steps=max_steps, return_info=return_info)


def interpolate(z0, z1, alphas):
    """Spherical interpolation between latents, per sample (Shoemake 1985; White 2016):

        slerp(z0, z1; α) = [sin((1 − α) Ω) z0 + sin(α Ω) z1] / sin Ω,
        cos Ω = ⟨z0, z1⟩ / (‖z0‖ ‖z1‖),

    linear where z0 and z1 are (nearly) parallel. ``z0``, ``z1``: (n, ...) of one backend;
    ``alphas``: a sequence of k numbers (0 gives z0, 1 gives z1). Returns (k, n, ...);
    decode each slice with :func:`decode`."""
    xp = namespace(z0, z1)
    if tuple(z0.shape) != tuple(z1.shape) or len(z0.shape) < 2:
        raise ValueError(f"z0 and z1 must have one shape (n, d, ...), got {tuple(z0.shape)} and {tuple(z1.shape)}")
    try:
        alphas = [float(a) for a in alphas]
    except (TypeError, ValueError):
        raise TypeError(f"alphas must be a sequence of numbers, got {alphas!r}") from None
    if not alphas or not all(math.isfinite(a) for a in alphas):
        raise ValueError("alphas must be a non-empty sequence of finite numbers")
    n0 = xp.sqrt(sum_event(xp, z0 * z0))
    n1 = xp.sqrt(sum_event(xp, z1 * z1))
    cos = xp.clip(sum_event(xp, z0 * z1) / (n0 * n1), -1.0, 1.0)
    omega = xp.acos(cos)
    sin = xp.sin(omega)
    parallel = sin < 1e-7
    safe = xp.where(parallel, xp.ones_like(sin), sin)
    out = []
    for a in alphas:
        w0 = xp.where(parallel, xp.full_like(sin, 1.0 - a), xp.sin((1.0 - a) * omega) / safe)
        w1 = xp.where(parallel, xp.full_like(sin, a), xp.sin(a * omega) / safe)
        out.append(per_sample(w0, z0) * z0 + per_sample(w1, z1) * z1)
    return xp.stack(out)


__all__ = ["decode", "encode", "interpolate"]
