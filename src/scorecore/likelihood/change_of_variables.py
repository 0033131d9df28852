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
the escape bound, max_j |x_j| > R_i = ``escape_factor``·(max_j |x_j(eps)| + prior_std), stops
there and comes back with status ESCAPED (:mod:`scorecore.samplers.status`) and NaN, never as a
number to average. An adaptive solve on an eager backend ends the sample at its first accepted
state beyond the bound (the solver's event, ``F.stops``: no test in each evaluation, and no
more evaluations of it); the fixed-step methods and a compiled run freeze it there instead (its
derivative is zero from then on).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import divergence as div
from .. import run_cache, streams
from .. import validation as v
from .._arrays import namespace, per_sample
from ..backend import Backend, get_backend
from ..sde import SDE
from ..samplers.driver import adaptive_run, judge, pure
from ..samplers.context import Context
from ..samplers.ode import FIXED_METHODS, ode_program
from ..samplers.status import CONVERGED, ESCAPED, EscapedError
from .solve import (ODEInfo, as_batch, check_common, check_finite, check_status, finite_or_unconverged, host,
                    program_of, solve, solver_key)


DIVERGENCES = ("exact", "hutchinson")


@dataclass
class LikelihoodInfo(ODEInfo):
    """:class:`ODEInfo` plus the pieces of log p = ``prior_logp`` + ``delta_logp``:
    the latent ``z`` = x(T), log π(z) and Δ = ∫_eps^T ∇·f̃ dt, each per sample; and what the
    evaluations cost in model passes (:func:`scorecore.divergence.passes`): ``passes`` per
    evaluation of the right-hand side, ``model_nfe`` = ``nfe`` · ``passes`` for the batch,
    ``model_nfe_per_sample`` each sample's."""

    z: Any = None
    prior_logp: Any = None
    delta_logp: Any = None
    passes: int = 1

    @property
    def model_nfe(self) -> int:
        return self.nfe * self.passes

    @property
    def model_nfe_per_sample(self):
        return self.nfe_per_sample * self.passes


def flow(model, sde):
    """f̃(x, t) = f(x, t) − ½ g(t)² s_θ(x, t) on x of shape (n, ...)."""

    def F(x, t):
        score = model(x, t)
        v.model_output(model, score, x)  # shape and dtype are static: checked on every backend, under jit too
        return sde.reverse_drift(x, t, score, probability_flow=True)

    return F


def _check_derivatives(model, be: Backend, divergence: str) -> None:
    """A clear error before any work when neither the model nor the backend can give ∇·s_θ."""
    if divergence == "exact":
        if not hasattr(model, "divergence") and not div.has_autodiff(be, "jvp"):
            raise ValueError(
                f"divergence='exact' needs model.divergence(x, t) or a backend with autodiff; the model "
                f"{type(model).__name__} has none and backend {be.name!r} has no autodiff: use the 'torch' "
                "or 'jax' backend, or divergence='hutchinson' with a model that has .jvp(x, t, v)")
    elif not hasattr(model, "jvp") and not div.has_autodiff(be, "jvp"):
        raise ValueError(
            f"divergence='hutchinson' needs model.jvp(x, t, v) or a backend with autodiff; the model "
            f"{type(model).__name__} has no .jvp and backend {be.name!r} has no autodiff")


def _escape_bound(xp, x, sde: SDE, escape_factor: float):
    """R_i = escape_factor · (max_j |x_ij| + prior_std), (n,)."""
    return escape_factor * (xp.max(xp.abs(xp.reshape(x, (x.shape[0], -1))), axis=1) + sde.prior_std)


def _inside(xp, y, bound):
    """Whether each row's x part (all of y but the last column) is within its escape bound."""
    return xp.max(xp.abs(y[:, :-1]), axis=1) <= bound


def augmented_flow(model, sde: SDE, be: Backend, x, key, *, divergence: str, probe: str, n_probes: int,
                   offset: int, escape_factor: float, freeze: bool = True):
    """The right-hand side F(y, t) of y = [x flattened, Δ], (n, D + 1), for the data ``x``
    and run ``key``: dx/dt = f̃(x, t), dΔ/dt = D a(t) − ½ g(t)² ∇·s_θ(x, t). s_θ and ∇·s_θ come
    from one set of model passes (:func:`~scorecore.divergence.score_and_exact` /
    ``hutchinson_scorer``). A row beyond its escape bound: with ``freeze``, F is zero there (it
    stays put); else F has ``F.stops(y)``, the rows beyond their bound, with which an adaptive
    solver ends a row at its first accepted state out there (status ESCAPED) and F skips the
    test. Pure: traceable with traced x and key."""
    xp = be.xp
    n, event = x.shape[0], tuple(x.shape[1:])
    probes = None
    if divergence != "exact":
        # Row i of the probes depends on (key, offset + i) only: batch invariant, fixed in t.
        probes = div.draw_probes(be, streams.run_key(be, key, "probes"), probe, (n, n_probes) + event, x.dtype,
                                 offset=offset)
    return _rowwise_flow(model, sde, be, event, probes, _escape_bound(xp, x, sde, escape_factor), freeze)


