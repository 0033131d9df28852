"""Analytic targets: Gaussian mixtures whose every marginal p_t is known exactly.

Under a linear SDE with kernel N(m(t) x(0), s(t)² I), the mixture
``p_0 = Σ_k π_k N(μ_k, Σ_k)`` becomes ``p_t = Σ_k π_k N(m μ_k, m² Σ_k + s² I)``.
With the eigendecomposition ``Σ_k = U_k diag(λ_k) U_kᵀ`` (done once, on the host),
``C_k(t) = U_k diag(m² λ_k + s²) U_kᵀ`` for every t, so no per-time factorization
is needed. With ``y_k = U_kᵀ (x − m μ_k)`` and ``v_k = m² λ_k + s²``:

    log N_k  = −½ Σ_j y_kj² / v_kj − ½ Σ_j log v_kj − (D/2) log 2π
    log p_t  = logsumexp_k (log π_k + log N_k)
    s_k      = −C_k⁻¹ (x − m μ_k) = −U_k (y_k / v_k)
    ∇log p_t = Σ_k r_k s_k,                      r = softmax_k(log π_k + log N_k)
    ∇·∇log p_t = Σ_k r_k (−Σ_j 1/v_kj + |s_k|²) − |∇log p_t|²
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import as_time, namespace, per_sample
from .backend import get_backend


def _exp_floor(xp, a):
    """exp(a) for a ≤ 0 with a floored at −80: e⁻⁸⁰ ≈ 2·10⁻³⁵ is below float64's resolution
    next to the largest term (which is 1), and it keeps float32 results out of the denormal
    range, where vectorised exp (torch's among them) is ~10× slower."""
    return xp.exp(xp.clip(a, min=-80.0))


class GaussianMixture:
    """A mixture ``Σ_k π_k N(μ_k, Σ_k)`` in ℝ^D with full, positive-definite covariances.

    Parameters are held on the host in float64 and moved to the arrays' namespace,
    device and dtype when used, so one target serves every backend.
    """

    def __init__(self, weights, means, covs):
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        covs = np.asarray(covs, dtype=np.float64)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {means.shape}")
        K, D = means.shape
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape (K,) = ({K},), got {weights.shape}")
        if not (np.all(np.isfinite(weights)) and np.all(weights > 0)):
            raise ValueError("weights must be finite and positive")
        if abs(weights.sum() - 1.0) > 1e-9:
            raise ValueError(f"weights must sum to 1, got {weights.sum()}")
        if covs.shape != (K, D, D):
            raise ValueError(f"covs must have shape (K, D, D) = ({K}, {D}, {D}), got {covs.shape}")
        if not np.all(np.isfinite(means)) or not np.all(np.isfinite(covs)):
            raise ValueError("means and covs must be finite")
        if not np.allclose(covs, np.swapaxes(covs, 1, 2), rtol=0, atol=1e-12 * np.abs(covs).max()):
            raise ValueError("covs must be symmetric")
        lam, U = np.linalg.eigh(covs)
        if np.any(lam <= 0):
            raise ValueError("covs must be positive definite")
        self.weights, self.means, self.covs = weights, means, covs
        self.dim, self.n_components = D, K
        self._host = {
            "log_w": np.log(weights),
            "means": means,
            "lam": lam,
            "U_cat": np.concatenate(list(U), axis=1),  # (D, K·D): [U_1 … U_K]
            "U_catT": np.concatenate(list(U), axis=1).T.copy(),
            "UT_means": np.einsum("kde,kd->ke", U, means),  # U_kᵀ μ_k
            "chol": U * np.sqrt(lam)[:, None, :],  # Σ_k = (U√Λ)(U√Λ)ᵀ
            "cum_w": np.cumsum(weights)[:-1],
        }
        self._cache: dict = {}

    def __repr__(self):
        return f"GaussianMixture(K={self.n_components}, D={self.dim})"

    # -- named examples -----------------------------------------------------------
    @classmethod
    def example(cls, name: str) -> GaussianMixture:
        """A named mixture: ``"8-ring"``, ``"5x5-grid"`` or ``"16d"``.

        * 8-ring: 8 equal components on a circle of radius 4, each elongated along the
          tangent (std 0.4) and thin across it (std 0.15).
        * 5x5-grid: 25 components on {−4, −2, 0, 2, 4}², isotropic std 0.25, unequal
          weights ∝ 1 + (i + j) mod 3.
        * 16d: 6 components in ℝ¹⁶ with means ~ N(0, 2² I) and random full covariances
          A Aᵀ/16 + 0.05 I (A standard normal), weights from a Dirichlet(2) draw; seed 16.
        """
        if name == "8-ring":
            ang = 2 * np.pi * np.arange(8) / 8
            means = 4.0 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
            tangent = np.stack([-np.sin(ang), np.cos(ang)], axis=1)
            radial = np.stack([np.cos(ang), np.sin(ang)], axis=1)
            covs = 0.4**2 * tangent[:, :, None] * tangent[:, None, :] + 0.15**2 * radial[:, :, None] * radial[:, None, :]
            return cls(np.full(8, 1 / 8), means, covs)
        if name == "5x5-grid":
            g = np.arange(-4.0, 5.0, 2.0)
            means = np.array([[a, b] for a in g for b in g])
            w = np.array([1.0 + (i + j) % 3 for i in range(5) for j in range(5)])
            covs = np.broadcast_to(0.25**2 * np.eye(2), (25, 2, 2)).copy()
            return cls(w / w.sum(), means, covs)
        if name == "16d":
            rng = np.random.default_rng(16)
            K, D = 6, 16
            means = 2.0 * rng.standard_normal((K, D))
            A = rng.standard_normal((K, D, D))
            covs = A @ np.swapaxes(A, 1, 2) / D + 0.05 * np.eye(D)
            return cls(rng.dirichlet(np.full(K, 2.0)), means, covs)
        raise ValueError(f"name must be one of '8-ring', '5x5-grid', '16d'; got {name!r}")

    # -- parameters as arrays of the caller's kind ------------------------------
    def _params(self, like):
        import array_api_compat

        xp = namespace(like)
        dev = array_api_compat.device(like)

        def make():
            return {k: xp.asarray(v, dtype=like.dtype, device=dev) for k, v in self._host.items()}

        if dev is None:
            # No device under jax.jit: these are per-trace constants; a cached one would leak a tracer.
            return make()
        key = (xp.__name__, str(like.dtype), str(dev))
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _check_x(self, x):
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}) for this target, got {shape}")

    def _kernel(self, x, t, sde):
        if sde is None:
            if t is not None and not (isinstance(t, (int, float)) and t == 0):
                raise ValueError("sde is required when t is given (p_t depends on the SDE)")
            one = as_time(1.0, x)
            return one, 0.0 * one
        if t is None:
            raise ValueError("t is required with sde")
        return sde.marginal(as_time(t, x) if isinstance(t, (int, float)) else t)

    def _whitened(self, x, t, sde):
        """(log π_k + log N_k, w_k = y_k / v_k, 1/v_k), each per sample and component.

        y_k = U_kᵀ x − m U_kᵀ μ_k for all k at once is one (n, D) × (D, K·D) product.
        """
        self._check_x(x)
        xp = namespace(x)
        p = self._params(x)
        m, s = self._kernel(x, t, sde)
        m3 = per_sample(m, x)[..., None] if m.ndim else m
        s3 = per_sample(s, x)[..., None] if s.ndim else s
        n, K, D = x.shape[0], self.n_components, self.dim
        y = xp.reshape(x @ p["U_cat"], (n, K, D)) - m3 * p["UT_means"][None, ...]
        inv_v = 1.0 / (m3 * m3 * p["lam"][None, ...] + s3 * s3)
        w = y * inv_v
        logn = -0.5 * xp.sum(y * w, axis=2) + 0.5 * xp.sum(xp.log(inv_v), axis=2)
        logits = p["log_w"][None, :] + logn - 0.5 * D * math.log(2 * math.pi)
        return logits, w, inv_v

    @staticmethod
    def _logsumexp(xp, a):
        mx = xp.max(a, axis=1, keepdims=True)
        return xp.reshape(mx, (-1,)) + xp.log(xp.sum(_exp_floor(xp, a - mx), axis=1))

    def _responsibilities(self, xp, logits):
        return _exp_floor(xp, logits - self._logsumexp(xp, logits)[:, None])

    def log_prob(self, x, t=None, sde=None):
        """log p_t(x) (log p_0 when ``sde`` is None); shape (n,)."""
        logits, _, _ = self._whitened(x, t, sde)
        return self._logsumexp(namespace(x), logits)

    def score(self, x, t=None, sde=None):
        """∇ₓ log p_t(x) = −Σ_k r_k U_k w_k, one (n, K·D) × (K·D, D) product; shape (n, D)."""
        xp = namespace(x)
        logits, w, _ = self._whitened(x, t, sde)
        rw = self._responsibilities(xp, logits)[:, :, None] * w
        return -(xp.reshape(rw, (x.shape[0], -1)) @ self._params(x)["U_catT"])

    def divergence(self, x, t=None, sde=None):
        """∇ₓ · ∇ₓ log p_t(x) = Σ_k r_k (|w_k|² − Σ_j 1/v_kj) − |∇log p_t|², exactly
        (|s_k| = |w_k| since U_k is orthogonal); shape (n,)."""
        xp = namespace(x)
        logits, w, inv_v = self._whitened(x, t, sde)
        r = self._responsibilities(xp, logits)
        s = -(xp.reshape(r[:, :, None] * w, (x.shape[0], -1)) @ self._params(x)["U_catT"])
        per_k = xp.sum(w * w, axis=2) - xp.sum(inv_v, axis=2)
        return xp.sum(r * per_k, axis=1) - xp.sum(s * s, axis=1)

    def jvp(self, x, t, sde, v):
        """The Hessian-vector product ∇ₓ² log p_t(x) · v, exactly; shape (n, D):

            Σ_k r_k (−C_k⁻¹ v + s_k (s_kᵀ v)) − s (sᵀ v),

        in each component's eigenbasis with a_k = U_kᵀ v: C_k⁻¹ v = U_k (a_k / v_k) and
        s_k s_kᵀ v = U_k w_k (w_k · a_k). This is the Jacobian-vector product of the score."""
        self._check_x(x)
        if getattr(v, "shape", None) != x.shape:
            raise ValueError(f"v must have the shape of x, {x.shape}, got {getattr(v, 'shape', None)}")
        xp = namespace(x)
        p = self._params(x)
        logits, w, inv_v = self._whitened(x, t, sde)
        r = self._responsibilities(xp, logits)
        n = x.shape[0]
        a = xp.reshape(v @ p["U_cat"], (n, self.n_components, self.dim))
        per_k = r[:, :, None] * (w * xp.sum(w * a, axis=2, keepdims=True) - inv_v * a)
        s = -(xp.reshape(r[:, :, None] * w, (n, -1)) @ p["U_catT"])
        hv = xp.reshape(per_k, (n, -1)) @ p["U_catT"]
        return hv - s * xp.sum(s * v, axis=1, keepdims=True)

    def score_model(self, sde) -> MixtureScore:
        """The exact score s(x, t) = ∇log p_t(x) under ``sde``, as a score model."""
        return MixtureScore(self, sde)

    def responsibilities(self, x, t=None, sde=None):
        """The exact posterior over components p_t(k | x) = π_k N_k(x) / p_t(x); shape (n, K)."""
        logits, _, _ = self._whitened(x, t, sde)
        return self._responsibilities(namespace(x), logits)

    # -- exact samples ----------------------------------------------------------
    def sample(self, n: int, *, backend=None, seed: int = 0, key=None, dtype=None, t=None, sde=None, offset: int = 0):
        """Exact samples of p_0 (or of p_t under ``sde``): component by inverse CDF, then
        ``m (μ_k + U_k √Λ_k z) + s z'``. Row i depends only on (seed, offset + i)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        be = get_backend(backend)
        xp = be.xp
        k = be.key(seed) if key is None else key
        k_comp, k_z, k_t = be.split(k, 3)
        u = be.uniform(k_comp, (n, 1), dtype, offset=offset)
        z = be.normal(k_z, (n, self.dim), dtype, offset=offset)
        p = self._params(z)
        idx = xp.sum(xp.astype(u >= p["cum_w"][None, :], xp.int64), axis=1)
        mu = xp.take(p["means"], idx, axis=0)
        L = xp.take(p["chol"], idx, axis=0)
        x = mu + xp.reshape(xp.matmul(L, z[:, :, None]), z.shape)
        if sde is None:
            return x
        m, s = self._kernel(x, t, sde)
        zt = be.normal(k_t, (n, self.dim), dtype, offset=offset)
        return per_sample(m, x) * x + per_sample(s, x) * zt


class MixtureScore:
    """The exact score of a Gaussian mixture under an SDE: ``s(x, t) = ∇ₓ log p_t(x)``,
    with its exact divergence and log-density."""

    def __init__(self, target: GaussianMixture, sde):
        self.target, self.sde = target, sde
        self.event_shape = (target.dim,)

    def __call__(self, x, t):
        return self.target.score(x, t, self.sde)

    def divergence(self, x, t):
        """∇ₓ · s(x, t), exact."""
        return self.target.divergence(x, t, self.sde)

    def jvp(self, x, t, v):
        """(∂s/∂x) v = ∇ₓ² log p_t(x) · v, exact."""
        return self.target.jvp(x, t, self.sde, v)

    def log_prob(self, x, t):
        """log p_t(x), exact."""
        return self.target.log_prob(x, t, self.sde)

    def __repr__(self):
        return f"MixtureScore({self.target!r}, {self.sde!r})"
