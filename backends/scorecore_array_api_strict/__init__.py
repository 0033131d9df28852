"""array-api-strict as a backend: the proof that the core uses the standard alone.

``ArrayAPIStrictBackend(device=array_api_strict.Device("no_float64"))`` is a
float32-only device, like JAX's default, for testing the float32 path.
"""

from __future__ import annotations

import array_api_strict

from scorecore.backend import Backend


class ArrayAPIStrictBackend(Backend):
    """The standard and nothing more; NumPy-computed underneath."""

    name = "array_api_strict"
    xp = array_api_strict

    def __init__(self, device=None):
        super().__init__(device)
        no_f64 = device is not None and "no_float64" in str(device)
        self.default_dtype_name = "float32" if no_f64 else "float64"

    def to_numpy(self, x):
        import numpy as np

        # Arrays on the fake devices refuse __array__; the CPU device does not.
        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))


backend = ArrayAPIStrictBackend()
