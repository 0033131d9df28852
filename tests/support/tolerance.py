"""The tolerance model: one place for how close a float32 or float64 result must be.

A result computed in ``dtype`` and compared with a float64 reference passes when

    |got − want| ≤ rtol · (|want| + scale)   elementwise,   rtol = k · eps(dtype),

where eps is ``finfo(dtype).eps`` (2⁻²³ in float32, 2⁻⁵² in float64), ``k`` is the number
of roundings the computation is allowed to amplify (each check states and explains its k;
float64 checks against the oracle use ``F64_RTOL``), and ``scale`` is the magnitude of the
compared quantity: the size of the terms that cancel in it, or by default the largest
|want|, so that an error next to a zero crossing is judged against the quantity's scale
and not against the zero.
"""

from __future__ import annotations

import numpy as np


def eps(dtype) -> float:
    """Machine epsilon of ``dtype`` (a name such as ``"float32"`` or a NumPy dtype)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def tolerance(dtype, k: float) -> float:
    """``k`` machine epsilons of ``dtype``: the relative tolerance of a check."""
    return k * eps(dtype)


#: The relative tolerance of float64 results against the float64 oracle or the NumPy run
#: (about 4.5e5 eps64): room for the rounding a run of hundreds of steps amplifies, and still
#: far below any float32 result (eps32 ≈ 1.2e-7), so a float32 computation cannot pass it.
F64_RTOL = 1e-10


def oracle_rtol(dtype, k32: float) -> float:
    """``F64_RTOL`` in float64; ``k32`` float32 epsilons in float32."""
    return F64_RTOL if np.dtype(dtype) == np.float64 else tolerance("float32", k32)


def assert_close(got, want, rtol: float, scale=None, what: str = "") -> None:
    """Assert |got − want| ≤ rtol·(|want| + scale) elementwise (the module docstring's model,
    with rtol from :func:`tolerance` or :func:`oracle_rtol`); ``scale`` (a number or an array
    broadcasting against ``want``) defaults to max|want|. NumPy arrays; NaN in ``got`` fails."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if scale is None:
        scale = float(np.max(np.abs(want), initial=0.0))
    err = np.abs(got - want)
    bad = ~(err <= rtol * (np.abs(want) + scale) + 1e-300)
    assert not np.any(bad), (
        f"{what}: {int(bad.sum())} of {err.size} values off, max error {np.nanmax(err):.3g}, tolerance {rtol:.3g} "
        f"relative\ngot  {got.ravel()[:6]}\nwant {want.ravel()[:6]}")
