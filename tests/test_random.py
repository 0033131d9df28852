"""The counter-based generator: distribution, batch invariance, key derivation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import scorecore as sc
from support import to_numpy


def test_normal_is_standard_normal(backend):
    z = to_numpy(backend, backend.normal(backend.key(0), (20_000, 5))).ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)


def test_uniform_and_rademacher(backend):
    u = to_numpy(backend, backend.uniform(backend.key(1), (50_000, 2))).ravel()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    r = to_numpy(backend, backend.rademacher(backend.key(2), (50_000, 2))).ravel()
    assert set(np.unique(r)) == {-1.0, 1.0}
    assert abs(r.mean()) < 5 / np.sqrt(r.size)


def test_rows_are_independent_of_batch_size_and_chunking(backend):
    k = backend.fold_in(backend.key(3), 17)
    big = to_numpy(backend, backend.normal(k, (1000, 3, 2)))
    np.testing.assert_array_equal(to_numpy(backend, backend.normal(k, (10, 3, 2))), big[:10])
    chunks = [to_numpy(backend, backend.normal(k, (250, 3, 2), offset=o)) for o in range(0, 1000, 250)]
    np.testing.assert_array_equal(np.concatenate(chunks), big)


def test_numpy_and_strict_draw_identical_bits():
    a = sc.get_backend("numpy")
    b = sc.get_backend("array_api_strict")
    np.testing.assert_array_equal(a.normal(a.key(9), (64, 3)), to_numpy(b, b.normal(b.key(9), (64, 3))))


def test_float32_draws_on_a_float32_only_device():
    import array_api_strict
    from scorecore_array_api_strict import ArrayAPIStrictBackend

    be = ArrayAPIStrictBackend(device=array_api_strict.Device("no_float64"))
    z = be.normal(be.key(0), (10_000, 2))
    assert z.dtype == array_api_strict.float32
    z = to_numpy(be, z).ravel()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_keys_differ_and_are_deterministic():
    be = sc.get_backend("numpy")
    k = be.key(0)
    assert be.key(0) == k and be.key(1) != k
    assert be.fold_in(k, 1) != be.fold_in(k, 2)
    assert len(set(be.split(k, 8))) == 8
    with pytest.raises(ValueError, match="seed"):
        be.key(-1)


def test_torch_fused_normal_equals_the_eager_generator_bit_for_bit():
    """``TorchBackend(compile=True)`` draws normals through one compiled integer kernel; its bits
    must be the eager generator's at every shape, offset and dtype (so batch invariance, which the
    eager path has, carries over), including a one-row draw, which a vectorised kernel runs in its
    scalar tail."""
    torch = pytest.importorskip("torch")
    from scorecore_torch import TorchBackend

    eager, fused = TorchBackend(), TorchBackend(compile=True)
    k = eager.fold_in(eager.key(5), 3)
    for dtype in ("float32", "float64"):
        big = fused.normal(k, (1001, 3), dtype)
        assert torch.equal(big, eager.normal(k, (1001, 3), dtype))
        for rows, offset in ((1, 0), (1, 77), (3, 7), (300, 200), (1, 1000)):
            part = fused.normal(k, (rows, 3), dtype, offset=offset)
            assert torch.equal(part, big[offset:offset + rows]), (dtype, rows, offset)
        assert torch.equal(fused.normal(k, (4, 2, 5), dtype, offset=9), eager.normal(k, (4, 2, 5), dtype, offset=9))
