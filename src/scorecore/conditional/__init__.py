"""Controllable generation: class-conditional sampling, inpainting, colorization and linear
inverse problems with an unconditional score model (Song et al. 2021, §5 and App. I).

* Conditional score models (:mod:`.guidance`): ``GuidedScore``, ``classifier_guidance``
  (autodiff gradient of a time-dependent classifier), ``mixture_guidance`` (exact, on a
  Gaussian mixture). They are score models: every sampler takes them.
* Measurement-aware samplers (:mod:`.sampler`, :mod:`.measurements`):
  ``Conditioned(sampler, Inpainting(mask, y) | Colorization(gray) | LinearInverse(A, y))``.
  Every measurement is also y = A x(0) + σ_y n on flattened samples (``A``, ``y``,
  ``sigma_y``); :mod:`.operators` builds A for compressed sensing, super-resolution, deblurring.
  ``DPS(sampler, measurement, zeta)``: diffusion posterior sampling (Chung et al. 2022);
  ``PiGDM("ddim", measurement)``: pseudoinverse guidance (Song et al. 2023).
* Asymptotically exact posterior sampling (:mod:`.smc`): ``TDS(measurement, particles=K)``, the
  twisted diffusion sampler (Wu et al. 2023), sequential Monte Carlo with K particles per group.

    import scorecore as sc
    from scorecore.conditional import Conditioned, Inpainting
    x = sc.sample(model, sde, (n, 1, 8, 8), sampler=Conditioned("pc", Inpainting(mask, y), steps=500))
"""

from .guidance import ClassifierGradient, GuidedScore, classifier_guidance, mixture_guidance
from .measurements import GRAY_DECOUPLING, Colorization, Inpainting, LinearInverse, Measurement
from .operators import block_average, blur, compressed_sensing
from .posterior_guidance import dps_correction, pigdm_guidance
from .sampler import DPS, Conditioned, PiGDM
from .smc import TDS

__all__ = [
    "ClassifierGradient", "Colorization", "Conditioned", "DPS", "GRAY_DECOUPLING", "GuidedScore", "Inpainting",
    "LinearInverse", "Measurement", "PiGDM", "TDS", "block_average", "blur", "classifier_guidance",
    "compressed_sensing", "dps_correction", "mixture_guidance", "pigdm_guidance",
]