def _rowwise_flow(model, sde: SDE, be: Backend, event: tuple, probes, bound, freeze: bool):
    """:func:`augmented_flow`'s F on the rows its per-row inputs (``probes`` (m, M, *event) or None
    for the exact divergence, escape ``bound`` (m,)) belong to. ``F.rows(idx)`` is F on the rows
    ``idx`` of these (its inputs taken by :func:`take_rows`): an eager solver evaluates only the
    samples still running (:func:`~scorecore.samplers.compaction.compacted_step`)."""
    xp = be.xp
    D = math.prod(event)
    if probes is None:
        score_div = lambda x_, t_: div.score_and_exact(model, be, x_, t_)  # noqa: E731
    else:
        score_div = div.hutchinson_scorer(model, be, probes)
    flat = len(event) == 1  # vectors: x is its own flattening (no reshapes, which eager backends pay per call)
    checked = False

    def F(y, t):
        nonlocal checked
        n = y.shape[0]
        xf = y[:, :D]
        xt = xf if flat else xp.reshape(xf, (n,) + event)
        score, ds = score_div(xt, t)
        if not checked:  # shape and dtype are static: once per F (at trace time under jit)
            v.model_output(model, score, xt)
            checked = True
        # f̃ = a x + c s_θ: a(t) and c(t) once each, shared by x's drift and Δ's; a = 0 (VE) costs nothing.
        a, c = sde.flow_coefficients(t)
        if freeze:  # per sample; zero for an escaped sample, which then stays put
            inside = xp.max(xp.abs(xf), axis=1) <= bound  # _inside on the x part already sliced
            a = None if a is None else xp.where(inside, a, 0.0)
            c = xp.where(inside, c, 0.0)
        # [dx, dΔ] = c [s_θ, ∇·s_θ] + a [x, D]: the solver's error norm covers Δ too
        dy = per_sample(c, y) * xp.concat([score if flat else xp.reshape(score, (n, D)), ds[:, None]], axis=1)
        return dy if a is None else dy + per_sample(a, y) * xp.concat([xf, xp.full_like(ds[:, None], D)], axis=1)

    F.rows = lambda idx: _rowwise_flow(model, sde, be, event, None if probes is None else take_rows(probes, idx),
                                       take_rows(bound, idx), freeze)
    if not freeze:
        F.stops = lambda y: xp.logical_not(_inside(xp, y, bound))
    return F


def take_rows(a, idx):
    """Rows ``idx`` (an integer array) of ``a``: a[idx, ...]."""
    return namespace(a).take(a, idx, axis=0)


def _check(model, sde, eps, divergence, probe, n_probes, offset, escape_factor):
    """(eps, the options of :func:`augmented_flow`), checked."""
    eps = check_common(model, sde, eps)
    v.choice("divergence", divergence, DIVERGENCES)
    v.choice("probe", probe, div.PROBES)
    return eps, dict(divergence=divergence, probe=probe, n_probes=v.positive_int("n_probes", n_probes),
                     offset=v.integer("offset", offset, lo=0),
                     escape_factor=v.positive_float("escape_factor", escape_factor, finite=False))


def _param_rhs(model, sde: SDE, be: Backend, options: dict):
    """(F, the model's parameters or None, the model's key token, objects it refers to by id):
    F a :class:`~scorecore.run_cache.ParamModel` whose parameters are (the model's, key, x), so
    that every per-call input is an argument of a compiled run."""
    built, model_token, keep = run_cache.prepare(model, be)
    split = isinstance(built, run_cache.ParamModel)

    def rebuild(inputs):
        params, key, x = inputs
        return augmented_flow(built.rebuild(params) if split else model, sde, be, x, key, **options)

    return (run_cache.ParamModel(rebuild, None, name="log_likelihood"), built.params if split else None,
            model_token, keep)


