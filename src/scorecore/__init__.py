"""scorecore: score-based generative modeling written once against the Python Array API.

    import scorecore as sc
    sde = sc.VPSDE()
    target = sc.targets.GaussianMixture.example("8-ring")
    x = sc.sample(target.score_model(sde), sde, shape=(10_000, 2), backend="numpy", seed=0)
"""

from . import metrics, noise_scales, random, samplers, targets
from .api import sample
from .backend import Backend, MissingBackendError, available_backends, get_backend
from .samplers import AnnealedLangevin, Langevin, NonFiniteError, SampleInfo
from .samplers import DDIM, EDM, AdaptiveSDE, DPMSolverPP
from .sde import SDE, SubVPSDE, VESDE, VPSDE
from .targets import GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "SDE", "AnnealedLangevin", "Backend", "GaussianMixture", "Langevin", "MissingBackendError",
    "NonFiniteError", "SampleInfo", "SubVPSDE", "VESDE", "VPSDE", "available_backends",
    "get_backend", "metrics", "noise_scales", "random", "sample", "samplers", "targets",
    "AdaptiveSDE", "DDIM", "DPMSolverPP", "EDM",
]
