"""The CuPy backend: ``array_api_compat.cupy`` on a CUDA GPU.

The module imports without a GPU; ``backend()`` (what the registry calls) first creates
an array, and raises ``BackendUnavailableError`` with CUDA's reason when that fails
(no driver, no device), so tests skip saying why.

Random numbers are the core's counter-based generator on the device (int64), as on
torch; no autodiff (serve a torch or JAX network through DLPack for that); Python loops.
"""

from __future__ import annotations

import functools

import array_api_compat.cupy as xp_cupy
import cupy

from scorecore.backend import Backend, BackendUnavailableError


class CuPyBackend(Backend):
    """CuPy on CUDA device ``device`` (an int or ``cupy.cuda.Device``; default the current)."""

    name = "cupy"
    xp = xp_cupy
    default_dtype_name = "float32"

    def __init__(self, device=None, *, portable: bool = False):
        probe(device)
        if device is None or isinstance(device, int):
            device = cupy.cuda.Device(device)
        super().__init__(device)
        self.portable = portable

    def to_numpy(self, x):
        return cupy.asnumpy(x)

    def block_until_ready(self, x):
        cupy.cuda.Device(self.device.id).synchronize()
        return x


def probe(device=None) -> None:
    """Raise ``BackendUnavailableError`` (with CUDA's message) unless CuPy can make an array."""
    try:
        with cupy.cuda.Device(device if not hasattr(device, "id") else device.id):
            cupy.zeros(1).sum().item()
    except Exception as exc:  # CUDARuntimeError, CUDADriverError, a missing libcuda...
        raise BackendUnavailableError(
            f"backend 'cupy' cannot run here: CuPy {cupy.__version__} is installed but creating "
            f"an array failed ({type(exc).__name__}: {exc}); it needs an NVIDIA GPU and driver"
        ) from exc


@functools.cache
def backend() -> CuPyBackend:
    """The CuPy backend on the current device (probed on first use)."""
    return CuPyBackend()
