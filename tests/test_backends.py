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


# -- arrays cross backends by DLPack only ------------------------------------------------------

PAIR_NAMES = ["numpy", "array_api_strict", "torch", "jax", "cupy"]


def backend_or_skip(name):
    """The registered backend ``name``; skipped, with the registry's reason, where it cannot run."""
    try:
        return sc.get_backend(name)
    except (sc.MissingBackendError, sc.BackendUnavailableError) as exc:
        pytest.skip(str(exc).splitlines()[0])


@pytest.mark.parametrize("dst", PAIR_NAMES)
@pytest.mark.parametrize("src", PAIR_NAMES)
def test_asarray_moves_every_backends_arrays_with_shape_and_values(src, dst):
    source, target = backend_or_skip(src), backend_or_skip(dst)
    values = np.arange(32, dtype=np.float32).reshape(16, 2) - 7.5
    x = source.asarray(values, dtype="float32")
    y = target.asarray(x, dtype="float32")
    assert type(y) is type(target.asarray(values, dtype="float32"))
    assert tuple(y.shape) == (16, 2)
    np.testing.assert_array_equal(target.to_numpy(y), values)  # exact: a copy, no arithmetic


def test_torch_asarray_of_a_jax_array_keeps_its_shape():
    """torch.asarray flattens a JAX array to (32,); through DLPack it stays (16, 2)."""
    y = sc.get_backend("torch").asarray(jax.numpy.ones((16, 2)))
    assert tuple(y.shape) == (16, 2)
    assert isinstance(y, torch.Tensor)


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "torch", "jax"])
def test_asarray_still_takes_nested_sequences_and_numpy_arrays(name):
    be = sc.get_backend(name)
    nested = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    for value in (nested, np.asarray(nested), np.asarray(nested, dtype=np.float32)):
        y = be.asarray(value, dtype="float32")
        assert tuple(y.shape) == (3, 2)
        np.testing.assert_array_equal(be.to_numpy(y), np.asarray(nested, dtype=np.float32))


def test_a_foreign_array_dlpack_cannot_move_raises_naming_argument_and_backend():
    t = torch.ones((4, 2), requires_grad=True)  # torch refuses to export it (and to .numpy() it)
    with pytest.raises(ValueError, match=r"^x0 must be an array of backend 'numpy' or one DLPack can move to it, "
                                         r"got torch\.Tensor of shape \(4, 2\)"):
        sc.get_backend("numpy").asarray(t, name="x0")


def test_an_exporter_without_an_array_behind_it_is_refused_not_wrapped():
    class Exporter:  # speaks DLPack, fails, and is no array NumPy could read
        shape = (3,)

        def __dlpack__(self, **kwargs):
            raise BufferError("cannot export")

        def __dlpack_device__(self):
            return (1, 0)

    with pytest.raises(ValueError, match=r"x must be an array of backend 'torch'.*BufferError: cannot export"):
        sc.get_backend("torch").asarray(Exporter())


# -- capabilities and framework parts declared on the backend -----------------------------------

def test_capabilities_are_declared_on_the_backend():
    numpy_be, strict = sc.get_backend("numpy"), sc.get_backend("array_api_strict")
    assert (numpy_be.has_autodiff, numpy_be.compiles) == (False, None)
    assert (strict.has_autodiff, strict.compiles) == (False, None)
    assert (TorchBackend().has_autodiff, TorchBackend().compiles) == (True, None)
    assert TorchBackend(compile=True).compiles == "step"
    assert (JaxBackend().has_autodiff, JaxBackend().compiles) == (True, "run")
    assert JaxBackend(jit=False).compiles is None
    with pytest.raises(NotImplementedError, match="no automatic differentiation"):
        numpy_be.grad(lambda x: x)


