"""What every sampler is made of, and the one driver that runs them all.

A sampler is a small object with options (step sizes, number of steps). Given a
model, an SDE and the run's context, it builds a :class:`Program`: an initial
state, a pure step ``state ← step(k, state, key_k)`` for k = 0..n_steps−1, a
final map from state to samples, and the exact number of score evaluations.
The driver loops the step through the backend's ``fori_loop`` (``jax.lax`` on
JAX, a Python loop with a progress bar elsewhere), draws step k's noise from
``fold_in(key, k)`` so that sample i's noise depends only on (seed, i, k), and
reports the first step at which a non-finite value appeared.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..backend import Backend


class NonFiniteError(FloatingPointError):
    """Non-finite values appeared while sampling; ``step`` and ``time`` say where first."""

    def __init__(self, sampler: str, step: int, time: float | None):
        self.sampler, self.step, self.time = sampler, step, time
        at = f" (t = {time:.6g})" if time is not None else ""
        super().__init__(
            f"{sampler}: non-finite values (NaN or inf) first appeared at step {step}{at}; "
            "check the score model at that time, or use more steps"
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

    def normal(self, key):
        """Standard normal noise of the samples' shape; row i depends on (key, offset + i)."""
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
        scalar work — and only the model sees the (n,) vector, whose per-sample
        coefficient arithmetic would cost O(n) per operation per step.
        """
        return lambda x, t: fn(x, self.batch_time(t))


@dataclass
class Program:
    """A sampler bound to one run.

    ``step(k, state, key)`` must be pure and traceable: no Python branching on array
    values, no host transfers. ``sample_of(state)`` is what is checked for finiteness.

    Fixed-step programs run ``n_steps`` steps and spend ``nfe`` score evaluations.
    Programs whose length depends on the values (adaptive solvers) set ``cond``: the
    driver then runs ``while cond(state): state = step(k, state, key_k)`` through the
    backend's ``while_loop`` (``n_steps`` is then the step budget, used for messages
    only), and reads the spent NFE from the final state with ``nfe_of``. Optional:
    ``info_of(state)`` returns extra per-sample statistics for :class:`SampleInfo`
    (a dict of arrays, e.g. accepted/rejected steps and a status); ``time_of_state(state)``
    a 0-D array, the time the state has reached (for NaN reports of while-loop programs);
    ``state_time(k)`` the time the state represents after k steps (k = 0..n_steps; for
    trajectories at chosen times).
    """

    n_steps: int
    nfe: int
    init: Callable[[Any], Any]
    step: Callable[[Any, Any, Any], Any]
    finish: Callable[[Any], Any]
    time_of_step: Callable[[int], float]
    sample_of: Callable[[Any], Any] = field(default=lambda state: state)
    cond: Callable[[Any], Any] | None = None
    nfe_of: Callable[[Any], Any] | None = None
    info_of: Callable[[Any], dict] | None = None
    time_of_state: Callable[[Any], Any] | None = None
    state_time: Callable[[int], float] | None = None
    #: The compiled whole-run functions of this program (filled by :func:`run` on non-eager backends).
    compiled: dict = field(default_factory=dict, repr=False, compare=False)


class Sampler:
    """Base of the samplers: a name and ``program(model, sde, ctx, eps)``."""

    name = "sampler"

    def program(self, model, sde, ctx: Context, eps: float) -> Program:
        raise NotImplementedError


@dataclass
class SampleInfo:
    """What a run spent: ``nfe`` score evaluations in ``n_steps`` steps of ``sampler``.

    ``nfe`` counts calls of the score model (each on the whole batch). Adaptive
    samplers add per-sample statistics in ``stats`` (e.g. ``accepted``, ``rejected``,
    ``status`` arrays of shape (n,)); ``trajectory`` is an array (F, n, ...) of states
    at ``trajectory_times`` (F host floats) when one was asked for.
    """

    sampler: str
    nfe: int
    n_steps: int
    stats: dict = field(default_factory=dict)
    trajectory: Any = None
    trajectory_times: list | None = None


def _check_finite(program: Program, sampler_name: str, bad, bad_time=None):
    """Raise NonFiniteError for the first bad step recorded in the loop's carry."""
    bad = int(bad)
    if bad >= 0:
        t = program.time_of_step(bad) if bad_time is None else float(bad_time)
        raise NonFiniteError(sampler_name, bad, t)


def _first_bad(xp, program, k, state, bad, bad_time=None):
    """Record step ``k`` as the first at which the state became non-finite (no branching)."""
    finite = xp.all(xp.isfinite(program.sample_of(state)))
    newly = xp.logical_and(bad < 0, xp.logical_not(finite))
    bad = bad + (k - bad) * xp.astype(newly, bad.dtype)
    if bad_time is not None:
        bad_time = xp.where(newly, program.time_of_state(state), bad_time)
    return bad, bad_time


def _trajectory_steps(program: Program, trajectory) -> list[int]:
    """Step counts after which to record the state: every k steps (an int), or the step
    boundaries whose time is nearest to each of the requested times (a sequence)."""
    n = program.n_steps
    if isinstance(trajectory, bool) or trajectory is None:
        raise TypeError("trajectory must be an int (every k steps) or a sequence of times")
    if isinstance(trajectory, int):
        if trajectory < 1:
            raise ValueError(f"trajectory (record every k steps) must be a positive int, got {trajectory}")
        return sorted(set(range(0, n + 1, trajectory)) | {n})
    try:
        times = [float(t) for t in trajectory]
    except (TypeError, ValueError):
        raise TypeError(f"trajectory must be an int or a sequence of times, got {trajectory!r}") from None
    if not times:
        raise ValueError("trajectory must name at least one time")
    grid = [program.state_time(k) for k in range(n + 1)] if program.state_time else None
    if grid is None:
        raise ValueError("this sampler cannot record a trajectory at chosen times")
    return [min(range(n + 1), key=lambda k: abs(grid[k] - t)) for t in times]


