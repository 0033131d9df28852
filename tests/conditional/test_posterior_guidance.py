"""DPS and ΠGDM guidance terms on a Gaussian prior N(μ, Σ), VP kernel: x̂0 is affine in x_t,
x̂0 = μ + m Σ C⁻¹ (x − m μ), C = m² Σ + s² I, so J = ∂x̂0/∂x = m Σ C⁻¹ (symmetric)."""

import numpy as np
import pytest

from scorecore.backend import get_backend
from support import backends as _backends
from scorecore.conditional.posterior_guidance import dps_correction, pigdm_guidance, twisted_likelihood


def _setup():
    rng = np.random.default_rng(0)
    D = 3
    L = rng.standard_normal((D, D))
    Sig, mu = L @ L.T + np.eye(D), rng.standard_normal(D)
    A, y = rng.standard_normal((2, D)), rng.standard_normal(2)
    x = rng.standard_normal((4, D))
    m, s = 0.6, 0.8
    C = m * m * Sig + s * s * np.eye(D)
    J = m * Sig @ np.linalg.inv(C)
    x0 = mu + (x - m * mu) @ J.T
    return D, Sig, mu, A, y, x, m, s, C, J, x0


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_dps_and_pigdm_closed_form(name):
    with _backends.jax_x64(name == "jax"):
        _check_closed_form(_backends.float64_backend(name))


def _check_closed_form(be):
    D, Sig, mu, A, y, x, m, s, C, J, x0 = _setup()
    Ci = np.linalg.inv(C)

    def model(xx, t):
        return -(xx - m * be.asarray(mu, dtype=xx.dtype)) @ be.asarray(Ci, dtype=xx.dtype)

    f64 = be.xp.float64
    xb = be.asarray(x, dtype=f64)
    t = be.asarray(np.full(4, 0.5), dtype=f64)
    mb, sb = be.asarray(np.full(4, m), dtype=f64), be.asarray(np.full(4, s), dtype=f64)
    r = y - x0 @ A.T
    want = 2 * 0.3 / np.linalg.norm(r, axis=1, keepdims=True) * (r @ A) @ J
    got = np.asarray(dps_correction(be, model, A, y, xb, t, mb, sb, zeta=0.3))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    rt2 = s * s / (m * m + s * s)
    sol = np.linalg.solve(rt2 * A @ A.T + 0.01 * np.eye(2), r.T).T
    got = np.asarray(pigdm_guidance(be, model, A, y, xb, t, mb, sb, sigma_y=0.1))
    np.testing.assert_allclose(got, (sol @ A) @ J, rtol=0, atol=1e-10)
    # TDS's twist N(y; A x̂0, V), V = σ_y² I + r_t² A Aᵀ: log p̃ = −rᵀV⁻¹r/2 (up to a shared
    # constant) and its gradient (V⁻¹ r)ᵀ A J, through the spectrum of A Aᵀ.
    lam, U = np.linalg.eigh(A @ A.T)
    spectrum = (be.asarray(U, dtype=f64), be.asarray(lam, dtype=f64))
    x0_got, logp, grad = twisted_likelihood(be, model, A, y, xb, t, mb, sb, sigma_y=0.1, spectrum=spectrum)
    np.testing.assert_allclose(np.asarray(x0_got), x0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(logp), -0.5 * np.sum(r * sol, axis=1), rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(grad), (sol @ A) @ J, rtol=0, atol=1e-10)


def test_numpy_backend_refuses_without_autodiff():
    be = get_backend("numpy")
    with pytest.raises(NotImplementedError, match="autodiff|automatic differentiation"):
        dps_correction(be, lambda x, t: x, np.eye(2), np.zeros(2), np.zeros((1, 2)), 0.5, 1.0, 0.5, zeta=1.0)
