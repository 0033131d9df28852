"""scorecore: score-based generative modeling written once against the Python Array API.

    import scorecore as sc
    sde = sc.VPSDE()
    target = sc.GaussianMixture.example("8-ring")
    x = sc.sample(target.score_model(sde), sde, shape=(10_000, 2), sampler="pc", backend="jax", seed=0)
"""

from . import (checkpoint, conditional, data, divergence, likelihood, losses, metrics, models, noise_scales, random,
               samplers, sde, streams, targets, training, validation)
from .api import sample, sample_fn
from .backend import (Backend, BackendUnavailableError, MissingBackendError, available_backends, convert,
                      get_backend, portable)
from .likelihood import bits_per_dim, decode, encode, interpolate, log_likelihood, log_likelihood_fn
from .samplers import (DDIM, EDM, PC, AdaptiveSDE, AnnealedLangevin, BudgetExhaustedError, DPMSolverPP, Langevin,
                       NonFiniteError, SampleInfo)
from .sde import SDE, SubVPSDE, VESDE, VPSDE
from .targets import GaussianMixture

__version__ = "0.1.0"

__all__ = [
    "DDIM", "EDM", "PC", "SDE", "AdaptiveSDE", "AnnealedLangevin", "Backend", "BackendUnavailableError",
    "BudgetExhaustedError", "DPMSolverPP", "GaussianMixture", "Langevin", "MissingBackendError", "NonFiniteError",
    "SampleInfo", "SubVPSDE", "VESDE", "VPSDE", "available_backends", "bits_per_dim", "checkpoint",
    "conditional", "convert", "data", "decode", "divergence", "encode", "get_backend", "interpolate", "likelihood",
    "log_likelihood", "log_likelihood_fn", "losses", "metrics", "models", "noise_scales", "portable", "random",
    "sample", "sample_fn", "samplers", "sde", "streams", "targets", "training", "validation",
]
