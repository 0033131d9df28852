"""The NumPy backend, scorecore's default: eager, float64, host memory."""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy

from scorecore.backend import Backend


class NumPyBackend(Backend):
    """NumPy through array-api-compat's standard namespace; loops run in Python."""

    name = "numpy"
    xp = xp_numpy
    default_dtype_name = "float64"


backend = NumPyBackend()
