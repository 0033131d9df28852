"""The probability-flow solves behind the likelihood and the latents, and what they report.

Every solve runs an ODE program of :mod:`scorecore.samplers.ode` (:func:`solve`) and then reads
each sample's solver status: a sample that is non-finite raises
:class:`~scorecore.samplers.NonFiniteError` naming it and its time; a sample that ran out
of its step budget raises :class:`~scorecore.samplers.BudgetExhaustedError`, or, with ``return_info``, comes back as
NaN with its status in the info (``info.converged`` is then False); so does a sample that
left the data region (status ESCAPED, see :func:`~scorecore.likelihood.log_likelihood`). No
result is ever returned unfinished without the caller asking for the status.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import run_cache
from .. import validation as v
from .._arrays import is_array, namespace, per_sample
from ..backend import Backend, get_backend
from ..samplers.base import SampleInfo
from ..samplers.driver import run
from ..samplers.context import Context
from ..samplers.ode import ode_program
from ..samplers.status import (BUDGET, CONVERGED, BudgetExhaustedError, NonFiniteError,
                               budget_message)
from ..sde import SDE

#: The smallest time the likelihood integrates from (score_sde's likelihood uses 1e-5).
DEFAULT_EPS = 1e-5


@dataclass
class ODEInfo(SampleInfo):
    """The :class:`~scorecore.samplers.SampleInfo` of an ODE solve (the integrator's own info
    type), read per sample: ``nfe`` counts evaluations of the right-hand side on the whole
    batch; per sample (arrays of shape (n,)) ``nfe_per_sample`` = 1 + 6·(accepted + rejected)
    (the evaluations that sample's own solve needed), ``accepted`` and ``rejected`` steps and
    ``status`` (codes of :data:`scorecore.samplers.status.STATUS_MESSAGES`), all views of
    ``stats``. Fixed-step methods: ints, and a status only where the solve checked for samples
    that left the data region (ESCAPED; the likelihood does)."""

    @property
    def status(self):
        return self.stats.get("status")

    @property
    def accepted(self):
        return self.stats.get("accepted", self.n_steps)

    @property
    def rejected(self):
        return self.stats.get("rejected", 0)

    @property
    def nfe_per_sample(self):
        if "accepted" not in self.stats:  # a fixed-step method: every sample takes every step
            return self.nfe
        return 1 + 6 * (self.accepted + self.rejected)

    @property
    def converged(self) -> bool:
        """Whether every sample reached the end time (always, for fixed-step methods)."""
        return self.status is None or bool(np.all(host(self.status) == CONVERGED))


def host(x):
    """A NumPy copy of an array of any backend (for results reported on the host)."""
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) or not hasattr(x, "__dlpack__"):
        return np.asarray(x)
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError):
        # DLPack exports one buffer: a JAX array sharded over several devices gathers through __array__.
        return np.asarray(x)


def check_common(model, sde, eps) -> float:
    """The model and SDE of a flow, and ``eps`` (default 1e-5) in (0, T), as a float."""
    v.instance("model", model, Callable, "a callable score(x, t)")
    v.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")
    return v.real("eps", DEFAULT_EPS if eps is None else eps, lo=0.0, hi=sde.T, lo_open=True, hi_open=True)


def as_batch(be: Backend, x, dtype, model, name="x", *, finite: bool = True):
    """``x`` as a backend array (n, ...) of the run's dtype: ``dtype``, else x's own float
    dtype when x is already this backend's array, else the backend's default; checked finite
    unless ``finite=False`` (a caller that checks it inside its own compiled call)."""
    v.batch_array(name, x, event=getattr(model, "event_shape", None))
    if dtype is None and is_array(x) and namespace(x) is be.xp:
        dtype = x.dtype if x.dtype in (be.xp.float32, be.xp.float64) else None
    x = be.asarray(x, dtype=dtype, name=name)  # a foreign array crosses by DLPack, or the error names it
    if finite:
        v.finite_array(name, x)
    return x


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_status(what: str, info: ODEInfo, t1: float, max_steps: int, *, allow_budget: bool,
                 status=None) -> None:
    """BudgetExhaustedError for samples that exhausted the step budget, unless ``allow_budget``.
    (A non-finite sample has already raised NonFiniteError in the solver's driver.) ``status``:
    the host copy of ``info.status`` where the caller read it already."""
    if info.status is None:
        return
    out = (host(info.status) if status is None else status) == BUDGET
    if out.any() and not allow_budget:
        raise BudgetExhaustedError(budget_message(what, int(out.sum()), out.size, max_steps,
                                                  f"the first: sample {_first(out)}, before reaching t={t1:g}"),
                                   info.status)


def program_of(F, ctx: Context, t0: float, t1: float, *, what: str, options: dict, cache=None):
    """(the ODE program of dy/dt = F(y, t) from t0 to t1, the
    :class:`~scorecore.run_cache.ParamModel` it calls or None): kept under ``cache`` =
    (key, objects it refers to by id) and the solve ``options``, so a later solve of the same
    structure reuses it (and its compiled run) with F's new parameters (:func:`solve`)."""
    bound = F if isinstance(F, run_cache.ParamModel) else None
    if cache is not None:
        key = (cache[0], what, ctx.dtype, ctx.shape, float(t0), float(t1), tuple(sorted(options.items())))
        hit = run_cache.lookup(key)
        if hit is not None:
            program, old, _ = hit
            old.params = bound.params
            return program, old
    # The fixed-step methods pass the 0-D step time; F is promised (n,).
    program = ode_program(ctx.batched(F), ctx, t0, t1, **options)
    if cache is not None:
        run_cache.store(key, program, bound, list(cache[1]))
    return program, bound


def solve(F, y0, t0: float, t1: float, *, what: str, backend, method, steps, rtol, atol, max_steps,
          allow_budget: bool, controller="integral", cache=None):
    """``(y1, info)``: dy/dt = F(y, t) from t0 to t1, ``info`` an :class:`ODEInfo`; a non-finite
    sample raises NonFiniteError naming ``what``, an exhausted budget BudgetExhaustedError (with
    ``allow_budget``: those samples are NaN, with their status).

    ``F`` a :class:`~scorecore.run_cache.ParamModel` whose parameters hold every per-call input
    (data, keys, weights) and ``cache`` = (key, objects it refers to by id): the program is kept
    under the key and the solve options (:func:`program_of`), so on JAX a second solve of the
    same structure reruns the compiled run with F's new parameters as its argument."""
    be = get_backend(backend)
    xp = be.xp
    ctx = Context(be, y0.dtype, tuple(y0.shape))
    options = dict(method=method, steps=steps, rtol=rtol, atol=atol, max_steps=max_steps, controller=controller)
    program, bound = program_of(F, ctx, t0, t1, what=what, options=options, cache=cache)
    y1, sample_info = run(program, y0, ctx, solver_key(be), name=what, return_info=True, model=bound)
    info = ODEInfo(**vars(sample_info))
    status = None if info.status is None else host(info.status)
    check_status(what, info, t1, max_steps, allow_budget=allow_budget, status=status)
    if status is not None and not (status == CONVERGED).all():
        done = per_sample(info.status == CONVERGED, y1)
        y1 = xp.where(done, y1, xp.full_like(y1, float("nan")))
    return y1, info


@functools.lru_cache(maxsize=8)
def solver_key(be: Backend):
    """The run key of an ODE solve, which draws no noise: made once per backend (a JAX key
    costs an eager call)."""
    return be.key(0)


def finite_or_unconverged(xp, values, status):
    """Per row (n,): ``values`` finite, or the row not CONVERGED (NaN by design, with its status)."""
    ok = xp.all(xp.reshape(xp.isfinite(values), (values.shape[0], -1)), axis=1)
    return ok if status is None else xp.logical_or(ok, status != CONVERGED)


def check_finite(what: str, values, info: ODEInfo, t1: float, *, ok=None) -> None:
    """NonFiniteError for a converged sample whose result is NaN or inf (e.g. an overflowing
    prior term); ``ok``: the host copy of :func:`finite_or_unconverged` where the caller has it."""
    if ok is None:
        ok = finite_or_unconverged(np, host(values), None if info.status is None else host(info.status))
    if not ok.all():
        i = _first(~ok)
        steps = info.accepted if info.status is None else host(info.accepted + info.rejected)[i]
        raise NonFiniteError(f"{what} (sample {i}; {int((~ok).sum())} of {ok.shape[0]} samples non-finite)",
                             int(steps), float(t1))


__all__ = ["DEFAULT_EPS", "ODEInfo", "as_batch", "check_common", "check_finite", "check_status",
           "finite_or_unconverged", "host", "program_of", "solve", "solver_key"]
