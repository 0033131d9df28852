"""Shared helpers for the oracle's self-tests (a plain module, not a conftest, so that
nothing here changes global Hypothesis or pytest state for other test directories)."""
import numpy as np
from hypothesis import settings

# Applied per test rather than as a loaded profile so other suites keep their own settings.
ORACLE_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def random_mixture(rng, D, K=None, spread=3.0):
    """A well-conditioned random mixture (covariances with eigenvalues in ~[0.2, 3])."""
    from scorecore_reference import GaussianMixture
    K = K if K is not None else int(rng.integers(1, 5))
    w = rng.dirichlet(np.ones(K)) * 0.9 + 0.1 / K
    means = spread * rng.standard_normal((K, D))
    covs = []
    for _ in range(K):
        A = rng.standard_normal((D, D)) * 0.5
        covs.append(A @ A.T + 0.2 * np.eye(D))
    return GaussianMixture(w / w.sum(), means, np.array(covs))
