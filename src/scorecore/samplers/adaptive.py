"""The adaptive-step toolkit shared by the embedded Runge–Kutta pairs and the adaptive
reverse-SDE solver.

Three small pieces, as diffrax separates them: the step-size :class:`Controller` (integral
or PI, with its per-sample memory), the per-sample status bookkeeping (:func:`advance`), and
the :class:`BrownianStack` that keeps the Brownian increments of rejected tries. Everything
works on per-sample arrays of fixed shape, with masks instead of branches, so a solve runs
under ``jax.lax.while_loop``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .. import validation
from ..validation import option
from .._arrays import namespace, per_sample, sum_event
from .status import CONVERGED, NONFINITE, RUNNING, STEP_COLLAPSED


def rms(xp, v):
    """‖v‖ = √(mean_j v_j²) per sample, shape (n,)."""
    return xp.sqrt(sum_event(xp, v * v) / math.prod(v.shape[1:]))


@dataclass(frozen=True)
class Controller(validation.Checked):
    """The step-size controller for a per-sample error norm E (accept when E ≤ 1).

    Integral control (``prev_exponent`` = 0, the default): h ← h · clip(safety · E^(−exponent),
    min_factor, max_factor). PI control (Gustafsson 1991; Hairer & Wanner II, IV.2, eq. 2.43)
    adds the previous accepted step's error E_prev: after an accepted try

        h ← h · clip(safety · E^(−exponent) · E_prev^(prev_exponent), min_factor, max_factor),

    not above 1 when the try before was rejected (``hold_after_reject``, as Hairer's DOPRI5),
    and after a rejected try the integral factor (< 1 since E > 1). ``predictive`` = γ > 0 adds
    Gustafsson's (1994) predictive factor, as Hairer & Wanner's RADAU5 (II, IV.8, eq. 8.21): after
    an accepted step h_n that follows an accepted step h_{n−1}, the factor is at most

        safety · (h_n / h_{n−1}) · (E_prev / E)^γ · E^(−γ),

    which extrapolates the error's trend and so cuts a step before its error grows past the
    tolerance instead of after. With k = q + 1 (q the embedded order), exponent = 1/k is the
    classical I controller, (0.7/k, 0.4/k) Gustafsson's PI (:func:`pi_controller`) and
    (0.9/k, 0.4/k, γ = 1/k) the predictive PI (:func:`predictive_controller`). A non-finite E
    shrinks h by ``nonfinite_factor``."""

    safety: float = option(0.9, validation.positive_float)
    exponent: float = option(0.2, validation.positive_float)
    min_factor: float = option(0.2, validation.nonneg_float)
    max_factor: float = option(10.0, validation.positive_float, finite=False)
    nonfinite_factor: float = option(0.2, validation.positive_float)
    prev_exponent: float = option(0.0, validation.nonneg_float)
    hold_after_reject: bool = option(False, validation.boolean)
    predictive: float = option(0.0, validation.nonneg_float)

    def _scaled(self, xp, err):
        """(E clipped below at 10⁻¹⁰, safety · E^(−exponent)); a NaN or inf E gives NaN or 0, in
        rows that the caller's last mask replaces."""
        safe = xp.clip(err, 1e-10, None)
        return safe, self.safety * safe ** (-self.exponent)

    def factor(self, err):
        """The integral step-size factor for the error norms ``err`` (n,); NaN never reaches h."""
        xp = namespace(err)
        f = xp.clip(self._scaled(xp, err)[1], self.min_factor, self.max_factor)
        return xp.where(xp.isfinite(err), f, self.nonfinite_factor)

    def propose(self, err, accept, memory, h=None, finite=None):
        """(factor (n,), new memory) after tries of sizes ``h`` (n,) with error norms ``err`` and
        decisions ``accept``; ``memory`` = (E_prev, last try rejected, h_prev), see :meth:`start`;
        ``finite``: isfinite(err), where the caller has it (:func:`decide`)."""
        xp = namespace(err)
        err_prev, was_rejected, h_prev = memory
        # Python-float bounds and fills: an eager backend pays per array op, and a step makes a dozen here.
        safe, scaled = self._scaled(xp, err)
        f = xp.clip(scaled, self.min_factor, self.max_factor)
        if self.prev_exponent:
            f = xp.where(accept, xp.clip(scaled * err_prev ** self.prev_exponent, self.min_factor, self.max_factor), f)
        if self.predictive:
            known = xp.logical_and(accept, h_prev > 0)
            # safety (h/h_prev) (E_prev/E)^γ E^(−γ), as safety (h/h_prev) E_prev^γ E^(−2γ)
            gus = (self.safety * h / xp.where(known, h_prev, 1.0)) * err_prev ** self.predictive * safe ** (
                -2.0 * self.predictive)
            f = xp.where(known, xp.minimum(f, xp.clip(gus, self.min_factor, self.max_factor)), f)
        if self.hold_after_reject:
            f = xp.where(xp.logical_and(accept, was_rejected), xp.clip(f, None, 1.0), f)
        f = xp.where(xp.isfinite(err) if finite is None else finite, f, self.nonfinite_factor)
        # Hairer keeps E_prev ≥ 10⁻⁴ so that one tiny error does not blow the next step up.
        kept = xp.where(accept, xp.clip(err, 1e-4, None), err_prev)
        h_kept = h_prev if h is None else xp.where(accept, h, h_prev)
        return f, (kept, xp.logical_not(accept), h_kept)

    @staticmethod
    def start(like):
        """The memory before the first try: E_prev = 1 (neutral), nothing rejected, no h_prev."""
        xp = namespace(like)
        return xp.ones_like(like), xp.zeros(like.shape, dtype=xp.bool, device=_device(like)), xp.zeros_like(like)


def integral_controller(embedded_order: int) -> Controller:
    """h ← h · clip(0.9 E^(−1/(q+1)), 0.2, 10): Hairer et al.'s for a pair of embedded order q."""
    return Controller(exponent=1.0 / (embedded_order + 1))


def pi_controller(embedded_order: int) -> Controller:
    """Gustafsson's PI controller (Hairer & Wanner II, IV.2): exponents (0.7/k, 0.4/k), k = q + 1,
    no growth right after a rejection."""
    k = embedded_order + 1
    return Controller(exponent=0.7 / k, prev_exponent=0.4 / k, hold_after_reject=True)


def predictive_controller(embedded_order: int) -> Controller:
    """PI exponents (0.9/k, 0.4/k) capped by Gustafsson's predictive factor with γ = 1/k, k = q + 1.
    Tuned on the 8-ring's probability flow at rtol = atol = 1e-5 with Hairer's first step
    (``benchmarks/results/adaptive_ode.md``): the per-sample solve at SciPy RK45's batch NFE."""
    k = embedded_order + 1
    return Controller(exponent=0.9 / k, prev_exponent=0.4 / k, predictive=1.0 / k)


def quantize_step(h, quantum: float):
    """h rounded down to a multiple of ``quantum``; a step under one quantum is kept as it is.
    Times that move by multiples of a power of two are exact, and a few-ulp difference in the
    error estimate (libm's last bit differs between NumPy, torch and XLA) no longer moves h:
    backends then take the same steps."""
    xp = namespace(h)
    q = xp.floor(h / quantum) * quantum
    return xp.where(q > 0, q, h)


def time_floor(t, span: float):
    """The smallest step that still moves time t: a few ulps of |t| (and 10⁻¹² of the span).
    A try below it would be accepted with no progress and the solve would never end."""
    xp = namespace(t)
    return xp.clip(8.0 * xp.finfo(t.dtype).eps * xp.abs(t), 1e-12 * span, None)


def advance(status, *, accept, reject, last, finite, h_next, floor):
    """Per-sample status after one try: ``CONVERGED`` when the last step is accepted; a rejected
    try whose next step falls below ``floor`` ends the sample — ``NONFINITE`` when the try was
    non-finite (no step size fixes the derivative), else ``STEP_COLLAPSED``."""
    xp = namespace(status)
    status = xp.where(xp.logical_and(accept, last), CONVERGED, status)
    stuck = xp.logical_and(reject, h_next < floor)
    cause = xp.where(finite, xp.full_like(status, STEP_COLLAPSED), xp.full_like(status, NONFINITE))
    return xp.where(stuck, cause, status)


def decide(running, err):
    """(accept, reject, finite): accept a running sample's try when its error norm is ≤ 1."""
    xp = namespace(err)
    accept = xp.logical_and(running, err <= 1.0)  # NaN and inf compare false
    return accept, xp.logical_and(running, xp.logical_not(accept)), xp.isfinite(err)


def start_status(f0):
    """``RUNNING``, or ``NONFINITE`` for a sample whose first evaluation f0 is not finite."""
    xp = namespace(f0)
    n = f0.shape[0]
    ok = xp.all(xp.reshape(xp.isfinite(f0), (n, -1)), axis=1)
    zeros = xp.zeros((n,), dtype=xp.int32, device=_device(f0))
    return xp.where(ok, zeros + RUNNING, zeros + NONFINITE)


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)


