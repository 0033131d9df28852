"""Measurement-aware variants of the existing samplers: project after every step.

``Conditioned(sampler, measurement)`` wraps any fixed-step sampler whose state is the
sample itself; its time grid (``FixedProgram.times``) says the time t_{k+1} the state has
reached after step k: the predictor–corrector family (``"pc"``, ``"reverse-sde"``,
``"reverse-diffusion"``, ``"ancestral"``), the fixed-step probability-flow solvers
(``"euler"``, ``"heun"``, ``"rk4"``), DDIM, EDM and annealed Langevin. After step k,

    x ← project(x, m(t_{k+1}), s(t_{k+1}), z_k),    z_k ~ N(0, I) from step k's ``projection`` stream,

so step k + 1 (the corrector, then the predictor, for PC) sees measurement-consistent
coordinates, as in Song et al. (2021, App. I) — whose code projects the predictor's output
at the step's start time rather than the time it reached; here the time is the one reached.
After the sampler's last step (and its final denoising), the state is projected with
m = 1, s = 0: the measured coordinates equal the measurement. Conditional score models
(:mod:`.guidance`) need no wrapper: pass them as the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import validation
from .._arrays import is_array
from ..samplers import Context, FixedProgram, Sampler, make_sampler
from .measurements import Measurement
from .posterior_guidance import dps_correction, pigdm_guidance, twist_variance


@dataclass(frozen=True, init=False)
class Conditioned(Sampler):
    """``sampler`` (a name or a Sampler; ``steps`` and ``options`` as in ``make_sampler``)
    with ``measurement`` projected after every step."""

    sampler: Sampler
    measurement: Measurement

    def __init__(self, sampler, measurement: Measurement, steps: int | None = None, **options):
        validation.instance("measurement", measurement, Measurement,
                            "a scorecore.conditional Measurement (Inpainting, Colorization, LinearInverse)")
        object.__setattr__(self, "sampler", make_sampler(sampler, steps, **options))
        object.__setattr__(self, "measurement", measurement)
        object.__setattr__(self, "_label", sampler if isinstance(sampler, str) else self.sampler.name)

    @property
    def name(self) -> str:
        return f"conditioned-{self._label}"

    def _inner(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        """The wrapped sampler's program, once the measurement is known to fit the samples."""
        prog = self.sampler.program(model, sde, ctx, eps)
        if not isinstance(prog, FixedProgram):
            raise ValueError(f"{type(self).__name__} needs a fixed-step sampler, got the adaptive {self._label!r}")
        self.measurement.check(ctx.shape[1:])
        return prog

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        prog = self._inner(model, sde, ctx, eps)
        be, xp = ctx.backend, ctx.xp
        meas = self.measurement.bind(be, ctx.dtype, ctx.shape[0])
        t_reached = ctx.times(prog.times[1:])

        def init(x):
            state = prog.init(x)
            if not is_array(state):
                raise ValueError(f"Conditioned needs a sampler whose state is the sample; {self._label!r} keeps more")
            return state

        def step(k, x, key):
            x = prog.step(k, x, key)
            m, s = sde.marginal(ctx.batch_time(t_reached[k]))
            return meas.project(x, m, s, ctx.normal(key, "projection"))

        def finish(x, key):
            x = prog.finish(x, key)
            one = xp.ones((x.shape[0],), dtype=x.dtype, device=be.device)
            return meas.project(x, one, 0.0 * one, xp.zeros_like(x))

        return replace(prog, init=init, step=step, finish=finish, compiled={})


    def _plus_gradient_term(self, model, sde, ctx: Context, eps: float, what: str, term_of) -> FixedProgram:
        """The inner program with ``term(k, x_k, t_k, m_k, s_k)`` added after each step k, where
        ``term = term_of(inner program)`` differentiates through the model: one more model
        evaluation per step (DPS, ΠGDM)."""
        prog = self._inner(model, sde, ctx, eps)
        if not ctx.backend.has_autodiff:
            ctx.backend._no_autodiff(f"{what} needs the gradient of the model (vjp)")
        term, t_start = term_of(prog), ctx.times(prog.times[:-1])

        def step(k, x, key):
            t = ctx.batch_time(t_start[k])
            m, s = sde.marginal(t)
            return prog.step(k, x, key) + term(k, x, t, m, s)

        return replace(prog, step=step, nfe=prog.nfe + prog.n_steps, compiled={})


