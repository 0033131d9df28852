"""The exact log-likelihood of a score model by the probability-flow ODE.

The probability-flow ODE of Song et al. (2021, eq. 13),

    dx/dt = f̃(x, t) = f(x, t) − ½ g(t)² s_θ(x, t),

is a deterministic invertible map x(eps) ↦ x(T). By the instantaneous change of variables
(Chen et al. 2018), d log p_t(x(t))/dt = −∇·f̃(x(t), t), so (Song et al. 2021, eq. 39)

    log p_eps(x(eps)) = log p_T(x(T)) + ∫_eps^T ∇·f̃(x(t), t) dt,
    ∇·f̃(x, t) = D a(t) − ½ g(t)² ∇·s_θ(x, t)          (f(x, t) = a(t) x, D = dim x).

:func:`log_likelihood` integrates the augmented state [x, Δ] with dΔ/dt = ∇·f̃ forward
from eps to T by the adaptive Dormand–Prince solver of :mod:`scorecore.samplers.ode`
(a step size per sample, so no sample waits on another's tolerance), and returns
log π(x(T)) + Δ(T) with the prior π = N(0, prior_std² I) standing in for p_T.

What the number is. With the exact score s_θ = ∇log p_t, the flow carries p_eps onto p_T
exactly, so the result equals log p_eps(x) + log π(x(T)) − log p_T(x(T)): the density at
t = eps (not 0), up to the prior's mismatch with the true p_T at the latent. Both
differences vanish as eps → 0 and T → ∞ (VE: σ_max → ∞); ``info.delta_logp`` and
``info.z`` give the pieces for an exact comparison.

The divergence ∇·s_θ (:mod:`scorecore.divergence`), per sample: ``"exact"`` (the model's
own, else the backend's Jacobian trace) or ``"hutchinson"`` with M = ``n_probes`` probes per
sample, drawn once and held fixed along the trajectory: a fresh probe per evaluation would
make the ODE's right-hand side random, which an adaptive solver cannot integrate. Unbiased
for each fixed trajectory.

Trajectories that leave the data region. A score that is wrong far from the data can push
a trajectory outward, where it is wrong again: x(T) runs off (to 1e9 on the digits with an
MLP) and log π(x(T)) + Δ is a finite but meaningless number. A sample whose state exceeds
the escape bound, max_j |x_j| > R_i = ``escape_factor``·(max_j |x_j(eps)| + prior_std), is
frozen there (its derivative is zero from then on) and comes back with status ESCAPED
(:mod:`scorecore.samplers.status`) and NaN, never as a number to average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import divergence as div
from .. import streams
from .. import validation as v
from ..backend import Backend, get_backend
from ..sde import SDE
from ..samplers.status import ESCAPED, EscapedError
from .solve import ODEInfo, as_batch, check_common, check_finite, host, solve


DIVERGENCES = ("exact", "hutchinson")


@dataclass
class LikelihoodInfo(ODEInfo):
    """:class:`ODEInfo` plus the pieces of log p = ``prior_logp`` + ``delta_logp``:
    the latent ``z`` = x(T), log π(z) and Δ = ∫_eps^T ∇·f̃ dt, each per sample."""

    z: Any = None
    prior_logp: Any = None
    delta_logp: Any = None


def flow(model, sde):
    """f̃(x, t) = f(x, t) − ½ g(t)² s_θ(x, t) on x of shape (n, ...)."""

    def F(x, t):
        score = model(x, t)
        v.model_output(model, score, x)  # shape and dtype are static: checked on every backend, under jit too
        return sde.reverse_drift(x, t, score, probability_flow=True)

    return F


def _score_divergence(model, be: Backend, x, divergence, probe, n_probes, key, offset):
    """A function (x, t) -> ∇·s_θ(x, t) (exact or the fixed-probe Hutchinson estimate), (n,)."""
    if divergence == "exact":
        if not hasattr(model, "divergence") and not div.has_autodiff(be, "divergence") \
                and not div.has_autodiff(be, "jvp"):
            raise ValueError(
                f"divergence='exact' needs model.divergence(x, t) or a backend with autodiff; the model "
                f"{type(model).__name__} has none and backend {be.name!r} has no autodiff: use the 'torch' "
                "or 'jax' backend, or divergence='hutchinson' with a model that has .jvp(x, t, v)")
        return lambda x_, t_: div.exact(model, be, x_, t_)
    if not hasattr(model, "jvp") and not div.has_autodiff(be, "jvp"):
        raise ValueError(
            f"divergence='hutchinson' needs model.jvp(x, t, v) or a backend with autodiff; the model "
            f"{type(model).__name__} has no .jvp and backend {be.name!r} has no autodiff")
    n, event = x.shape[0], tuple(x.shape[1:])
    # Row i of the probes depends on (key, offset + i) only: batch invariant, fixed in t.
    probes = div.draw_probes(be, streams.run_key(be, key, "probes"), probe, (n, n_probes) + event, x.dtype, offset=offset)
    return lambda x_, t_: div.hutchinson(model, be, x_, t_, probes)


def log_likelihood(model, sde: SDE, x, *, backend=None, dtype=None, eps: float | None = None,
                   rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5", steps: int = 100,
                   divergence: str = "exact", probe: str = "gaussian", n_probes: int = 1, seed: int = 0,
                   key=None, offset: int = 0, max_steps: int = 10_000, escape_factor: float = 10.0,
                   return_info: bool = False):
    """log p_eps(x) per sample by the probability-flow ODE (Song et al. 2021, eq. 39), in nats:

        log p_eps(x) = log π(x(T)) + ∫_eps^T [D a(t) − ½ g(t)² ∇·s_θ(x(t), t)] dt,

    x(t) solving dx/dt = f(x, t) − ½ g(t)² s_θ(x, t) from x(eps) = x, π the prior.

    ``x``: (n, ...) — vectors or images (n, C, H, W); D = the product of the event axes.
    ``divergence``: ``"exact"`` (``model.divergence``, else the backend's Jacobian trace)
    or ``"hutchinson"`` (``n_probes`` fixed ``probe`` vectors per sample, ``"gaussian"`` or
    ``"rademacher"``, drawn from ``seed``/``key`` with row i a function of
    (key, offset + i) only). ``method``: ``"dopri5"`` (adaptive, ``rtol``, ``atol``,
    ``max_steps`` per sample) or a fixed-step ``"euler"``/``"heun"``/``"rk4"`` with ``steps``.
    ``eps`` defaults to 1e-5. The dtype is ``dtype``, else x's own (a float array of the
    backend), else the backend's default. ``escape_factor`` sets the escape bound (module
    docstring; ``inf`` turns the check off).

    Returns the (n,) array of log-likelihoods; with ``return_info``, ``(logp, info)``, a
    :class:`LikelihoodInfo` with the latent z = x(T), log π(z), Δ, the batch NFE, and per
    sample the NFE, accepted/rejected steps and solver status. Raises
    :class:`~scorecore.samplers.NonFiniteError` naming the first sample that turned NaN or
    inf, :class:`~scorecore.samplers.BudgetExhaustedError` when samples exhaust
    ``max_steps`` and :class:`~scorecore.samplers.status.EscapedError` when samples left the
    data region; with ``return_info`` those samples are NaN and their status says why.
    """
    eps = check_common(model, sde, eps)
    v.choice("divergence", divergence, DIVERGENCES)
    v.choice("probe", probe, div.PROBES)
    v.positive_int("n_probes", n_probes)
    v.boolean("return_info", return_info)
    escape_factor = v.positive_float("escape_factor", escape_factor, finite=False)
    be = get_backend(backend)
    xp = be.xp
    x = as_batch(be, x, dtype, model)
    n, event = x.shape[0], tuple(x.shape[1:])
    D = math.prod(event)
    key = be.key(seed) if key is None else key
    F_x = flow(model, sde)
    div_s = _score_divergence(model, be, x, divergence, probe, n_probes, key, offset)
    bound = escape_factor * (xp.max(xp.abs(xp.reshape(x, (n, D))), axis=1) + sde.prior_std)

    def inside(y):
        return xp.max(xp.abs(y[:, :D]), axis=1) <= bound

    def F(y, t):
        # y = [x flattened, Δ]: (n, D + 1); the solver's error norm covers Δ too.
        xt = xp.reshape(y[:, :D], (n,) + event)
        dx = xp.reshape(F_x(xt, t), (n, D))
        g2 = sde.diffusion(t) ** 2
        ddelta = D * sde.drift_coeff(t) - 0.5 * g2 * div_s(xt, t)
        dy = xp.concat([dx, ddelta[:, None]], axis=1)
        return xp.where(inside(y)[:, None], dy, xp.zeros_like(dy))  # an escaped sample stays where it left

    y0 = xp.concat([xp.reshape(x, (n, D)), xp.zeros((n, 1), dtype=x.dtype, device=be.device)], axis=1)
    yT, info = solve(F, y0, eps, sde.T, what="log_likelihood", backend=be, method=method, steps=steps, rtol=rtol,
                       atol=atol, max_steps=max_steps, allow_budget=return_info,
                       escaped=lambda y: xp.logical_not(inside(y)))
    z = xp.reshape(yT[:, :D], (n,) + event)
    delta = yT[:, D]
    prior = sde.prior_log_prob(z)
    logp = prior + delta
    check_finite("log_likelihood", logp, info, sde.T)
    if not return_info:
        out = host(info.status) == ESCAPED
        if out.any():
            raise EscapedError(f"log_likelihood: {int(out.sum())} of {n} samples left the data region (the first: "
                               f"sample {int(np.flatnonzero(out)[0])}, max |x| beyond {escape_factor:g}·(max |x(eps)| "
                               f"+ prior_std)): the score is wrong far from the data; pass return_info=True to get "
                               "the others, and these as NaN with status ESCAPED", info.status)
        return logp
    return logp, LikelihoodInfo(**vars(info), z=z, prior_logp=prior, delta_logp=delta)


__all__ = ["DIVERGENCES", "LikelihoodInfo", "flow", "log_likelihood"]
