"""Training: the Array API Adam equals torch.optim.Adam; hand-derived DSM gradients; exact
resume and seed reproducibility on NumPy, torch and JAX; the loss and the Fisher divergence
to the exact score drop; the ``scorecore train`` command."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

import scorecore as sc
from scorecore import training
from scorecore.training import Adam, TrainConfig, clip_by_global_norm, fit, make_trainer

TINY = dict(hidden=8, depth=1, embed_dim=4, fourier_scale=4.0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny matrices: torch's thread pool costs more than it saves (and the CPU is shared)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_adam_and_clipping_match_torch_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(list(tp.values()), lr=1.0, foreach=False)
    adam, state = Adam(), Adam().init(params)
    for k, lr in enumerate([1e-3, 5e-3, 2e-2, 1e-2, 1e-2, 3e-3]):
        grads = {name: 3.0 * rng.standard_normal(v.shape) for name, v in params.items()}
        for name, p in tp.items():
            p.grad = torch.tensor(grads[name])
        torch.nn.utils.clip_grad_norm_(list(tp.values()), 2.0)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        grads = clip_by_global_norm(grads, 2.0)
        for name, p in tp.items():
            np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-14, atol=0)
        params, state = adam.update(params, grads, state, lr)
        for name, p in tp.items():
            np.testing.assert_allclose(params[name], p.detach().numpy(), rtol=1e-14, atol=1e-16)
    assert state["count"] == 6


def test_clip_leaves_small_gradients_alone_and_caps_the_norm():
    g = {"a": np.array([3.0, 4.0])}
    np.testing.assert_array_equal(clip_by_global_norm(g, 10.0)["a"], g["a"])
    np.testing.assert_allclose(training.global_norm(clip_by_global_norm(g, 1.0)), 1.0, rtol=1e-6)
    assert clip_by_global_norm(g, 0.0)["a"] is g["a"]


def test_warmup_is_linear_then_flat():
    assert [training.warmup_lr(k, 1.0, 4) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert training.warmup_lr(0, 0.1, 0) == 0.1


def test_numpy_dsm_gradient_matches_finite_differences():
    cfg = TrainConfig(model_kwargs=dict(hidden=16, depth=2, embed_dim=8))
    tr = make_trainer(cfg, (2,))
    x0 = tr.backend.asarray(sc.data.toy("8-ring", 32).x)
    key = tr.backend.key(5)
    _, grads = tr.loss_and_grads(tr.params, x0, key)
    rng = np.random.default_rng(1)
    for name in ("layers.0.weight", "layers.1.bias", "time_proj.1.weight", "time_dense.weight", "out.weight"):
        i = rng.integers(tr.params[name].size)
        d = np.zeros_like(tr.params[name])
        d.flat[i] = 1e-6
        plus, _ = tr.loss_and_grads({**tr.params, name: tr.params[name] + d}, x0, key)
        minus, _ = tr.loss_and_grads({**tr.params, name: tr.params[name] - d}, x0, key)
        np.testing.assert_allclose((plus - minus) / 2e-6, grads[name].flat[i], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_resume_is_exact_and_runs_are_reproducible(backend, tmp_path):
    pytest.importorskip({"numpy": "numpy", "torch": "torch", "jax": "flax.nnx"}[backend])
    data = sc.data.toy("8-ring", 40, seed=3)  # 2 batches per epoch: the resume crosses epochs
    cfg = TrainConfig(backend=backend, steps=6, batch_size=16, lr=1e-2, warmup=2, grad_clip=0.5, ema=0.9,
                      seed=7, model_kwargs=TINY)
    whole = make_trainer(cfg, (2,))
    fit(whole, data, cfg, progress=False)
    first = make_trainer(cfg, (2,))
    fit(first, data, cfg, stop=3, progress=False)
    path = tmp_path / "ckpt.safetensors"
    training.save_checkpoint(path, first, cfg, 3, training.batches_per_epoch(data, cfg.batch_size))
    resumed, cfg2, step = training.resume(path)
    assert (cfg2, step) == (cfg, 3)
    fit(resumed, data, cfg2, start=step, progress=False)
    a, b = whole.state_dict(), resumed.state_dict()
    assert sorted(a) == sorted(b) and any(k.startswith("opt.") for k in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["params.out.weight"], a["ema.out.weight"])  # the EMA lags
    other = make_trainer(dataclasses.replace(cfg, seed=8), (2,))
    fit(other, data, cfg, progress=False)
    assert not np.array_equal(other.state_dict()["params.out.weight"], a["params.out.weight"])


def test_initial_mlp_weights_agree_across_backends():
    pytest.importorskip("torch")
    pytest.importorskip("flax.nnx")
    states = [make_trainer(TrainConfig(backend=b, model_kwargs=TINY), (2,)).state_dict() for b in ("numpy", "torch", "jax")]
    for name in states[0]:
        if name.startswith("params."):
            for s in states[1:]:
                np.testing.assert_allclose(s[name], states[0][name], rtol=1e-6, err_msg=name)


def test_training_lowers_the_loss_and_the_fisher_divergence():
    """300 NumPy steps of a small MLP on the 8-ring under VP: the λ=s²-weighted Fisher
    divergence to the exact score falls well below the untrained net's and the zero score's."""
    target = sc.GaussianMixture.example("8-ring")
    data = sc.data.toy("8-ring", 4096, seed=0)
    cfg = TrainConfig(steps=300, batch_size=128, lr=1e-3, warmup=50, ema=0.9,
                      model_kwargs=dict(hidden=32, depth=2, embed_dim=16))
    tr = make_trainer(cfg, (2,))
    sde = cfg.make_sde()
    fd = lambda model: training.fisher_divergence(model, target, sde, n=4096, seed=11)  # noqa: E731
    at_init, zero = fd(tr.score_model()), fd(lambda x, t: 0.0 * x)
    log = fit(tr, data, cfg, progress=False)
    losses = np.array([loss for _, loss, _ in log])
    assert losses[-50:].mean() < 0.6 * losses[:50].mean()
    trained = fd(tr.score_model(ema=True))
    assert trained < 0.3 * at_init and trained < 0.3 * zero, (trained, at_init, zero)
    # The exact score has zero divergence: the estimator's floor.
    assert fd(target.score_model(sde)) < 1e-12


def test_fisher_divergence_of_a_scaled_exact_score_is_its_closed_form():
    """s_θ = (1+a)∇log p_t gives D = a² E λ‖∇log p_t‖² = a² D(zero score)."""
    target = sc.GaussianMixture.example("8-ring")
    sde = sc.VPSDE()
    exact = target.score_model(sde)
    zero = training.fisher_divergence(lambda x, t: 0.0 * x, target, sde, n=2000, seed=2, chunk=700)
    scaled = training.fisher_divergence(lambda x, t: 1.5 * exact(x, t), target, sde, n=2000, seed=2, chunk=700)
    np.testing.assert_allclose(scaled, 0.25 * zero, rtol=1e-12)


def test_bad_config_and_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="model must be"):
        TrainConfig(model="cnn")
    with pytest.raises(ValueError, match="ema must be"):
        TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match="trains model 'mlp' only"):
        make_trainer(TrainConfig(model="unet"), (1, 8, 8))
    path = tmp_path / "x.safetensors"
    sc.checkpoint.save(path, {"a": np.zeros(2)})
    with pytest.raises(ValueError, match="not a scorecore training checkpoint"):
        training.load_checkpoint(path)


def test_train_command_writes_log_pictures_checkpoint_and_resumes(tmp_path, capsys):
    from scorecore.cli import main

    out = tmp_path / "run"
    common = ["train", "--data", "8-ring", "--backend", "numpy", "--width", "16", "--depth", "1",
              "--n-data", "512", "--batch-size", "64", "--out", str(out), "--quiet", "--n-samples", "200",
              "--sample-steps", "30", "--checkpoint-every", "0"]
    assert main([*common, "--steps", "20"]) == 0
    assert main([*common, "--steps", "30", "--resume"]) == 0
    with open(out / "loss.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "loss", "lr"] and [int(r[0]) for r in rows[1:]] == list(range(1, 31))
    for png in ("loss.png", "samples.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, _, step = training.load_checkpoint(out / "checkpoint.safetensors")
    assert step == 30
    assert "resumed" in capsys.readouterr().out


def test_torch_unet_on_digits_resumes_exactly(tmp_path):
    pytest.importorskip("torch")
    data = sc.data.digits("train", data_range="[-1,1]").subset(np.arange(48))
    cfg = TrainConfig(backend="torch", model="unet", steps=4, batch_size=16, lr=1e-3, warmup=2, dequantize=True,
                      model_kwargs=dict(channels=4, channel_mult=(1, 2), groups=2, embed_dim=4))
    whole = make_trainer(cfg, data.event_shape)
    log = fit(whole, data, cfg, progress=False)
    assert all(np.isfinite(loss) for _, loss, _ in log)
    first = make_trainer(cfg, data.event_shape)
    fit(first, data, cfg, stop=2, progress=False)
    training.save_checkpoint(tmp_path / "u.safetensors", first, cfg, 2, training.batches_per_epoch(data, 16))
    resumed, cfg2, step = training.resume(tmp_path / "u.safetensors")
    fit(resumed, data, cfg2, start=step, progress=False)
    a, b = whole.state_dict(), resumed.state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("options, message", [
    (dict(steps=0), "steps must be a positive int, got 0"),
    (dict(steps=2**31), "steps must be an int ≤ 2147483646, got 2147483648"),
    (dict(batch_size=True), "batch_size must be an int, got True"),
    (dict(lr=-1e-3), "lr must be a finite number > 0, got -0.001"),
    (dict(lr=float("nan")), "lr must be a finite number > 0, got nan"),
    (dict(warmup=-1), "warmup must be an int ≥ 0, got -1"),
    (dict(grad_clip=float("inf")), "grad_clip must be a finite number, got inf"),
    (dict(seed=-1), "seed must be an int ≥ 0, got -1"),
    (dict(sde="vpsde"), "sde must be one of 've', 'vp', 'subvp', got 'vpsde'"),
    (dict(eps=0.0), "eps must be a finite number > 0, got 0.0"),
    (dict(dtype="float16"), "dtype must be one of 'float32', 'float64', got 'float16'"),
    (dict(dequantize="no"), "dequantize must be True or False, got 'no'"),
    (dict(model_kwargs=[("hidden", 8)]), "model_kwargs must be a dict of network options, got list"),
])
def test_train_config_names_the_bad_field(options, message):
    with pytest.raises((TypeError, ValueError), match=f"^{message}$"):
        TrainConfig(**options)


def test_train_config_builds_its_sde_from_the_one_map():
    for name, cls in sc.sde.SDES.items():
        assert type(TrainConfig(sde=name).make_sde()) is cls
    assert repr(TrainConfig(sde="ve").make_sde()) == repr(sc.VESDE())
    with pytest.raises(ValueError, match="^sde must be one of 've', 'vp', 'subvp', got 'edm'$"):
        sc.sde.make_sde("edm")


def test_fit_checks_its_range_before_training():
    cfg = TrainConfig(steps=4, batch_size=16, model_kwargs=TINY)
    tr = make_trainer(cfg, (2,))
    before = tr.state_dict()
    data = sc.data.toy("8-ring", 32, seed=0)
    with pytest.raises(ValueError, match="stop must be an int ≥ 2, got 1"):
        fit(tr, data, cfg, start=2, stop=1, progress=False)
    with pytest.raises(ValueError, match="start must be an int ≥ 0, got -1"):
        fit(tr, data, cfg, start=-1, progress=False)
    with pytest.raises(ValueError, match=r"batch_size \(64\) exceeds the data set size \(32\)"):
        fit(tr, data, dataclasses.replace(cfg, batch_size=64), progress=False)
    for name, value in tr.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)  # nothing was trained