def _keeps_runs(be: Backend) -> bool:
    """Whether solves on ``be`` are compiled runs kept for later calls (a portable key is a
    host int: not a traced argument)."""
    return be.compiles == "run" and not be.portable


def _rhs(model, sde: SDE, be: Backend, x, key, options: dict, adaptive: bool):
    """(F(y, t) for this call, the cache entry of its solve or None): built directly on eager
    backends (for an ``adaptive`` solve with the escape test as its ``stops``), else a
    :func:`_param_rhs` bound to (the model's parameters, key, x)."""
    if not _keeps_runs(be):
        return augmented_flow(model, sde, be, x, key, freeze=not adaptive, **options), None
    F, params, model_token, keep = _param_rhs(model, sde, be, options)
    F.params = (params, key, x)
    return F, ((run_cache.token(be, keep), run_cache.token(sde, keep), model_token,
                tuple(sorted(options.items()))), keep + [model])


def _pieces_of(xp, sde: SDE, escape_factor: float):
    """``(x, y(T), status) -> (status, z, log π(z), Δ, log p)``, ESCAPED (and NaN) for a converged
    row beyond its escape bound, NaN for every row not CONVERGED."""

    def pieces(x, yT, status):
        out = xp.logical_not(_inside(xp, yT, _escape_bound(xp, x, sde, escape_factor)))
        status = xp.where(xp.logical_and(out, status == CONVERGED), xp.full_like(status, ESCAPED), status)
        yT = xp.where(per_sample(status == CONVERGED, yT), yT, xp.full_like(yT, float("nan")))
        z = xp.reshape(yT[:, :-1], tuple(x.shape))
        prior = sde.prior_log_prob(z)
        return status, z, prior, yT[:, -1], prior + yT[:, -1]

    return pieces


def _start_of(be: Backend):
    """``x -> y(eps) = [x flattened, Δ = 0]``."""
    xp = be.xp

    def y0(x):
        n = x.shape[0]
        return xp.concat([xp.reshape(x, (n, -1)), xp.zeros((n, 1), dtype=x.dtype, device=be.device)], axis=1)

    return y0


@functools.lru_cache(maxsize=32)
def _pieces(be: Backend, sde: SDE, escape_factor: float):
    """:func:`_pieces_of`, one compiled call on a backend that compiles runs (a dozen small ops
    dispatched one by one cost ~1/3 of a 64-point solve)."""
    pieces = _pieces_of(be.xp, sde, escape_factor)
    return be.jit(pieces) if be.compiles == "run" else pieces


@functools.lru_cache(maxsize=8)
def _start(be: Backend):
    """:func:`_start_of`, compiled as :func:`_pieces` is."""
    return be.jit(_start_of(be)) if be.compiles == "run" else _start_of(be)


def _solve_kept(F, cache, be: Backend, sde: SDE, x, eps: float, escape_factor: float, options: dict,
                allow_budget: bool):
    """The adaptive solve of a kept run (JAX) as one compiled call and one host read: x's
    finite check, y(eps), the solve, :func:`_pieces_of` and the inputs of every check
    (``driver.judge``, the budget, the finite result). A non-finite x is reported before any
    result is read, with :func:`~scorecore.validation.finite_array`'s error; its rows stop at
    their first evaluation. Returns ``(status, z, log π(z), Δ, log p, info, host status)``."""
    n, D = x.shape[0], math.prod(x.shape[1:])
    ctx = Context(be, x.dtype, (n, D + 1))
    program, bound = program_of(F, ctx, eps, sde.T, what="log_likelihood", options=options, cache=cache)
    call = program.compiled.get("log_likelihood")
    if call is None:
        xp, whole = be.xp, adaptive_run(program, ctx)
        start, pieces = _start_of(be), _pieces_of(xp, sde, escape_factor)

        def kept(params, key):
            x = params[2]
            with bound.bound(params):
                yT, outcome = whole(start(x), key)
            status, *parts = pieces(x, yT, outcome.status)
            x_ok = xp.all(xp.isfinite(xp.reshape(x, (n, D))), axis=1)
            return outcome, status, parts, x_ok, finite_or_unconverged(xp, parts[-1], status)

        call = program.compiled["log_likelihood"] = be.jit(kept)
    outcome, status, parts, x_ok, ok = call(bound.params, solver_key(be))
    status_h, steps, nfe, finite, x_ok, ok = be.to_host(status, outcome.steps, outcome.nfe, outcome.finite, x_ok, ok)
    if not x_ok.all():
        v.finite_array("x", x)
    what = "log_likelihood"
    info = ODEInfo(**vars(judge(program, ctx, what, outcome, (status_h, steps, nfe, finite), return_info=True)))
    info.stats["status"] = status
    check_status(what, info, sde.T, options["max_steps"], allow_budget=allow_budget, status=status_h)
    check_finite(what, parts[-1], info, sde.T, ok=ok)
    return (status, *parts, info, status_h)


