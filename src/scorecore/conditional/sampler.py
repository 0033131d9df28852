"""Measurement-aware variants of the existing samplers: project after every step.

``Conditioned(sampler, measurement)`` wraps any fixed-step sampler whose state is the
sample itself and that knows the time its state has reached (``Program.state_time``):
the predictor–corrector family (``"pc"``, ``"reverse-sde"``, ``"reverse-diffusion"``,
``"ancestral"``) and the fixed-step probability-flow solvers (``"euler"``, ``"heun"``,
``"rk4"``). After step k, at the time t_{k+1} the state has reached,

    x ← project(x, m(t_{k+1}), s(t_{k+1}), z_k),    z_k ~ N(0, I) from fold_in(key_k, TAG),

so step k + 1 (the corrector, then the predictor, for PC) sees measurement-consistent
coordinates, as in Song et al. (2021, App. I) — whose code projects the predictor's output
at the step's start time rather than the time it reached; here the time is the one reached.
After the sampler's last step (and its final denoising), the state is projected with
m = 1, s = 0: the measured coordinates equal the measurement. Conditional score models
(:mod:`.guidance`) need no wrapper: pass them as the model.
"""

from __future__ import annotations

from dataclasses import replace

from .._arrays import is_array
from ..samplers import Context, Program, Sampler, make_sampler
from .measurements import Measurement

#: fold_in tag of the projection noise within a step's key (PC uses 0..M for its own draws).
PROJECTION_TAG = (1 << 31) - 1


class Conditioned(Sampler):
    """``sampler`` (a name or a Sampler; ``steps`` and ``options`` as in ``make_sampler``)
    with ``measurement`` projected after every step."""

    def __init__(self, sampler, measurement: Measurement, steps: int | None = None, **options):
        if not isinstance(measurement, Measurement):
            raise TypeError(f"measurement must be a scorecore.conditional Measurement (Inpainting, Colorization, "
                            f"LinearInverse), got {type(measurement).__name__}")
        self.sampler = make_sampler(sampler, steps, **options)
        self.measurement = measurement
        self.name = f"conditioned-{self.sampler.name}"

    def program(self, model, sde, ctx: Context, eps: float) -> Program:
        prog = self.sampler.program(model, sde, ctx, eps)
        if prog.cond is not None or prog.state_time is None:
            raise ValueError(f"Conditioned needs a fixed-step sampler that reports the time of its state "
                             f"(pc, reverse-sde, reverse-diffusion, ancestral, euler, heun, rk4); got {self.sampler.name!r}")
        self.measurement.check(ctx.shape[1:])
        be, xp = ctx.backend, ctx.xp
        meas = self.measurement.bind(be, ctx.dtype, ctx.shape[0])
        t_reached = ctx.times([prog.state_time(k + 1) for k in range(prog.n_steps)])

        def init(x):
            state = prog.init(x)
            if not is_array(state):
                raise ValueError(f"Conditioned needs a sampler whose state is the sample; {self.sampler.name!r} keeps more")
            return state

        def step(k, x, key):
            x = prog.step(k, x, key)
            m, s = sde.marginal(ctx.batch_time(t_reached[k]))
            return meas.project(x, m, s, ctx.normal(be.fold_in(key, PROJECTION_TAG)))

        def finish(x):
            x = prog.finish(x)
            one = xp.ones((x.shape[0],), dtype=x.dtype, device=be.device)
            return meas.project(x, one, 0.0 * one, xp.zeros_like(x))

        return replace(prog, init=init, step=step, finish=finish)
