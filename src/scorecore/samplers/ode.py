"""Probability-flow ODE solvers: Euler, Heun, RK4, and adaptive Dormand–Prince 5(4).

The probability-flow ODE of Song et al. (2021, eq. 13),

    dx/dt = f(x, t) − ½ g(t)² ∇ₓ log p_t(x),

has the same marginals p_t as the forward SDE, so integrating it from x(T) ~ p_T
down to t = eps gives samples of p_eps without noise. The solvers below integrate
any ``dy/dt = F(y, t)`` on arrays y of shape (n, ...) with times t of shape (n,)
(:func:`integrate`), so the log-likelihood can integrate [x, Δlog p] with them too.

* Fixed steps on the grid t_k = linspace(t0, t1, N+1):
  Euler (order 1, N evaluations), Heun (order 2, 2N − 1 evaluations: the last step is
  an Euler step, as in Karras et al. 2022, Alg. 1 — it avoids an evaluation at the
  smallest time, where learned scores are least accurate, and one O(h²) local error
  keeps the global order 2), classical RK4 (order 4, 4N evaluations).
* Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner,
  *Solving ODEs I*, II.4) with a step size **per sample**: each sample's step h_i is
  accepted when its error estimate ‖e_i‖ = RMS_j(e_ij / (atol + rtol max(|y_ij|,
  |ŷ_ij|))) ≤ 1 and rescaled by min(10, max(0.2, 0.9 ‖e_i‖^{−1/5})) (≤ 1 after a
  rejection). First-same-as-last: the 7th stage of an accepted step is the next
  step's first, so a step costs 6 evaluations and a run 1 + 6·(iterations).
  Fixed shapes and masks only (no boolean indexing): finished samples take steps of
  size 0 while the others go on, so the loop runs under ``jax.lax.while_loop``.
  Every sample ends with a status (:data:`~.base.STATUS_MESSAGES`): CONVERGED, BUDGET
  (``max_steps`` tries spent), NONFINITE (its derivative F(y, t) is NaN/inf at every step size
  down to the time resolution) or STEP_COLLAPSED (the error test fails down to it); the
  driver reports the last two with the step and time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .. import validation
from .._arrays import namespace, per_sample
from ..backend import get_backend
from .adaptive import Controller, advance, decide, rms, start_status, time_floor
from .base import AdaptiveProgram, Context, FixedProgram, Sampler, run
from .status import RUNNING


def _grid(t0: float, t1: float, n: int) -> list[float]:
    """linspace(t0, t1, n+1) on the host, with exact end points."""
    return [t0 + (t1 - t0) * k / n for k in range(n)] + [t1]


# -- fixed-step methods: y_{k+1} = y_k + h Φ(y_k, t_k, h) ------------------------------

def euler_step(F, y, t, h):
    """y + h F(y, t)."""
    return y + h * F(y, t)


def heun_step(F, y, t, h):
    """Heun (explicit trapezoid): k₁ = F(y, t), k₂ = F(y + h k₁, t + h), y + (h/2)(k₁ + k₂)."""
    k1 = F(y, t)
    k2 = F(y + h * k1, t + h)
    return y + (0.5 * h) * (k1 + k2)


def rk4_step(F, y, t, h):
    """Classical Runge–Kutta: y + (h/6)(k₁ + 2k₂ + 2k₃ + k₄)."""
    k1 = F(y, t)
    k2 = F(y + (0.5 * h) * k1, t + 0.5 * h)
    k3 = F(y + (0.5 * h) * k2, t + 0.5 * h)
    k4 = F(y + h * k3, t + h)
    return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


#: name -> (step, evaluations per step)
FIXED_METHODS = {"euler": (euler_step, 1), "heun": (heun_step, 2), "rk4": (rk4_step, 4)}
METHODS = (*FIXED_METHODS, "dopri5")


def fixed_nfe(method: str, steps: int) -> int:
    """Evaluations of ``steps`` steps of ``method`` (Heun: 2N − 1, its last step being Euler)."""
    return 2 * steps - 1 if method == "heun" else FIXED_METHODS[method][1] * steps


def _fixed_program(F, ctx: Context, t0: float, t1: float, method: str, steps: int) -> FixedProgram:
    step_fn = FIXED_METHODS[method][0]
    grid = _grid(t0, t1, steps)
    t_arr = ctx.times(grid)
    # Heun runs N − 1 Heun steps in the loop and its last step (Euler) in finish.
    n_loop = steps - 1 if method == "heun" else steps

    def step(k, y, key):
        return step_fn(F, y, t_arr[k], t_arr[k + 1] - t_arr[k])

    def finish(y, key):
        if method != "heun":
            return y
        return euler_step(F, y, t_arr[steps - 1], t_arr[steps] - t_arr[steps - 1])

    return FixedProgram(tuple(grid[:n_loop + 1]), fixed_nfe(method, steps), step, finish=finish)


# -- adaptive Dormand–Prince 5(4) -------------------------------------------------------

_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
#: 5th-order weights minus the embedded 4th-order ones (b − b̂), for the error estimate
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

#: Hairer et al.'s controller for a 5(4) pair: h ← h · clip(0.9 E^(−1/5), 0.2, 10).
DOPRI_CONTROLLER = Controller(safety=0.9, exponent=0.2, min_factor=0.2, max_factor=10.0)


class DopriState(NamedTuple):
    """The adaptive solver's carry; every field has a fixed shape ((n, ...) or (n,) or 0-D)."""

    y: object          # (n, ...) current solution
    t: object          # (n,) current time of each sample
    h: object          # (n,) next step size magnitude |h| of each sample
    f: object          # (n, ...) F(y, t) (first-same-as-last)
    accepted: object   # (n,) int32
    rejected: object   # (n,) int32
    status: object     # (n,) int32, see base.STATUS_MESSAGES
    nfe: object        # 0-D int32: evaluations of F (batch calls)


