"""What each framework backend adds: dtype policy, missing/unavailable backends, autodiff,
control flow and DLPack conversion."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import scorecore as sc

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
from scorecore_jax import JaxBackend  # noqa: E402
from scorecore_torch import TorchBackend  # noqa: E402

FRAMEWORKS = [TorchBackend(), JaxBackend(), JaxBackend(jit=False)]
ids = ["torch", "jax", "jax-eager"]


def test_missing_framework_names_package_and_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    monkeypatch.delitem(sys.modules, "scorecore_torch", raising=False)
    monkeypatch.setattr(sc.backend, "_entry_points", lambda: {})
    with pytest.raises(sc.MissingBackendError, match=r"'torch'.*pip install 'scorecore\[torch\]'"):
        sc.get_backend("torch")


def test_cupy_without_gpu_is_unavailable_with_the_reason():
    try:
        be = sc.get_backend("cupy")
    except sc.MissingBackendError:
        pytest.skip("cupy not installed")
    except sc.BackendUnavailableError as exc:
        assert "cupy" in str(exc) and "failed" in str(exc)
        assert "cupy" not in sc.available_backends()
    else:
        assert be.name == "cupy" and "cupy" in sc.available_backends()


def test_jax_float64_without_x64_raises_instead_of_downcasting():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        be = JaxBackend()
        assert be.dtype() == jax.numpy.float32
        with pytest.raises(ValueError, match="x64"):
            be.asarray([1.0], dtype="float64")
    finally:
        jax.config.update("jax_enable_x64", before)


def test_torch_cuda_without_gpu_says_so():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(sc.BackendUnavailableError, match="no CUDA device"):
        TorchBackend("cuda")


@pytest.mark.parametrize("be", FRAMEWORKS, ids=ids)
def test_vjp_jvp_grad_against_the_analytic_jacobian(be):
    # f(x) = sin(x) ⊙ x: J = diag(cos x ⊙ x + sin x).
    x = np.array([[0.3, -1.2], [2.0, 0.5]], dtype=np.float32)
    v = np.array([[1.0, 2.0], [-1.0, 0.5]], dtype=np.float32)
    J = np.cos(x) * x + np.sin(x)
    f = lambda y: be.xp.sin(y) * y  # noqa: E731
    X, V = be.asarray(x), be.asarray(v)
    np.testing.assert_allclose(be.to_numpy(be.jvp(f, X, V)), J * v, rtol=1e-6)
    np.testing.assert_allclose(be.to_numpy(be.vjp(f, X, V)), J * v, rtol=1e-6)
    g = be.grad(lambda y: be.xp.sum(f(y)))
    np.testing.assert_allclose(be.to_numpy(g(X)), J, rtol=1e-6)
    div = be.divergence(lambda y, t: f(y) * t[:, None], X, be.asarray([1.0, 2.0]))
    np.testing.assert_allclose(be.to_numpy(div), J.sum(axis=1) * [1.0, 2.0], rtol=1e-6)


@pytest.mark.parametrize("be", FRAMEWORKS + [sc.get_backend("numpy")], ids=ids + ["numpy"])
def test_loops_follow_lax_semantics(be):
    xp = be.xp
    x0 = be.asarray([1.0, 2.0])
    out = be.fori_loop(0, 5, lambda i, x: x * 2.0 + i, x0)  # x_5 = 32 x_0 + 26
    np.testing.assert_allclose(be.to_numpy(out), [58.0, 90.0])
    carry, ys = be.scan(lambda c, x: (c + x, c * x), be.asarray(0.0), be.asarray([1.0, 2.0, 3.0]))
    assert float(carry) == 6.0
    np.testing.assert_allclose(be.to_numpy(ys), [0.0, 2.0, 9.0])
    n = be.while_loop(lambda s: s[0] < 100.0, lambda s: (s[0] * 3.0, s[1] + 1), (be.asarray(1.0), xp.asarray(0)))
    assert float(n[0]) == 243.0 and int(n[1]) == 5


def test_dlpack_conversion_is_zero_copy_on_the_host():
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    a = sc.convert(t, "numpy")
    assert isinstance(a, np.ndarray) and a.__array_interface__["data"][0] == t.data_ptr()
    back = sc.convert(a, "torch")
    assert back.data_ptr() == t.data_ptr()
    j = sc.convert(a, "jax")
    np.testing.assert_array_equal(np.asarray(j), a)


def test_jax_keys_work_inside_jit_and_give_per_row_keys():
    be = JaxBackend()
    draw = jax.jit(lambda key, k: be.normal(be.fold_in(key, k), (4, 3)))
    key = be.key(0)
    np.testing.assert_array_equal(np.asarray(draw(key, 2)), np.asarray(be.normal(be.fold_in(key, 2), (4, 3))))
    assert not np.array_equal(np.asarray(draw(key, 2)), np.asarray(draw(key, 3)))