class Stack(NamedTuple):
    """Each sample's stack of future Brownian intervals: sizes (n, D), increments (n, D, ...),
    depth (n,) and the pushes merged beyond the depth (n,)."""

    dt: object
    dw: object
    depth: object
    merges: object


@dataclass(frozen=True)
class BrownianStack:
    """Rejection sampling with memory (Rackauckas & Nie 2017): a rejected try's (h, ΔW) is pushed
    on a per-sample stack of future increments; the next, shorter try splits it with the Brownian
    bridge ΔW₁ = (h₁/h) ΔW + √(h₁ (h − h₁)/h) z, keeping (h − h₁, ΔW − ΔW₁) on the stack; tries
    consume the stack before drawing fresh noise. Every sample's path is then exactly Brownian
    whatever steps are tried. A push beyond ``depth`` entries merges with the top entry."""

    depth: int = 16

    def empty(self, xp, shape, dtype, device) -> Stack:
        n, D = shape[0], self.depth
        izeros = xp.zeros((n,), dtype=xp.int32, device=device)
        return Stack(xp.zeros((n, D), dtype=dtype, device=device),
                     xp.zeros((n, D) + tuple(shape[1:]), dtype=dtype, device=device), izeros, izeros)

    def _slot(self, xp, s: Stack, index):
        """(n, D) mask of slot ``index`` (n,) per sample; all false where index < 0."""
        slots = xp.reshape(xp.arange(self.depth, dtype=xp.int32, device=_device(s.depth)), (1, self.depth))
        return slots == xp.reshape(index, (-1, 1))

    @staticmethod
    def _event(mask, like):
        """(n, D) mask -> (n, D, 1, ...) to broadcast against the increments."""
        return namespace(mask).reshape(mask, tuple(mask.shape) + (1,) * (like.ndim - 2))

    def take(self, s: Stack, running, h, z_fresh, z_bridge):
        """(ΔW, h, stack) for tries of size h (n,) of the running samples: h is cut to the top
        interval when shorter, which is then split by the bridge or consumed whole."""
        xp = namespace(h)
        top = self._slot(xp, s, s.depth - 1)
        has = xp.logical_and(running, s.depth > 0)
        dt_top = xp.sum(xp.where(top, s.dt, xp.zeros_like(s.dt)), axis=1)
        dw_top = xp.sum(xp.where(self._event(top, s.dw), s.dw, xp.zeros_like(s.dw)), axis=1)
        h = xp.where(has, xp.minimum(h, dt_top), h)
        split = xp.logical_and(has, h < dt_top)
        frac = h / xp.where(has, dt_top, xp.ones_like(dt_top))
        spread = xp.sqrt(xp.maximum(h * (1.0 - frac), xp.zeros_like(h)))
        bridge = per_sample(frac, z_fresh) * dw_top + per_sample(spread, z_fresh) * z_bridge
        fresh = per_sample(xp.sqrt(h), z_fresh) * z_fresh
        dw = xp.where(per_sample(has, z_fresh), xp.where(per_sample(split, z_fresh), bridge, dw_top), fresh)
        rest = xp.logical_and(top, xp.reshape(split, (-1, 1)))
        dt = xp.where(rest, s.dt - xp.reshape(h, (-1, 1)), s.dt)
        dws = xp.where(self._event(rest, s.dw), s.dw - xp.expand_dims(dw, axis=1), s.dw)
        depth = s.depth - xp.astype(xp.logical_and(has, xp.logical_not(split)), xp.int32)
        return dw, h, Stack(dt, dws, depth, s.merges)

    def push(self, s: Stack, reject, h, dw) -> Stack:
        """The rejected tries' (h, ΔW) go back on the stack: the path keeps its increments."""
        xp = namespace(h)
        full = s.depth >= self.depth
        put = xp.logical_and(self._slot(xp, s, xp.where(full, s.depth - 1, s.depth)), xp.reshape(reject, (-1, 1)))
        merge = xp.reshape(full, (-1, 1))
        hh, dw1 = xp.reshape(h, (-1, 1)), xp.expand_dims(dw, axis=1)
        dt = xp.where(put, xp.where(merge, s.dt + hh, hh), s.dt)
        dws = xp.where(self._event(put, s.dw), xp.where(per_sample(full, s.dw), s.dw + dw1, dw1), s.dw)
        depth = s.depth + xp.astype(xp.logical_and(reject, xp.logical_not(full)), xp.int32)
        merges = s.merges + xp.astype(xp.logical_and(reject, full), xp.int32)
        return Stack(dt, dws, depth, merges)


__all__ = ["BrownianStack", "Controller", "Stack", "advance", "decide", "integral_controller", "pi_controller",
           "predictive_controller", "quantize_step", "rms",
           "start_status", "time_floor"]
