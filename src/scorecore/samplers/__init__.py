"""Samplers by name: each is a frozen dataclass of options that builds a program (:mod:`.base`)."""

from __future__ import annotations

from .. import validation
from .adaptive_sde import AdaptiveSDE
from .base import AdaptiveProgram, Context, FixedProgram, SampleInfo, Sampler
from .driver import run
from .brownian import BrownianNoiseSampler
from .ddim import DDIM
from .deis import DEIS
from .dpm2 import DPM2
from .dpm_adaptive import DPMAdaptive
from .dpm_singlestep import DPMFast, DPMSolver
from .dpm_solver import DPMSolverPP
from .dpmpp_2s import DPMSolverPP2S
from .dpmpp_sde import DPMSolverPPMultistep
from .edm import EDM
from .euler_ancestral import EulerAncestral
from .langevin import AnnealedLangevin, Langevin
from .lms import LMS
from .ode import ProbabilityFlowODE, integrate
from .pc import PC
from .pndm import PNDM
from .sigma_grid import SigmaSampler
from .unipc import UniPC
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
    # The k-diffusion family on σ levels ending at σ = 0 (sigma_grid.py).
    "euler_ancestral": (EulerAncestral, "n_steps", {}),
    "lms": (LMS, "n_steps", {}),
    "dpm_2": (DPM2, "n_steps", {}),
    "dpmpp_2s": (DPMSolverPP2S, "n_steps", {}),
    "dpmpp_2s_ancestral": (DPMSolverPP2S, "n_steps", {"eta": 1.0}),
    "dpmpp_2m_sde": (DPMSolverPPMultistep, "n_steps", {"order": 2, "eta": 1.0}),
    "dpmpp_3m": (DPMSolverPPMultistep, "n_steps", {"order": 3, "eta": 0.0}),
    "dpmpp_3m_sde": (DPMSolverPPMultistep, "n_steps", {"order": 3, "eta": 1.0}),
    "unipc": (UniPC, "n_steps", {}),
    "unipc_bh1": (UniPC, "n_steps", {"solver_type": "bh1"}),
    "deis": (DEIS, "n_steps", {}),
    # Singlestep DPM-Solver-1/2/3, -fast (a budget of steps NFE) and -adaptive (dpm_singlestep.py, dpm_adaptive.py).
    "dpm_solver": (DPMSolver, "n_steps", {}),
    "dpm_fast": (DPMFast, "nfe", {}),
    "dpm_adaptive": (DPMAdaptive, "max_steps", {}),
    "pndm": (PNDM, "n_steps", {}),
    "plms": (PNDM, "n_steps", {"warmup": "heun"}),
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
    # Per-sample control at SciPy RK45's batch-norm NFE (benchmarks/results/adaptive_ode.md).
    "dopri5_predictive": (ProbabilityFlowODE, "max_steps",
                          {"method": "dopri5", "controller": "predictive", "initial_step": "hairer"}),
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
    "AdaptiveProgram", "AdaptiveSDE", "AnnealedLangevin", "BrownianNoiseSampler", "BudgetExhaustedError", "Context", "DDIM", "DEIS", "DPM2",
    "DPMAdaptive", "DPMFast", "DPMSolver", "DPMSolverPP", "DPMSolverPP2S", "DPMSolverPPMultistep", "EDM", "EulerAncestral", "FixedProgram", "LMS", "Langevin",
    "NonFiniteError", "PC", "PNDM", "ProbabilityFlowODE", "SAMPLERS", "SampleInfo", "Sampler", "SigmaSampler", "UniPC", "integrate",
    "make_sampler", "run",
]