def dopri5_init(F, y0, t0: float, t1: float, *, rtol: float, atol: float, first_step=None) -> DopriState:
    """The initial state: F(y0, t0) (one evaluation) and a first step per sample.

    Default first step (Hairer et al., II.4, without its extra evaluation):
    h₀ = 0.01 ‖y0‖/‖F(y0)‖ in the tolerance-scaled RMS norm, within [1e-6, 1]·|t1 − t0|.
    """
    xp = namespace(y0)
    n = y0.shape[0]
    t = t0 * xp.ones((n,), dtype=y0.dtype, device=_device(y0))
    f0 = F(y0, t)
    span = abs(t1 - t0)
    if first_step is None:
        scale = atol + rtol * xp.abs(y0)
        d0, d1 = rms(xp, y0 / scale), rms(xp, f0 / scale)
        h = 0.01 * d0 / xp.maximum(d1, xp.full_like(d1, 1e-10))
        h = xp.clip(xp.where(xp.isfinite(h), h, xp.full_like(h, 1e-6 * span)), 1e-6 * span, span)
    else:
        h = float(first_step) * xp.ones_like(t)
    zeros = xp.zeros((n,), dtype=xp.int32, device=_device(y0))
    return DopriState(y0, t, h, f0, zeros, zeros, start_status(f0), xp.asarray(1, dtype=xp.int32, device=_device(y0)))


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)


def dopri5_step(F, s: DopriState, t1: float, *, direction: float, rtol: float, atol: float, span: float,
                controller: Controller = DOPRI_CONTROLLER) -> DopriState:
    """One attempted Dormand–Prince step for every running sample (6 evaluations).

    Samples that are not running take a step of size 0 and keep their state; a rejected try
    whose next step would not move t ends its sample (:func:`.adaptive.advance`)."""
    xp = namespace(s.y)
    running = s.status == RUNNING
    remaining = xp.abs(t1 - s.t)
    last = xp.logical_and(running, s.h >= remaining)
    h_mag = xp.where(running, xp.minimum(s.h, remaining), xp.zeros_like(s.h))
    h = direction * h_mag
    hx = per_sample(h, s.y)
    ks = [s.f]
    for i in range(1, 7):
        yi = s.y
        for j, a in enumerate(_A[i]):
            if a != 0.0:
                yi = yi + (a * hx) * ks[j]
        if i < 6:
            ks.append(F(yi, s.t + _C[i] * h))
    y_new = yi  # row 7 of A is the 5th-order solution
    t_new = xp.where(last, xp.full_like(s.t, t1), s.t + h)
    f_new = F(y_new, t_new)  # first-same-as-last: the next step's k₁
    ks.append(f_new)
    err = xp.zeros_like(s.y)
    for e, k in zip(_E, ks):
        if e != 0.0:
            err = err + e * k
    scale = atol + rtol * xp.maximum(xp.abs(s.y), xp.abs(y_new))
    err_norm = rms(xp, hx * err / scale)
    # A non-finite F(y_new) makes the error norm non-finite too: the try is rejected.
    err_norm = xp.where(xp.all(xp.reshape(xp.isfinite(f_new), (f_new.shape[0], -1)), axis=1), err_norm,
                        xp.full_like(err_norm, float("nan")))
    accept, reject, finite = decide(running, err_norm)
    # A step cut to land on t1 does not shrink the size that the error control chose.
    h_next = xp.where(running, xp.where(xp.logical_and(last, accept), s.h, h_mag * controller.factor(err_norm)), s.h)
    acc_x = per_sample(accept, s.y)
    t = xp.where(accept, t_new, s.t)
    status = advance(s.status, accept=accept, reject=reject, last=last, finite=finite, h_next=h_next,
                     floor=time_floor(s.t, span))
    return DopriState(xp.where(acc_x, y_new, s.y), t, h_next, xp.where(acc_x, f_new, s.f),
                      s.accepted + xp.astype(accept, xp.int32), s.rejected + xp.astype(reject, xp.int32),
                      status, s.nfe + 6)


