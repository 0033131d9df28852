"""scorecore: score-based generative modeling written once against the Python Array API.

    import scorecore as sc
    sde = sc.VPSDE()
    target = sc.targets.GaussianMixture.example("8-ring")
    x = sc.sample(target.score_model(sde), sde, shape=(10_000, 2), backend="numpy", seed=0)
"""

from . import checkpoint, data, losses, metrics, models, noise_scales, random, samplers, targets
from . import conditional
from .api import sample
from . import likelihood
from .likelihood import bits_per_dim, decode, encode, interpolate, log_likelihood
from .backend import (Backend, BackendUnavailableError, MissingBackendError, available_backends, convert,
                      get_backend, portable)
from .samplers import AnnealedLangevin, Langevin, NonFiniteError, SampleInfo
from .samplers import DDIM, EDM, AdaptiveSDE, DPMSolverPP
from .sde import SDE, SubVPSDE, VESDE, VPSDE
from .targets import GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "SDE", "DDIM", "EDM", "AdaptiveSDE", "AnnealedLangevin", "Backend", "BackendUnavailableError",
    "DPMSolverPP", "GaussianMixture", "Langevin", "MissingBackendError", "NonFiniteError", "SampleInfo",
    "SubVPSDE", "VESDE", "VPSDE", "available_backends", "checkpoint", "conditional", "convert", "data", "get_backend",
    "losses", "metrics", "models", "noise_scales", "portable", "random", "sample", "samplers", "targets",
    "bits_per_dim", "decode", "encode", "interpolate", "likelihood", "log_likelihood",
]
from . import training  # noqa: E402

__all__ += ["training"]
