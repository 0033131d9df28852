"""Samplers by name: each is a frozen dataclass of options that builds a program (:mod:`.base`)."""

from __future__ import annotations

from .. import validation
from .adaptive_sde import AdaptiveSDE
from .base import AdaptiveProgram, Context, FixedProgram, SampleInfo, Sampler, run
from .ddim import DDIM
from .dpm_solver import DPMSolverPP
from .edm import EDM
from .langevin import AnnealedLangevin, Langevin
from .ode import ProbabilityFlowODE, integrate
from .pc import PC
from .status import BudgetExhaustedError, NonFiniteError

#: name -> (class, the option that ``sample(steps=...)`` sets, preset options). A preset is a
#: name for a class with some options fixed, not a subclass.
SAMPLERS: dict[str, tuple[type[Sampler], str, dict]] = {
    "ald": (AnnealedLangevin, "n_levels", {}),
    "langevin": (Langevin, "n_steps", {}),
    "edm": (EDM, "n_steps", {}),
    "ddim": (DDIM, "n_steps", {}),
    "adaptive_sde": (AdaptiveSDE, "max_steps", {}),
    "dpmpp_2m": (DPMSolverPP, "n_steps", {}),
    "pc": (PC, "n_steps", {}),
    "reverse-sde": (PC, "n_steps", {"predictor": "euler-maruyama", "corrector": "none"}),
    "euler-maruyama": (PC, "n_steps", {"predictor": "euler-maruyama", "corrector": "none"}),
    "reverse-diffusion": (PC, "n_steps", {"predictor": "reverse-diffusion", "corrector": "none"}),
    "ancestral": (PC, "n_steps", {"predictor": "ancestral", "corrector": "none"}),
    "ode": (ProbabilityFlowODE, "n_steps", {}),
    "euler": (ProbabilityFlowODE, "n_steps", {"method": "euler"}),
    "heun": (ProbabilityFlowODE, "n_steps", {"method": "heun"}),
    "rk4": (ProbabilityFlowODE, "n_steps", {"method": "rk4"}),
    "dopri5": (ProbabilityFlowODE, "max_steps", {"method": "dopri5"}),
}


def make_sampler(sampler, steps=None, **options) -> Sampler:
    """A sampler object from a name of :data:`SAMPLERS` (with ``steps`` and options over the
    preset's) or the object itself."""
    if isinstance(sampler, Sampler):
        if steps is not None or options:
            raise TypeError("steps and sampler options go to the sampler's constructor when a Sampler object is given")
        return sampler
    cls, steps_option, preset = SAMPLERS[validation.choice("sampler", sampler, SAMPLERS)]
    if steps is not None:
        options[steps_option] = steps
    try:
        return cls(**(preset | options))
    except TypeError as exc:
        raise TypeError(f"sampler {sampler!r}: {exc}") from exc


__all__ = [
    "AdaptiveProgram", "AdaptiveSDE", "AnnealedLangevin", "BudgetExhaustedError", "Context", "DDIM", "DPMSolverPP",
    "EDM", "FixedProgram", "Langevin", "NonFiniteError", "PC", "ProbabilityFlowODE", "SAMPLERS", "SampleInfo",
    "Sampler", "integrate", "make_sampler", "run",
]
