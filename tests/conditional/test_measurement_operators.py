"""The shared y = A x + σ_y n view of every measurement, and the operator constructors."""

import numpy as np
import pytest

from scorecore.conditional import Colorization, Inpainting, LinearInverse
from scorecore.conditional.operators import block_average, blur, compressed_sensing


def test_inpainting_A_y_match_mask():
    rng = np.random.default_rng(0)
    mask = (rng.random((2, 3)) < 0.5).astype(float)
    x = rng.standard_normal((4, 2, 3))
    meas = Inpainting(mask, x, sigma_y=0.1)
    meas.check((2, 3))
    assert meas.sigma_y == 0.1
    np.testing.assert_array_equal(meas.y, x.reshape(4, -1) @ meas.A.T)


def test_colorization_A_is_channel_mean():
    x = np.random.default_rng(1).standard_normal((5, 3, 2, 2))
    meas = Colorization(x.mean(axis=1))
    meas.check((3, 2, 2))
    np.testing.assert_allclose(x.reshape(5, -1) @ meas.A.T, meas.y, rtol=0, atol=1e-14)


def test_operators_against_direct_formulas():
    x = np.random.default_rng(2).standard_normal((2, 4, 6))
    y = (x.reshape(-1) @ block_average(4, 6, 2, channels=2).T).reshape(2, 2, 3)
    np.testing.assert_allclose(y, x.reshape(2, 2, 2, 3, 2).mean(axis=(2, 4)), atol=1e-14)
    k = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    xpad = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    direct = np.stack([[[np.sum(k * xpad[c, i:i + 3, j:j + 3]) for j in range(6)] for i in range(4)] for c in range(2)])
    np.testing.assert_allclose((x.reshape(-1) @ blur(4, 6, channels=2).T).reshape(2, 4, 6), direct, atol=1e-14)
    A = compressed_sensing(3, 10, seed=5)
    np.testing.assert_array_equal(A, compressed_sensing(3, 10, seed=5))
    assert A.shape == (3, 10)


def test_sigma_y_and_mask_rejected_by_name():
    with pytest.raises(ValueError, match="sigma_y"):
        LinearInverse(np.eye(2), np.zeros(2), sigma_y=-1.0)
    with pytest.raises(ValueError, match="mask"):
        Inpainting(np.full((2,), 0.5), np.zeros(2))
    with pytest.raises(ValueError, match="f must divide"):
        block_average(5, 4, 2)


def test_noisy_lambda_projection_formula():
    """Song et al. 2022 with noisy y: x ← x + λ A⁺(y_t − A x), y_t = m y + s A z, A⁺ = Aᵀ(AAᵀ)⁻¹."""
    from scorecore.backend import get_backend

    rng = np.random.default_rng(3)
    A = compressed_sensing(2, 5, seed=1)
    y = rng.standard_normal((4, 2))
    x, z = rng.standard_normal((2, 4, 5))
    m, s = np.full(4, 0.7), np.full(4, 0.4)
    meas = LinearInverse(A, y, lam=0.3, sigma_y=0.1)
    meas.check((5,))
    got = meas.bind(get_backend("numpy"), np.float64, 4).project(x, m, s, z)
    yt = m[:, None] * y + s[:, None] * (z @ A.T)
    want = x + 0.3 * (yt - x @ A.T) @ np.linalg.pinv(A).T
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
