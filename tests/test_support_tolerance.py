"""The tolerance model of ``support.tolerance`` rejects what it must: a float32 result under
the float64 tolerance, a NaN, an error beyond k eps of the quantity's scale."""

from __future__ import annotations

import numpy as np
import pytest

from support.tolerance import F64_RTOL, assert_close, oracle_rtol, tolerance


def test_float32_rounding_passes_in_float32_and_fails_in_float64():
    want = np.random.default_rng(0).standard_normal(100)
    got = want.astype(np.float32)
    assert_close(got, want, oracle_rtol("float32", 1))
    with pytest.raises(AssertionError, match="values off"):
        assert_close(got, want, oracle_rtol("float64", 1))
    assert oracle_rtol("float64", 1) == F64_RTOL


def test_errors_are_judged_against_the_scale_and_nan_fails():
    want = np.array([1.0, 1e-20])  # next to a zero crossing: the scale, not the zero, decides
    assert_close(want + [0.0, 1e-17], want, tolerance("float64", 1e3))
    with pytest.raises(AssertionError):
        assert_close(want + [0.0, 1e-17], want, tolerance("float64", 1e3), scale=0.0)
    with pytest.raises(AssertionError):
        assert_close(np.array([np.nan, 0.0]), want, 1.0)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(want[:1], want, 1.0)