@dataclass(frozen=True, init=False)
class DPS(Conditioned):
    """Diffusion posterior sampling (Chung et al. 2022, Alg. 1) for y = A x(0) + σ_y n on top of
    a fixed-step ``sampler`` whose state is the sample (``"ancestral"`` is the paper's): after
    step k from x_k at t_k,

        x_{k+1} ← x'_{k+1} − ζ_k ∇_{x_k} ‖y − A x̂0(x_k)‖²,   ζ_k = ζ' / ‖y − A x̂0(x_k)‖,

    with Tweedie's x̂0(x_k) = (x_k + s(t_k)² s_θ(x_k, t_k)) / m(t_k) and the gradient through the
    model by the backend's vjp: one more model evaluation per step (counted in NFE). An
    approximation: its distance from the exact posterior is in the tests, not zero."""

    zeta: float

    def __init__(self, sampler, measurement: Measurement, zeta: float = 1.0, steps: int | None = None, **options):
        super().__init__(sampler, measurement, steps, **options)
        object.__setattr__(self, "zeta", validation.positive_float("zeta", zeta))

    @property
    def name(self) -> str:
        return f"dps-{self._label}"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        meas = self.measurement

        def term(k, x, t, m, s):
            return dps_correction(ctx.backend, model, meas.A, meas.y, x, t, m, s, zeta=self.zeta)

        return self._plus_gradient_term(model, sde, ctx, eps, "DPS", lambda prog: term)


@dataclass(frozen=True, init=False)
class PiGDM(Conditioned):
    """Pseudoinverse-guided diffusion (ΠGDM; Song, Vahdat, Mardani & Kautz 2023, Alg. 1) for
    y = A x(0) + σ_y n on a fixed-step ``sampler`` whose state is the sample (``"ddim"``, the
    paper's, with its ``eta``): after step k from x_k at t_k,

        x_{k+1} ← x'_{k+1} + m(t_{k+1}) m(t_k) r_k² g_k,
        g_k = ((y − A x̂0)ᵀ (r_k² A Aᵀ + σ_y² I)⁻¹ A ∂x̂0/∂x_k)ᵀ,

    r_k² = s_k²/(m_k² + s_k²) (:func:`.posterior_guidance.pigdm_guidance`; σ_y from the
    measurement). For VP (m = √ᾱ) the weight is √ᾱ_{t−1} √ᾱ_t r_t², which at σ_y = 0 makes the
    term √ᾱ_{t−1} √ᾱ_t (A⁺(y − A x̂0))ᵀ ∂x̂0/∂x_t, the form of the reference implementations
    (NVlabs' RED-diff ``pgdm``, azula's ``PGDMSampler``). One more model evaluation per step."""

    def __init__(self, sampler, measurement: Measurement, steps: int | None = None, **options):
        super().__init__(sampler, measurement, steps, **options)

    @property
    def name(self) -> str:
        return f"pigdm-{self._label}"

    def program(self, model, sde, ctx: Context, eps: float) -> FixedProgram:
        meas = self.measurement

        def term_of(prog):
            ms, ss = zip(*((float(a) for a in sde.marginal(t)) for t in prog.times))
            w = ctx.times([ms[k + 1] * ms[k] * twist_variance(ms[k], ss[k], 0.0) for k in range(prog.n_steps)])

            def term(k, x, t, m, s):
                return w[k] * pigdm_guidance(ctx.backend, model, meas.A, meas.y, x, t, m, s, sigma_y=meas.sigma_y)

            return term

        return self._plus_gradient_term(model, sde, ctx, eps, "ΠGDM", term_of)


__all__ = ["Conditioned", "DPS", "PiGDM"]
