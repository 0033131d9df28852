"""Host copies of backend arrays, for comparisons in NumPy."""

from __future__ import annotations

import numpy as np


def to_numpy(be, x) -> np.ndarray:
    """A float64 NumPy copy of backend ``be``'s array ``x``."""
    return np.asarray(be.to_numpy(x), dtype=np.float64)
