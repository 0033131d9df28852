"""The public entry point for sampling: ``sc.sample(model, sde, shape, ...)``."""

from __future__ import annotations

from collections.abc import Callable

from . import run_cache, streams, validation
from .backend import get_backend
from .samplers import Context, NonFiniteError, make_sampler, run
from .samplers.driver import pure
from ._arrays import namespace
from .sde import SDE


def check_shape(shape, model=None) -> tuple[int, ...]:
    """``shape`` as a tuple (n, *event) of positive ints, matching ``model.event_shape`` if known."""
    return validation.shape("shape", shape, event=getattr(model, "event_shape", None))


def default_eps(sde: SDE) -> float:
    """The smallest time samplers integrate to: 1e-5 for VE, 1e-3 for VP and sub-VP (the seeds')."""
    return 1e-5 if hasattr(sde, "sigma_min") else 1e-3


def prior_draw(sde: SDE, ctx: Context, key):
    """x(T) ~ the prior, from the run key's ``prior`` stream; row i from (key, offset + i)."""
    return sde.prior_sample(ctx.normal(streams.run_key(ctx.backend, key, "prior")))


class CheckedModel:
    """``model`` whose first output is checked against its input (:func:`validation.model_output`):
    an array of x's shape and dtype, and finite where the values can be read (eager backends)."""

    def __init__(self, model, eager: bool):
        self.model, self.eager, self.checked = model, eager, False
        self.event_shape = getattr(model, "event_shape", None)

    def __call__(self, x, t):
        out = self.model(x, t)
        if not self.checked:
            validation.model_output(self.model, out, x)
            if self.eager and not bool(namespace(out).all(namespace(out).isfinite(out))):
                raise NonFiniteError(f"model {validation.model_name(self.model)}", 0, None, " in its first output (at the start of the run)")
            self.checked = True
        return out


def _check_run(model, sde, shape, eps, offset):
    """(shape, eps, offset) of a run, checked: a callable model, a scorecore SDE, a sample shape
    matching the model's event shape, eps in (0, T) (default :func:`default_eps`), offset ≥ 0."""
    validation.instance("model", model, Callable, "a callable score(x, t)")
    validation.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")
    eps = default_eps(sde) if eps is None else validation.real("eps", eps, lo=0.0, hi=sde.T, lo_open=True,
                                                                hi_open=True)
    return check_shape(shape, model), eps, validation.integer("offset", offset, lo=0)


