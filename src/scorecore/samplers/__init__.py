"""Samplers by name; each is a small object that builds a :class:`~.base.Program`."""

from __future__ import annotations

from .base import Context, NonFiniteError, Program, SampleInfo, Sampler, run
from .correctors import AnnealedLangevinCorrector, Corrector, LangevinCorrector, NoneCorrector
from .langevin import AnnealedLangevin, Langevin
from .adaptive_sde import AdaptiveSDE, AdaptiveState
from .ddim import DDIM
from .dpm_solver import DPMSolverPP
from .edm import EDM
from .ode import RK4, Dopri5, Euler, Heun, ProbabilityFlowODE, integrate
from .pc import PC, Ancestral, EulerMaruyama, ReverseDiffusion
from .predictors import (AncestralPredictor, EulerMaruyamaPredictor, NonePredictor, Predictor,
                         ReverseDiffusionPredictor)

#: name -> (class, the option that ``sample(steps=...)`` sets)
SAMPLERS: dict[str, tuple[type[Sampler], str]] = {
    "ald": (AnnealedLangevin, "n_levels"),
    "langevin": (Langevin, "n_steps"),
    "edm": (EDM, "n_steps"),
    "ddim": (DDIM, "n_steps"),
    "adaptive_sde": (AdaptiveSDE, "max_steps"),
    "dpmpp_2m": (DPMSolverPP, "n_steps"),
    "pc": (PC, "n_steps"),
    "reverse-sde": (EulerMaruyama, "n_steps"),
    "euler-maruyama": (EulerMaruyama, "n_steps"),
    "reverse-diffusion": (ReverseDiffusion, "n_steps"),
    "ancestral": (Ancestral, "n_steps"),
    "ode": (ProbabilityFlowODE, "n_steps"),
    "euler": (Euler, "n_steps"),
    "heun": (Heun, "n_steps"),
    "rk4": (RK4, "n_steps"),
    "dopri5": (Dopri5, "max_steps"),
}


def make_sampler(sampler, steps=None, **options) -> Sampler:
    """A sampler object from a name (with ``steps`` and options) or the object itself."""
    if isinstance(sampler, Sampler):
        if steps is not None or options:
            raise TypeError("steps and sampler options go to the sampler's constructor when a Sampler object is given")
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)} or a Sampler, got {sampler!r}")
    cls, steps_option = SAMPLERS[sampler]
    if steps is not None:
        options[steps_option] = steps
    try:
        return cls(**options)
    except TypeError as exc:
        raise TypeError(f"sampler {sampler!r}: {exc}") from exc


__all__ = [
    "AdaptiveSDE", "AdaptiveState", "Ancestral", "AncestralPredictor", "AnnealedLangevin",
    "AnnealedLangevinCorrector", "Context", "Corrector", "DDIM", "Dopri5", "DPMSolverPP", "EDM",
    "Euler", "EulerMaruyama", "EulerMaruyamaPredictor", "Heun", "integrate", "Langevin",
    "LangevinCorrector", "make_sampler", "NoneCorrector", "NonePredictor", "NonFiniteError", "PC",
    "Predictor", "ProbabilityFlowODE", "Program", "ReverseDiffusion", "ReverseDiffusionPredictor",
    "RK4", "run", "SampleInfo", "Sampler", "SAMPLERS",
]