def test_networks_and_trainers_come_from_the_backend():
    import scorecore_jax.networks
    import scorecore_jax.training
    import scorecore_torch.networks
    import scorecore_torch.training

    assert sc.get_backend("numpy").networks is sc.models
    assert TorchBackend().networks is scorecore_torch.networks
    assert JaxBackend().networks is scorecore_jax.networks
    cfg = dict(model_kwargs=dict(hidden=8, depth=1, embed_dim=4))
    for name, cls in (("numpy", sc.training.ArrayAPITrainer), ("torch", scorecore_torch.training.TorchTrainer),
                      ("jax", scorecore_jax.training.JaxTrainer)):
        trainer = sc.training.make_trainer(sc.training.TrainConfig(backend=name, **cfg), (2,))
        assert type(trainer) is cls and trainer.backend.name == name


@pytest.mark.parametrize("name", ["numpy", "torch", "jax"])
def test_backend_network_is_a_seeded_score_model_of_the_event_shape(name):
    be = sc.get_backend(name)
    x, t = be.asarray(np.ones((5, 2)), dtype="float32"), be.asarray(np.full(5, 0.5), dtype="float32")
    a = be.to_numpy(be.network("mlp", (2,), seed=3, hidden=8, depth=1, dtype="float32")(x, t))
    b = be.to_numpy(be.network("mlp", (2,), seed=3, hidden=8, depth=1, dtype="float32")(x, t))
    c = be.to_numpy(be.network("mlp", (2,), seed=4, hidden=8, depth=1, dtype="float32")(x, t))
    assert a.shape == (5, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_backend_network_refuses_what_it_has_not():
    with pytest.raises(NotImplementedError, match="backend 'numpy' has no U-Net"):
        sc.get_backend("numpy").network("unet", (3, 8, 8))
    with pytest.raises(ValueError, match="network must be one of 'mlp', 'unet', got 'cnn'"):
        TorchBackend().network("cnn", (2,))
    with pytest.raises(ValueError, match=r"network 'mlp' needs event_shape \(D,\), got \(3, 8, 8\)"):
        TorchBackend().network("mlp", (3, 8, 8))


def test_variant_builds_the_same_kind_with_other_options():
    jax_eager = sc.get_backend("jax").variant(jit=False)
    assert type(jax_eager) is JaxBackend and jax_eager.compiles is None
    compiled = sc.get_backend("torch").variant(compile=True)
    assert type(compiled) is TorchBackend and compiled.compiles == "step" and compiled.device == torch.device("cpu")
    assert type(sc.get_backend("numpy").variant()) is type(sc.get_backend("numpy"))
    with pytest.raises(TypeError, match="compile must be True or False"):
        TorchBackend(compile="yes")


def test_set_threads_refuses_a_non_positive_count():
    with pytest.raises(ValueError, match="threads must be a positive int, got -1"):
        TorchBackend().set_threads(-1)
    with pytest.raises(ValueError, match="threads must be a positive int, got 0"):
        sc.get_backend("numpy").set_threads(0)


def test_the_core_imports_no_framework_and_no_backend_package():
    import pathlib
    import re

    src = pathlib.Path(sc.__file__).parent
    pattern = re.compile(r"scorecore_(torch|jax|cupy)|^\s*(import|from) (torch|jax|cupy)\b", re.M)
    hits = [f"{p.relative_to(src)}:{text[:m.start()].count(chr(10)) + 1}"
            for p in sorted(src.rglob("*.py")) for text in [p.read_text()] for m in pattern.finditer(text)]
    assert hits == []


def test_log_likelihood_of_a_jax_batch_on_torch_has_one_value_per_point():
    """The issue's example: 16 JAX points on backend='torch' gave 32 log-likelihoods."""
    sde, target = sc.VPSDE(), sc.GaussianMixture.example("8-ring")
    x = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    from_jax = sc.log_likelihood(target.score_model(sde), sde, jax.numpy.asarray(x), backend="torch")
    from_numpy = sc.log_likelihood(target.score_model(sde), sde, x, backend="torch")
    assert tuple(from_jax.shape) == (16,)
    np.testing.assert_array_equal(from_jax.numpy(), from_numpy.numpy())  # the same float32 input, same kernels
