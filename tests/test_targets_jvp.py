"""The mixture's exact Hessian-vector product (the Jacobian-vector product of its score)
against the oracle's Hessian, on NumPy and on array-api-strict."""

from __future__ import annotations

import numpy as np
import pytest
import scorecore_reference as ref
from hypothesis import given
from hypothesis import strategies as st

import scorecore as sc
from support import to_numpy

SDES = {"ve": (sc.VESDE, ref.VE), "vp": (sc.VPSDE, ref.VP), "subvp": (sc.SubVPSDE, ref.SubVP)}


def random_mixture(seed, K, D):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, D, D))
    return rng.dirichlet(np.ones(K)), 2.0 * rng.standard_normal((K, D)), A @ np.swapaxes(A, 1, 2) / D + 0.1 * np.eye(D)


@given(seed=st.integers(0, 10**6), K=st.sampled_from([1, 3, 6]), D=st.sampled_from([1, 2, 5, 16]),
       kind=st.sampled_from(sorted(SDES)), t=st.floats(0.0, 1.0))
def test_jvp_is_the_oracle_hessian_times_v(backend, seed, K, D, kind, t):
    w, mu, cov = random_mixture(seed, K, D)
    core_sde, oracle_sde = (c() for c in SDES[kind])
    oracle_t = ref.GaussianMixture(w, mu, cov).at_time(oracle_sde, t)
    rng = np.random.default_rng(seed + 1)
    x, v = 3.0 * rng.standard_normal((5, D)), rng.standard_normal((5, D))
    expected = np.einsum("nij,nj->ni", oracle_t.hessian(x), v)
    model = sc.GaussianMixture(w, mu, cov).score_model(core_sde)
    got = to_numpy(backend, model.jvp(backend.asarray(x), backend.asarray(np.full(5, t)), backend.asarray(v)))
    # Relative to the Hessian's scale ‖H‖‖v‖ per row: the sum has cancelling terms.
    scale = np.linalg.norm(oracle_t.hessian(x), axis=(1, 2)) * np.linalg.norm(v, axis=1)
    np.testing.assert_array_less(np.abs(got - expected).max(axis=1) / np.maximum(scale, 1.0), 1e-10)


def test_jvp_checks_the_shape_of_v():
    model = sc.GaussianMixture.example("8-ring").score_model(sc.VPSDE())
    with pytest.raises(ValueError, match="v must have the shape of x"):
        model.jvp(np.zeros((3, 2)), np.full(3, 0.5), np.zeros((3, 3)))
