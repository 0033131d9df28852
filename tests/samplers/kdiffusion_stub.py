"""k-diffusion's ``sampling.py`` loaded without its package: ``import k_diffusion`` pulls in
scikit-image, torchvision, clip and wandb, while ``sampling.py`` needs only ``utils.append_dims``
(torch, scipy, torchdiffeq and torchsde besides). A stand-in package with that one function is
registered under the name ``k_diffusion`` for as long as the module loads."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def _append_dims(x, target_dims):
    """x with trailing singleton axes up to ``target_dims`` (what ``to_d`` broadcasts σ with)."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


def load_sampling():
    """k-diffusion's ``sampling`` module, or None (with the reason) when it cannot be loaded."""
    try:
        spec = importlib.util.find_spec("k_diffusion")
    except (ImportError, ValueError) as exc:
        return None, f"k-diffusion not importable: {exc}"
    if spec is None or not spec.submodule_search_locations:
        return None, ("k-diffusion is not installed (pip install --no-deps k-diffusion==0.1.1.post1 torchsde "
                      "torchdiffeq einops trampoline)")
    path = Path(next(iter(spec.submodule_search_locations))) / "sampling.py"
    saved = {name: sys.modules.get(name) for name in ("k_diffusion", "k_diffusion.utils")}
    package = types.ModuleType("k_diffusion")
    package.__path__ = []  # a package, so that "from . import utils" resolves
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = _append_dims
    package.utils = utils
    sys.modules.update({"k_diffusion": package, "k_diffusion.utils": utils})
    try:
        sampling_spec = importlib.util.spec_from_file_location("k_diffusion.sampling", path)
        sampling = importlib.util.module_from_spec(sampling_spec)
        sampling_spec.loader.exec_module(sampling)
    except ImportError as exc:
        return None, f"k_diffusion/sampling.py needs {exc.name}: {exc}"
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return sampling, ""


__all__ = ["load_sampling"]
