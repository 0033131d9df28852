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

from . import validation as v
from ._arrays import as_time, is_array, namespace, per_sample
from .backend import get_backend
from .sde import SDE


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
        means = v.host_array("means", means, (None, None))
        K, D = means.shape
        weights = v.host_array("weights", weights, (K,))
        if not np.all(weights > 0) or abs(weights.sum() - 1.0) > 1e-9:
            raise ValueError(f"weights must be positive and sum to 1, got {weights.tolist()}")
        covs = v.host_array("covs", covs, (K, D, D))
        lam, U = v.spd_matrices("covs", covs)
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
        v.choice("name", name, ("8-ring", "5x5-grid", "16d"))

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

    # -- classes: sets of components (controllable generation) ----------------------
    def _classes(self, classes, like):
        """``classes`` (K,) ints in 0..C−1 (default: class k = component k) as host and array."""
        host = np.arange(self.n_components) if classes is None else np.asarray(classes)
        if host.shape != (self.n_components,) or not np.issubdtype(host.dtype, np.integer) or host.min() < 0:
            raise ValueError(f"classes must be {self.n_components} non-negative ints (a class per component), got {classes!r}")
        import array_api_compat

        xp = namespace(like)
        return host, xp.asarray(host, dtype=xp.int32, device=array_api_compat.device(like))  # int32: JAX without x64

    def class_log_probs(self, x, t=None, sde=None, classes=None):
        """The exact time-dependent classifier log p_t(c | x) = log Σ_{k ∈ c} r_k(x), r_k the
        responsibilities under p_t, for the classes c = 0..C−1 that ``classes`` (K,)
        assigns the components to; shape (n, C)."""
        xp = namespace(x)
        host, cls = self._classes(classes, x)
        logits, _, _ = self._whitened(x, t, sde)
        log_r = logits - self._logsumexp(xp, logits)[:, None]
        cols = []
        for c in range(int(host.max()) + 1):
            member = cls == c
            if not bool(np.any(host == c)):
                raise ValueError(f"class {c} has no component (classes must name 0..C−1)")
            masked = xp.where(member[None, :], log_r, xp.full_like(log_r, -math.inf))
            cols.append(self._logsumexp(xp, masked))
        return xp.stack(cols, axis=1)

    def class_score(self, x, t=None, sde=None, labels=0, classes=None):
        """The exact classifier gradient ∇ₓ log p_t(c | x) for class labels c (an int or (n,)):

            p_t(c | x) = Σ_{k∈c} r_k,   ∇ₓ log p_t(c | x) = Σ_{k∈c} q_k s_k − Σ_k r_k s_k,

        q_k = r_k / Σ_{j∈c} r_j the responsibilities within the class and s_k the component
        scores. ∇log p_t(x) + ∇log p_t(c | x) is then the score of the mixture restricted to
        class c (Song et al. 2021, eq. 48 with the exact classifier); shape (n, D)."""
        xp = namespace(x)
        _, cls = self._classes(classes, x)
        logits, w, _ = self._whitened(x, t, sde)
        if isinstance(labels, int) and not isinstance(labels, bool):
            member = cls[None, :] == labels
        elif getattr(labels, "shape", None) == (x.shape[0],):
            member = xp.astype(labels, xp.int32)[:, None] == cls[None, :]
        else:
            raise ValueError(f"labels must be an int or an integer array of shape ({x.shape[0]},), got {labels!r}")
        in_class = xp.where(member, logits, xp.full_like(logits, -math.inf))
        q = self._responsibilities(xp, in_class) * xp.astype(member, logits.dtype)
        r = self._responsibilities(xp, logits)
        n = x.shape[0]
        return -(xp.reshape((q - r)[:, :, None] * w, (n, -1)) @ self._params(x)["U_catT"])

    # -- exact conditionals (host-side parameters; the results are mixtures again) --------
    def restricted(self, components) -> GaussianMixture:
        """p(x | k ∈ c): the components ``components`` with weights π_k / Σ_{j∈c} π_j."""
        comps = np.asarray(components, dtype=np.int64).reshape(-1)
        if comps.size == 0 or len(set(comps.tolist())) != comps.size or comps.min() < 0 or comps.max() >= self.n_components:
            raise ValueError(f"components must be distinct indices in 0..{self.n_components - 1}, got {components!r}")
        w = self.weights[comps]
        return GaussianMixture(w / w.sum(), self.means[comps], self.covs[comps])

    def conditional(self, known_idx, x_known) -> GaussianMixture:
        """p(x_u | x_k = x_known), u the other coordinates in increasing order: the mixture with
        π'_k ∝ π_k N(x_known; μ_k,k, Σ_k,kk), μ'_k = μ_k,u + Σ_k,uk Σ_k,kk⁻¹ (x_known − μ_k,k) and
        Σ'_k = Σ_k,uu − Σ_k,uk Σ_k,kk⁻¹ Σ_k,ku. Its ``score_model(sde)`` is the exact conditional
        score ∇ log p_t(x_u(t) | x_k(0) = x_known) of the unknown coordinates."""
        known = np.asarray(known_idx, dtype=np.int64).reshape(-1)
        if known.size == 0 or len(set(known.tolist())) != known.size or known.min() < 0 or known.max() >= self.dim:
            raise ValueError(f"known_idx must be distinct indices in 0..{self.dim - 1}, got {known_idx!r}")
        if known.size == self.dim:
            raise ValueError("at least one coordinate must stay unknown")
        w, means, covs = self._condition(np.eye(self.dim)[known], x_known, 0.0)
        unknown = np.setdiff1d(np.arange(self.dim), known)
        return GaussianMixture(w, means[:, unknown], covs[:, unknown][:, :, unknown])

    def linear_posterior(self, A, y, noise_cov) -> GaussianMixture:
        """p(x | y) for the measurement y = A x + n, n ~ N(0, R) with R = ``noise_cov``
        (d_y, d_y) positive definite (or a number: R = noise_cov · I). Per component, with
        S_k = A Σ_k Aᵀ + R:

            π'_k ∝ π_k N(y; A μ_k, S_k),   μ'_k = μ_k + Σ_k Aᵀ S_k⁻¹ (y − A μ_k),
            Σ'_k = Σ_k − Σ_k Aᵀ S_k⁻¹ A Σ_k.

        Its ``score_model(sde)`` is the exact conditional score ∇ log p_t(x(t) | y): the
        conditional reverse-time SDE with it samples p(x | y) exactly. (Noiseless
        measurements: ``conditional`` in the basis of A's SVD.)"""
        return GaussianMixture(*self._condition(A, y, noise_cov))

    def _condition(self, A, y, noise_cov):
        """(weights, means, covs) of p(x | A x + n = y), n ~ N(0, R) (R may be 0)."""
        A = v.host_array("A", np.atleast_2d(np.asarray(A, dtype=np.float64)), (None, self.dim))
        y = v.host_array("y", np.reshape(y, (-1,)), (A.shape[0],))
        R = np.asarray(noise_cov, dtype=np.float64)
        R = v.host_array("noise_cov", R * np.eye(A.shape[0]) if R.ndim == 0 else R, (A.shape[0],) * 2)
        K = self.n_components
        log_w, means, covs = np.empty(K), np.empty_like(self.means), np.empty_like(self.covs)
        for k in range(K):
            S = A @ self.covs[k] @ A.T + R
            L = np.linalg.cholesky(S)
            r = np.linalg.solve(L, y - A @ self.means[k])
            log_w[k] = np.log(self.weights[k]) - 0.5 * r @ r - np.log(np.diag(L)).sum()
            gain = np.linalg.solve(S, A @ self.covs[k]).T  # Σ_k Aᵀ S_k⁻¹
            means[k] = self.means[k] + gain @ (y - A @ self.means[k])
            c = self.covs[k] - gain @ A @ self.covs[k]
            covs[k] = 0.5 * (c + c.T)
        w = np.exp(log_w - log_w.max())
        return w / w.sum(), means, covs

    # -- exact samples ----------------------------------------------------------
    def sample(self, n: int, *, backend=None, seed: int = 0, key=None, dtype=None, t=None, sde=None, offset: int = 0):
        """Exact samples of p_0 (or of p_t under ``sde``): component by inverse CDF, then
        ``m (μ_k + U_k √Λ_k z) + s z'``. Row i depends only on (seed, offset + i)."""
        v.positive_int("n", n)
        if sde is None and t is not None and not (isinstance(t, (int, float)) and t == 0):
            raise ValueError("sde is required when t is given (p_t depends on the SDE)")
        if sde is not None:
            v.instance("sde", sde, SDE, "a scorecore SDE (VESDE, VPSDE, SubVPSDE)")
            if t is None:
                raise ValueError("t is required with sde")
            if is_array(t):
                v.times_array("t", t, sde.T)
            else:
                t = v.time_in("t", t, sde.T)
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
        zt = be.normal(k_t, (n, self.dim), dtype, offset=offset)
        return sde.perturb(x, t, zt)


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


__all__ = ["GaussianMixture", "MixtureScore"]
