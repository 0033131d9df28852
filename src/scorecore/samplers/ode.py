"""Probability-flow ODE solvers: fixed-step Euler, Heun, RK4 and GBS8, and adaptive pairs.

The probability-flow ODE of Song et al. (2021, eq. 13),

    dx/dt = f(x, t) − ½ g(t)² ∇ₓ log p_t(x),

has the same marginals p_t as the forward SDE, so integrating it from x(T) ~ p_T
down to t = eps gives samples of p_eps without noise. The solvers below integrate
any ``dy/dt = F(y, t)`` on arrays y of shape (n, ...) with times t of shape (n,)
(:func:`integrate`), so the log-likelihood can integrate [x, Δlog p] with them too.

* Fixed steps on a host grid t_0 = t0, …, t_N = t1 (:func:`integrate`: uniform;
  :class:`ProbabilityFlowODE`: ρ-spaced in σ by default):
  Euler (order 1, N evaluations), Heun (order 2, 2N − 1 evaluations: the last step is
  an Euler step, as in Karras et al. 2022, Alg. 1 — it avoids an evaluation at the
  smallest time, where learned scores are least accurate, and one O(h²) local error
  keeps the global order 2), classical RK4 (order 4, 4N evaluations), and Gragg–Bulirsch–
  Stoer extrapolation GBS8 (order 8, 17N evaluations; :mod:`.extrapolation`) for
  reference solutions.
* Adaptive embedded pairs (:mod:`.tableaus`): Dormand–Prince 5(4) (Dormand & Prince 1980;
  Hairer, Nørsett & Wanner, *Solving ODEs I*, II.4), Tsitouras 5(4) and Bogacki–Shampine
  3(2), with a step size **per sample**: each sample's step h_i is accepted when its error
  estimate ‖e_i‖ = RMS_j(e_ij / (atol + rtol max(|y_ij|, |ŷ_ij|))) ≤ 1 and rescaled by the
  controller (default: min(10, max(0.2, 0.9 ‖e_i‖^{−1/(q+1)})), q the embedded order; or
  Gustafsson's PI or predictive controller, :mod:`.adaptive`). First-same-as-last: the last stage of an
  accepted step is the next step's first, so a step costs s − 1 evaluations (6 for the 5(4)
  pairs, 3 for Bogacki–Shampine) and a run 1 + (s − 1)·(iterations), plus 1 with Hairer's
  initial-step heuristic. Fixed shapes and masks only (no boolean indexing): finished samples
  take steps of size 0 while the others go on, so the loop runs under ``jax.lax.while_loop``.
  Every sample ends with a status (:data:`~.status.STATUS_MESSAGES`): CONVERGED, BUDGET
  (``max_steps`` tries spent), NONFINITE (its derivative F(y, t) is NaN/inf at every step size
  down to the time resolution) or STEP_COLLAPSED (the error test fails down to it); the
  driver reports the last two with the step and time. ``error_norm="batch"`` judges every
  sample by the batch's RMS error instead (one step size, SciPy's behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .. import validation
from ..validation import option
from .._arrays import namespace, per_sample
from ..backend import get_backend
from .adaptive import (Controller, advance, decide, integral_controller, pi_controller, predictive_controller, rms,
                       start_status, time_floor)
from .extrapolation import GBS8_NFE, gbs8_step
from .sigma_space import SCHEDULES, time_steps
from .tableaus import DOPRI5, TABLEAUS, Tableau, rk_stages
from .base import AdaptiveProgram, Context, FixedProgram, Sampler
from .compaction import compacted_step
from .driver import run
from .status import ESCAPED, RUNNING


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
FIXED_METHODS = {"euler": (euler_step, 1), "heun": (heun_step, 2), "rk4": (rk4_step, 4),
                 "gbs8": (gbs8_step, GBS8_NFE)}
METHODS = (*FIXED_METHODS, *TABLEAUS)


def fixed_nfe(method: str, steps: int) -> int:
    """Evaluations of ``steps`` steps of ``method`` (Heun: 2N − 1, its last step being Euler)."""
    return 2 * steps - 1 if method == "heun" else FIXED_METHODS[method][1] * steps


def _fixed_program(F, ctx: Context, t0: float, t1: float, method: str, steps: int, grid=None) -> FixedProgram:
    step_fn = FIXED_METHODS[method][0]
    grid = _grid(t0, t1, steps) if grid is None else list(grid)
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


# -- adaptive embedded Runge–Kutta pairs ------------------------------------------------

#: Hairer et al.'s controller for a 5(4) pair: h ← h · clip(0.9 E^(−1/5), 0.2, 10).
DOPRI_CONTROLLER = integral_controller(DOPRI5.embedded_order)

#: Named step-size controllers, built for the pair's embedded order q (:mod:`.adaptive`).
CONTROLLERS = {"integral": integral_controller, "pi": pi_controller, "predictive": predictive_controller}
INITIAL_STEPS = ("simple", "hairer")
ERROR_NORMS = ("sample", "batch")
#: The options of :func:`ode_program` that :class:`ProbabilityFlowODE` passes on as they are.
SOLVER_OPTIONS = ("method", "rtol", "atol", "max_steps", "first_step", "controller", "initial_step", "error_norm")


class DopriState(NamedTuple):
    """The adaptive solver's carry; every field has a fixed shape ((n, ...) or (n,) or 0-D)."""

    y: object          # (n, ...) current solution
    t: object          # (n,) current time of each sample
    h: object          # (n,) next step size magnitude |h| of each sample
    f: object          # (n, ...) F(y, t) (first-same-as-last)
    accepted: object   # (n,) int32
    rejected: object   # (n,) int32
    status: object     # (n,) int32, see status.STATUS_MESSAGES
    nfe: object        # 0-D int32: evaluations of F (batch calls)
    memory: tuple = ()  # the controller's (E_prev (n,), last try rejected (n,), h_prev (n,))


