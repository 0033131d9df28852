"""Samplers by name; each is a small object that builds a :class:`~.base.Program`."""

from __future__ import annotations

from .base import Context, NonFiniteError, Program, SampleInfo, Sampler, run
from .langevin import AnnealedLangevin, Langevin
from .adaptive_sde import AdaptiveInfo, AdaptiveSDE
from .ddim import DDIM
from .dpm_solver import DPMSolverPP
from .edm import EDM

#: name -> (class, the option that ``sample(steps=...)`` sets)
SAMPLERS: dict[str, tuple[type[Sampler], str]] = {
    "ald": (AnnealedLangevin, "n_levels"),
    "langevin": (Langevin, "n_steps"),
    "edm": (EDM, "n_steps"),
    "ddim": (DDIM, "n_steps"),
    "adaptive_sde": (AdaptiveSDE, "max_steps"),
    "dpmpp_2m": (DPMSolverPP, "n_steps"),
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
    "AnnealedLangevin", "Context", "Langevin", "NonFiniteError", "Program", "SAMPLERS",
    "AdaptiveInfo", "AdaptiveSDE", "DDIM", "DPMSolverPP", "EDM",
    "SampleInfo", "Sampler", "make_sampler", "run",
]
