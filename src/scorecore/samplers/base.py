"""The two program contracts every sampler builds, and the one driver that runs them.

A sampler is a frozen dataclass of options. Given a model, an SDE and the run's
:class:`Context` it builds one of two programs:

* :class:`FixedProgram` — N steps over a host time grid t_0 > … > t_N (``times``; the state
  after k steps represents time t_k): ``state ← step(k, state, key_k)``, k = 0 … N − 1, with
  ``key_k = fold_in(key, k)``, then ``x = finish(state, key_finish)``. Its NFE is known before
  the run. Reports of a non-finite state, trajectories and ``Conditioned`` read the grid.
* :class:`AdaptiveProgram` — per-sample step sizes: ``while any(status == RUNNING) and k <
  max_steps: state ← step(k, state, key_k)``. Every sample carries a status code (``RUNNING``,
  ``CONVERGED``, ``BUDGET``, ``NONFINITE``, ``STEP_COLLAPSED``); the driver owns their one message
  table (:data:`STATUS_MESSAGES`, as diffrax's ``RESULTS``), stops the loop on them, marks the
  samples still running after ``max_steps`` iterations as ``BUDGET`` (each iteration is one try
  of every running sample, so the iteration count *is* the per-sample budget) and raises on
  them.

The driver loops through the backend's ``fori_loop``/``while_loop`` (``jax.lax`` on JAX, Python
with a progress bar elsewhere), compiles the whole run once on JAX and keeps it on the
program, records the first step at which the state turned non-finite (no branching on array
values inside the loop), and ends every run with one tail: the finite check, the NFE and the
:class:`SampleInfo`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import streams
from ..backend import Backend

RUNNING, CONVERGED, BUDGET, NONFINITE, STEP_COLLAPSED = 0, 1, 2, 3, 4

#: status code -> what it means, for every message the driver writes.
STATUS_MESSAGES = {
    RUNNING: "running",
    CONVERGED: "converged",
    BUDGET: "step budget exhausted",
    NONFINITE: "non-finite values that no step size avoids",
    STEP_COLLAPSED: "step size collapsed below the time resolution",
}


class NonFiniteError(FloatingPointError):
    """Non-finite values appeared while sampling; ``step`` and ``time`` say where first
    (``time`` is the time the state had reached; for adaptive solvers the time at which the
    first failing sample stopped). ``status`` holds the per-sample codes of adaptive runs."""

    def __init__(self, sampler: str, step: int, time: float | None, detail: str = "", status=None):
        self.sampler, self.step, self.time, self.status = sampler, step, time, status
        at = f" (t = {time:.6g})" if time is not None else ""
        super().__init__(
            f"{sampler}: non-finite values (NaN or inf) first appeared at step {step}{at}{detail}; "
            "check the score model at that time, or use more steps"
        )


class BudgetExhaustedError(RuntimeError):
    """An adaptive solver ran out of its step budget before every sample reached the end;
    ``status`` holds the per-sample codes (pass ``return_info=True`` to get the unfinished
    samples with their status instead)."""

    def __init__(self, sampler: str, n_bad: int, n: int, max_steps: int, time: float, status=None):
        self.sampler, self.status = sampler, status
        super().__init__(
            f"{sampler}: {n_bad} of {n} samples exhausted the step budget max_steps={max_steps} "
            f"(the furthest behind stopped at t = {time:.6g}); raise max_steps or loosen rtol/atol, "
            "or pass return_info=True to get the unfinished samples with their status"
        )


@dataclass(frozen=True)
class Context:
    """What a program needs of the run: backend, dtype, sample shape, first sample index."""

    backend: Backend
    dtype: Any
    shape: tuple[int, ...]
    offset: int = 0

    @property
    def xp(self):
        return self.backend.xp

    def normal(self, key, stream: str | None = None, j: int = 0):
        """Standard normal noise of the samples' shape from ``key`` (a step's key), or from the
        named ``stream`` within it (:mod:`scorecore.streams`); row i depends on (key, offset + i)."""
        if stream is not None:
            key = streams.step_key(self.backend, key, stream, j)
        return self.backend.normal(key, self.shape, self.dtype, offset=self.offset)

    def times(self, values):
        """Host floats as a backend array in the run's dtype."""
        return self.backend.asarray(list(values), dtype=self.dtype)

    def batch_time(self, t):
        """A 0-D time broadcast to shape (n,), the time argument score models receive;
        an (n,) time (adaptive solvers: one time per sample) is returned as it is."""
        if t.ndim != 0:
            return t
        return t * self.xp.ones((self.shape[0],), dtype=self.dtype, device=self.backend.device)

    def batched(self, fn):
        """``fn(x, t)`` called with ``batch_time(t)``: the one place a step's 0-D time t_k
        becomes the (n,) time a score model (or a user's ODE right-hand side) receives.

        Steps evaluate schedule coefficients (β(t), g(t), σ(t), Δt, ...) on the 0-D t_k —
        scalar work — and only the model sees the (n,) vector."""
        return lambda x, t: fn(x, self.batch_time(t))


