"""Linear measurements y = A x(0) and their projections for conditional sampling.

The forward SDE's kernel is isotropic, x(t) = m(t) x(0) + s(t) z, so it commutes with
every orthogonal change of basis: if V is orthogonal, Vᵀx(t) = m(t) Vᵀx(0) + s(t) Vᵀz with
Vᵀz ~ N(0, I) again. In a basis whose first coordinates are what y measures, the
measured coordinates at time t are known in law: m(t) ỹ + s(t) ξ. A *measurement-aware*
sampler replaces (or mixes in, with weight λ) those coordinates after every step and lets
the score fill in the rest (Song et al. 2021, App. I; Song et al. 2022, "Solving inverse
problems in medical imaging with score-based generative models", eq. 8–9):

    x ← x + λ V_r (m(t) ỹ + s(t) V_rᵀ z − V_rᵀ x)

* :class:`Inpainting`: V = the identity, the measured coordinates are the known pixels
  (mask = 1); x ← (1 − M) ⊙ x + M ⊙ (m y + s z).
* :class:`Colorization`: per pixel the orthogonal map of (R, G, B) to the grey axis
  q₀ = (1, 1, 1)/√3 and two chroma axes orthogonal to it; the grey axis is measured:
  x ← x + q₀ (m ĝ + s q₀ᵀz − q₀ᵀx), ĝ = √3 · grey (grey = the channel mean).
* :class:`LinearInverse`: a general A (d_y × D, on flattened x) through its SVD
  A = U Σ V_rᵀ: ỹ = Σ⁻¹ Uᵀ y are the row-space coordinates of x.

Replacement is not exact conditioning: it gives the unknown coordinates the score of
p_t(x_u | x_k(t)) for one random x_k(t), not of p_t(x_u(t) | y), so the mixture weights of
the conditional come out only approximately (the tests measure how far). With noisy
measurements, λ < 1 weighs the measurement against the prior (Song et al. 2022).

Every ``project`` is a pure Array API function: ``project(x, m, s, z)`` with m, s the
kernel coefficients at the time the state has reached (per sample) and z ~ N(0, I) of x's
shape; ``bind(backend, dtype, n)`` moves the measurement onto the run's arrays.
"""

from __future__ import annotations

import math

import numpy as np

from .. import validation as v
from .._arrays import is_array, namespace, per_sample


def _lam(lam):
    return v.real("lam (the weight of the measurement)", lam, lo=0.0, hi=1.0, lo_open=True)


def _sigma_y(sigma_y):
    return v.nonneg_float("sigma_y (the measurement noise std)", sigma_y)


def _host(value):
    return np.asarray(value, dtype=np.float64)


def _check_rows(name: str, shape: tuple, event: tuple, n: int) -> None:
    """A per-sample array (n, *event) must have one row per sample: else it would broadcast."""
    if shape != event and shape[0] != n:
        raise ValueError(f"{name} must have the event shape {event} or ({n}, *{event}) (one row per sample), "
                         f"got {shape}")


def _host_or_backend(value, be, dtype):
    """A host array or a backend array as a backend array of ``dtype``."""
    return be.asarray(value if is_array(value) else np.asarray(value), dtype=dtype)


class Measurement:
    """Base: ``bind(backend, dtype, n)`` -> a bound measurement with ``project(x, m, s, z)``.

    Every measurement also states itself as y = A x(0) + σ_y n on flattened samples: host
    float64 ``A`` (d_y, D), host ``y`` (d_y,) or (n, d_y), float ``sigma_y`` ≥ 0.
    """

    sigma_y: float = 0.0

    def bind(self, backend, dtype, n: int):
        raise NotImplementedError

    def check(self, event_shape) -> None:
        """Raise ValueError if the measurement does not fit samples of ``event_shape``."""


