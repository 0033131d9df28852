"""The guidance terms of DPS and ΠGDM for y = A x(0) + σ_y n, through the backend's vjp.

With Tweedie's x̂0(x_t) = (x_t + s(t)² s_θ(x_t, t)) / m(t) and r = y − A x̂0 (flattened):

* DPS (Chung et al. 2022, Alg. 1): the correction added after each ancestral step,
  −ζ_i ∇_{x_t} ‖r‖², ζ_i = ζ' / ‖r‖, i.e. 2 ζ'/‖r‖ · (∂x̂0/∂x_t)ᵀ Aᵀ r.
* ΠGDM (Song et al. 2023, eq. 7–8): g = (vᵀ ∂x̂0/∂x_t)ᵀ, v = Aᵀ(r_t² A Aᵀ + σ_y² I)⁻¹ r, with
  r_t² = σ_t²/(1 + σ_t²) in their VE convention σ_t = s(t)/m(t), i.e. s²/(m² + s²).

Each returns the term a step adds to x_t: DPS's after an ancestral step, ΠGDM's (scaled by the
step's coefficient) on a DDIM step.

* TDS's twisting function (Wu et al. 2023, §3.2) p̃_t(y | x_t) = N(y; A x̂0(x_t), σ_y² I + r_t² A Aᵀ)
  with ΠGDM's r_t² and covariance, and its gradient (rᵀ V⁻¹ A ∂x̂0/∂x_t)ᵀ: :func:`twisted_likelihood`.
  (The paper's scalar σ_y² + r_t² is this for a mask, A Aᵀ = I; for a blur it mis-scales the
  twist and left TDS at 14× the floor on the 4-D mixture, against 1.0× with A Aᵀ.)
"""

from __future__ import annotations

import numpy as np

from .. import validation as v
from .._arrays import namespace, per_sample

__all__ = ["dps_correction", "pigdm_guidance", "twist_variance", "twisted_likelihood"]


def _x0_fn(model, t, m, s):
    def x0(x):
        mm, ss = per_sample(m, x), per_sample(s, x)
        return (x + ss * ss * model(x, t)) / mm
    return x0


def _residual(be, A, y, x0, dtype):
    xp = namespace(x0)
    n = x0.shape[0]
    Ab = be.asarray(np.asarray(A, np.float64), dtype=dtype)
    yb = be.asarray(np.asarray(y, np.float64), dtype=dtype)
    return xp.reshape(yb, (-1, Ab.shape[0])) - xp.reshape(x0, (n, -1)) @ Ab.T, Ab


def _residual_at(backend, model, A, y, x, t, m, s, who: str):
    """(x̂0 as a function of x, r = y − A x̂0(x) as (n, d_y), A as a backend array, x̂0(x))."""
    if not backend.has_autodiff:
        backend._no_autodiff(f"{who} needs vjp through the model")
    x0fn = _x0_fn(model, t, m, s)
    x0 = x0fn(x)
    r, Ab = _residual(backend, A, y, x0, x.dtype)
    return x0fn, r, Ab, x0


def twist_variance(m, s, sigma_y: float):
    """σ_y² + r_t², r_t² = s²/(m² + s²): the variance of y given x_t when x(0) | x_t is replaced by
    N(x̂0, r_t² I) (ΠGDM's choice, exact for a N(0, I) prior); shape of m."""
    return sigma_y ** 2 + s * s / (m * m + s * s)


def dps_correction(backend, model, A, y, x, t, m, s, *, zeta: float):
    """−ζ'/‖r‖ ∇_{x} ‖y − A x̂0(x)‖² per sample (Chung et al. 2022)."""
    zeta = v.positive_float("zeta", zeta)
    xp = namespace(x)
    x0fn, r, Ab, _ = _residual_at(backend, model, A, y, x, t, m, s, "DPS")
    norm = xp.sqrt(xp.sum(r * r, axis=1, keepdims=True))
    w = xp.reshape((2.0 * zeta / norm) * r @ Ab, x.shape)
    return backend.vjp(x0fn, x, w)


def pigdm_guidance(backend, model, A, y, x, t, m, s, *, sigma_y: float = 0.0):
    """(vᵀ ∂x̂0/∂x)ᵀ with v = Aᵀ(r_t² AAᵀ + σ_y² I)⁻¹ (y − A x̂0), r_t² = s²/(m² + s²)."""
    sigma_y = v.nonneg_float("sigma_y", sigma_y)
    xp = namespace(x)
    x0fn, r, Ab, _ = _residual_at(backend, model, A, y, x, t, m, s, "ΠGDM")
    mm, ss = per_sample(m, r), per_sample(s, r)
    rt2 = twist_variance(mm, ss, 0.0)
    AAt = Ab @ Ab.T
    eye = xp.eye(AAt.shape[0], dtype=x.dtype)
    M = xp.reshape(rt2, (-1, 1, 1)) * AAt + sigma_y ** 2 * eye  # (n, d_y, d_y)
    sol = xp.linalg.solve(M, xp.expand_dims(r, axis=-1))[..., 0]
    return backend.vjp(x0fn, x, xp.reshape(sol @ Ab, x.shape))


def twisted_likelihood(backend, model, A, y, x, t, m, s, *, sigma_y: float, spectrum=None):
    """(x̂0(x), log p̃_t(y | x) up to a constant shared by the batch (n,), ∇ₓ log p̃_t(y | x)) for
    p̃_t(y | x) = N(y; A x̂0(x), V), V = σ_y² I + r_t² A Aᵀ: y's law when x(0) | x_t is replaced by
    N(x̂0, r_t² I), r_t² = s²/(m² + s²) (ΠGDM's covariance). With A Aᵀ = U diag(λ) Uᵀ
    (``spectrum`` = (U, λ) as backend arrays, computed once by the caller; None means A Aᵀ = I,
    a mask), V⁻¹ r = U diag(1/(σ_y² + r_t² λ)) Uᵀ r, log p̃ = −rᵀ V⁻¹ r / 2 and the gradient
    (rᵀ V⁻¹ A ∂x̂0/∂x)ᵀ. The constant −log det(2πV)/2 is dropped: it is the same for every sample
    at one time, so weights normalised over samples at that time do not see it."""
    xp = namespace(x)
    x0fn, r, Ab, x0 = _residual_at(backend, model, A, y, x, t, m, s, "TDS")
    if spectrum is None:
        vr = r / per_sample(twist_variance(m, s, sigma_y), r)
    else:
        U, lam = spectrum
        r2 = per_sample(s * s / (m * m + s * s), r)
        vr = ((r @ U) / (sigma_y ** 2 + r2 * lam[None, :])) @ xp.matrix_transpose(U)
    logp = -0.5 * xp.sum(r * vr, axis=1)
    return x0, logp, backend.vjp(x0fn, x, xp.reshape(vr @ Ab, x.shape))
