"""Empirical order of convergence of every deterministic solver on a Gaussian target, where
the probability flow is linear and its solution is known in closed form (``gaussian_flow``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.ring import gaussian, gaussian_flow

import scorecore as sc

MU, LAM = np.array([1.0, -0.5, 2.0]), np.array([0.3, 1.0, 0.05]) ** 2
SDES = {"VP": sc.VPSDE(), "VE": sc.VESDE(), "subVP": sc.SubVPSDE()}

# (sampler, options, step counts N, 2N, 4N, theoretical order, eps (None: the default), end at σ = 0)
CASES = [
    ("euler", {}, (40, 80, 160), 1, 0.01, False),
    ("heun", {}, (20, 40, 80), 2, 0.01, False),
    ("rk4", {}, (40, 80, 160), 4, 0.01, False),
    ("edm", {"sigma_min": 1e-4}, (16, 32, 64), 2, None, True),  # σ_min² ≈ 1e-8: the last Euler step is exact enough
    ("ddim", {}, (40, 80, 160), 1, None, False),
    ("dpmpp_2m", {}, (40, 80, 160), 2, None, False),
]


# The fixed-step ODE solvers run to eps = 0.01 under VP and VE (under sub-VP these step counts
# are pre-asymptotic: Heun's slopes read 3.0, 2.5).
PAIRS = [(case, sde) for case in CASES for sde in SDES if case[4] is None or sde != "subVP"]


@pytest.mark.parametrize("case,sde", PAIRS, ids=[f"{c[0]}-{s}" for c, s in PAIRS])
def test_order_of_convergence(case, sde):
    name, options, steps, order, eps, to_zero = case
    sde = SDES[sde]
    eps = eps or sc.api.default_eps(sde)
    x_T = sde.prior_std * np.random.default_rng(0).standard_normal((8, 3))
    truth = gaussian_flow(sde, MU, LAM, x_T, 0.0 if to_zero else eps)
    errors = [np.abs(sc.sample(gaussian(MU, LAM).score_model(sde), sde, (8, 3), sampler=name, steps=n, x_init=x_T,
                               eps=eps, progress=False, **options) - truth).max() for n in steps]
    slopes = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(p - order) < (0.1 if order == 1 else 0.35) for p in slopes), (errors, slopes)