class Inpainting(Measurement):
    """Known coordinates/pixels: ``mask`` (1 known, 0 unknown) and ``y`` their values.

    ``mask`` has the event shape or (n, *event); ``y`` has (n, *event) or the event shape
    (its values where mask = 0 are ignored). Projection: x ← (1 − M) x + M (m y + s z).
    """

    def __init__(self, mask, y, *, sigma_y: float = 0.0):
        self.mask, self.values, self.sigma_y = mask, y, _sigma_y(sigma_y)
        mshape, yshape = tuple(np.shape(mask)), tuple(np.shape(y))
        if not mshape or not yshape:
            raise ValueError("mask and y must be arrays of the event shape or (n, *event)")
        # A fractional mask would blend the measurement into the sample: refuse it here.
        m = mask if is_array(mask) else np.asarray(mask, dtype=np.float64)
        v.array_all("mask", m, (m == 0) | (m == 1), "0 or 1 everywhere (1 known, 0 unknown)")
        v.finite_array("y", y if is_array(y) else np.asarray(y, dtype=np.float64))
        self._shapes = mshape, yshape

    def check(self, event_shape):
        ev = tuple(event_shape)
        for name, sh in zip(("mask", "y"), self._shapes):
            if sh != ev and sh[1:] != ev:
                raise ValueError(f"{name} must have the event shape {ev} or (n, *{ev}), got {sh}")
        self._event = ev

    def bind(self, backend, dtype, n):
        event = getattr(self, "_event", None)  # known once check() has run
        if event is not None:
            for name, sh in zip(("mask", "y"), self._shapes):
                _check_rows(name, sh, event, n)
        mask = _host_or_backend(self.mask, backend, dtype)
        y = _host_or_backend(self.values, backend, dtype)
        return _BoundInpainting(mask, y * mask)

    def _keep(self):
        mask = _host(self.mask)
        if mask.shape != getattr(self, "_event", mask.shape):
            raise ValueError("A needs one mask shared by all samples (the event shape), "
                             f"got mask of shape {mask.shape}")
        return mask.reshape(-1) == 1

    @property
    def A(self):
        """The rows of the identity at the known coordinates: (#known, D)."""
        keep = self._keep()
        return np.eye(keep.size)[keep]

    @property
    def y(self):
        """The known values on flattened samples: (#known,) or (n, #known)."""
        keep, y = self._keep(), _host(self.values)
        return y.reshape(-1)[keep] if y.size == keep.size else y.reshape(y.shape[0], -1)[:, keep]


class _BoundInpainting:
    def __init__(self, mask, ym):
        self.mask, self.ym = mask, ym

    def project(self, x, m, s, z):
        m, s = per_sample(m, x), per_sample(s, x)
        return x + self.mask * (m * self.ym + s * z - x)


# The grey axis and two chroma axes: an orthonormal basis of RGB (rows).
GRAY_DECOUPLING = np.array([
    [1.0, 1.0, 1.0],
    [1.0, -1.0, 0.0],
    [1.0, 1.0, -2.0],
]) / np.sqrt([[3.0], [2.0], [6.0]])


class Colorization(Measurement):
    """Known grey-scale ``gray`` = mean over the 3 channels (axis 1 of x): shape (n, *rest) or
    rest, for x of shape (n, 3, *rest) — images (n, 3, H, W) or points (n, 3).

    In the orthogonal decoupling ``GRAY_DECOUPLING`` (rows q₀ = (1,1,1)/√3, chroma q₁, q₂) the
    grey coordinate q₀ᵀx = √3 · gray is measured: x ← x + q₀ (m √3 gray + s q₀ᵀz − q₀ᵀx).
    """

    def __init__(self, gray, *, sigma_y: float = 0.0):
        self.gray, self.sigma_y = gray, _sigma_y(sigma_y)

    def check(self, event_shape):
        ev = tuple(event_shape)
        if not ev or ev[0] != 3:
            raise ValueError(f"colorization needs 3 channels on axis 1, got event shape {ev}")
        gs = tuple(np.shape(self.gray))
        if gs != ev[1:] and gs[1:] != ev[1:]:
            raise ValueError(f"gray must have shape {ev[1:]} or (n, *{ev[1:]}), got {gs}")
        self._rest = ev[1:]

    def bind(self, backend, dtype, n):
        gs = tuple(np.shape(self.gray))
        if getattr(self, "_rest", None) is not None:
            _check_rows("gray", gs, self._rest, n)
        g = _host_or_backend(self.gray, backend, dtype) * math.sqrt(3.0)
        return _BoundColorization(g)

    def _R(self):
        rest = getattr(self, "_rest", None)
        return math.prod(rest if rest is not None else np.shape(self.gray))

    @property
    def A(self):
        """The channel mean: A[r, c R + r] = 1/3 for x flattened from (3, *rest), R = prod(rest)."""
        R = self._R()
        return np.kron(np.full((1, 3), 1.0 / 3.0), np.eye(R))

    @property
    def y(self):
        """The grey values flattened: (R,) or (n, R)."""
        g, R = _host(self.gray), self._R()
        return g.reshape(-1) if g.size == R else g.reshape(g.shape[0], -1)


