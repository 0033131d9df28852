"""Loading a diffusers model folder without running code: config JSON + safetensors only.

A folder saved with ``UNet2DModel.save_pretrained(DIR)`` holds ``config.json`` and
``diffusion_pytorch_model.safetensors``; a pipeline folder holds ``unet/`` and ``scheduler/``
(``scheduler_config.json``). Nothing is downloaded and nothing is unpickled: pickle files
(``.bin``, ``.pt``, ``.pth``, ``.ckpt``) can run arbitrary code on load and are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .diffusers_unet import DiffusersUNet, sde_of_scheduler_config

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CONVERT = ("convert it once, in an environment you trust, with: python -c \"import torch; "
           "from safetensors.torch import save_file; save_file(torch.load('{src}', weights_only=True), "
           "'{dst}')\"")


class CheckpointFormatError(ValueError):
    """A model folder that cannot be loaded safely or does not match its config."""


def _unet_dir(root: Path) -> Path:
    return root / "unet" if (root / "unet" / "config.json").is_file() else root


def _scheduler_config(root: Path, unet_dir: Path) -> dict:
    for path in (root / "scheduler" / "scheduler_config.json", root / "scheduler_config.json",
                 unet_dir / "scheduler_config.json"):
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def _weights(unet_dir: Path) -> Path:
    found = sorted(unet_dir.glob("*.safetensors"))
    if found:
        return found[0]
    pickles = sorted(p for p in unet_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        src = pickles[0]
        raise CheckpointFormatError(
            f"{src} is a pickle checkpoint, which can run code when loaded; scorecore loads safetensors only: "
            + CONVERT.format(src=src, dst=src.with_suffix(".safetensors")))
    raise CheckpointFormatError(f"no weights in {unet_dir}: expected diffusion_pytorch_model.safetensors")


def load_state(module: torch.nn.Module, path: Path) -> None:
    """Load ``path`` (safetensors) into ``module``, naming any missing, unexpected or mis-shaped tensor."""
    from safetensors.torch import load_file

    state, want = load_file(str(path)), module.state_dict()
    missing = [k for k in want if k not in state]
    if missing:
        raise CheckpointFormatError(f"{path}: tensor {missing[0]!r} is missing ({len(missing)} missing in all)")
    extra = [k for k in state if k not in want]
    if extra:
        raise CheckpointFormatError(f"{path}: tensor {extra[0]!r} is not in the model its config describes")
    for k, w in want.items():
        if tuple(state[k].shape) != tuple(w.shape):
            raise CheckpointFormatError(f"{path}: tensor {k!r} has shape {tuple(state[k].shape)}, "
                                        f"the config's model expects {tuple(w.shape)}")
    module.load_state_dict(state, strict=True)


def load_diffusers(directory, *, dtype=torch.float32, device="cpu", class_labels=None):
    """``(score_model, sde)`` of the diffusers ``UNet2DModel`` folder ``directory``.

    The UNet is built from its ``config.json`` (``_class_name`` must be ``UNet2DModel``), its
    weights read from safetensors, and the SDE and prediction type from the scheduler config
    (a :class:`~scorecore.sde.DiscreteVPSDE`, or a VESDE for ``ScoreSdeVeScheduler``; a
    Fourier-embedded network without a scheduler config is taken as VE with diffusers' defaults).
    """
    from diffusers import UNet2DModel

    root = Path(directory)
    if not root.is_dir():
        raise CheckpointFormatError(f"model folder {root} does not exist")
    unet_dir = _unet_dir(root)
    cfg_path = unet_dir / "config.json"
    if not cfg_path.is_file():
        raise CheckpointFormatError(f"{root} has no config.json (nor unet/config.json): save the model with "
                                    "save_pretrained(DIR)")
    config = json.loads(cfg_path.read_text())
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise CheckpointFormatError(f"{cfg_path}: _class_name is {config['_class_name']!r}; only UNet2DModel "
                                    "folders are supported")
    weights = _weights(unet_dir)
    unet = UNet2DModel.from_config(config)
    load_state(unet, weights)
    unet = unet.to(device=device, dtype=dtype).eval()
    sched = _scheduler_config(root, unet_dir)
    if not sched and config.get("time_embedding_type") == "fourier":
        sched = {"_class_name": "ScoreSdeVeScheduler"}
    sde, prediction = sde_of_scheduler_config(sched)
    prediction = "epsilon" if prediction == "score" else prediction
    return DiffusersUNet(unet, sde, prediction, class_labels=class_labels), sde
