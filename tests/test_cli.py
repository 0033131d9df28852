"""The README's main job, small: ``scorecore demo`` writes a picture and a figure of merit."""

from __future__ import annotations

import re

from scorecore.cli import main


def test_demo_writes_a_png_and_prints_the_distance(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--n", "500", "--levels", "20", "--steps-each", "5", "--out", str(out), "--quiet"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    sw, floor = map(float, re.search(r"sliced W2\s+([\d.]+) to exact samples \(noise floor ([\d.]+)", text).groups())
    assert 0 < floor and sw < 3 * floor


# -- every option checked before any work starts -------------------------------------------------

import pytest  # noqa: E402

import scorecore as sc  # noqa: E402
from scorecore import bench, training  # noqa: E402


@pytest.fixture
def no_work(monkeypatch):
    """Make every piece of work a command could start raise: sampling, data, training, benchmarks."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    for owner, name in ((sc, "sample"), (sc.data, "toy"), (sc.data, "digits"), (training, "make_trainer"),
                        (training, "fit"), (training, "resume"), (bench, "nfe_table"), (bench, "Bench")):
        monkeypatch.setattr(owner, name, refuse)


def fails(argv, capsys, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    return err


@pytest.mark.parametrize("argv, message", [
    (["bench", "--repeats", "0"], "argument --repeats: --repeats must be a positive int, got 0"),
    (["bench", "--batch", "-5"], "argument --batch: --batch must be a positive int, got -5"),
    (["bench", "--steps", "0"], "argument --steps: --steps must be a positive int, got 0"),
    (["bench", "--steps", "ten"], "argument --steps: --steps must be an int, got 'ten'"),
    (["bench", "--backends", "numpy,mlx"], "argument --backends: --backends must be one of 'numpy'"),
    (["bench", "--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    (["train", "--threads", "-1"], "argument --threads: --threads must be an int ≥ 0, got -1"),
    (["train", "--checkpoint-every", "-1"], "argument --checkpoint-every: --checkpoint-every must be an int ≥ 0, got -1"),
    (["train", "--steps", "0"], "argument --steps: --steps must be a positive int, got 0"),
    (["train", "--batch-size", "0"], "argument --batch-size: --batch-size must be a positive int, got 0"),
    (["train", "--lr", "nan"], "argument --lr: --lr must be a finite number > 0, got nan"),
    (["train", "--lr", "0"], "argument --lr: --lr must be a finite number > 0, got 0.0"),
    (["train", "--warmup", "-3"], "argument --warmup: --warmup must be an int ≥ 0, got -3"),
    (["train", "--grad-clip", "inf"], "argument --grad-clip: --grad-clip must be a finite number, got inf"),
    (["train", "--ema", "1"], "argument --ema: --ema must be a finite number ≥ 0 and < 1, got 1.0"),
    (["train", "--seed", "-1"], "argument --seed: --seed must be an int ≥ 0, got -1"),
    (["train", "--width", "0"], "argument --width: --width must be a positive int, got 0"),
    (["train", "--depth", "0"], "argument --depth: --depth must be a positive int, got 0"),
    (["train", "--n-data", "0"], "argument --n-data: --n-data must be a positive int, got 0"),
    (["train", "--sampler", "ddpm"], "argument --sampler: --sampler must be one of 'ald'"),
    (["train", "--n-dequant", "0"], "argument --n-dequant: --n-dequant must be a positive int, got 0"),
    (["train", "--sample-steps", "0"], "argument --sample-steps: --sample-steps must be a positive int"),
    (["train", "--steps-each", "0"], "argument --steps-each: --steps-each must be a positive int"),
    (["train", "--n-samples", "-1"], "argument --n-samples: --n-samples must be a positive int, got -1"),
    (["train", "--backend", "mlx"], "argument --backend: invalid choice: 'mlx'"),
    (["train", "--sde", "edm"], "argument --sde: invalid choice: 'edm'"),
    (["train", "--model", "unet"], "--model unet is for images: use --model mlp with --data 8-ring"),
    (["train", "--batch-size", "64", "--n-data", "32"], "--batch-size (64) must not exceed --n-data (32)"),
    (["demo", "--n", "0"], "argument --n: --n must be a positive int, got 0"),
    (["demo", "--levels", "0"], "argument --levels: --levels must be a positive int, got 0"),
    (["demo", "--steps-each", "-1"], "argument --steps-each: --steps-each must be a positive int"),
    (["demo", "--seed", "1.5"], "argument --seed: --seed must be an int, got '1.5'"),
])
def test_a_bad_option_fails_naming_it_before_any_work(argv, message, capsys, no_work):
    fails(argv, capsys, message)


def test_demo_out_in_a_missing_folder_or_with_an_unknown_suffix_fails_before_sampling(tmp_path, capsys, no_work):
    missing = tmp_path / "no-such-folder" / "demo.png"
    fails(["demo", "--out", str(missing)], capsys, f"--out must be a path in an existing folder, got '{missing}'")
    fails(["demo", "--out", str(tmp_path / "demo.bmp")], capsys, "--out must end in an image suffix (")
    fails(["demo", "--out", str(tmp_path / "demo")], capsys, "--out must end in an image suffix (")
    folder = tmp_path / "pictures.png"
    folder.mkdir()
    fails(["demo", "--out", str(folder)], capsys, f"--out must be a file name, got the folder '{folder}'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pictures.png"]


def test_train_out_and_resume_are_checked_before_training(tmp_path, capsys, no_work):
    a_file = tmp_path / "run"
    a_file.write_text("not a folder")
    fails(["train", "--out", str(a_file)], capsys, f"--out must be a folder, got the file '{a_file}'")
    below_a_file = a_file / "sub"
    fails(["train", "--out", str(below_a_file)], capsys,
          f"--out must be an existing folder or one that can be created, got '{below_a_file}'")
    fresh = tmp_path / "fresh"
    fails(["train", "--out", str(fresh), "--resume"], capsys, "--resume needs a checkpoint at")
    assert not fresh.exists()  # nothing was created either


def test_train_with_a_missing_framework_fails_before_loading_data(monkeypatch, tmp_path, capsys, no_work):
    def missing(name=None):
        raise sc.MissingBackendError(f"backend {name!r} needs the package 'torch', which is not installed")

    monkeypatch.setattr(sc, "get_backend", missing)
    fails(["train", "--backend", "torch", "--out", str(tmp_path / "r")], capsys, "needs the package 'torch'")


def test_bench_measures_the_samplers_with_exact_nfe(capsys):
    assert main(["bench", "--backends", "numpy", "--batch", "8", "--steps", "3", "--repeats", "1"]) == 0
    rows = {line.split()[1]: int(line.split()[2]) for line in capsys.readouterr().out.splitlines()
            if line.startswith("numpy ")}
    assert set(rows) == {"pc", "heun", "dopri5", "dpmpp_2m"}
    assert rows["pc"] == 2 * 3 and rows["dpmpp_2m"] == 3  # predictor + corrector per step; one per step


def test_bench_takes_networks_from_the_backend(capsys):
    pytest.importorskip("torch")
    rows = bench.nfe_table(["numpy", "torch"], model="mlp", samplers=("heun",), batch=4, steps=2, repeats=1,
                           out=lambda line: None)
    assert [(r["backend"], r["sampler"]) for r in rows] == [("numpy", "heun"), ("torch", "heun")]
    assert rows[0]["nfe"] == rows[1]["nfe"] > 0
    lines = []
    assert bench.nfe_table(["numpy"], model="unet", samplers=("heun",), batch=2, steps=2, repeats=1,
                           out=lines.append) == []
    assert "numpy                unavailable: NotImplementedError: backend 'numpy' has no U-Net" in lines[-1]


def test_nfe_table_checks_every_argument_before_measuring():
    with pytest.raises(ValueError, match="repeats must be a positive int, got 0"):
        bench.nfe_table(["numpy"], repeats=0, out=lambda line: pytest.fail("measured"))
    with pytest.raises(ValueError, match="backend must be one of 'numpy'"):
        bench.nfe_table(["numpy", "torch-xla"], out=lambda line: pytest.fail("measured"))
