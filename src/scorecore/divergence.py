"""Divergence estimators of a score model, ∇ₓ·s_θ(x, t), per sample: exact, and by probes.

* Exact: the model's own ``model.divergence(x, t)`` when it has one (the analytic mixture
  scores, :class:`~scorecore.models.MLP`), else the backend's Jacobian trace
  ``backend.divergence`` (D Jacobian-vector products; torch and JAX).
* Probes (Skilling 1989; Hutchinson 1990): for probes ε with E[ε εᵀ] = I — standard normal
  (``"gaussian"``) or uniform on {±1}^D (``"rademacher"``) —

      ∇·s_θ = tr ∂s_θ/∂x = E_ε[εᵀ (∂s_θ/∂x) ε] ≈ (1/M) Σ_m ε_mᵀ (∂s_θ/∂x) ε_m,

  the Jacobian-vector products from ``model.jvp(x, t, v)`` if the model has it, else the
  backend's ``jvp``. All n·M products are taken in one call on the batch repeated M times.

Used by the likelihood (:mod:`scorecore.likelihood`) and the sliced and exact score-matching
losses (:mod:`scorecore.losses`).
"""

from __future__ import annotations

from . import validation as v
from ._arrays import sum_event
from .backend import Backend

PROBES = ("gaussian", "rademacher")


def has_autodiff(be: Backend, method: str) -> bool:
    """Whether the backend overrides ``method`` (``"jvp"``, ``"divergence"``) of the protocol."""
    return getattr(type(be), method) is not getattr(Backend, method)


def exact(model, be: Backend, x, t):
    """∇ₓ·s_θ(x, t), shape (n,): ``model.divergence`` if it has one, else ``be.divergence``."""
    if hasattr(model, "divergence"):
        out = model.divergence(x, t)
        v.array_shape(f"model {_name(model)}.divergence(x, t)", out, (x.shape[0],))  # static: no sync, traceable
        return out
    return be.divergence(model, x, t)


def _name(model) -> str:
    return getattr(model, "__name__", None) or type(model).__name__


def draw_probes(be: Backend, key, probe: str, shape, dtype, *, offset: int = 0):
    """Probes of ``shape`` (n, M, *event) with E[ε εᵀ] = I; row i depends on (key, offset + i) only."""
    draw = be.normal if probe == "gaussian" else be.rademacher
    return draw(key, tuple(shape), dtype, offset=offset)


def repeat(xp, a, M: int):
    """(n, ...) -> (n·M, ...), each row M times in a row (the layout of the flattened probes)."""
    if M == 1:
        return a
    n, rest = a.shape[0], tuple(a.shape[1:])
    return xp.reshape(xp.broadcast_to(xp.expand_dims(a, axis=1), (n, M) + rest), (n * M,) + rest)


def probe_quadratics(model, be: Backend, x, t, probes):
    """ε_mᵀ (∂s_θ/∂x)(x, t) ε_m for each sample and probe, shape (n, M), for probes (n, M, *event)."""
    xp = be.xp
    n, M = probes.shape[0], probes.shape[1]
    vs = xp.reshape(probes, (n * M,) + tuple(x.shape[1:]))
    xr, tr = repeat(xp, x, M), repeat(xp, t, M)
    if hasattr(model, "jvp"):
        jv = model.jvp(xr, tr, vs)
        v.array_shape(f"model {_name(model)}.jvp(x, t, v)", jv, tuple(vs.shape))
    else:
        jv = be.jvp(lambda y: model(y, tr), xr, vs)
    return xp.reshape(sum_event(xp, vs * jv), (n, M))


def hutchinson(model, be: Backend, x, t, probes):
    """The probe estimate (1/M) Σ_m ε_mᵀ (∂s_θ/∂x) ε_m of ∇ₓ·s_θ(x, t), shape (n,)."""
    return be.xp.mean(probe_quadratics(model, be, x, t, probes), axis=1)


__all__ = ["PROBES", "draw_probes", "exact", "has_autodiff", "hutchinson", "probe_quadratics", "repeat"]
