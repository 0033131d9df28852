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
        """A 0-D time broadcast to shape (n,), the time argument score models receive."""
        return t * self.xp.ones((self.shape[0],), dtype=self.dtype, device=self.backend.device)


@dataclass
class Program:
    """A sampler bound to one run.

    ``step(k, state, key)`` must be pure and traceable: no Python branching on array
    values, no host transfers. ``sample_of(state)`` is what is checked for finiteness.
    """

    n_steps: int
    nfe: int
    init: Callable[[Any], Any]
    step: Callable[[Any, Any, Any], Any]
    finish: Callable[[Any], Any]
    time_of_step: Callable[[int], float]
    sample_of: Callable[[Any], Any] = field(default=lambda state: state)


class Sampler:
    """Base of the samplers: a name and ``program(model, sde, ctx, eps)``."""

    name = "sampler"

    def program(self, model, sde, ctx: Context, eps: float) -> Program:
        raise NotImplementedError


@dataclass
class SampleInfo:
    """What a run spent: ``nfe`` score evaluations in ``n_steps`` steps of ``sampler``."""

    sampler: str
    nfe: int
    n_steps: int


def run(program: Program, x_init, ctx: Context, key, *, sampler_name: str, progress=False):
    """Run ``program`` from ``x_init`` and return the samples.

    Raises :class:`NonFiniteError` naming the first step (and its time) at which a
    NaN or inf appeared in the state.
    """
    be, xp = ctx.backend, ctx.xp
    # Eager backends may compile the step (torch.compile where asked); non-eager ones
    # (JAX) compile the whole run below, the loop included.
    step = be.jit(program.step) if be.eager else program.step

    def body(k, carry):
        state, bad = carry
        state = step(k, state, be.fold_in(key, k))
        finite = xp.all(xp.isfinite(program.sample_of(state)))
        # Keep the first bad step without branching on a traced value; the cast keeps
        # the carry's dtype when a traced k is int64 (JAX with x64).
        newly = xp.astype(xp.logical_and(bad < 0, xp.logical_not(finite)), bad.dtype)
        return state, xp.astype(bad + (k - bad) * newly, bad.dtype)

    def whole(x0):
        bad0 = xp.asarray(-1, dtype=xp.int32, device=be.device)
        desc = sampler_name if (progress and be.eager) else None
        state, bad = be.fori_loop(0, program.n_steps, body, (program.init(x0), bad0), progress=desc)
        return program.finish(state), bad

    x, bad = (whole if be.eager else be.jit(whole))(x_init)
    bad = int(bad)
    if bad >= 0:
        raise NonFiniteError(sampler_name, bad, program.time_of_step(bad))
    if not bool(xp.all(xp.isfinite(x))):
        raise NonFiniteError(sampler_name, program.n_steps, program.time_of_step(program.n_steps - 1))
    return x