def _identity(state):
    return state


def _finish_identity(state, key):
    return state


@dataclass(frozen=True, eq=False)
class FixedProgram:
    """N = len(times) − 1 steps ``state ← step(k, state, key_k)``; ``times[k]`` is the time the
    state represents after k steps (host floats). ``sample_of(state)`` is the sample the state
    holds (checked for finiteness, recorded in trajectories); ``finish(state, key)`` the final map."""

    times: tuple[float, ...]
    nfe: int
    step: Callable[[Any, Any, Any], Any]
    init: Callable[[Any], Any] = _identity
    finish: Callable[[Any, Any], Any] = _finish_identity
    sample_of: Callable[[Any], Any] = _identity
    compiled: dict = field(default_factory=dict, repr=False)

    @property
    def n_steps(self) -> int:
        return len(self.times) - 1


@dataclass(frozen=True, eq=False)
class AdaptiveProgram:
    """Per-sample adaptive steps until no sample is ``RUNNING`` (or ``max_steps`` iterations).

    ``status_of(state)`` and ``time_of(state)`` give (n,) arrays: each sample's status code and
    the time it reached; ``nfe_of(state)`` the batch calls of the model so far; ``stats_of(state)``
    more per-sample statistics for :class:`SampleInfo` (a dict of (n,) arrays)."""

    max_steps: int
    step: Callable[[Any, Any, Any], Any]
    init: Callable[[Any], Any]
    status_of: Callable[[Any], Any]
    time_of: Callable[[Any], Any]
    nfe_of: Callable[[Any], Any]
    finish: Callable[[Any, Any], Any] = _finish_identity
    sample_of: Callable[[Any], Any] = _identity
    finish_nfe: int = 0
    #: −1 when the solve runs towards smaller t (sampling from T to eps), +1 towards larger.
    direction: float = -1.0
    stats_of: Callable[[Any], dict] = lambda state: {}
    compiled: dict = field(default_factory=dict, repr=False)


class Sampler:
    """Base of the samplers: ``program(model, sde, ctx, eps)`` returns a Fixed- or AdaptiveProgram."""

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def program(self, model, sde, ctx: Context, eps: float):
        raise NotImplementedError


@dataclass
class SampleInfo:
    """What a run spent: ``nfe`` score evaluations in ``n_steps`` steps of ``sampler``.

    ``nfe`` counts calls of the score model (each on the whole batch). Adaptive samplers add
    per-sample statistics in ``stats`` (``status`` codes, see :data:`STATUS_MESSAGES`, and e.g.
    ``accepted``, ``rejected`` arrays of shape (n,)); ``trajectory`` is an array (F, n, ...) of
    states at ``trajectory_times`` (F host floats) when one was asked for."""

    sampler: str
    nfe: int
    n_steps: int
    stats: dict = field(default_factory=dict)
    trajectory: Any = None
    trajectory_times: list | None = None


def _first_bad(xp, finite, k, bad):
    """``k`` if this is the first step at which ``finite`` is false (no branching on values)."""
    newly = xp.logical_and(bad < 0, xp.logical_not(finite))
    # The cast keeps the carry's dtype when a traced k is int64 (JAX with x64).
    return xp.astype(bad + (k - bad) * xp.astype(newly, bad.dtype), xp.int32)


