"""The Array API MLP's hand-derived derivatives against central finite differences (float64),
on NumPy and array-api-strict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from support import to_numpy
from scorecore.models import MLP

H_FD = 1e-6  # central differences: truncation O(h²) ~ 1e-12, round-off ~ 1e-16/h ~ 1e-10
FD_RTOL = 1e-6

nets = st.builds(MLP, dim=st.sampled_from([1, 2, 5]), hidden=st.sampled_from([3, 8]),
                 depth=st.sampled_from([1, 2, 3]), embed_dim=st.sampled_from([2, 6]),
                 fourier_scale=st.sampled_from([1.0, 4.0]))


def setup(backend, net, seed, n=4):
    rng = np.random.default_rng(seed)
    params = net.init(backend, seed=seed)
    x = rng.standard_normal((n, net.dim)) * 2.0
    t = rng.uniform(0.0, 1.0, n)
    return params, x, t, rng


def fd_jvp(fn, x, v):
    return (fn(x + H_FD * v) - fn(x - H_FD * v)) / (2 * H_FD)


def assert_close(actual, expected, rtol=FD_RTOL):
    scale = max(np.abs(expected).max(), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@given(net=nets, seed=st.integers(0, 2**20))
def test_jvp_vjp_divergence_match_finite_differences(backend, net, seed):
    params, x, t, rng = setup(backend, net, seed)
    X, T = backend.asarray(x), backend.asarray(t)
    f = lambda z: to_numpy(backend, net.apply(params, backend.asarray(z), T))  # noqa: E731
    v, u = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    jv = to_numpy(backend, net.jvp(params, X, T, backend.asarray(v)))
    assert_close(jv, fd_jvp(f, x, v))
    # uᵀJ, tested through (uᵀJ)·w = uᵀ(Jw) for a random direction w (one FD per case).
    uj = to_numpy(backend, net.vjp_x(params, X, T, backend.asarray(u)))
    assert_close(np.sum(uj * v, axis=1), np.sum(u * fd_jvp(f, x, v), axis=1))
    # The exact divergence against the trace of the finite-difference Jacobian.
    trace = sum(fd_jvp(f, x, np.eye(net.dim)[j] + 0 * x)[:, j] for j in range(net.dim))
    assert_close(to_numpy(backend, net.divergence(params, X, T)), trace)


@given(net=nets, seed=st.integers(0, 2**20))
def test_parameter_gradients_match_finite_differences(backend, net, seed):
    params, x, t, rng = setup(backend, net, seed)
    X, T = backend.asarray(x), backend.asarray(t)
    u = rng.standard_normal(x.shape)
    grads = net.vjp_params(params, X, T, backend.asarray(u))
    assert sorted(grads) == sorted(net.trainable()) and "fourier.W" not in grads
    host = {k: to_numpy(backend, p) for k, p in params.items()}

    def objective(p):  # Σ_i u_i · out(x_i, t_i)
        out = net.apply({k: backend.asarray(a) for k, a in p.items()}, X, T)
        return float(np.sum(u * to_numpy(backend, out)))

    for name in net.trainable():
        d = rng.standard_normal(host[name].shape)  # one random direction per parameter
        plus = dict(host, **{name: host[name] + H_FD * d})
        minus = dict(host, **{name: host[name] - H_FD * d})
        fd = (objective(plus) - objective(minus)) / (2 * H_FD)
        assert_close(np.sum(to_numpy(backend, grads[name]) * d), np.asarray(fd))


def test_bound_model_and_time_forms(backend):
    net = MLP(dim=3, hidden=8, depth=2, embed_dim=4)
    params, x, t, _ = setup(backend, net, 0, n=5)
    model = net.bind(params)
    X = backend.asarray(x)
    assert model.event_shape == (3,)
    out = to_numpy(backend, model(X, backend.asarray(t)))
    assert out.shape == (5, 3) and np.all(np.isfinite(out))
    # A number, a 0-D array and an (n,) array of one time give one function.
    a = to_numpy(backend, model(X, 0.3))
    b = to_numpy(backend, model(X, backend.asarray(0.3)))
    c = to_numpy(backend, model(X, backend.asarray(np.full(5, 0.3))))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, rtol=1e-15, atol=0)
    # Time conditioning is real: another time changes the output.
    assert np.abs(a - to_numpy(backend, model(X, 0.7))).max() > 1e-3
    np.testing.assert_array_equal(to_numpy(backend, model.divergence(X, 0.3)),
                                  to_numpy(backend, net.divergence(params, X, 0.3)))


def test_init_is_reproducible_and_float32(backend):
    net = MLP(dim=2, hidden=4)
    a, b = net.init(backend, seed=3), net.init(backend, seed=3)
    assert all(np.array_equal(to_numpy(backend, a[k]), to_numpy(backend, b[k])) for k in a)
    assert not np.array_equal(to_numpy(backend, a["out.weight"]), to_numpy(backend, net.init(backend, seed=4)["out.weight"]))
    p32 = net.init(backend, seed=3, dtype="float32")
    assert all(v.dtype == backend.xp.float32 for v in p32.values())
    out = net.apply(p32, backend.asarray(np.ones((2, 2)), "float32"), 0.5)
    assert out.dtype == backend.xp.float32


def test_bad_input_is_named():
    net = MLP(dim=2)
    params = net.init("numpy")
    with pytest.raises(ValueError, match="x must have shape"):
        net.apply(params, np.ones((3, 4)), 0.1)
    with pytest.raises(ValueError, match="t must be"):
        net.apply(params, np.ones((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="params must be a dict"):
        net.bind({k: v for k, v in params.items() if k != "out.bias"})
    with pytest.raises(ValueError, match="embed_dim must be even"):
        MLP(dim=2, embed_dim=3)
    with pytest.raises(ValueError, match="hidden"):
        MLP(dim=2, hidden=0)
