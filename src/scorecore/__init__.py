"""scorecore: score-based generative modeling written once against the Python Array API.

    import scorecore as sc
    sde = sc.VPSDE()
    target = sc.targets.GaussianMixture.example("8-ring")
    x = sc.sample(target.score_model(sde), sde, shape=(10_000, 2), backend="numpy", seed=0)
"""

from . import checkpoint, data, losses, metrics, models, noise_scales, random, samplers, targets
from .api import sample
from .backend import (Backend, BackendUnavailableError, MissingBackendError, available_backends, convert,
                      get_backend, portable)
from .samplers import AnnealedLangevin, Langevin, NonFiniteError, SampleInfo
from .sde import SDE, SubVPSDE, VESDE, VPSDE
from .targets import GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "SDE", "AnnealedLangevin", "Backend", "BackendUnavailableError", "GaussianMixture", "Langevin",
    "MissingBackendError", "NonFiniteError", "SampleInfo", "SubVPSDE", "VESDE", "VPSDE",
    "available_backends", "checkpoint", "convert", "data", "get_backend", "losses", "metrics", "models", "noise_scales",
    "portable", "random", "sample", "samplers", "targets",
]
from . import training  # noqa: E402

__all__ += ["training"]