def _all_finite(xp, x):
    return xp.all(xp.isfinite(x))


def _compiled(program, be: Backend, fn: Callable, key) -> Callable:
    """``x0 -> fn(x0, key)``, compiled on non-eager backends and kept on the program, so running
    it again (another seed) neither re-traces nor re-compiles. A host (Python int) key — portable
    noise — cannot be a traced argument, so it is bound as a constant and compiled on its own."""
    if be.eager:
        return functools.partial(fn, key=key)
    if isinstance(key, int):
        return be.jit(functools.partial(fn, key=key))
    if "run" not in program.compiled:
        program.compiled["run"] = be.jit(fn)
    return functools.partial(program.compiled["run"], key=key)


def _trajectory_steps(n: int, trajectory, times) -> list[int]:
    """Step counts after which to record the state: every k steps (an int), or the step
    boundaries whose time is nearest to each of the requested times (a sequence)."""
    from .. import validation

    if isinstance(trajectory, bool) or trajectory is None:
        raise TypeError("trajectory must be an int (every k steps) or a sequence of times")
    if isinstance(trajectory, int):
        k = validation.positive_int("trajectory (record every k steps)", trajectory)
        return sorted(set(range(0, n + 1, k)) | {n})
    try:
        wanted = [float(t) for t in trajectory]
    except (TypeError, ValueError):
        raise TypeError(f"trajectory must be an int or a sequence of times, got {trajectory!r}") from None
    if not wanted:
        raise ValueError("trajectory must name at least one time")
    return [min(range(n + 1), key=lambda k: abs(times[k] - t)) for t in wanted]


def _run_fixed(program: FixedProgram, x_init, ctx: Context, key, step, desc, trajectory):
    be, xp = ctx.backend, ctx.xp
    n = program.n_steps

    def body_with(key):
        def body(k, carry):
            state, bad = carry
            state = step(k, state, be.fold_in(key, k))
            return state, _first_bad(xp, _all_finite(xp, program.sample_of(state)), k, bad)

        return body

    bad0 = xp.asarray(-1, dtype=xp.int32, device=be.device)
    if trajectory is None:
        def whole(x0, key):
            carry = be.fori_loop(0, n, body_with(key), (program.init(x0), bad0), progress=desc)
            # The final map is compiled with the loop (Heun's last Euler step is a score call).
            return carry, program.finish(carry[0], streams.run_key(be, key, "finish"))

        (state, bad), x = _compiled(program, be, whole, key)(x_init)
        return x, bad, {}, None
    # A trajectory runs the loop in segments between the recorded steps, so no buffer is
    # updated inside the loop and every segment stays traceable.
    record = _trajectory_steps(n, trajectory, program.times)
    carry, done, frames = (program.init(x_init), bad0), 0, {}
    for stop in sorted(set(record)) + [n]:
        if stop > done:
            carry = be.fori_loop(done, stop, body_with(key), carry, progress=desc)
            done = stop
        frames[stop] = program.sample_of(carry[0])
    x = program.finish(carry[0], streams.run_key(be, key, "finish"))
    return x, carry[1], frames, record


def _run_adaptive(program: AdaptiveProgram, x_init, ctx: Context, key, step):
    be, xp = ctx.backend, ctx.xp

    def whole(x0, key):
        def cond(carry):
            k, state, _, _ = carry
            return xp.logical_and(xp.any(program.status_of(state) == RUNNING), k < program.max_steps)

        def body(carry):
            k, state, bad, bad_t = carry
            state = step(k, state, be.fold_in(key, k))
            failed = program.status_of(state) >= NONFINITE
            newly = xp.logical_and(bad < 0, xp.any(failed))
            return k + 1, state, _first_bad(xp, xp.logical_not(xp.any(failed)), k, bad), \
                xp.where(newly, _earliest(xp, program, state, failed), bad_t)

        state0 = program.init(x0)
        k0 = xp.asarray(0, dtype=xp.int32, device=be.device)
        bad0 = xp.asarray(-1, dtype=xp.int32, device=be.device)
        # A sample whose first evaluation is non-finite fails at step 0.
        failed0 = program.status_of(state0) >= NONFINITE
        bad0 = xp.where(xp.any(failed0), xp.zeros_like(bad0), bad0)
        t0 = _earliest(xp, program, state0, failed0)
        k, state, bad, bad_t = be.while_loop(cond, body, (k0, state0, bad0, t0))
        status = program.status_of(state)
        status = xp.where(status == RUNNING, xp.full_like(status, BUDGET), status)
        return state, status, bad, bad_t, k, program.finish(state, streams.run_key(be, key, "finish"))

    return _compiled(program, be, whole, key)(x_init)