def _batch_rms(xp, norms, mask):
    """√(mean over the masked samples of norms²), broadcast to (n,): the RMS over all their
    elements (every sample has as many), the one error norm of a batch-norm solve."""
    w = xp.astype(mask, norms.dtype)
    sq = xp.where(mask, norms * norms, xp.zeros_like(norms))
    mean = xp.sum(sq) / xp.maximum(xp.sum(w), xp.ones_like(xp.sum(w)))
    return xp.sqrt(mean) * xp.ones_like(norms)


def dopri5_init(F, y0, t0: float, t1: float, *, rtol: float, atol: float, first_step=None,
                tableau: Tableau = DOPRI5, initial_step: str = "simple", error_norm: str = "sample",
                controller: Controller = DOPRI_CONTROLLER) -> DopriState:
    """The initial state: F(y0, t0) (one evaluation) and a first step per sample.

    ``initial_step="simple"`` (default): h₀ = 0.01 ‖y0‖/‖F(y0)‖ in the tolerance-scaled RMS norm
    (Hairer et al., II.4, without its extra evaluation). ``"hairer"``: the whole heuristic,
    with one more evaluation: d₀ = ‖y0‖, d₁ = ‖F(y0)‖, h₀ = 0.01 d₀/d₁ (10⁻⁶ if either is
    below 10⁻⁵), d₂ = ‖F(y0 + h₀ F(y0), t0 ± h₀) − F(y0)‖ / h₀, and
    h = min(100 h₀, (0.01 / max(d₁, d₂))^(1/(q+1))), as SciPy's ``solve_ivp``. Both within
    [10⁻⁶, 1]·|t1 − t0|. With ``error_norm="batch"`` the norms are over the whole batch.
    """
    xp = namespace(y0)
    n = y0.shape[0]
    t = t0 * xp.ones((n,), dtype=y0.dtype, device=_device(y0))
    f0 = F(y0, t)
    status = start_status(f0)
    span = abs(t1 - t0)
    nfe = 1
    if first_step is None:
        scale = atol + rtol * xp.abs(y0)

        def norm(v):
            r = rms(xp, v / scale)
            return _batch_rms(xp, r, status == RUNNING) if error_norm == "batch" else r

        d0, d1 = norm(y0), norm(f0)
        small = xp.logical_or(d0 < 1e-5, d1 < 1e-5)
        h = xp.where(small, xp.full_like(d0, 1e-6), 0.01 * d0 / xp.maximum(d1, xp.full_like(d1, 1e-10)))
        if initial_step == "hairer":
            h0 = xp.minimum(h, xp.full_like(h, span))
            direction = 1.0 if t1 > t0 else -1.0
            f1 = F(y0 + per_sample(direction * h0, y0) * f0, t + direction * h0)
            nfe = 2
            d2 = norm(f1 - f0) / h0
            dmax = xp.maximum(d1, d2)
            h1 = xp.where(dmax <= 1e-15, xp.maximum(xp.full_like(h0, 1e-6), h0 * 1e-3),
                          (0.01 / xp.maximum(dmax, xp.full_like(dmax, 1e-300))) ** (1.0 / (tableau.embedded_order + 1)))
            h = xp.minimum(100.0 * h0, h1)
        h = xp.clip(xp.where(xp.isfinite(h), h, xp.full_like(h, 1e-6 * span)), 1e-6 * span, span)
    else:
        h = float(first_step) * xp.ones_like(t)
    zeros = xp.zeros((n,), dtype=xp.int32, device=_device(y0))
    return DopriState(y0, t, h, f0, zeros, zeros, status, xp.asarray(nfe, dtype=xp.int32, device=_device(y0)),
                      controller.start(h))


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)


