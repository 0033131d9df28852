"""Gaussian mixtures: exact densities, scores, Hessians, samples and noised marginals.

p(x) = sum_k pi_k N(x; mu_k, Sigma_k).  Everything is written per component from the
closed forms so it shares nothing with a vectorised implementation under test.
"""
import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal


class GaussianMixture:
    """p(x) = sum_k pi_k N(x; mu_k, Sigma_k) with weights (K,), means (K, D), covs (K, D, D)."""

    def __init__(self, weights, means, covs):
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        covs = np.asarray(covs, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0:
            raise ValueError(f"weights must be a non-empty 1-D array, got shape {weights.shape}")
        K = weights.shape[0]
        if means.ndim != 2 or means.shape[0] != K:
            raise ValueError(f"means must have shape (K={K}, D), got {means.shape}")
        D = means.shape[1]
        if covs.shape != (K, D, D):
            raise ValueError(f"covs must have shape ({K}, {D}, {D}), got {covs.shape}")
        if np.any(weights < 0) or not np.all(np.isfinite(weights)):
            raise ValueError("weights must be finite and non-negative")
        if not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-10):
            raise ValueError(f"weights must sum to 1, got {weights.sum()!r}")
        chols = np.empty_like(covs)
        for k in range(K):
            if not np.allclose(covs[k], covs[k].T, rtol=1e-12, atol=1e-12):
                raise ValueError(f"covs[{k}] is not symmetric")
            try:
                chols[k] = np.linalg.cholesky(covs[k])
            except np.linalg.LinAlgError:
                raise ValueError(f"covs[{k}] is not positive definite") from None
        self.weights, self.means, self.covs, self.chols = weights, means, covs, chols
        self.n_components, self.dim = K, D
        self._precisions = np.array([np.linalg.inv(c) for c in covs])

    # ------------------------------------------------------------------ densities
    def _check_x(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {x.shape}")
        return x

    def component_log_probs(self, x):
        """log pi_k + log N(x; mu_k, Sigma_k), shape (n, K)."""
        x = self._check_x(x)
        out = np.empty((x.shape[0], self.n_components))
        for k in range(self.n_components):
            out[:, k] = np.log(self.weights[k]) + np.atleast_1d(
                multivariate_normal.logpdf(x, self.means[k], self.covs[k]))
        return out

    def log_prob(self, x):
        """log p(x) = log sum_k pi_k N(x; mu_k, Sigma_k), shape (n,)."""
        return logsumexp(self.component_log_probs(x), axis=1)

    def posterior_labels(self, x):
        """r_k(x) = p(k | x) = pi_k N(x; mu_k, Sigma_k) / p(x), shape (n, K)."""
        lp = self.component_log_probs(x)
        return np.exp(lp - logsumexp(lp, axis=1, keepdims=True))

    def _component_scores(self, x):
        """s_k(x) = -Sigma_k^{-1} (x - mu_k), shape (n, K, D)."""
        x = self._check_x(x)
        out = np.empty((x.shape[0], self.n_components, self.dim))
        for k in range(self.n_components):
            out[:, k, :] = -(x - self.means[k]) @ self._precisions[k].T
        return out

    def score(self, x):
        """grad_x log p(x) = sum_k r_k(x) s_k(x), shape (n, D)."""
        r = self.posterior_labels(x)
        sk = self._component_scores(x)
        return np.einsum("nk,nkd->nd", r, sk)

    def hessian(self, x):
        """grad^2 log p(x) = sum_k r_k (-Sigma_k^{-1} + s_k s_k^T) - s s^T, shape (n, D, D)."""
        r = self.posterior_labels(x)
        sk = self._component_scores(x)
        n = r.shape[0]
        H = np.zeros((n, self.dim, self.dim))
        for i in range(n):
            s = r[i] @ sk[i]
            for k in range(self.n_components):
                H[i] += r[i, k] * (-self._precisions[k] + np.outer(sk[i, k], sk[i, k]))
            H[i] -= np.outer(s, s)
        return H

    def laplacian(self, x):
        """Delta log p(x) = tr grad^2 log p(x) = div score, shape (n,)."""
        return np.trace(self.hessian(x), axis1=1, axis2=2)

    # ------------------------------------------------------------------ sampling
    def sample_with_labels(self, n, rng):
        """Exact draws: k ~ Categorical(pi), x = mu_k + chol(Sigma_k) z; returns (x (n, D), k (n,))."""
        labels = rng.choice(self.n_components, size=n, p=self.weights)
        z = rng.standard_normal((n, self.dim))
        x = np.empty((n, self.dim))
        for i in range(n):
            k = labels[i]
            x[i] = self.means[k] + self.chols[k] @ z[i]
        return x, labels

    def sample(self, n, rng):
        """Exact draws x ~ p, shape (n, D)."""
        return self.sample_with_labels(n, rng)[0]

    # ------------------------------------------------------------------ moments
    def mean(self):
        """E[x] = sum_k pi_k mu_k."""
        return self.weights @ self.means

    def cov(self):
        """Cov[x] = sum_k pi_k (Sigma_k + mu_k mu_k^T) - E[x] E[x]^T."""
        mu = self.mean()
        second = sum(self.weights[k] * (self.covs[k] + np.outer(self.means[k], self.means[k]))
                     for k in range(self.n_components))
        return second - np.outer(mu, mu)

    # ------------------------------------------------------------------ noising
    def perturbed(self, mean_coeff, std):
        """Law of x(t) = m x(0) + s z, z ~ N(0, I): sum_k pi_k N(m mu_k, m^2 Sigma_k + s^2 I)."""
        m, s = float(mean_coeff), float(std)
        covs = np.array([m * m * c + s * s * np.eye(self.dim) for c in self.covs])
        return GaussianMixture(self.weights.copy(), m * self.means, covs)

    def at_time(self, sde, t):
        """Exact marginal p_t of the forward SDE started from this mixture (scalar t)."""
        return self.perturbed(float(sde.mean_coeff(t)), float(sde.std(t)))

    def posterior_mean_x0(self, xt, mean_coeff, std):
        """E[x(0) | x(t) = xt] for x(t) = m x(0) + s z, by Gaussian conditioning per component:
        sum_k r_k(xt) [mu_k + m Sigma_k (m^2 Sigma_k + s^2 I)^{-1} (xt - m mu_k)], r_k under p_t."""
        xt = self._check_x(xt)
        m, s = float(mean_coeff), float(std)
        r = self.perturbed(m, s).posterior_labels(xt)
        out = np.zeros_like(xt)
        for k in range(self.n_components):
            C = m * m * self.covs[k] + s * s * np.eye(self.dim)
            gain = m * self.covs[k] @ np.linalg.inv(C)
            for i in range(xt.shape[0]):
                out[i] += r[i, k] * (self.means[k] + gain @ (xt[i] - m * self.means[k]))
        return out

    def _per_time(self, method, x, sde, t):
        # One time per sample: group samples sharing a time so each p_t is built once.
        x = self._check_x(x)
        t = np.asarray(t, dtype=np.float64)
        if t.ndim == 0:
            return getattr(self.at_time(sde, float(t)), method)(x)
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be scalar or shape ({x.shape[0]},), got {t.shape}")
        out = None
        for tu in np.unique(t):
            idx = np.nonzero(t == tu)[0]
            val = getattr(self.at_time(sde, float(tu)), method)(x[idx])
            if out is None:
                out = np.empty((x.shape[0],) + val.shape[1:])
            out[idx] = val
        return out

    def log_prob_t(self, x, sde, t):
        """log p_t(x) with t scalar or (n,) (one time per sample)."""
        return self._per_time("log_prob", x, sde, t)

    def score_t(self, x, sde, t):
        """grad_x log p_t(x) with t scalar or (n,)."""
        return self._per_time("score", x, sde, t)

    def laplacian_t(self, x, sde, t):
        """Delta log p_t(x) (divergence of the true score) with t scalar or (n,)."""
        return self._per_time("laplacian", x, sde, t)

    # ------------------------------------------------------------------ marginals / conditionals
    def marginal(self, idx):
        """Marginal of coordinates idx: sum_k pi_k N(mu_k[idx], Sigma_k[idx, idx])."""
        idx = np.atleast_1d(np.asarray(idx, dtype=int))
        return GaussianMixture(self.weights.copy(), self.means[:, idx],
                               self.covs[:, idx][:, :, idx])

    def conditional(self, known_idx, x_known):
        """p(x_u | x_k = x_known), u = the remaining coordinates in increasing order.

        A mixture with weights pi_k' proportional to pi_k N(x_known; mu_k,k, Sigma_k,kk),
        means mu_k,u + Sigma_k,uk Sigma_k,kk^{-1} (x_known - mu_k,k) and
        covariances Sigma_k,uu - Sigma_k,uk Sigma_k,kk^{-1} Sigma_k,ku.
        """
        known = np.atleast_1d(np.asarray(known_idx, dtype=int))
        x_known = np.atleast_1d(np.asarray(x_known, dtype=np.float64))
        if known.ndim != 1 or len(np.unique(known)) != known.size:
            raise ValueError("known_idx must be a 1-D array of distinct indices")
        if np.any(known < 0) or np.any(known >= self.dim):
            raise ValueError(f"known_idx out of range for D={self.dim}")
        if x_known.shape != known.shape:
            raise ValueError(f"x_known must have shape {known.shape}, got {x_known.shape}")
        unknown = np.array([i for i in range(self.dim) if i not in set(known.tolist())], dtype=int)
        if unknown.size == 0:
            raise ValueError("at least one coordinate must remain unknown")
        K = self.n_components
        log_w = np.empty(K)
        means = np.empty((K, unknown.size))
        covs = np.empty((K, unknown.size, unknown.size))
        for k in range(K):
            mu_k, mu_u = self.means[k, known], self.means[k, unknown]
            S = self.covs[k]
            S_kk = S[np.ix_(known, known)]
            S_uk = S[np.ix_(unknown, known)]
            S_uu = S[np.ix_(unknown, unknown)]
            log_w[k] = np.log(self.weights[k]) + multivariate_normal.logpdf(x_known, mu_k, S_kk)
            gain = np.linalg.solve(S_kk, S_uk.T).T  # Sigma_uk Sigma_kk^{-1}
            means[k] = mu_u + gain @ (x_known - mu_k)
            c = S_uu - gain @ S_uk.T
            covs[k] = 0.5 * (c + c.T)  # symmetrise away round-off so validation passes
        weights = np.exp(log_w - logsumexp(log_w))
        return GaussianMixture(weights / weights.sum(), means, covs)

    # ------------------------------------------------------------------ exact conditionals (controllable generation)
    def restricted(self, components):
        """The mixture restricted to a set of components (one class): p(x | k in c),
        weights pi_k / sum_{j in c} pi_j for k in c."""
        comps = np.atleast_1d(np.asarray(components, dtype=int))
        if comps.ndim != 1 or comps.size == 0 or len(np.unique(comps)) != comps.size:
            raise ValueError("components must be a non-empty 1-D array of distinct indices")
        if np.any(comps < 0) or np.any(comps >= self.n_components):
            raise ValueError(f"components out of range for K={self.n_components}")
        w = self.weights[comps]
        return GaussianMixture(w / w.sum(), self.means[comps].copy(), self.covs[comps].copy())

    def class_posterior(self, x, classes):
        """p(c | x) = sum_{k in c} p(k | x) for classes (K,) assigning components to classes
        0..C-1; shape (n, C)."""
        classes = np.asarray(classes, dtype=int)
        r = self.posterior_labels(x)
        out = np.zeros((r.shape[0], classes.max() + 1))
        for k in range(self.n_components):
            out[:, classes[k]] += r[:, k]
        return out

    def linear_transform(self, M):
        """Law of M x for an invertible (D, D) matrix M: sum_k pi_k N(M mu_k, M Sigma_k M^T)."""
        M = np.asarray(M, dtype=np.float64)
        if M.shape != (self.dim, self.dim):
            raise ValueError(f"M must have shape ({self.dim}, {self.dim}), got {M.shape}")
        covs = np.array([M @ c @ M.T for c in self.covs])
        return GaussianMixture(self.weights.copy(), self.means @ M.T, 0.5 * (covs + np.swapaxes(covs, 1, 2)))

    def linear_posterior(self, A, y, noise_cov):
        """p(x | y) for y = A x + n, n ~ N(0, R) with R positive definite: per component,
        S_k = A Sigma_k A^T + R, weight pi_k N(y; A mu_k, S_k) (normalised), mean
        mu_k + Sigma_k A^T S_k^{-1} (y - A mu_k), covariance Sigma_k - Sigma_k A^T S_k^{-1} A Sigma_k."""
        A = np.atleast_2d(np.asarray(A, dtype=np.float64))
        y = np.atleast_1d(np.asarray(y, dtype=np.float64))
        R = np.atleast_2d(np.asarray(noise_cov, dtype=np.float64))
        if A.shape[1] != self.dim or y.shape != (A.shape[0],) or R.shape != (A.shape[0], A.shape[0]):
            raise ValueError(f"need A (m, {self.dim}), y (m,), noise_cov (m, m); got {A.shape}, {y.shape}, {R.shape}")
        K = self.n_components
        log_w, means, covs = np.empty(K), np.empty((K, self.dim)), np.empty((K, self.dim, self.dim))
        for k in range(K):
            S = A @ self.covs[k] @ A.T + R
            log_w[k] = np.log(self.weights[k]) + multivariate_normal.logpdf(y, A @ self.means[k], S)
            gain = self.covs[k] @ A.T @ np.linalg.inv(S)
            means[k] = self.means[k] + gain @ (y - A @ self.means[k])
            c = self.covs[k] - gain @ A @ self.covs[k]
            covs[k] = 0.5 * (c + c.T)
        w = np.exp(log_w - logsumexp(log_w))
        return GaussianMixture(w / w.sum(), means, covs)