def log_likelihood(model, sde: SDE, x, *, backend=None, dtype=None, eps: float | None = None,
                   rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5", steps: int = 100,
                   divergence: str = "exact", probe: str = "gaussian", n_probes: int = 1, seed: int = 0,
                   key=None, offset: int = 0, max_steps: int = 10_000, escape_factor: float = 10.0,
                   controller="predictive", return_info: bool = False):
    """log p_eps(x) per sample by the probability-flow ODE (Song et al. 2021, eq. 39), in nats:

        log p_eps(x) = log π(x(T)) + ∫_eps^T [D a(t) − ½ g(t)² ∇·s_θ(x(t), t)] dt,

    x(t) solving dx/dt = f(x, t) − ½ g(t)² s_θ(x, t) from x(eps) = x, π the prior.

    ``x``: (n, ...) — vectors or images (n, C, H, W); D = the product of the event axes.
    ``divergence``: ``"exact"`` (``model.divergence``, else the backend's Jacobian trace)
    or ``"hutchinson"`` (``n_probes`` fixed ``probe`` vectors per sample, ``"gaussian"`` or
    ``"rademacher"``, drawn from ``seed``/``key`` with row i a function of
    (key, offset + i) only). ``method``: ``"dopri5"`` (adaptive, ``rtol``, ``atol``,
    ``max_steps`` per sample, ``controller`` as the ``"dopri5"`` sampler's: ``"predictive"``
    (the default here: Gustafsson's predictive PI), ``"integral"`` (the samplers' default),
    ``"pi"`` or a :class:`~scorecore.samplers.adaptive.Controller`) or a fixed-step
    ``"euler"``/``"heun"``/``"rk4"`` with ``steps``. On the 16-D mixture under VE at rtol = atol =
    1e-5, ``"predictive"`` spends 0.86–0.90× the NFE of ``"integral"`` at 2.6–4× lower error per
    sample (``benchmarks/results/likelihood_speed.md``). It keeps the simple first step: Hairer's
    heuristic (one more evaluation) saves the rejected first try but not an iteration of the
    slowest sample (146/176 NFE against 145/169 at batch 64/1024). On eager backends (NumPy, torch
    without ``compile``) the solver evaluates only the samples still running once a tenth of them,
    and at least 32, have finished (:func:`~scorecore.samplers.compaction.compacted_step`): the same
    result up to the model's round-off at another batch size.
    ``eps`` defaults to 1e-5. The dtype is ``dtype``, else x's own (a float array of the
    backend), else the backend's default. ``escape_factor`` sets the escape bound (module
    docstring; ``inf`` turns the check off).

    On JAX an adaptive solve is one compiled call (x's finite check, the solve, the result and
    every check's input) and one host read, kept and rerun by later calls with the same
    options, SDE, shape, dtype and model structure: the data, the seed/key and the weights of
    a model the backend splits (an NNX module, a pytree) are its arguments
    (:mod:`scorecore.run_cache`). :func:`log_likelihood_fn` is the same solve as a pure
    function for the caller's own ``jax.jit``.

    Returns the (n,) array of log-likelihoods; with ``return_info``, ``(logp, info)``, a
    :class:`LikelihoodInfo` with the latent z = x(T), log π(z), Δ, the batch NFE (evaluations
    of the right-hand side) and ``model_nfe`` (model passes made: NFE × ``passes``), and per
    sample the NFE, accepted/rejected steps and solver status. Raises
    :class:`~scorecore.samplers.NonFiniteError` naming the first sample that turned NaN or
    inf, :class:`~scorecore.samplers.BudgetExhaustedError` when samples exhaust
    ``max_steps`` and :class:`~scorecore.samplers.status.EscapedError` when samples left the
    data region; with ``return_info`` those samples are NaN and their status says why.
    """
    eps, options = _check(model, sde, eps, divergence, probe, n_probes, offset, escape_factor)
    v.boolean("return_info", return_info)
    escape_factor = options["escape_factor"]
    be = get_backend(backend)
    xp = be.xp
    kept = _keeps_runs(be) and method not in FIXED_METHODS
    x = as_batch(be, x, dtype, model, finite=not kept)
    _check_derivatives(model, be, divergence)
    n, event = x.shape[0], tuple(x.shape[1:])
    D = math.prod(event)
    key = be.key(seed) if key is None else key
    F, cache = _rhs(model, sde, be, x, key, options, method not in FIXED_METHODS)
    solve_options = dict(method=method, steps=steps, rtol=rtol, atol=atol, max_steps=max_steps, controller=controller)
    if kept:
        status, z, prior, delta, logp, info, status_h = _solve_kept(F, cache, be, sde, x, eps, escape_factor,
                                                                    solve_options, return_info)
    else:
        yT, info = solve(F, _start(be)(x), eps, sde.T, what="log_likelihood", backend=be, allow_budget=return_info,
                         cache=cache, **solve_options)
        status = info.status if info.status is not None else xp.full((n,), CONVERGED, dtype=xp.int32,
                                                                     device=be.device)
        status, z, prior, delta, logp = _pieces(be, sde, escape_factor)(x, yT, status)
        info.stats["status"] = status
        check_finite("log_likelihood", logp, info, sde.T)
        status_h = host(status)
    if not return_info:
        out = status_h == ESCAPED
        if out.any():
            raise EscapedError(f"log_likelihood: {int(out.sum())} of {n} samples left the data region (the first: "
                               f"sample {int(np.flatnonzero(out)[0])}, max |x| beyond {escape_factor:g}·(max |x(eps)| "
                               f"+ prior_std)): the score is wrong far from the data; pass return_info=True to get "
                               "the others, and these as NaN with status ESCAPED", info.status)
        return logp
    return logp, LikelihoodInfo(**vars(info), z=z, prior_logp=prior, delta_logp=delta,
                                passes=div.passes(model, divergence, n_probes, D))