class _BoundColorization:
    def __init__(self, g):
        self.g = g

    def project(self, x, m, s, z):
        xp = namespace(x)
        q0x = xp.sum(x, axis=1) / math.sqrt(3.0)
        q0z = xp.sum(z, axis=1) / math.sqrt(3.0)
        m, s = per_sample(m, q0x), per_sample(s, q0x)
        d = (m * self.g + s * q0z - q0x) / math.sqrt(3.0)  # q₀ ⊗ (…): the same change in each channel
        return x + xp.expand_dims(d, axis=1)


class LinearInverse(Measurement):
    """y = A x(0) (+ noise) for a matrix ``A`` (d_y, D) acting on flattened samples (D = the event
    size), ``y`` of shape (d_y,) or (n, d_y); ``lam`` λ ∈ (0, 1] the mixing weight.

    A = U Σ V_rᵀ (thin SVD on the host, singular values below ``rcond``·σ_max dropped);
    ỹ = Σ⁻¹ Uᵀ y; projection x ← x + λ V_r (m ỹ + s V_rᵀ z − V_rᵀ x). With λ = 1 and A the
    rows of the identity this is :class:`Inpainting`.

    Noisy y = A x(0) + σ_y n (Song et al. 2022): since A z = U Σ V_rᵀ z, the projection is
    x ← x + λ A⁺(y_t − A x) with y_t = m(t) y + s(t) A z, the λ-mix in measurement space;
    λ < 1 leaves room for the noise σ_y in y (``sigma_y`` is recorded, not used by it).
    """

    def __init__(self, A, y, *, lam: float = 1.0, rcond: float = 1e-10, sigma_y: float = 0.0):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] < 1:
            raise ValueError(f"A must be a matrix (d_y, D), got shape {A.shape}")
        ys = tuple(np.shape(y))
        if ys not in ((A.shape[0],),) and ys[1:] != (A.shape[0],):
            raise ValueError(f"y must have shape ({A.shape[0]},) or (n, {A.shape[0]}), got {ys}")
        U, S, Vt = np.linalg.svd(A, full_matrices=False)
        keep = S > rcond * S.max()
        self.A, self.y, self.lam, self.sigma_y = A, y, _lam(lam), _sigma_y(sigma_y)
        self._to_row = (U[:, keep] / S[keep]).copy()  # ỹ = y @ (U Σ⁻¹)
        self._V = Vt[keep].T.copy()  # (D, r)

    def check(self, event_shape):
        D = math.prod(event_shape)
        if self.A.shape[1] != D:
            raise ValueError(f"A must have {D} columns (the flattened event size), got {self.A.shape[1]}")

    def bind(self, backend, dtype, n):
        _check_rows("y", tuple(np.shape(self.y)), (self.A.shape[0],), n)
        y = _host_or_backend(self.y, backend, dtype)
        yt = y @ backend.asarray(self._to_row, dtype=dtype)
        return _BoundLinear(yt, backend.asarray(self._V, dtype=dtype), self.lam)


class _BoundLinear:
    def __init__(self, yt, V, lam):
        self.yt, self.V, self.lam = yt, V, lam

    def project(self, x, m, s, z):
        xp = namespace(x)
        n = x.shape[0]
        xf, zf = xp.reshape(x, (n, -1)), xp.reshape(z, (n, -1))
        m, s = per_sample(m, xf), per_sample(s, xf)
        d = (m * self.yt + s * (zf @ self.V) - xf @ self.V) @ self.V.T
        return x + self.lam * xp.reshape(d, x.shape)


__all__ = ["GRAY_DECOUPLING", "Colorization", "Inpainting", "LinearInverse", "Measurement"]
