"""Measurement matrices A (d_y × D, host float64, acting on C-order flattened samples) for
y = A x(0) + σ_y n: feed them to :class:`~scorecore.conditional.LinearInverse`.

* :func:`compressed_sensing`: A_ij ~ N(0, 1/d_y) i.i.d. from a seed (Candès & Tao's
  normalisation, so E‖A x‖² = ‖x‖²).
* :func:`block_average`: super-resolution, y = the mean over each f × f block of an H × W image
  per channel.
* :func:`blur`: deblurring, y = k ∗ x per channel with zero padding ("same" size); the default k
  is the separable 3 × 3 Gaussian (1, 2, 1)ᵀ(1, 2, 1)/16.
"""

from __future__ import annotations

import numpy as np

from .. import validation as v

__all__ = ["block_average", "blur", "compressed_sensing"]


def compressed_sensing(d_y: int, D: int, *, seed: int = 0) -> np.ndarray:
    """A (d_y, D) with entries N(0, 1/d_y), reproducible from ``seed``."""
    d_y, D = v.positive_int("d_y", d_y), v.positive_int("D", D)
    rng = np.random.default_rng(v.integer("seed", seed, lo=0))
    return rng.standard_normal((d_y, D)) / np.sqrt(d_y)


def block_average(H: int, W: int, f: int, *, channels: int = 1) -> np.ndarray:
    """A (C·(H/f)·(W/f), C·H·W): y[c, i, j] = mean of x[c, f i : f i + f, f j : f j + f]."""
    H, W, f = v.positive_int("H", H), v.positive_int("W", W), v.positive_int("f", f)
    C = v.positive_int("channels", channels)
    if H % f or W % f:
        raise ValueError(f"f must divide H and W, got f={f} for {H}×{W}")
    rows = np.kron(np.eye(H // f), np.ones((1, f))) / f  # (H/f, H)
    cols = np.kron(np.eye(W // f), np.ones((1, f))) / f
    return np.kron(np.eye(C), np.kron(rows, cols))


def blur(H: int, W: int, kernel=None, *, channels: int = 1) -> np.ndarray:
    """A (C·H·W, C·H·W): y[c, i, j] = Σ_ab k[a, b] x[c, i + a − r, j + b − r] (zero outside)."""
    H, W, C = v.positive_int("H", H), v.positive_int("W", W), v.positive_int("channels", channels)
    k = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0 if kernel is None else np.asarray(kernel, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be a square matrix of odd size, got shape {k.shape}")
    v.finite_array("kernel", k)
    r = k.shape[0] // 2
    A = np.zeros((H * W, H * W))
    for i in range(H):
        for j in range(W):
            for a in range(k.shape[0]):
                for b in range(k.shape[1]):
                    ii, jj = i + a - r, j + b - r
                    if 0 <= ii < H and 0 <= jj < W:
                        A[i * W + j, ii * W + jj] += k[a, b]
    return np.kron(np.eye(C), A)
