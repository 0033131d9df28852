"""The two program contracts every sampler builds (run by :mod:`.driver`).

A sampler is a frozen dataclass of options. Given a model, an SDE and the run's
:class:`Context` it builds one of two programs:

* :class:`FixedProgram` — N steps over a host time grid t_0 > … > t_N (``times``; the state
  after k steps represents time t_k): ``state ← step(k, state, key_k)``, k = 0 … N − 1, with
  ``key_k = fold_in(key, k)``, then ``x = finish(state, key_finish)``. Its NFE is known before
  the run. Reports of a non-finite state, trajectories and ``Conditioned`` read the grid.
* :class:`AdaptiveProgram` — per-sample step sizes: ``while any(status == RUNNING) and k <
  max_steps: state ← step(k, state, key_k)``. Every sample carries a status code (``RUNNING``,
  ``CONVERGED``, ``BUDGET``, ``NONFINITE``, ``STEP_COLLAPSED``: :mod:`.status`), on which the
  driver stops the loop and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import validation
from .context import Context


def _identity(state):
    return state


def _finish_identity(state, key):
    return state


@dataclass(frozen=True, eq=False)
class FixedProgram:
    """N = len(times) − 1 steps ``state ← step(k, state, key_k)``; ``times[k]`` is the time the
    state represents after k steps (host floats). ``sample_of(state)`` is the sample the state
    holds (checked for finiteness, recorded in trajectories); ``finish(state, key)`` the final map;
    ``stats_of(state)`` what the run reports in :class:`SampleInfo` ``stats`` (a dict of arrays,
    read from the state after the last step: an SMC sampler's effective sample sizes)."""

    times: tuple[float, ...]
    nfe: int
    step: Callable[[Any, Any, Any], Any]
    init: Callable[[Any], Any] = _identity
    finish: Callable[[Any, Any], Any] = _finish_identity
    sample_of: Callable[[Any], Any] = _identity
    #: The first ``unrolled`` steps are called with a Python int k even inside a compiled run
    #: (unrolled before the loop), so their structure may differ from the others' (PNDM's
    #: Runge–Kutta warm-up makes four evaluations where the later steps make one).
    unrolled: int = 0
    stats_of: Callable[[Any], dict] = lambda state: {}
    compiled: dict = field(default_factory=dict, repr=False)

    @property
    def n_steps(self) -> int:
        return len(self.times) - 1


@dataclass(frozen=True, eq=False)
class AdaptiveProgram:
    """Per-sample adaptive steps until no sample is ``RUNNING`` (or ``max_steps`` iterations).

    ``status_of(state)``, ``time_of(state)`` and ``tries_of(state)`` give (n,) arrays: each
    sample's status code, the time it reached and its tries so far (accepted + rejected: one per
    iteration while it runs, so a failure is reported at its iteration without the loop
    tracking it); ``nfe_of(state)`` the batch calls of the model so far; ``stats_of(state)``
    more per-sample statistics for :class:`SampleInfo` (a dict of (n,) arrays)."""

    max_steps: int
    step: Callable[[Any, Any, Any], Any]
    init: Callable[[Any], Any]
    status_of: Callable[[Any], Any]
    time_of: Callable[[Any], Any]
    tries_of: Callable[[Any], Any]
    nfe_of: Callable[[Any], Any]
    finish: Callable[[Any, Any], Any] = _finish_identity
    sample_of: Callable[[Any], Any] = _identity
    finish_nfe: int = 0
    #: −1 when the solve runs towards smaller t (sampling from T to eps), +1 towards larger.
    direction: float = -1.0
    stats_of: Callable[[Any], dict] = lambda state: {}
    compiled: dict = field(default_factory=dict, repr=False)


class Sampler(validation.Checked):
    """Base of the samplers: ``program(model, sde, ctx, eps)`` returns a Fixed- or AdaptiveProgram;
    the options declared with :func:`~scorecore.validation.option` are checked on construction."""

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


__all__ = ["AdaptiveProgram", "Context", "FixedProgram", "SampleInfo", "Sampler"]
