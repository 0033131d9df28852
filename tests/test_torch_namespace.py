"""The torch backend's namespace gives array-api-compat's results, on its direct paths and off them."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import array_api_compat.torch as compat  # noqa: E402

import scorecore as sc  # noqa: E402
from scorecore._arrays import namespace  # noqa: E402

xp = sc.get_backend("torch").xp

f32 = torch.tensor([1.5, -2.0, float("nan"), float("inf")], dtype=torch.float32)
f64 = torch.tensor([0.5, 3.0, -1.0, 2.0], dtype=torch.float64)
i32 = torch.tensor([3, -4, 5, 0], dtype=torch.int32)
mask = torch.tensor([True, False, True, False])
zero_d64 = torch.tensor(2.5, dtype=torch.float64)


def same(a, b):
    assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("x1, x2", [(f32, f32), (f32, 0.25), (0.25, f64), (f32, zero_d64), (zero_d64, f32),
                                    (i32, 7), (i32, i32.to(torch.int64)), (1.0, 0.0)])
def test_where_is_compats(x1, x2):
    same(xp.where(mask, x1, x2), compat.where(mask, x1, x2))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("x1, x2", [(f64, f64), (f32, f64), (f32, zero_d64), (f64, 1.0), (i32, i32)])
def test_maximum_minimum_are_compats(name, x1, x2):
    same(getattr(xp, name)(x1, x2), getattr(compat, name)(x1, x2))


@pytest.mark.parametrize("name", ["logical_and", "logical_or"])
@pytest.mark.parametrize("x2", [mask, ~mask, True, torch.tensor(False)])
def test_logical_are_compats(name, x2):
    same(getattr(xp, name)(mask, x2), getattr(compat, name)(mask, x2))


@pytest.mark.parametrize("x, lo, hi", [(f32, 0.0, None), (f32, None, 1.0), (f64, -0.5, 2), (f64, float("nan"), None),
                                       (f32, None, None), (i32, 0, 4), (i32, -(2**40), None), (f64, zero_d64, None)])
def test_clip_is_compats(x, lo, hi):
    same(xp.clip(x, lo, hi), compat.clip(x, lo, hi))


def test_clip_keeps_nan():
    assert math.isnan(float(xp.clip(f32, 0.0, 1.0)[2]))


@pytest.mark.parametrize("idx", [[0, 2, 3], [3, 3, 0], [-1, 0], []])
def test_take_is_compats_negative_indices_included(idx):
    a = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    i = torch.tensor(idx, dtype=torch.int64)
    for axis in (0, 1):
        if axis == 1 and any(k >= 3 for k in idx):
            continue
        same(xp.take(a, i, axis=axis), compat.take(a, i, axis=axis))
    with pytest.raises(IndexError):
        xp.take(a, torch.tensor([4]), axis=0)


m64 = torch.arange(12, dtype=torch.float64).reshape(3, 4) / 7


@pytest.mark.parametrize("x", [m64, m64.to(torch.float32), torch.arange(12, dtype=torch.int32).reshape(3, 4),
                               torch.ones(3, 4, dtype=torch.bool)])
@pytest.mark.parametrize("kwargs", [dict(axis=1), dict(axis=0, keepdims=True), dict(axis=-1), dict(),
                                    dict(axis=(0, 1)), dict(axis=1, dtype=torch.float64)])
def test_sum_is_compats(x, kwargs):
    same(xp.sum(x, **kwargs), compat.sum(x, **kwargs))  # the same torch.sum call: no rounding between


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_concat_is_compats(axis):
    parts = [m64, m64[:, :2].to(torch.float32)] if axis in (1, -1) else [m64, m64[:1]]
    same(xp.concat(parts, axis=axis), compat.concat(parts, axis=axis))


def test_namespace_of_tensors_and_subclasses_is_the_backends():
    param = torch.nn.Parameter(torch.ones(2))
    assert namespace(f64) is xp and namespace(param) is xp and namespace(f64, 1.0) is xp
    assert namespace(np.ones(2)) is not xp
    same(xp.where(torch.tensor([True, False]), param.detach(), 0.0), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("x", [f32, f64, i32, torch.tensor([-float("inf"), 0.0, -0.0, 1e-310], dtype=torch.float64),
                               torch.tensor(float("nan"))])
def test_isfinite_is_compats(x):
    same(xp.isfinite(x), compat.isfinite(x))


def test_fused_stage_is_the_array_api_stage_to_float_rounding():
    """scorecore_stage (add with alpha, addcmul: possibly fused multiply-adds, CPU-dependent) against
    the Array API y + h Σ w_j k_j, to a few ulps of the terms' size, with and without y."""
    from scorecore.samplers.tableaus import DOPRI5, _stage

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        ks = [torch.randn(64, 17, generator=g, dtype=dtype) for _ in range(DOPRI5.stages)]
        y, hx = torch.randn(64, 17, generator=g, dtype=dtype), torch.rand(64, 1, generator=g, dtype=dtype)
        eps = torch.finfo(dtype).eps
        for weights in (*DOPRI5.a[1:], DOPRI5.e):
            for base in (y, None):
                got, want = xp.scorecore_stage(base, hx, weights, ks), _stage(base, hx, weights, ks)
                size = sum(abs(w) * float(k.abs().max()) for w, k in zip(weights, ks))
                size += 0.0 if base is None else float(y.abs().max())
                assert got.dtype == want.dtype and float((got - want).abs().max()) <= 8 * eps * size
