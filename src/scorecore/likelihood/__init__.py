"""Likelihoods, bits per dimension, and encoding/decoding by the probability-flow ODE.

* :mod:`~scorecore.likelihood.change_of_variables` — :func:`log_likelihood`, the exact
  log p_eps(x) by the instantaneous change of variables (Song et al. 2021, eq. 39), and
  :func:`log_likelihood_fn`, the same solve as a pure function for ``jax.jit``;
* :mod:`~scorecore.likelihood.bits` — :func:`bits_per_dim` of quantized data, an upper
  bound by uniform dequantization (Theis et al. 2016), and :func:`dequantize`;
* :mod:`~scorecore.likelihood.latents` — :func:`encode`, :func:`decode` and spherical
  :func:`interpolate` between latents;
* :mod:`~scorecore.likelihood.solve` — the ODE solves they share, each sample's status
  checked: non-finite samples raise :class:`~scorecore.samplers.NonFiniteError`, an
  exhausted step budget :class:`~scorecore.samplers.BudgetExhaustedError` (or, with ``return_info``, a status).

The divergence estimators ∇·s_θ live in :mod:`scorecore.divergence` (shared with the losses).
"""

from ..divergence import PROBES
from .bits import BitsPerDim, bits_per_dim, dequantize
from .change_of_variables import DIVERGENCES, LikelihoodInfo, log_likelihood, log_likelihood_fn
from .latents import decode, encode, interpolate
from .solve import DEFAULT_EPS, ODEInfo

__all__ = [
    "DEFAULT_EPS", "DIVERGENCES", "BitsPerDim", "LikelihoodInfo", "ODEInfo",
    "PROBES", "bits_per_dim", "decode", "dequantize", "encode", "interpolate", "log_likelihood",
    "log_likelihood_fn",
]
