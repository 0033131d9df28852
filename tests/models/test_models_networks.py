"""torch ↔ JAX ↔ Array API networks: one function for one set of weights moved through
NumPy/safetensors; U-Net shapes and time conditioning; bit-exact checkpoints."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import scorecore as sc
from scorecore import checkpoint
from scorecore.models import MLP

F32_TOL = 2e-5  # float32 agreement, relative to the output's magnitude (layers of ~1e-7 round-off)


def networks(framework):
    """``scorecore_<framework>.networks``, skipped when the framework is not installed."""
    pytest.importorskip({"torch": "torch", "jax": "flax.nnx"}[framework])
    return importlib.import_module(f"scorecore_{framework}.networks")


@pytest.fixture(scope="module")
def tn():
    return networks("torch")


@pytest.fixture(scope="module")
def jn():
    return networks("jax")


MLP_CONFIG = dict(dim=3, hidden=16, depth=2, embed_dim=8, fourier_scale=4.0)
UNET_CONFIG = dict(in_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1, groups=4, embed_dim=8)


def inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), np.linspace(0.05, 0.95, shape[0]).astype(np.float32)


def run_torch(net, x, t):
    import torch

    with torch.no_grad():
        return net(torch.as_tensor(x), torch.as_tensor(t)).numpy()


_jax_call = None


def run_jax(net, x, t):
    import jax.numpy as jnp
    from flax import nnx

    global _jax_call
    if _jax_call is None:  # one jitted caller, cached per network structure and input shapes:
        _jax_call = nnx.jit(lambda m, a, b: m(a, b))  # eager Flax compiles op by op (slower)
    return np.asarray(_jax_call(net, jnp.asarray(x), jnp.asarray(t)))


def assert_f32_close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=F32_TOL * max(np.abs(b).max(), 1.0))


@pytest.mark.parametrize("kind", ["mlp", "unet"])
def test_torch_and_jax_compute_one_function_through_safetensors(tn, jn, kind, tmp_path):
    torch_cls, jax_cls, config, shape = {
        "mlp": (tn.ScoreMLP, jn.ScoreMLP, MLP_CONFIG, (6, 3)),
        "unet": (tn.ScoreUNet, jn.ScoreUNet, UNET_CONFIG, (3, 1, 8, 8)),
    }[kind]
    torch_net = torch_cls(**config)
    jax_net = jax_cls(**config)
    x, t = inputs(shape)
    assert np.abs(run_torch(torch_net, x, t) - run_jax(jax_net, x, t)).max() > 1e-3  # differ before
    checkpoint.save(tmp_path / "w.safetensors", tn.to_state_dict(torch_net))
    jn.from_state_dict(jax_net, checkpoint.load(tmp_path / "w.safetensors"))
    assert_f32_close(run_jax(jax_net, x, t), run_torch(torch_net, x, t))
    # And back: JAX's weights, flattened, load into a fresh torch network bit-exactly.
    back = tn.from_state_dict(torch_cls(**config), jn.to_state_dict(jax_net))
    np.testing.assert_array_equal(run_torch(back, x, t), run_torch(torch_net, x, t))


def test_array_api_mlp_agrees_with_torch_and_jax(tn, jn):
    import torch

    torch_net = tn.ScoreMLP(**MLP_CONFIG).double()
    state = tn.to_state_dict(torch_net)  # float64 weights
    x, t = (a.astype(np.float64) for a in inputs((6, 3), seed=1))
    for backend in ("numpy", "array_api_strict"):
        be = sc.get_backend(backend)
        core = MLP(**torch_net.config).bind({k: be.asarray(v) for k, v in state.items()})
        X, T = be.asarray(x), be.asarray(t)
        out = be.to_numpy(core(X, T))
        np.testing.assert_allclose(out, run_torch(torch_net, x, t), rtol=1e-12, atol=1e-12)
        # The hand-derived exact divergence against torch autograd's Jacobian trace.
        jac = torch.func.vmap(torch.func.jacrev(lambda xi, ti: torch_net(xi[None], ti[None])[0]))(
            torch.from_numpy(x), torch.from_numpy(t))
        np.testing.assert_allclose(be.to_numpy(core.divergence(X, T)),
                                   np.trace(jac.detach().numpy(), axis1=1, axis2=2), rtol=1e-10, atol=1e-12)
    jax_net = jn.from_state_dict(jn.ScoreMLP(**MLP_CONFIG), {k: v.astype(np.float32) for k, v in state.items()})
    assert_f32_close(run_jax(jax_net, x.astype(np.float32), t.astype(np.float32)), out)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_unet_shapes_and_time_conditioning(framework):
    nets = networks(framework)
    run = run_torch if framework == "torch" else run_jax
    x, t = inputs((2, 3, 32, 32))
    out = run(nets.ScoreUNet(), x, t)  # the default network on CIFAR-sized images
    assert out.shape == x.shape and np.all(np.isfinite(out))
    net = nets.ScoreUNet(**UNET_CONFIG)
    x = np.concatenate([inputs((1, 1, 8, 8))[0]] * 2)  # one image twice
    out = run(net, x, np.array([0.1, 0.9], np.float32))
    assert out.shape == x.shape and np.all(np.isfinite(out))
    # The time embedding reaches the output: same image, another time, another output;
    # and a number, broadcast, equals an (n,) array of that time.
    assert np.abs(out[0] - out[1]).max() > 1e-4
    assert_f32_close(run(net, x, np.float32(0.1)), np.stack([out[0], out[0]]))
    with pytest.raises(ValueError, match="divisible by 2"):
        run(net, *inputs((1, 1, 7, 7)))
    with pytest.raises(ValueError, match="must be divisible by groups"):
        nets.ScoreUNet(channels=12, groups=8)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_state_dict_names_match_the_array_api_mlp(framework):
    nets = networks(framework)
    state = nets.to_state_dict(nets.ScoreMLP(**MLP_CONFIG))
    assert {k: v.shape for k, v in state.items()} == MLP(**MLP_CONFIG).shapes()
    with pytest.raises(ValueError, match="missing \\['out.bias'\\]"):
        nets.from_state_dict(nets.ScoreMLP(**MLP_CONFIG), {k: v for k, v in state.items() if k != "out.bias"})
    with pytest.raises(ValueError, match="shape"):
        nets.from_state_dict(nets.ScoreMLP(**MLP_CONFIG), dict(state, **{"out.bias": np.zeros(4, np.float32)}))


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    pytest.importorskip("safetensors")
    rng = np.random.default_rng(0)
    tensors = {"a.weight": rng.standard_normal((3, 4)), "a.bias": rng.standard_normal(4).astype(np.float32),
               "b": np.arange(6, dtype=np.int64).reshape(2, 3), "c.T": rng.standard_normal((4, 3)).T}
    path = tmp_path / "ck.safetensors"
    checkpoint.save(path, tensors, metadata={"arch": "MLP(dim=3)"})
    loaded = checkpoint.load(path)
    assert sorted(loaded) == sorted(tensors)
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
        assert loaded[k].tobytes() == np.ascontiguousarray(v).tobytes()
    assert checkpoint.load_metadata(path) == {"arch": "MLP(dim=3)"}
    with pytest.raises(TypeError, match="numpy.ndarray"):
        checkpoint.save(path, {"a": [1.0, 2.0]})
    with pytest.raises(TypeError, match="metadata"):
        checkpoint.save(path, tensors, metadata={"n": 3})


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_network_arguments_are_checked_with_one_message(framework):
    nets = networks(framework)
    for options, message in ((dict(dim=0), "dim must be a positive int, got 0"),
                             (dict(dim=2, hidden=True), "hidden must be an int, got True"),
                             (dict(dim=2, depth=1.5), "depth must be an int, got 1.5")):
        with pytest.raises(ValueError, match=f"^{message}$"):
            nets.ScoreMLP(**options)
    for options, message in ((dict(channels=-4), "channels must be a positive int, got -4"),
                             (dict(channel_mult=(1, 0)), r"channel_mult\[1\] must be a positive int, got 0"),
                             (dict(channel_mult=()), r"channel_mult must be a non-empty sequence of positive ints")):
        with pytest.raises(ValueError, match=message):
            nets.ScoreUNet(**options)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_classifier_training_checks_its_arguments_before_training(framework):
    classifier = importlib.import_module(f"scorecore_{framework}.classifier")
    net = classifier.TimeClassifierMLP(2, 3, hidden=4, depth=1, embed_dim=4)
    before = networks(framework).to_state_dict(net)
    x, labels = np.zeros((6, 2), np.float32), np.zeros(6, np.int64)
    sde = sc.VPSDE()
    for options, message in ((dict(steps=0), r"steps must be a positive int, got 0"),
                             (dict(eps=1.0), r"eps must be a finite number > 0 and < 1, got 1.0"),
                             (dict(batch_size=0), "batch_size must be a positive int, got 0"),
                             (dict(lr=0.0), "lr must be a finite number > 0, got 0.0")):
        with pytest.raises(ValueError, match=f"^{message}$"):
            classifier.train_classifier(net, sde, x, labels, **options)
    with pytest.raises(ValueError, match=r"^labels must have shape \(6,\), got \(5,\)$"):
        classifier.train_classifier(net, sde, x, labels[:5])
    after = networks(framework).to_state_dict(net)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)  # not trained
