"""``scorecore likelihood --checkpoint``: a scorecore EMA checkpoint and the digits in, bits/dim mean ±
SE, median, solver status counts and a histogram out; EMA checkpoints load back to the same model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import scorecore as sc  # noqa: E402
from scorecore import cli, training  # noqa: E402


@pytest.fixture
def ema_checkpoint(tmp_path):
    config = training.TrainConfig(backend="torch", model="unet", steps=1, batch_size=8, weighting="likelihood",
                                  importance_sampling=True, parametrization="eps", dequantize=True,
                                  model_kwargs=dict(channels=8, channel_mult=(1, 2), groups=4, embed_dim=8))
    ds = sc.data.digits("train", data_range="[-1,1]").subset(np.arange(16))
    trainer = training.make_trainer(config, ds.event_shape)
    training.fit(trainer, ds, config, progress=False)
    path = tmp_path / "ema.safetensors"
    training.save_ema(path, trainer, config, 1)
    return path, trainer


def test_an_ema_checkpoint_loads_the_same_eps_parametrized_score(ema_checkpoint):
    path, trainer = ema_checkpoint
    model, config = training.load_score_model(path)
    assert config.parametrization == "eps" and config.importance_sampling
    x = torch.zeros((2, 1, 8, 8))
    t = torch.full((2,), 0.3)
    np.testing.assert_allclose(model(x, t).numpy(), trainer.score_model()(x, t).numpy(), rtol=1e-6, atol=1e-6)
    # s = −ε/s(t): the raw network times −1/s(t)
    s = float(config.make_sde().marginal(torch.tensor(0.3))[1])
    np.testing.assert_allclose(model(x, t).numpy(), -trainer.ema_net(x, t).detach().numpy() / s, rtol=1e-5)


def test_cli_likelihood_of_a_checkpoint_on_the_digits(ema_checkpoint, tmp_path, capsys):
    path, _ = ema_checkpoint
    hist = tmp_path / "bpd.png"
    assert cli.main(["likelihood", "--checkpoint", str(path), "--data", "digits", "--steps", "2",
                     "--batch-size", "400", "--quiet", "--hist", str(hist)]) == 0
    out = capsys.readouterr().out
    assert "over 359 images" in out and "median" in out and "converged: 359" in out
    assert np.isfinite(float(out.split()[1])) and hist.is_file()


def test_cli_likelihood_wants_one_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["likelihood", "--data", "digits"])
    assert "give one model" in capsys.readouterr().err