def sample(model, sde: SDE, shape, sampler="pc", steps: int | None = None, *, backend=None,
           seed: int = 0, key=None, dtype=None, eps: float | None = None, offset: int = 0,
           x_init=None, progress: bool = True, return_info: bool = False, trajectory=None, model_kwargs=None,
           **options):
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
    time at which NaN/inf first appeared, and ``BudgetExhaustedError`` when an adaptive
    sampler ran out of steps (unless ``return_info``, which returns the unfinished samples
    with their ``info.stats["status"]``). The model's first output is checked: an array of
    x's shape and dtype, finite (eagerly; on JAX shape and dtype at trace time).

    ``model_kwargs``: extra keyword arguments of every model call, ``model(x, t, **model_kwargs)``
    (class labels, conditioning; k-diffusion's ``extra_args``). An array among them is per row:
    its first axis must have this call's n rows (with ``offset``, the chunk's own rows), and on
    a compiled backend it is an argument of the compiled run, so other labels reuse the trace.

    Samplers (``sampler=`` a name or a :class:`~scorecore.samplers.Sampler` object):
    ``"pc"`` (the default; ``predictor=``, ``corrector=``, ``snr=``, ``n_steps_each=``),
    ``"ald"``, ``"langevin"``, ``"reverse-sde"``, ``"reverse-diffusion"``, ``"ancestral"``,
    ``"euler"``, ``"heun"``, ``"rk4"``, ``"ode"`` (``method=``), ``"dopri5"`` (``rtol=``,
    ``atol=``; ``steps`` is its step budget), ``"edm"`` (``s_churn=``, ...), ``"ddim"``
    (``eta=``), ``"dpmpp_2m"``, ``"adaptive_sde"`` (``steps`` is its step budget); on σ levels
    (``sigmas=``/``times=``, ``schedule=``, ``callback=``): ``"euler_ancestral"``, ``"lms"``,
    ``"dpm_2"``, ``"dpmpp_2s"``, ``"dpmpp_2s_ancestral"``, ``"dpmpp_2m_sde"``, ``"dpmpp_3m"``,
    ``"dpmpp_3m_sde"``, ``"unipc"``, ``"unipc_bh1"``, ``"deis"``, ``"pndm"``, ``"plms"``
    (``warmup=``); the stochastic ones and EDM take ``noise_sampler=``.
    """
    shape, eps, offset = _check_run(model, sde, shape, eps, offset)
    validation.boolean("progress", progress)
    be = get_backend(backend)
    dt = be.dtype(dtype)
    smp = make_sampler(sampler, steps, **options)
    ctx = Context(be, dt, shape, offset)
    key = be.key(seed) if key is None else key
    if x_init is None:
        x_init = prior_draw(sde, ctx, key)
    else:
        validation.array_shape("x_init", x_init, shape)
        x_init = be.asarray(x_init, dtype=dt)
    name = sampler if isinstance(sampler, str) else smp.name
    program, bound = _program(model, sde, smp, ctx, float(eps), cache=trajectory is None,
                              model_kwargs=_check_kwargs(model_kwargs))
    return run(program, x_init, ctx, key, name=name, progress=progress, trajectory=trajectory,
               return_info=return_info or trajectory is not None, model=bound)


def _check_kwargs(model_kwargs) -> dict:
    """``model_kwargs`` as a dict of keyword arguments (None: none)."""
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, dict) or not all(isinstance(k, str) for k in model_kwargs):
        raise TypeError(f"model_kwargs must be a dict of keyword arguments of the model, got "
                        f"{type(model_kwargs).__name__}")
    return model_kwargs


def _program(model, sde, smp, ctx: Context, eps: float, *, cache: bool, model_kwargs=None):
    """(the sampler's program for this run, the ParamModel it calls or None).

    On a backend that compiles the whole run, a program built before for the same sampler
    options, SDE, context, eps and model structure is reused with its compiled run
    (:mod:`scorecore.run_cache`); a ParamModel's parameters are then replaced by this model's."""
    be = ctx.backend
    built, model_token, keep = run_cache.prepare(model, be)
    built, model_token = run_cache.with_kwargs(built, model_token, keep, model_kwargs or {}, be, ctx.shape[0])
    bound = built if isinstance(built, run_cache.ParamModel) else None
    if not cache or be.compiles != "run":
        return smp.program(CheckedModel(built, be.eager), sde, ctx, eps), bound
    key = (run_cache.token(be, keep), ctx.dtype, ctx.shape, ctx.offset, eps, run_cache.token(smp, keep),
           run_cache.token(sde, keep), model_token)
    hit = run_cache.lookup(key)
    if hit is not None:
        program, old, _ = hit
        if old is not None:
            old.params = bound.params
        return program, old
    program = smp.program(CheckedModel(built, be.eager), sde, ctx, eps)
    run_cache.store(key, program, bound, keep + [model])
    return program, bound


def sample_fn(model, sde: SDE, shape, sampler="pc", steps: int | None = None, *, backend="jax", dtype=None,
              eps: float | None = None, offset: int = 0, **options):
    """The sampling run as a pure function ``f(key, params=None) -> x`` for the caller's own
    ``jax.jit`` / ``jax.vmap`` (as ``diffrax.diffeqsolve`` composes with them).

    ``f`` draws x(T) ~ the prior from ``key`` (a backend key, e.g. ``be.key(seed)``) and runs
    ``sampler`` to t = ``eps``, exactly as :func:`sample` with that key. ``params``: the
    parameters of a model the backend splits into structure and parameters (a Flax NNX
    module's ``nnx.state``, a pytree's leaves — :meth:`JaxBackend.split_model`), so they are
    an argument of the caller's compiled function instead of constants; None uses the
    model's own. ``f`` reads nothing on the host: a NaN or inf is not reported but returned
    in x, and the model's first output is checked when ``f`` is traced. Its matmuls use the
    caller's precision (wrap the call in ``jax.default_matmul_precision`` for the backend's).
    """
    shape, eps, offset = _check_run(model, sde, shape, eps, offset)
    be = get_backend(backend)
    ctx = Context(be, be.dtype(dtype), shape, offset)
    program, bound = _program(model, sde, make_sampler(sampler, steps, **options), ctx, float(eps), cache=False)
    whole = pure(program, ctx)

    def f(key, params=None):
        run = lambda: whole(prior_draw(sde, ctx, key), key)  # noqa: E731
        if bound is None:
            if params is not None:
                raise TypeError(f"params: the model {validation.model_name(model)} has no parameters "
                                "the backend can split off; call f(key)")
            return run()
        with bound.bound(bound.params if params is None else params):
            return run()

    return f


__all__ = ["CheckedModel", "check_shape", "default_eps", "prior_draw", "sample", "sample_fn"]
