"""The public entry point for sampling: ``sc.sample(model, sde, shape, ...)``."""

from __future__ import annotations


from .backend import get_backend
from .samplers import Context, make_sampler, run
from .sde import SDE

#: Reserved fold_in tag for the prior draw (steps use 0, 1, 2, ...).
PRIOR_TAG = (1 << 63) - 1


def check_shape(shape, model=None) -> tuple[int, ...]:
    """``shape`` as a tuple (n, *event) of positive ints, matching ``model.event_shape`` if known."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints (n, ...), got {shape!r}") from None
    if len(shape) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape must be (n, d, ...) with positive ints, got {shape!r}")
    event = getattr(model, "event_shape", None)
    if event is not None and tuple(shape[1:]) != tuple(event):
        raise ValueError(f"shape {shape!r} does not match the model's event shape {tuple(event)!r}: expected (n, {', '.join(map(str, event))})")
    return shape


def default_eps(sde: SDE) -> float:
    """The smallest time samplers integrate to: 1e-5 for VE, 1e-3 for VP and sub-VP (the seeds')."""
    return 1e-5 if hasattr(sde, "sigma_min") else 1e-3


def sample(model, sde: SDE, shape, sampler="pc", steps: int | None = None, *, backend=None,
           seed: int = 0, key=None, dtype=None, eps: float | None = None, offset: int = 0,
           x_init=None, progress: bool = True, return_info: bool = False, trajectory=None, **options):
    """Draw samples of p_0 by running ``sampler`` with the score model s_θ(x, t) ≈ ∇log p_t(x).

    Starts from the prior x(T) ~ N(0, prior_std² I) (or ``x_init``) and integrates
    towards t = ``eps``. Sample i's noise depends only on (seed, offset + i, step), so a
    chunk drawn at ``offset`` gets bit-for-bit the noise its rows get in one large run. The
    samples then agree to rounding, and bit for bit where the model's arithmetic does not
    depend on the batch size: a matrix product (BLAS, XLA) may round a row differently in a
    batch of another size, by a few ulps per step.

    Returns the samples, or ``(samples, SampleInfo)`` with the exact number of score
    evaluations (NFE) when ``return_info`` is true (adaptive samplers add per-sample
    accepted/rejected steps and a status in ``info.stats``). ``trajectory`` records
    intermediate states of fixed-step samplers: an int k (every k steps, plus the
    start and the end) or a sequence of times (the nearest step boundaries); they come
    back as ``info.trajectory`` (F, n, ...) with ``info.trajectory_times``, and a
    trajectory implies ``return_info``. Raises ``NonFiniteError`` with the step and
    time at which NaN/inf first appeared.

    Samplers (``sampler=`` a name or a :class:`~scorecore.samplers.Sampler` object):
    ``"pc"`` (the default; ``predictor=``, ``corrector=``, ``snr=``, ``n_steps_each=``),
    ``"ald"``, ``"langevin"``, ``"reverse-sde"``, ``"reverse-diffusion"``, ``"ancestral"``,
    ``"euler"``, ``"heun"``, ``"rk4"``, ``"ode"`` (``method=``), ``"dopri5"`` (``rtol=``,
    ``atol=``; ``steps`` is its step budget), ``"edm"`` (``s_churn=``, ...), ``"ddim"``
    (``eta=``), ``"dpmpp_2m"``, ``"adaptive_sde"`` (``steps`` is its step budget).
    """
    if not callable(model):
        raise TypeError(f"model must be a callable score(x, t), got {type(model).__name__}")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a scorecore SDE (VESDE, VPSDE, SubVPSDE), got {type(sde).__name__}")
    shape = check_shape(shape, model)
    if eps is None:
        eps = default_eps(sde)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T={sde.T}), got {eps!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative int, got {offset!r}")
    be = get_backend(backend)
    dt = be.dtype(dtype)
    smp = make_sampler(sampler, steps, **options)
    ctx = Context(be, dt, shape, offset)
    key = be.key(seed) if key is None else key
    if x_init is None:
        x_init = sde.prior_sample(ctx.normal(be.fold_in(key, PRIOR_TAG)))
    else:
        if tuple(x_init.shape) != shape:
            raise ValueError(f"x_init must have shape {shape}, got {tuple(x_init.shape)}")
        x_init = be.asarray(x_init, dtype=dt)
    program = smp.program(model, sde, ctx, float(eps))
    return run(program, x_init, ctx, key, sampler_name=smp.name, progress=progress, trajectory=trajectory,
               return_info=return_info or trajectory is not None)


__all__ = ["check_shape", "default_eps", "sample"]
