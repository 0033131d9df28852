"""Empirical order of convergence of the deterministic fast samplers on a single Gaussian,
where the probability flow is linear and its solution is known in closed form:
x(t) = m(t) μ + (x(T) − m(T) μ) √(m(t)² v + s(t)²)/√(m(T)² v + s(T)²) for p_0 = N(μ, v I)."""

from __future__ import annotations

import numpy as np
import pytest

import scorecore as sc

MU, V = np.array([1.0, -0.5]), 0.25
GAUSS = sc.GaussianMixture(np.array([1.0]), MU[None], (V * np.eye(2))[None])
SDES = [(sc.VPSDE(), 1e-3), (sc.VESDE(), 1e-5), (sc.SubVPSDE(), 1e-3)]


def exact_flow(sde, x_T, t):
    (m_T, s_T), (m, s) = ([float(a) for a in sde.marginal(u)] for u in (sde.T, t))
    return m * MU + (x_T - m_T * MU) * np.sqrt(m * m * V + s * s) / np.sqrt(m_T * m_T * V + s_T * s_T)


# (sampler, options, step counts N, 2N, 4N, theoretical order, whether it ends at σ = 0)
CASES = [
    ("edm", {"sigma_min": 1e-4}, (16, 32, 64), 2, True),  # σ_min² ≈ 1e-8: the last Euler step is exact enough
    ("ddim", {}, (40, 80, 160), 1, False),
    ("dpmpp_2m", {}, (40, 80, 160), 2, False),
]


@pytest.mark.parametrize("name,options,steps,order,to_zero", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("sde,eps", SDES, ids=["VP", "VE", "subVP"])
def test_order_of_convergence(name, options, steps, order, to_zero, sde, eps):
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((8, 2))
    truth = exact_flow(sde, x_T, 0.0 if to_zero else eps)
    errors = []
    for n in steps:
        x = sc.sample(GAUSS.score_model(sde), sde, (8, 2), sampler=name, steps=n, x_init=x_T, eps=eps,
                      progress=False, **options)
        errors.append(np.abs(x - truth).max())
    slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    # Measured: EDM 2.2, 2.1; DDIM 0.98, 0.99; DPM-Solver++(2M) 1.9–2.0 on the three SDEs.
    np.testing.assert_allclose(slopes, order, atol=0.3 if order == 2 else 0.1)
    assert errors[-1] < 0.03