def dopri5_step(F, s: DopriState, t1: float, *, direction: float, rtol: float, atol: float, span: float,
                controller: Controller = DOPRI_CONTROLLER, tableau: Tableau = DOPRI5,
                error_norm: str = "sample") -> DopriState:
    """One attempted step of the pair ``tableau`` for every running sample (s − 1 evaluations).

    Samples that are not running take a step of size 0 and keep their state; a rejected try
    whose next step would not move t ends its sample (:func:`.adaptive.advance`). With
    ``error_norm="batch"`` every running sample is judged by the batch's RMS error (one step
    size for all, as SciPy's ``solve_ivp`` on the flattened batch)."""
    xp = namespace(s.y)
    running = s.status == RUNNING
    remaining = t1 - s.t if direction > 0 else s.t - t1
    last = xp.logical_and(running, s.h >= remaining)
    h_mag = xp.where(running, xp.minimum(s.h, remaining), 0.0)
    h = h_mag if direction > 0 else -h_mag
    hx = per_sample(h, s.y)
    t_new = xp.where(last, t1, s.t + h)
    y_new, err, f_new = rk_stages(F, tableau, s.y, s.t, h, hx, s.f, t_new)
    scale = atol + rtol * xp.maximum(xp.abs(s.y), xp.abs(y_new))
    err_norm = rms(xp, err / scale)
    # A non-finite F(y_new) must make the error norm non-finite, so that the try is rejected. When the
    # last stage has an error weight (all three pairs here) a NaN or inf in it reaches the norm
    # already (h ≠ 0 for a running sample); only a pair without one needs the explicit test.
    if tableau.e[-1] == 0.0:
        err_norm = xp.where(xp.all(xp.reshape(xp.isfinite(f_new), (f_new.shape[0], -1)), axis=1), err_norm,
                            xp.full_like(err_norm, float("nan")))
    if error_norm == "batch":
        err_norm = _batch_rms(xp, err_norm, running)
    accept, reject, finite = decide(running, err_norm)
    factor, (kept, was_rejected, h_kept) = controller.propose(err_norm, accept, s.memory, h_mag, finite)
    # E_prev and h_prev move only where a try is accepted, never outside the running rows; the flag
    # of a rejected try is set on them all: it alone needs the mask.
    memory = (kept, xp.where(running, was_rejected, s.memory[1]), h_kept)
    # A step cut to land on t1 does not shrink the size that the error control chose.
    h_next = xp.where(running, xp.where(xp.logical_and(last, accept), s.h, h_mag * factor), s.h)
    acc_x = per_sample(accept, s.y)
    t = xp.where(accept, t_new, s.t)
    status = advance(s.status, accept=accept, reject=reject, last=last, finite=finite, h_next=h_next,
                     floor=time_floor(s.t, span))
    stops = getattr(F, "stops", None)
    if stops is not None:  # an event: a row whose accepted state left F's region ends there
        status = xp.where(xp.logical_and(accept, stops(y_new)), ESCAPED, status)
    return DopriState(xp.where(acc_x, y_new, s.y), t, h_next, xp.where(acc_x, f_new, s.f),
                      s.accepted + xp.astype(accept, xp.int32), s.rejected + xp.astype(reject, xp.int32),
                      status, s.nfe + tableau.step_nfe, memory)


def check_controller(name: str, controller):
    """A :class:`~.adaptive.Controller`, or the name of one of :data:`CONTROLLERS`."""
    return controller if isinstance(controller, Controller) else validation.choice(name, controller, CONTROLLERS)


