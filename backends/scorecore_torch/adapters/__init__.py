"""Models trained with other libraries, as scorecore score models (torch).

* :class:`DiffusersUNet`: a diffusers ``UNet2DModel`` predicting ε, v or x₀ on a discrete VP
  chain (:class:`scorecore.sde.DiscreteVPSDE`), or the score-SDE-VE (σ-conditioned NCSN++)
  ``UNet2DModel`` on a :class:`scorecore.VESDE`;
* :func:`edm_denoiser` / :func:`score_from_kdiffusion`: an EDM / k-diffusion denoiser D(x̂; σ)
  on any SDE through its σ-space;
* :func:`load_diffusers`: a local folder (config JSON + safetensors) with no network and no pickle.
"""

from .denoiser import edm_denoiser, score_from_kdiffusion
from .diffusers_unet import DiffusersUNet, sde_of_scheduler_config
from .loading import CheckpointFormatError, load_diffusers

__all__ = ["CheckpointFormatError", "DiffusersUNet", "edm_denoiser", "load_diffusers", "score_from_kdiffusion",
           "sde_of_scheduler_config"]
