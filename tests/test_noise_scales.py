"""NCSN noise scales and NCSNv2's rules against the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scorecore_reference as ref
from hypothesis import given
from hypothesis import strategies as st

import scorecore as sc
from scorecore import noise_scales as ns


def test_geometric_sigmas():
    s = ns.geometric_sigmas(50.0, 0.01, 10)
    assert s[0] == pytest.approx(50.0) and s[-1] == pytest.approx(0.01)
    np.testing.assert_allclose(np.array(s[:-1]) / np.array(s[1:]), (5000.0) ** (1 / 9), rtol=1e-12)


@given(D=st.integers(5, 200_000))
def test_gamma_matches_oracle(D):
    assert ns.ncsnv2_gamma(D) == pytest.approx(ref.gamma_ratio(D), rel=1e-9)


@given(gamma=st.floats(1.01, 1.5), sigma_L=st.floats(0.005, 1.0), T=st.integers(1, 20))
def test_step_size_is_as_good_as_the_oracles(gamma, sigma_L, T):
    eps = ns.ncsnv2_step_size(gamma, sigma_L, T)
    ours = abs(ref.step_size_objective(eps, gamma, sigma_L, T))
    theirs = abs(ref.step_size_objective(ref.step_size(gamma, sigma_L, T), gamma, sigma_L, T))
    assert ours <= theirs + 1e-6


def test_max_pairwise_distance_and_num_scales():
    x = np.random.default_rng(0).standard_normal((300, 4))
    assert ns.max_pairwise_distance(x, chunk=64) == pytest.approx(ref.max_pairwise_distance(x), rel=1e-12)
    L = ns.ncsnv2_num_scales(50.0, 0.01, 3072)
    s = ns.geometric_sigmas(50.0, 0.01, L)
    assert s[0] / s[1] <= ns.ncsnv2_gamma(3072)


def test_bad_arguments():
    with pytest.raises(ValueError, match="D must be ≥ 5"):
        ns.ncsnv2_gamma(2)
    with pytest.raises(ValueError, match="L must be"):
        ns.geometric_sigmas(1.0, 0.1, 1)
    with pytest.raises(ValueError, match="sigma_min"):
        ns.geometric_sigmas(0.1, 1.0, 4)
    with pytest.raises(ValueError, match="T"):
        ns.ncsnv2_step_size(1.1, 0.01, 0)
    assert sc.noise_scales is ns


@pytest.mark.parametrize("fn", [lambda s_max: ns.geometric_sigmas(s_max, 0.01, 10),
                                lambda s_max: ns.ncsnv2_num_scales(s_max, 0.01, 3072)])
def test_an_infinite_or_nan_sigma_max_is_named_not_a_math_domain_error(fn):
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match=r"sigma_max must be a finite number > 0, got (inf|nan)"):
            fn(bad)