def ode_program(F, ctx: Context, t0: float, t1: float, *, method: str = "dopri5", steps: int = 100,
                rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 10_000, first_step=None,
                controller="integral", initial_step: str = "simple", error_norm: str = "sample", grid=None):
    """A program integrating dy/dt = F(y, t) from t0 to t1 with ``method`` (options: :func:`integrate`).

    F must take t 0-D (the fixed-step methods' step time) or (n,) (the adaptive methods'
    per-sample times); wrap it in ``ctx.batched`` if it needs (n,) always. ``grid``: the
    fixed-step methods' steps + 1 host times from t0 to t1 (default: uniform). An adaptive
    method honours F's event ``F.stops(y)`` if it has one, the (n,) mask of rows whose state y
    has left the region where F holds: a row whose accepted state is such ends there with status
    ESCAPED (as diffrax's terminating events); the fixed-step methods ignore it."""
    t0, t1 = float(t0), float(t1)
    if validation.choice("method", method, METHODS) not in TABLEAUS:
        return _fixed_program(F, ctx, t0, t1, method, validation.steps("steps", steps), grid)
    rtol, atol = validation.positive_float("rtol", rtol), validation.positive_float("atol", atol)
    validation.steps("max_steps", max_steps)
    validation.optional(validation.positive_float, "first_step", first_step)
    validation.choice("initial_step", initial_step, INITIAL_STEPS)
    validation.choice("error_norm", error_norm, ERROR_NORMS)
    tableau, direction = TABLEAUS[method], 1.0 if t1 > t0 else -1.0
    if not isinstance(check_controller("controller", controller), Controller):
        controller = CONTROLLERS[controller](tableau.embedded_order)
    opts = dict(rtol=rtol, atol=atol, tableau=tableau, error_norm=error_norm, controller=controller)

    def step(F_, s):
        return dopri5_step(F_, s, t1, direction=direction, span=abs(t1 - t0), **opts)

    # An eager solve steps only the running rows where F can be restricted to them and rows are independent.
    compact = ctx.backend.eager and ctx.backend.compiles is None and error_norm == "sample" and hasattr(F, "rows")
    return AdaptiveProgram(
        max_steps=max_steps,
        init=lambda y0: dopri5_init(F, y0, t0, t1, first_step=first_step, initial_step=initial_step, **opts),
        step=lambda k, s, key: compacted_step(step, F, s) if compact else step(F, s),
        status_of=lambda s: s.status, time_of=lambda s: s.t, tries_of=lambda s: s.accepted + s.rejected,
        nfe_of=lambda s: s.nfe,
        finish=lambda s, key: s.y, sample_of=lambda s: s.y, direction=direction,
        stats_of=lambda s: {"accepted": s.accepted, "rejected": s.rejected},
    )


def integrate(F, y0, t0: float, t1: float, *, method: str = "dopri5", steps: int = 100, rtol: float = 1e-5,
              atol: float = 1e-5, max_steps: int = 10_000, first_step=None, controller="integral",
              initial_step: str = "simple", error_norm: str = "sample", backend=None, progress=False,
              name: str | None = None):
    """Solve dy/dt = F(y, t) from t0 to t1 (either direction) for every row of y0.

    ``F(y, t)`` takes y of shape (n, ...) and t of shape (n,) (one time per sample: the
    adaptive solver's samples are at different times). ``method``: ``"euler"``, ``"heun"``,
    ``"rk4"``, ``"gbs8"`` (``steps`` uniform steps) or an adaptive pair ``"dopri5"``,
    ``"tsit5"``, ``"bosh3"`` (``rtol``, ``atol``, ``max_steps`` per sample), whose options are

    * ``controller``: ``"integral"`` (default; h ← h · clip(0.9 E^(−1/(q+1)), 0.2, 10)),
      ``"pi"`` (Gustafsson's PI controller), ``"predictive"`` (PI capped by Gustafsson's predictive
      factor; with ``initial_step="hairer"`` the per-sample solve at SciPy RK45's NFE on the 8-ring
      flow, ``benchmarks/results/adaptive_ode.md``) or a :class:`~.adaptive.Controller`;
    * ``initial_step``: ``"simple"`` (default, no extra evaluation) or ``"hairer"`` (Hairer's
      heuristic, one more evaluation, counted in the NFE); ``first_step`` fixes h₀ instead;
    * ``error_norm``: ``"sample"`` (default: each sample its own error norm and step size) or
      ``"batch"`` (one RMS norm and one step size for the batch, as SciPy's RK45 on the flattened
      batch in score_sde): fewer evaluations, but the hardest samples exceed their tolerance
      (``benchmarks/results/adaptive_ode*.md``), the result depends on the batch it ran in, and
      one sample with a non-finite derivative stops them all.

    Returns ``(y1, info)``, a :class:`~scorecore.samplers.SampleInfo` with the exact
    evaluations ``info.nfe`` and, for the adaptive methods, ``info.stats`` holding per-sample
    ``accepted``, ``rejected``, ``status`` (samples out of budget come back with status BUDGET;
    non-finite ones raise :class:`~.status.NonFiniteError`, which names the solve ``name``, by
    default ``ode-<method>``).
    """
    be = get_backend(backend)
    ctx = Context(be, y0.dtype, tuple(y0.shape))
    # The program's fixed-step methods pass the 0-D step time; F is promised (n,).
    program = ode_program(ctx.batched(F), ctx, t0, t1, method=method, steps=steps, rtol=rtol, atol=atol,
                          max_steps=max_steps, first_step=first_step, controller=controller,
                          initial_step=initial_step, error_norm=error_norm)
    return run(program, y0, ctx, be.key(0), name=name or f"ode-{method}", progress=progress, return_info=True)


