"""The one driver that runs a sampler's program (:mod:`.base`).

It loops through the backend's ``fori_loop``/``while_loop`` (``jax.lax`` on JAX, Python with a
progress bar elsewhere), compiles the whole run once on JAX and keeps it on the program, records
the first step at which the state turned non-finite (no branching on array values inside the
loop), and ends every run with one tail: the finite check, the NFE and the :class:`.SampleInfo`.
For an :class:`.AdaptiveProgram` it owns the status messages (:data:`.STATUS_MESSAGES`) and marks
the samples still running after ``max_steps`` iterations as ``BUDGET`` (each iteration is one
try of every running sample, so the iteration count *is* the per-sample budget).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import streams, validation
from ..backend import Backend
from .base import AdaptiveProgram, FixedProgram, SampleInfo
from .context import Context
from .status import (BUDGET, NONFINITE, RUNNING, STATUS_MESSAGES, STEP_COLLAPSED, BudgetExhaustedError,
                     NonFiniteError, budget_message)


def _first_bad(xp, finite, k, bad):
    """``k`` if this is the first step at which ``finite`` is false (no branching on values)."""
    newly = xp.logical_and(bad < 0, xp.logical_not(finite))
    # The cast keeps the carry's dtype when a traced k is int64 (JAX with x64).
    return xp.astype(bad + (k - bad) * xp.astype(newly, bad.dtype), xp.int32)


def _compiled(program, be: Backend, fn: Callable, key, model=None) -> Callable:
    """``x0 -> fn(x0, key)``, compiled on non-eager backends and kept on the program, so running
    it again (another seed) neither re-traces nor re-compiles. A host (Python int) key — portable
    noise — cannot be a traced argument, so it is bound as a constant and compiled on its own.
    ``model`` (a :class:`~scorecore.run_cache.ParamModel`) makes the model's parameters a third
    argument of the compiled run, read at each call, so new weights reuse the trace too."""
    if be.eager:
        return functools.partial(fn, key=key)
    if model is not None:
        def with_params(x0, key, params):
            with model.bound(params):
                return fn(x0, key)

        if isinstance(key, int):
            return lambda x0: be.jit(functools.partial(with_params, key=key))(x0, params=model.params)
        if "run" not in program.compiled:
            program.compiled["run"] = be.jit(with_params)
        return lambda x0: program.compiled["run"](x0, key, model.params)
    if isinstance(key, int):
        return be.jit(functools.partial(fn, key=key))
    if "run" not in program.compiled:
        program.compiled["run"] = be.jit(fn)
    return functools.partial(program.compiled["run"], key=key)


def _trajectory_steps(n: int, trajectory, times) -> list[int]:
    """Step counts after which to record the state: every k steps (an int), or the step
    boundaries whose time is nearest to each of the requested times (a sequence)."""
    if isinstance(trajectory, int) and not isinstance(trajectory, bool):
        k = validation.positive_int("trajectory (record every k steps)", trajectory)
        return sorted(set(range(0, n + 1, k)) | {n})
    try:
        wanted = [float(t) for t in trajectory]
    except (TypeError, ValueError):
        raise TypeError(f"trajectory must be an int (every k steps) or a sequence of times, got {trajectory!r}") \
            from None
    if not wanted:
        raise ValueError("trajectory must name at least one time")
    return [min(range(n + 1), key=lambda k: abs(times[k] - t)) for t in wanted]


def _loop_fixed(program: FixedProgram, be: Backend, lo: int, hi: int, body, carry, progress=None):
    """``be.fori_loop(lo, hi, body, carry)`` with steps below ``program.unrolled`` run first as
    Python calls on compiled backends (eager loops pass Python ints already)."""
    if not be.eager:
        head = min(max(lo, program.unrolled), hi)
        for k in range(lo, head):
            carry = body(k, carry)
        lo = head
    return be.fori_loop(lo, hi, body, carry, progress=progress)


def _body_fixed(program: FixedProgram, ctx: Context, step, key):
    """One loop iteration: a step, and the first non-finite step so far."""
    be, xp = ctx.backend, ctx.xp

    def body(k, carry):
        state, bad = carry
        state = step(k, state, be.fold_in(key, k))
        return state, _first_bad(xp, xp.all(xp.isfinite(program.sample_of(state))), k, bad)

    return body


_PURE = object()  # desc of a run that must be traceable whatever the backend (pure())


def _whole_fixed(program: FixedProgram, ctx: Context, step, desc=None):
    """``(x_init, key) -> (first non-finite step or −1, x, stats)``: the whole run, pure."""
    be, xp = ctx.backend, ctx.xp

    def whole(x_init, key):
        carry = (program.init(x_init), xp.asarray(-1, dtype=xp.int32, device=be.device))
        body = _body_fixed(program, ctx, step, key)
        carry = _loop_fixed(program, be, 0, program.n_steps, body, carry, None if desc is _PURE else desc)
        # The final map is compiled with the loop (Heun's last Euler step is a score call).
        return carry[1], program.finish(carry[0], streams.run_key(be, key, "finish")), program.stats_of(carry[0])

    def eager(x_init, key):
        # A Python loop: each step keeps max |x|, finite iff the state is (max propagates NaN),
        # with no device sync, and the first non-finite one is found once at the end — the step
        # _first_bad's seven scalar ops per step would record, at two ops per step. On torch
        # max |x| costs a sixth to a tenth of all(isfinite(x)) (16,384 × 2 and × 16 float32:
        # isfinite writes its bool tensor slowly), which was most of the per-step overhead.
        witness = []

        def body(k, state):
            state = step(k, state, be.fold_in(key, k))
            witness.append(xp.max(xp.abs(program.sample_of(state))))
            return state

        state = be.fori_loop(0, program.n_steps, body, program.init(x_init), progress=desc)
        ok = xp.isfinite(xp.stack(witness)) if witness else xp.ones((0,), dtype=xp.bool, device=be.device)
        bad = xp.argmin(xp.astype(ok, xp.int32)) if program.n_steps and not bool(xp.all(ok)) else -1
        return bad, program.finish(state, streams.run_key(be, key, "finish")), program.stats_of(state)

    return eager if be.eager and desc is not _PURE else whole


def _run_fixed(program: FixedProgram, x_init, ctx: Context, key, step, desc, record, model=None):
    """(x, first non-finite step or −1, the states after the ``record`` step counts, stats)."""
    be, xp = ctx.backend, ctx.xp
    body_with = functools.partial(_body_fixed, program, ctx, step)
    if not record:
        bad, x, stats = _compiled(program, be, _whole_fixed(program, ctx, step, desc), key, model)(x_init)
        return x, int(bad), {}, stats
    carry = (program.init(x_init), xp.asarray(-1, dtype=xp.int32, device=be.device))
    # A trajectory runs the loop in segments between the recorded steps, so no buffer is
    # updated inside the loop and every segment stays traceable.
    done, frames = 0, {}
    for stop in sorted(set(record)) + [program.n_steps]:
        if stop > done:
            carry, done = _loop_fixed(program, be, done, stop, body_with(key), carry, desc), stop
        frames[stop] = program.sample_of(carry[0])
    return program.finish(carry[0], streams.run_key(be, key, "finish")), int(carry[1]), frames, \
        program.stats_of(carry[0])


class Outcome(NamedTuple):
    """What an adaptive run leaves on the device for :func:`judge`: the final ``state``, each
    sample's ``status`` (BUDGET where it ran out of iterations), the iteration count
    ``steps``, the batch ``nfe`` and whether each row of the result is ``finite`` (per row: a
    reduction over the batch would add an all-reduce to a sharded run)."""

    state: Any
    status: Any
    steps: Any
    nfe: Any
    finite: Any


def _whole_adaptive(program: AdaptiveProgram, ctx: Context, step):
    """``(x_init, key) -> (x, Outcome)``: the whole run, pure.

    Samples still running after ``max_steps`` iterations get status ``BUDGET``."""
    be, xp = ctx.backend, ctx.xp

    def whole(x0, key):
        def cond(carry):
            k, state = carry
            return xp.logical_and(xp.any(program.status_of(state) == RUNNING), k < program.max_steps)

        def body(carry):
            k, state = carry
            return k + 1, step(k, state, be.fold_in(key, k))

        k0 = xp.asarray(0, dtype=xp.int32, device=be.device)
        k, state = be.while_loop(cond, body, (k0, program.init(x0)))
        status = program.status_of(state)
        status = xp.where(status == RUNNING, xp.full_like(status, BUDGET), status)
        x = program.finish(state, streams.run_key(be, key, "finish"))
        rows = xp.reshape(xp.isfinite(x), (x.shape[0], -1))
        return x, Outcome(state, status, k, program.nfe_of(state), xp.all(rows, axis=1))

    return whole


def judge(program: AdaptiveProgram, ctx: Context, name: str, outcome: Outcome, host: tuple, *,
          return_info: bool) -> SampleInfo:
    """The :class:`.SampleInfo` of an adaptive run, or the error it ended with, from its
    ``outcome`` and ``host`` = (status, steps, nfe, finite) read to the host in one transfer
    (the state is read only to say where a failure happened)."""
    be = ctx.backend
    status, n_steps, nfe, finite = host
    failed = (status == NONFINITE) | (status == STEP_COLLAPSED)  # other codes (ESCAPED) are no solver failure
    if failed.any():
        causes = " / ".join(sorted({STATUS_MESSAGES[int(c)] for c in status[failed]}))
        # Every iteration is one try of each running sample: a sample that failed in
        # iteration k made k + 1 tries (none if its first evaluation failed).
        first = max(int(be.to_numpy(program.tries_of(outcome.state))[failed].min()) - 1, 0)
        raise NonFiniteError(name, first, _earliest(be, program, outcome.state, failed),
                             f", {int(failed.sum())} of {status.size} samples stopped with {causes}", outcome.status)
    late = int((status == BUDGET).sum())
    if late and not return_info:
        behind = _earliest(be, program, outcome.state, status == BUDGET)
        raise BudgetExhaustedError(budget_message(name, late, status.size, program.max_steps,
                                                  f"the furthest behind stopped at t = {behind:.6g}"), outcome.status)
    if not finite.all():  # the final map can fail too
        raise NonFiniteError(name, int(n_steps), None, ", in the final map")
    return SampleInfo(name, int(nfe) + program.finish_nfe, int(n_steps),
                      {"status": outcome.status, **program.stats_of(outcome.state)})


def adaptive_run(program: AdaptiveProgram, ctx: Context):
    """``(x_init, key) -> (x, Outcome)``: the whole adaptive run, pure, for a caller that
    compiles it together with its own work and reads :class:`Outcome` once (:func:`judge`)."""
    return _whole_adaptive(program, ctx, program.step)


def pure(program, ctx: Context, *, status: bool = False):
    """``(x_init, key) -> x``: the whole run of ``program`` as one pure, traceable function —
    no host reads, no checks — for use inside a caller's own ``jax.jit``/``jax.vmap``. A
    non-finite state is not reported (it propagates into x). ``status``: ``-> (x, status)``,
    each sample's status code (n,) for an adaptive program (BUDGET where it ran out of
    steps), None for a fixed-step one."""
    if isinstance(program, AdaptiveProgram):
        whole = _whole_adaptive(program, ctx, program.step)
        if status:
            return lambda x_init, key: (lambda out: (out[0], out[1].status))(whole(x_init, key))
        return lambda x_init, key: whole(x_init, key)[0]
    whole = _whole_fixed(program, ctx, program.step, _PURE)
    if status:
        return lambda x_init, key: (whole(x_init, key)[1], None)
    return lambda x_init, key: whole(x_init, key)[1]


def _earliest(be: Backend, program: AdaptiveProgram, state, mask) -> float:
    """The time of the sample of the host ``mask`` least far along the direction of travel: where
    the first failing sample stopped, or the unfinished sample furthest behind (read on a
    failure only)."""
    t = program.direction * be.to_numpy(program.time_of(state))
    return program.direction * float(t[mask].min())


def run(program, x_init, ctx: Context, key, *, name: str, progress=False, trajectory=None,
        return_info: bool = False, model=None):
    """Run ``program`` from ``x_init`` and return the samples (or ``(x, SampleInfo)``).

    Raises :class:`NonFiniteError` naming the first step (and a real time) at which a NaN or
    inf appeared, and for adaptive programs :class:`BudgetExhaustedError` when samples ran out
    of steps — unless ``return_info``, which returns them with their ``status`` in
    ``info.stats``. ``trajectory`` (fixed-step programs only): an int k (every k steps) or a
    sequence of times (the nearest grid points); the states come back in ``info.trajectory``.
    ``model``: the :class:`~scorecore.run_cache.ParamModel` the program calls, if any; its
    parameters become an argument of the compiled run.
    """
    be, xp = ctx.backend, ctx.xp
    step = be.jit(program.step) if be.eager else program.step
    if isinstance(program, AdaptiveProgram):
        if trajectory is not None:
            raise ValueError(f"{name}: trajectories are recorded for fixed-step samplers only")
        x, outcome = _compiled(program, be, _whole_adaptive(program, ctx, step), key, model)(x_init)
        info = judge(program, ctx, name, outcome, be.to_host(outcome.status, outcome.steps, outcome.nfe,
                                                             outcome.finite), return_info=return_info)
        return (x, info) if return_info else x
    record = [] if trajectory is None else _trajectory_steps(program.n_steps, trajectory, program.times)
    x, bad, frames, stats = _run_fixed(program, x_init, ctx, key, step, name if (progress and be.eager) else None,
                                       record, model)
    if bad >= 0:
        raise NonFiniteError(name, bad, program.times[bad + 1])
    info = SampleInfo(name, program.nfe, program.n_steps, dict(stats))
    if record:
        info.trajectory = xp.stack([frames[k] for k in record])
        info.trajectory_times = [program.times[k] for k in record]
    # The final map (Tweedie's step, Heun's last Euler step) can fail too.
    if not bool(xp.all(xp.isfinite(x))):
        raise NonFiniteError(name, program.n_steps, program.times[-1], ", in the final map")
    return (x, info) if (return_info or info.trajectory is not None) else x


__all__ = ["Outcome", "adaptive_run", "judge", "pure", "run"]
