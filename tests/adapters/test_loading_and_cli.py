"""Loading diffusers folders without running code, and the CLI on them (tiny random networks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_nets import diffusers, tiny_unet

from scorecore import cli
from scorecore.sde import DiscreteVPSDE, VESDE
from scorecore_torch.adapters import CheckpointFormatError, load_diffusers

pytestmark = pytest.mark.filterwarnings("ignore:There are modules in UNet2DModel")
WEIGHTS = "diffusion_pytorch_model.safetensors"


def save_folder(root, *, pipeline=False, prediction_type="epsilon"):
    unet = tiny_unet(torch.float32)
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                    prediction_type=prediction_type)
    unet.save_pretrained(root / "unet" if pipeline else root)
    sched.save_config(root / "scheduler" if pipeline else root)
    return unet, sched


@pytest.mark.parametrize("pipeline", [False, True])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_saved_folder_loads_as_the_score_of_its_network(tmp_path, pipeline, prediction_type):
    unet, sched = save_folder(tmp_path, pipeline=pipeline, prediction_type=prediction_type)
    model, sde = load_diffusers(tmp_path)
    assert isinstance(sde, DiscreteVPSDE) and model.prediction_type == prediction_type
    # diffusers multiplies its 1000 factors in float32: ≤ 1000 roundings of the product.
    np.testing.assert_allclose(sde.alphas_cumprod, sched.alphas_cumprod.double().numpy(),
                               rtol=1000 * np.finfo(np.float32).eps)
    assert model.event_shape == (3, 8, 8)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    i = 417
    t = torch.full((2,), sde.time_of_timestep(float(i)), dtype=torch.float32)
    m, s = (float(c) for c in sde.marginal(sde.time_of_timestep(float(i))))
    with torch.no_grad():
        out = unet(x, i).sample
        got = model(x, t)
    want = {"epsilon": -out / s, "v_prediction": -(m * out + s * x) / s,
            "sample": (m * out - x) / s**2}[prediction_type]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_score_sde_ve_unet_loads_as_a_vesde_score(tmp_path):
    unet = tiny_unet(torch.float32, time_embedding_type="fourier")
    unet.save_pretrained(tmp_path)
    diffusers.ScoreSdeVeScheduler(sigma_min=0.01, sigma_max=50.0).save_config(tmp_path)
    model, sde = load_diffusers(tmp_path)
    assert isinstance(sde, VESDE) and (sde.sigma_min, sde.sigma_max) == (0.01, 50.0)
    x = torch.randn(2, 3, 8, 8)
    sigma = float(sde.sigma(0.4))
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.full((2,), 0.4)), unet(x, torch.full((2,), sigma)).sample)


def test_pickle_checkpoint_is_refused_with_how_to_convert(tmp_path):
    unet, _ = save_folder(tmp_path)
    (tmp_path / WEIGHTS).unlink()
    torch.save(unet.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointFormatError, match=r"pickle checkpoint.*safetensors only.*save_file\(torch.load"):
        load_diffusers(tmp_path)


def _rewrite(path, edit):
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    edit(state)
    save_file(state, str(path))


def test_missing_tensor_is_named(tmp_path):
    save_folder(tmp_path)
    _rewrite(tmp_path / WEIGHTS, lambda st: st.pop("conv_in.weight"))
    with pytest.raises(CheckpointFormatError, match=r"tensor 'conv_in.weight' is missing"):
        load_diffusers(tmp_path)


def test_misshaped_tensor_is_named(tmp_path):
    save_folder(tmp_path)
    _rewrite(tmp_path / WEIGHTS, lambda st: st.__setitem__("conv_out.bias", torch.zeros(5)))
    with pytest.raises(CheckpointFormatError, match=r"tensor 'conv_out.bias' has shape \(5,\).*expects \(3,\)"):
        load_diffusers(tmp_path)


def test_config_of_another_class_is_refused(tmp_path):
    save_folder(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "_class_name": "UNet2DConditionModel"}))
    with pytest.raises(CheckpointFormatError, match="only UNet2DModel"):
        load_diffusers(tmp_path)


def test_cli_samples_a_saved_model_into_a_grid_png(tmp_path, capsys):
    from matplotlib import image

    save_folder(tmp_path / "m")
    out = tmp_path / "grid.png"
    assert cli.main(["sample", "--model", f"diffusers:{tmp_path / 'm'}", "--sampler", "dpmpp_2m", "--steps", "4",
                     "--n", "5", "--chunk", "2", "--out", str(out), "--quiet"]) == 0
    grid = image.imread(out)
    assert grid.shape[:2] == (2 * 9 + 1, 3 * 9 + 1)  # ⌈√5⌉ = 3 columns, 2 rows of 8×8 tiles, 1-pixel gaps
    assert "wrote a grid of 5 samples" in capsys.readouterr().out


def test_cli_refuses_a_pickle_folder_before_sampling(tmp_path, capsys):
    unet, _ = save_folder(tmp_path)
    (tmp_path / WEIGHTS).unlink()
    torch.save(unet.state_dict(), tmp_path / "diffusion_pytorch_model.pt")
    with pytest.raises(SystemExit) as exc:
        cli.main(["sample", "--model", f"diffusers:{tmp_path}", "--n", "2", "--out", str(tmp_path / "g.png")])
    assert exc.value.code == 2
    assert "pickle checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


def test_cli_model_option_names_what_it_expects(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "g.png")])
    assert "--model must be KIND:DIR" in capsys.readouterr().err


def test_cli_likelihood_prints_bits_per_dim(tmp_path, capsys):
    save_folder(tmp_path / "m")
    levels = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)  # channels last
    np.savez(tmp_path / "data.npz", images=levels)
    assert cli.main(["likelihood", "--model", f"diffusers:{tmp_path / 'm'}", "--data", str(tmp_path / "data.npz"),
                     "--steps", "2", "--batch-size", "2", "--quiet"]) == 0
    line = capsys.readouterr().out
    # This random network's flow leaves the data region for every image (2 RK4 steps): each is
    # flagged with its status and counted, not averaged in as an absurd number.
    assert "bits/dim" in line and "NFE" in line
    assert "left the data region" in line and "3 of 3 images left out of the mean" in line


def test_cli_without_png_keeps_the_shard_job(tmp_path):
    from scorecore import jobs

    save_folder(tmp_path / "m")
    out = tmp_path / "job"
    assert cli.main(["sample", "--model", f"diffusers:{tmp_path / 'm'}", "--sampler", "ddim", "--steps", "3",
                     "--n", "3", "--chunk", "2", "--out", str(out), "--quiet"]) == 0
    assert (out / jobs.MANIFEST).is_file()
    x = jobs.merge(str(out), into=str(tmp_path / "x.npy"))
    assert x.shape == (3, 3, 8, 8) and np.all(np.isfinite(x))


def test_class_labels_are_passed_to_the_unet(tmp_path):
    from scorecore_torch.adapters import DiffusersUNet

    unet = tiny_unet(torch.float64, num_class_embeds=4)
    sde = DiscreteVPSDE.from_betas([1e-4 + i * 2e-5 for i in range(1000)])
    x, t = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.full((2,), 0.5, dtype=torch.float64)
    with torch.no_grad():
        a = DiffusersUNet(unet, sde, class_labels=torch.tensor([0, 1]))(x, t)
        b = DiffusersUNet(unet, sde, class_labels=torch.tensor([3, 1]))(x, t)
    assert (a[0] - b[0]).abs().max() > 1e-6  # the relabelled row changes
    # The other does not (to rounding: a kernel may block the batch differently per call).
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=100 * torch.finfo(torch.float64).eps * float(a.abs().max()))


def test_bad_adapter_arguments_are_named_before_any_call():
    from scorecore import VPSDE
    from scorecore_torch.adapters import DiffusersUNet, edm_denoiser, score_from_kdiffusion

    calls = []

    def net(*args, **kwargs):
        calls.append(args)

    sde = DiscreteVPSDE.from_betas([1e-4 + i * 2e-5 for i in range(1000)])
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        DiffusersUNet(net, sde, "velocity")
    with pytest.raises(TypeError, match="sde must be a DiscreteVPSDE"):
        DiffusersUNet(net, VPSDE())
    with pytest.raises(ValueError, match="sigma_data must be"):
        edm_denoiser(net, sigma_data=0.0)
    with pytest.raises(TypeError, match="sde must be a scorecore SDE"):
        score_from_kdiffusion(net, "vp")
    with pytest.raises(TypeError, match="denoiser must be callable"):
        score_from_kdiffusion(None, VPSDE())
    assert calls == []


def test_missing_folder_and_config_are_named(tmp_path):
    with pytest.raises(CheckpointFormatError, match="does not exist"):
        load_diffusers(tmp_path / "nowhere")
    with pytest.raises(CheckpointFormatError, match="no config.json"):
        load_diffusers(tmp_path)