def log_likelihood_fn(model, sde: SDE, shape, *, backend="jax", dtype=None, eps: float | None = None,
                      rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5", steps: int = 100,
                      divergence: str = "exact", probe: str = "gaussian", n_probes: int = 1, offset: int = 0,
                      max_steps: int = 10_000, escape_factor: float = 10.0, controller="predictive"):
    """:func:`log_likelihood` as a pure function ``f(x, key, params=None) -> log p_eps(x)``,
    (n,), for data of ``shape`` (n, ...), for the caller's own ``jax.jit`` / ``jax.vmap`` (as
    ``diffrax.diffeqsolve`` composes with them).

    ``key`` (a backend key, e.g. ``be.key(seed)``) draws the Hutchinson probes exactly as
    :func:`log_likelihood` with that key; ``params`` are the parameters of a model the backend
    splits (an NNX module's ``nnx.state``, a pytree's leaves), None for the model's own. ``f``
    reads nothing on the host: a sample that did not converge (step budget spent, non-finite)
    or left the data region comes back as NaN, unreported; the model's output is checked when
    ``f`` is traced. Its matmuls use the caller's precision."""
    eps, options = _check(model, sde, eps, divergence, probe, n_probes, offset, escape_factor)
    be = get_backend(backend)
    dt = be.dtype(dtype)
    shape = v.shape("shape", shape, event=getattr(model, "event_shape", None))
    _check_derivatives(model, be, divergence)
    xp = be.xp
    n, D = shape[0], math.prod(shape[1:])
    F, own, _, _ = _param_rhs(model, sde, be, options)
    ctx = Context(be, dt, (n, D + 1))
    whole = pure(ode_program(ctx.batched(F), ctx, eps, sde.T, method=method, steps=steps, rtol=rtol, atol=atol,
                             max_steps=max_steps, controller=controller), ctx, status=True)

    def f(x, key, params=None):
        v.array_shape("x", x, shape)
        if x.dtype != dt:
            raise TypeError(f"x must be {dt}, the dtype f was built for, got {x.dtype}")
        if params is not None and own is None:
            raise TypeError(f"params: the model {v.model_name(model)} has no parameters the backend can split "
                            "off; call f(x, key)")
        with F.bound((own if params is None else params, key, x)):
            yT, status = whole(_start(be)(x), key)
        ok = _inside(xp, yT, _escape_bound(xp, x, sde, options["escape_factor"]))
        if status is not None:
            ok = xp.logical_and(ok, status == CONVERGED)
        logp = sde.prior_log_prob(xp.reshape(yT[:, :D], shape)) + yT[:, D]
        return xp.where(ok, logp, xp.full_like(logp, float("nan")))

    return f


__all__ = ["DIVERGENCES", "LikelihoodInfo", "augmented_flow", "flow", "log_likelihood", "log_likelihood_fn"]
