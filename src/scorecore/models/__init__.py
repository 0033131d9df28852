"""Score models: parametrizations (score, ε, EDM denoiser, NCSNv2) and the Array API MLP."""

from .mlp import MLP, BoundMLP
from .parametrization import (
    Converted,
    denoiser_from_score,
    eps_from_score,
    score_from_denoiser,
    score_from_eps,
    score_from_ncsn,
    time_of_sigma,
)

__all__ = [
    "MLP", "BoundMLP", "Converted", "denoiser_from_score", "eps_from_score", "score_from_denoiser",
    "score_from_eps", "score_from_ncsn", "time_of_sigma",
]
