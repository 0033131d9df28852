"""What a sampler's program knows of its run: backend, dtype, sample shape and first row."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .. import streams
from ..backend import Backend


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
        scalar work — and only the model sees the (n,) vector. A ``fn`` with ``rows(idx)`` (its
        own restriction to the rows idx, see :func:`~.compaction.compacted_step`) keeps it, batched
        for those rows; so does one with ``stops(y)`` (its event, :func:`~.ode.ode_program`)."""
        def call(x, t):
            return fn(x, self.batch_time(t))

        if hasattr(fn, "rows"):
            call.rows = lambda idx: replace(self, shape=(idx.shape[0],) + self.shape[1:]).batched(fn.rows(idx))
        if hasattr(fn, "stops"):
            call.stops = fn.stops
        return call


__all__ = ["Context"]