def run(program, x_init, ctx: Context, key, *, name: str, progress=False, trajectory=None,
        return_info: bool = False):
    """Run ``program`` from ``x_init`` and return the samples (or ``(x, SampleInfo)``).

    Raises :class:`NonFiniteError` naming the first step (and a real time) at which a NaN or
    inf appeared, and for adaptive programs :class:`BudgetExhaustedError` when samples ran out
    of steps — unless ``return_info``, which returns them with their ``status`` in
    ``info.stats``. ``trajectory`` (fixed-step programs only): an int k (every k steps) or a
    sequence of times (the nearest grid points); the states come back in ``info.trajectory``.
    """
    be, xp = ctx.backend, ctx.xp
    desc = name if (progress and be.eager) else None
    step = be.jit(program.step) if be.eager else program.step
    if isinstance(program, AdaptiveProgram):
        if trajectory is not None:
            raise ValueError(f"{name}: trajectories are recorded for fixed-step samplers only")
        state, status, bad, bad_t, k, x = _run_adaptive(program, x_init, ctx, key, step)
        bad, host_status = int(bad), be.to_numpy(status)
        failed = host_status >= NONFINITE
        if failed.any():
            kinds = sorted({STATUS_MESSAGES[int(c)] for c in host_status[failed]})
            raise NonFiniteError(name, bad, float(bad_t), f", {int(failed.sum())} of {failed.size} samples "
                                 f"stopped with {' / '.join(kinds)}", status)
        if not bool(_all_finite(xp, x)):
            raise NonFiniteError(name, int(k), None, ", in the final map", status)
        n_budget = int((host_status == BUDGET).sum())
        if n_budget and not return_info:
            behind = _earliest(xp, program, state, status == BUDGET)
            raise BudgetExhaustedError(name, n_budget, host_status.size, program.max_steps, float(behind), status)
        if not return_info:
            return x
        stats = {"status": status, **program.stats_of(state)}
        return x, SampleInfo(name, int(program.nfe_of(state)) + program.finish_nfe, int(k), stats)

    x, bad, frames, record = _run_fixed(program, x_init, ctx, key, step, desc, trajectory)
    bad = int(bad)
    if bad >= 0:
        raise NonFiniteError(name, bad, program.times[bad + 1])
    if not bool(_all_finite(xp, x)):
        raise NonFiniteError(name, program.n_steps, program.times[-1], ", in the final map")
    if not (return_info or record):
        return x
    info = SampleInfo(name, program.nfe, program.n_steps)
    if record:
        info.trajectory = xp.stack([frames[k] for k in record])
        info.trajectory_times = [program.times[k] for k in record]
    return x, info


def _earliest(xp, program: AdaptiveProgram, state, mask):
    """The time of the masked sample least far along the direction of travel (0-D): where
    the first failing sample stopped, or the unfinished sample furthest behind."""
    t = program.direction * program.time_of(state)
    return program.direction * xp.min(xp.where(mask, t, xp.full_like(t, float("inf"))))


__all__ = [
    "AdaptiveProgram", "BUDGET", "BudgetExhaustedError", "CONVERGED", "Context", "FixedProgram", "NONFINITE",
    "NonFiniteError", "RUNNING", "STATUS_MESSAGES", "STEP_COLLAPSED", "SampleInfo", "Sampler", "run",
]