@dataclass(frozen=True)
class ProbabilityFlowODE(Sampler):
    """Samples by integrating the probability-flow ODE dx/dt = f(x, t) − ½ g(t)² s_θ(x, t)
    from T down to eps with ``method`` (``"euler"``, ``"heun"``, ``"rk4"``, ``"gbs8"``:
    ``n_steps`` steps on the times of ``schedule``; ``"dopri5"``, ``"tsit5"``, ``"bosh3"``:
    adaptive with ``rtol``, ``atol``, a budget of ``max_steps`` tries per sample, and the
    ``controller``, ``initial_step`` and ``error_norm`` options of :func:`integrate`).
    Deterministic given x(T).

    ``schedule`` (fixed steps): ``"karras"`` (default) ρ-spaces σ(t) = s/m (σ^{1/ρ} linear,
    ``rho`` = 7, Karras et al. 2022, eq. 5) and maps the levels to times; ``"logsnr"`` makes
    the half log-SNR λ(t) = log(m/s) uniform; ``"uniform"`` is t_k = linspace(T, eps, N + 1);
    any of :data:`.sigma_space.SCHEDULES` (:func:`.sigma_space.time_steps`). Uniform steps in t
    spend a small budget where σ is large and the flow nearly linear, and cross the last
    decades of σ, where the samples take their shape, in one or two steps; under VE the flow in
    t is stiff at large σ, and the σ-space samplers (``"edm"``, ``"dpmpp_2m"``) do far better
    (``benchmarks/results/ode_time_grids.md``)."""

    n_steps: int = option(100, validation.steps)
    method: str = option("rk4", validation.choice, choices=METHODS)
    schedule: str = option("karras", validation.choice, choices=SCHEDULES)
    rho: float = option(7.0, validation.positive_float)
    rtol: float = option(1e-5, validation.positive_float)
    atol: float = option(1e-5, validation.positive_float)
    max_steps: int = option(10_000, validation.steps)
    first_step: float | None = option(None, validation.positive_float)
    controller: str | Controller = option("integral", check_controller)
    initial_step: str = option("simple", validation.choice, choices=INITIAL_STEPS)
    error_norm: str = option("sample", validation.choice, choices=ERROR_NORMS)

    @property
    def name(self) -> str:
        return self.method

    def program(self, model, sde, ctx: Context, eps: float):
        score = ctx.batched(model)

        def F(x, t):
            return sde.reverse_drift(x, t, score(x, t), probability_flow=True)

        grid = None if self.method in TABLEAUS else time_steps(sde, self.schedule, self.n_steps + 1, sde.T, eps,
                                                                self.rho)
        return ode_program(F, ctx, sde.T, eps, steps=self.n_steps, grid=grid,
                           **{opt: getattr(self, opt) for opt in SOLVER_OPTIONS})


__all__ = [
    "CONTROLLERS", "DOPRI_CONTROLLER", "DopriState", "ERROR_NORMS", "FIXED_METHODS", "INITIAL_STEPS", "METHODS",
    "ProbabilityFlowODE", "SOLVER_OPTIONS", "check_controller", "dopri5_init", "dopri5_step", "euler_step",
    "fixed_nfe", "heun_step", "integrate", "ode_program", "rk4_step",
]