def _dopri5_program(F, t0: float, t1: float, *, rtol: float, atol: float, max_steps: int,
                    first_step=None) -> AdaptiveProgram:
    direction = 1.0 if t1 > t0 else -1.0
    return AdaptiveProgram(
        max_steps=max_steps,
        init=lambda y0: dopri5_init(F, y0, t0, t1, rtol=rtol, atol=atol, first_step=first_step),
        step=lambda k, s, key: dopri5_step(F, s, t1, direction=direction, rtol=rtol, atol=atol, span=abs(t1 - t0)),
        status_of=lambda s: s.status, time_of=lambda s: s.t, nfe_of=lambda s: s.nfe,
        finish=lambda s, key: s.y, sample_of=lambda s: s.y, direction=direction,
        stats_of=lambda s: {"accepted": s.accepted, "rejected": s.rejected},
    )


def _check_options(method, steps, rtol, atol, max_steps):
    validation.choice("method", method, METHODS)
    if method == "dopri5":
        validation.positive_float("rtol", rtol)
        validation.positive_float("atol", atol)
        validation.steps("max_steps", max_steps)
    else:
        validation.steps("steps", steps)


def ode_program(F, ctx: Context, t0: float, t1: float, *, method: str = "dopri5", steps: int = 100,
                rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 10_000, first_step=None):
    """A program integrating dy/dt = F(y, t) from t0 to t1 with ``method``.

    F must take t 0-D (the fixed-step methods' step time) or (n,) (dopri5's per-sample
    times); wrap it in ``ctx.batched`` if it needs (n,) always."""
    _check_options(method, steps, rtol, atol, max_steps)
    if method == "dopri5":
        return _dopri5_program(F, float(t0), float(t1), rtol=float(rtol), atol=float(atol), max_steps=max_steps,
                               first_step=first_step)
    return _fixed_program(F, ctx, float(t0), float(t1), method, steps)


def integrate(F, y0, t0: float, t1: float, *, method: str = "dopri5", steps: int = 100, rtol: float = 1e-5,
              atol: float = 1e-5, max_steps: int = 10_000, first_step=None, backend=None, progress=False,
              name: str | None = None):
    """Solve dy/dt = F(y, t) from t0 to t1 (either direction) for every row of y0.

    ``F(y, t)`` takes y of shape (n, ...) and t of shape (n,) (one time per sample: the
    adaptive solver's samples are at different times). ``method``: ``"euler"``,
    ``"heun"``, ``"rk4"`` (``steps`` uniform steps) or ``"dopri5"`` (adaptive, ``rtol``,
    ``atol``, ``max_steps`` per sample). Returns ``(y1, info)``, a
    :class:`~scorecore.samplers.SampleInfo` with the exact evaluations ``info.nfe`` and,
    for dopri5, ``info.stats`` holding per-sample ``accepted``, ``rejected``, ``status``
    (samples out of budget come back with status BUDGET; non-finite ones raise
    :class:`~.status.NonFiniteError`, which names the solve ``name``, by default ``ode-<method>``).
    """
    be = get_backend(backend)
    _check_options(method, steps, rtol, atol, max_steps)
    ctx = Context(be, y0.dtype, tuple(y0.shape))
    # The program's fixed-step methods pass the 0-D step time; F is promised (n,).
    program = ode_program(ctx.batched(F), ctx, t0, t1, method=method, steps=steps, rtol=rtol, atol=atol,
                          max_steps=max_steps, first_step=first_step)
    return run(program, y0, ctx, be.key(0), name=name or f"ode-{method}", progress=progress, return_info=True)


@dataclass(frozen=True)
class ProbabilityFlowODE(Sampler):
    """Samples by integrating the probability-flow ODE dx/dt = f(x, t) − ½ g(t)² s_θ(x, t)
    from T down to eps with ``method`` (``"euler"``, ``"heun"``, ``"rk4"``: ``n_steps`` uniform
    steps; ``"dopri5"``: adaptive with ``rtol``, ``atol`` and a budget of ``max_steps``
    tries per sample). Deterministic given x(T)."""

    n_steps: int = 100
    method: str = "rk4"
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = 10_000
    first_step: float | None = None

    def __post_init__(self):
        _check_options(self.method, self.n_steps, self.rtol, self.atol, self.max_steps)
        validation.optional(validation.positive_float, "first_step", self.first_step)

    @property
    def name(self) -> str:
        return self.method

    def program(self, model, sde, ctx: Context, eps: float):
        score = ctx.batched(model)

        def F(x, t):
            return sde.reverse_drift(x, t, score(x, t), probability_flow=True)

        return ode_program(F, ctx, sde.T, eps, method=self.method, steps=self.n_steps, rtol=self.rtol,
                           atol=self.atol, max_steps=self.max_steps, first_step=self.first_step)


__all__ = [
    "DOPRI_CONTROLLER", "DopriState", "FIXED_METHODS", "METHODS", "ProbabilityFlowODE", "dopri5_init", "dopri5_step",
    "euler_step", "fixed_nfe", "heun_step", "integrate", "ode_program", "rk4_step",
]