def _whole_run(program: Program, be: Backend, name: str, fn: Callable, key) -> Callable:
    """``x0 -> fn(x0, key)``, compiled on non-eager backends.

    The compiled function takes the key as an argument and is kept in
    ``program.compiled``, so running one program again (another seed) neither re-traces
    nor re-compiles: ``jax.jit`` caches by function identity, and ``fn`` is a new closure
    on every call of :func:`run`. A host (Python int) key — portable noise — cannot be a
    traced argument, so it is bound as a constant and that run is compiled on its own.
    """
    if be.eager:
        return functools.partial(fn, key=key)
    if isinstance(key, int):
        return be.jit(functools.partial(fn, key=key))
    if name not in program.compiled:
        program.compiled[name] = be.jit(fn)
    return functools.partial(program.compiled[name], key=key)


def run(program: Program, x_init, ctx: Context, key, *, sampler_name: str, progress=False,
        trajectory=None, return_info: bool = False):
    """Run ``program`` from ``x_init`` and return the samples.

    Raises :class:`NonFiniteError` naming the first step (and its time) at which a
    NaN or inf appeared in the state. With ``return_info`` returns ``(x, info)``: a
    :class:`SampleInfo` with the exact NFE (read from the final state for while-loop
    programs) and, if ``trajectory`` was given (an int k: every k steps; or a sequence
    of times: the nearest step boundaries), the recorded states. A trajectory is
    recorded by running the fixed-step loop in segments between the recorded steps, so
    no buffer is updated inside the loop and every segment stays traceable.

    Eager backends may compile the step (``torch.compile`` where asked); non-eager ones
    (JAX) compile the whole run, loop included, unless a trajectory splits it; the
    compiled run is kept in ``program.compiled`` and reused when ``program`` runs again.
    """
    be, xp = ctx.backend, ctx.xp
    desc = sampler_name if (progress and be.eager) else None
    step = be.jit(program.step) if be.eager else program.step

    def bad0():
        return xp.asarray(-1, dtype=xp.int32, device=be.device)

    if program.cond is not None:
        if trajectory is not None:
            raise ValueError(f"{sampler_name}: trajectories are recorded for fixed-step samplers only")
        t_of = program.time_of_state or (lambda state: xp.asarray(float("nan"), dtype=ctx.dtype, device=be.device))
        prog = program if program.time_of_state else Program(**{**program.__dict__, "time_of_state": t_of})

        def whole_while(x0, key):
            def wbody(carry):
                k, state, bad, bad_t = carry
                state = step(k, state, be.fold_in(key, k))
                bad, bad_t = _first_bad(xp, prog, k, state, bad, bad_t)
                return k + 1, state, bad, bad_t

            state0 = prog.init(x0)
            k0 = xp.asarray(0, dtype=xp.int32, device=be.device)
            _, state, bad, bad_t = be.while_loop(lambda c: prog.cond(c[1]), wbody, (k0, state0, bad0(), t_of(state0)))
            return state, bad, bad_t, prog.finish(state)

        state, bad, bad_t, x = _whole_run(program, be, "while", whole_while, key)(x_init)
        _check_finite(prog, sampler_name, bad, bad_t)
        if not bool(xp.all(xp.isfinite(x))):
            raise NonFiniteError(sampler_name, program.n_steps, float(t_of(state)))
        if not return_info:
            return x
        nfe = int(prog.nfe_of(state)) if prog.nfe_of else program.nfe
        stats = dict(prog.info_of(state)) if prog.info_of else {}
        if stats.get("warning"):
            warnings.warn(f"{sampler_name}: {stats['warning']}", RuntimeWarning, stacklevel=3)
        stats.pop("warning", None)
        return x, SampleInfo(sampler_name, nfe, program.n_steps, stats)

    def body_with(key):
        def body(k, carry):
            state, bad = carry
            state = step(k, state, be.fold_in(key, k))
            bad, _ = _first_bad(xp, program, k, state, bad)
            # The cast keeps the carry's dtype when a traced k is int64 (JAX with x64).
            return state, xp.astype(bad, xp.int32)

        return body

    record = _trajectory_steps(program, trajectory) if trajectory is not None else []
    frames = {}
    if record:
        carry, done = (program.init(x_init), bad0()), 0
        for stop in sorted(set(record)) + [program.n_steps]:
            if stop > done:
                carry = be.fori_loop(done, stop, body_with(key), carry, progress=desc)
                done = stop
            frames[stop] = program.sample_of(carry[0])
        state, bad = carry
    else:
        def whole(x0, key):
            state, bad = be.fori_loop(0, program.n_steps, body_with(key), (program.init(x0), bad0()), progress=desc)
            # The last map is compiled with the loop (Heun's final Euler step is a score call).
            return state, bad, program.finish(state)

        state, bad, x = _whole_run(program, be, "fixed", whole, key)(x_init)
    if record:
        x = program.finish(state)
    _check_finite(program, sampler_name, bad)
    if not bool(xp.all(xp.isfinite(x))):
        raise NonFiniteError(sampler_name, program.n_steps, program.time_of_step(program.n_steps - 1))
    if not return_info:
        return x
    nfe = int(program.nfe_of(state)) if program.nfe_of else program.nfe
    info = SampleInfo(sampler_name, nfe, program.n_steps, program.info_of(state) if program.info_of else {})
    if record:
        info.trajectory = xp.stack([frames[k] for k in record])
        st = program.state_time
        info.trajectory_times = [st(k) if st else None for k in record]
    return x, info
