"""Divergence estimators of a score model, ∇ₓ·s_θ(x, t), per sample: exact, and by probes.

* Exact: the model's own ``model.divergence(x, t)`` when it has one (the analytic mixture
  scores, :class:`~scorecore.models.MLP`), else the backend's Jacobian trace
  ``backend.divergence`` (D Jacobian-vector products, batched in one ``vmap`` on torch and JAX).
* Probes (Skilling 1989; Hutchinson 1990): for probes ε with E[ε εᵀ] = I — standard normal
  (``"gaussian"``) or uniform on {±1}^D (``"rademacher"``) —

      ∇·s_θ = tr ∂s_θ/∂x = E_ε[εᵀ (∂s_θ/∂x) ε] ≈ (1/M) Σ_m ε_mᵀ (∂s_θ/∂x) ε_m,

  the Jacobian-vector products from ``model.jvp(x, t, v)`` if the model has it, else the
  backend's ``jvp``. All n·M products are taken in one call on the batch repeated M times.

:func:`score_and_exact` and :func:`score_and_hutchinson` give s_θ(x, t) with the divergence
from the same model passes (a JVP carries the value along, so no separate call), and
:func:`passes` counts them: a JVP or VJP (the forward pass with its tangent, or with its
backward pass), or one direction of a batched Jacobian trace, is one pass of the batch; a plain
call and an analytic ``divergence`` are one each.

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


def _probe_vectors(xp, x, t, probes):
    """(x, t repeated M times, the probes flattened to (n·M, *event)): one call on n·M rows."""
    n, M = probes.shape[0], probes.shape[1]
    return repeat(xp, x, M), repeat(xp, t, M), xp.reshape(probes, (n * M,) + tuple(x.shape[1:]))


def _model_jvp(model, xr, tr, vs):
    jv = model.jvp(xr, tr, vs)
    v.array_shape(f"model {_name(model)}.jvp(x, t, v)", jv, tuple(vs.shape))
    return jv


def _quadratics(xp, vs, jv, n: int, M: int):
    return xp.reshape(sum_event(xp, vs * jv), (n, M))


def probe_quadratics(model, be: Backend, x, t, probes):
    """ε_mᵀ (∂s_θ/∂x)(x, t) ε_m for each sample and probe, shape (n, M), for probes (n, M, *event)."""
    xp = be.xp
    xr, tr, vs = _probe_vectors(xp, x, t, probes)
    jv = _model_jvp(model, xr, tr, vs) if hasattr(model, "jvp") else be.jvp(lambda y: model(y, tr), xr, vs)
    return _quadratics(xp, vs, jv, probes.shape[0], probes.shape[1])


def hutchinson(model, be: Backend, x, t, probes):
    """The probe estimate (1/M) Σ_m ε_mᵀ (∂s_θ/∂x) ε_m of ∇ₓ·s_θ(x, t), shape (n,)."""
    return be.xp.mean(probe_quadratics(model, be, x, t, probes), axis=1)


def score_and_hutchinson(model, be: Backend, x, t, probes):
    """(s_θ(x, t), its :func:`hutchinson` estimate): through the backend, the M probes' JVPs
    (or VJPs, ``backend.value_and_probe``: εᵀJε is the same number) on the repeated batch carry s_θ
    along (no separate call); with the model's own ``jvp``, one call and its ``jvp`` on the
    repeated batch. Model passes: :func:`passes`."""
    return hutchinson_scorer(model, be, probes)(x, t)


def hutchinson_scorer(model, be: Backend, probes):
    """``(x, t) -> (s_θ(x, t), its :func:`hutchinson` estimate)`` for probes (n, M, *event) held
    fixed, as :func:`score_and_hutchinson`; the probes are flattened to (n·M, *event) once, for a
    solver that calls it at every evaluation."""
    xp = be.xp
    n, M = probes.shape[0], probes.shape[1]
    vs = xp.reshape(probes, (n * M,) + tuple(probes.shape[2:]))
    own_jvp = hasattr(model, "jvp")

    def score_div(x, t):
        xr, tr = (x, t) if M == 1 else (repeat(xp, x, M), repeat(xp, t, M))
        if own_jvp:
            score, jv = model(x, t), _model_jvp(model, xr, tr, vs)
        else:
            out, jv = be.value_and_probe(lambda y: model(y, tr), xr, vs)
            # Rows i·M .. i·M + M − 1 are sample i repeated: its value is any one of them.
            score = out if M == 1 else xp.reshape(out, (n, M) + tuple(x.shape[1:]))[:, 0, ...]
        if M == 1:  # one probe: its quadratic, no reshape or mean
            return score, sum_event(xp, vs * jv)
        return score, xp.mean(_quadratics(xp, vs, jv, n, M), axis=1)

    return score_div


def score_and_exact(model, be: Backend, x, t):
    """(s_θ(x, t), ∇ₓ·s_θ(x, t) exactly): the model's own ``divergence`` and a call, else the
    backend's batched Jacobian trace, whose D directions carry s_θ along (no separate call).
    Model passes: :func:`passes`."""
    if hasattr(model, "divergence"):
        return model(x, t), exact(model, be, x, t)
    return be.value_and_divergence(model, x, t)


def passes(model, divergence: str, n_probes: int, dim: int) -> int:
    """Model passes per evaluation of :func:`score_and_exact` (``divergence="exact"``) or
    :func:`score_and_hutchinson` with ``n_probes`` probes, on a batch of dimension ``dim``:
    exact 2 with ``model.divergence`` (a call, the divergence), else ``dim`` (the Jacobian
    trace's directions); probes 1 + M with ``model.jvp`` (a call, the ``jvp`` on the batch
    repeated M times), else M (the JVPs)."""
    if divergence == "exact":
        return 2 if hasattr(model, "divergence") else dim
    return 1 + n_probes if hasattr(model, "jvp") else n_probes


__all__ = ["PROBES", "draw_probes", "exact", "has_autodiff", "hutchinson", "hutchinson_scorer", "probe_quadratics",
           "passes", "repeat", "score_and_exact", "score_and_hutchinson"]
