"""torch under ``torchrun --standalone --nproc_per_node=2`` (gloo) equals one process.

Each rank draws its rows through ``offset``; likelihood and bits/dim totals are all-reduced;
DDP trains on each rank's half of the same global batch. The two-rank results equal the
one-process run to float64 rounding (the model's products round differently at another
batch size, and DDP sums two half-batch gradients), the ranks agree with each other bit for
bit, and a two-rank run resumed from its rank-0 checkpoint equals the straight run bit for bit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
import torch.distributed  # noqa: E402

if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(os.path.join(ROOT, p) for p in ("src", "backends", "reference"))}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
EPS = np.finfo(np.float64).eps


def _go(cmd, cwd):
    # A bound, not an expectation: the two-rank run takes ~12 s of CPU.
    done = subprocess.run(cmd, env=ENV, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torchrun")
    script = os.path.join(HERE, "torch_dist_job.py")
    _go([sys.executable, script, str(tmp / "one")], tmp)
    _go(TORCHRUN + [script, str(tmp / "two")], tmp)
    yield {name: dict(np.load(tmp / f"{name}.npz")) for name in ("one.0", "two.0", "two.1")}
    shutil.rmtree(tmp, ignore_errors=True)


def _close(a, b, ulps=4096):
    np.testing.assert_allclose(b, a, rtol=0, atol=ulps * EPS * max(1.0, float(np.abs(a).max())))


def test_two_ranks_sample_their_rows_and_gather_the_one_process_samples(runs):
    one, r0, r1 = runs["one.0"], runs["two.0"], runs["two.1"]
    assert int(one["world"]) == 1 and int(r0["world"]) == int(r1["world"]) == 2
    _close(one["samples"], r0["samples"])
    np.testing.assert_array_equal(r0["samples"], r1["samples"])  # every rank holds the gathered rows
    assert int(r0["offset"]) == 0 and int(r1["offset"]) == 5
    np.testing.assert_array_equal(r0["local"], r0["samples"][:5])
    np.testing.assert_array_equal(r1["local"], r1["samples"][5:])
    assert np.abs(one["samples"]).max() > 1.0


def test_likelihood_and_bits_per_dim_totals_are_all_reduced(runs):
    one, r0, r1 = runs["one.0"], runs["two.0"], runs["two.1"]
    for k in ("ll_mean", "ll_stderr", "ll_all", "bpd_mean", "bpd_stderr", "bpd_per_draw"):
        _close(one[k], r0[k])
        np.testing.assert_array_equal(r0[k], r1[k])
    assert int(r0["ll_n"]) == 10 and int(r0["ll_offset"]) == 0 and int(r1["ll_offset"]) == 5
    _close(r0["ll_all"][5:], r1["ll_local"], ulps=0)
    assert np.isclose(float(r0["ll_mean"]), r0["ll_all"].mean(), rtol=1e-12)
    assert r0["bpd_per_draw"].shape == (2, 10) and float(r0["bpd_stderr"]) > 0


def test_ddp_training_equals_one_process_and_resumes_exactly(runs):
    one, r0, r1 = runs["one.0"], runs["two.0"], runs["two.1"]
    names = [k for k in one if k.startswith("straight:")]
    assert len(names) > 20 and int(r0["ckpt_step"]) == 2
    for k in names:
        _close(one[k], r0[k], ulps=256)
        np.testing.assert_array_equal(r0[k], r1[k])  # DDP keeps the replicas identical
        np.testing.assert_array_equal(r0[k], r0["resumed:" + k[len("straight:"):]])
    _close(one["losses"], r0["losses"], ulps=256)
    # Four Adam steps at lr 1e-2 moved the weights: the comparison is not of initial weights.
    assert np.abs(one["straight:params.layers.0.weight"] - one["init:params.layers.0.weight"]).max() > 1e-3


def test_cli_sample_under_torchrun_splits_the_shards_and_equals_one_process(tmp_path):
    argv = ["sample", "--n", "40", "--chunk", "8", "--steps", "25", "--quiet"]
    _go([sys.executable, "-m", "scorecore.cli"] + argv + ["--out", str(tmp_path / "one")], tmp_path)
    # "--": torchrun's own parser would take --n for an abbreviation of its --nnodes.
    done = _go(TORCHRUN + ["-m", "scorecore.cli", "--"] + argv + ["--out", str(tmp_path / "two")], tmp_path)
    assert "rank 0/2: shards written 3" in done.stdout and "rank 1/2: shards written 2" in done.stdout
    for name in sorted(os.listdir(tmp_path / "one")):
        if name.startswith("shard-"):
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    from scorecore import jobs

    np.testing.assert_array_equal(jobs.merge(str(tmp_path / "two")), jobs.merge(str(tmp_path / "one")))


def test_cli_train_under_torchrun_is_data_parallel_and_equals_one_process(tmp_path):
    from scorecore import checkpoint

    argv = ["train", "--data", "8-ring", "--backend", "torch", "--steps", "4", "--batch-size", "8", "--n-data", "32",
            "--width", "16", "--depth", "2", "--warmup", "0", "--lr", "1e-2", "--checkpoint-every", "2", "--quiet",
            "--n-samples", "16", "--sample-steps", "30"]
    _go([sys.executable, "-m", "scorecore.cli"] + argv + ["--out", str(tmp_path / "one")], tmp_path)
    done = _go(TORCHRUN + ["-m", "scorecore.cli", "--"] + argv + ["--out", str(tmp_path / "two")], tmp_path)
    assert done.stdout.count("trained       4 steps") == 1  # rank 0 reports, samples and plots
    one = checkpoint.load(tmp_path / "one" / "checkpoint.safetensors")
    two = checkpoint.load(tmp_path / "two" / "checkpoint.safetensors")
    assert sorted(one) == sorted(two)
    for k in one:
        # float32 training: two half-batch gradients summed by DDP round differently from one.
        a = one[k].astype(np.float64)
        tol = 100 * np.finfo(np.float32).eps * max(1.0, float(np.abs(a).max()))
        np.testing.assert_allclose(two[k], a, rtol=0, atol=tol, err_msg=k)
    rows = (tmp_path / "two" / "loss.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0] == "step,loss,lr"  # one writer: rank 0
    # Two steps, then --resume to four: every rank restarts from rank 0's checkpoint, exactly.
    short = list(argv)
    short[short.index("--steps") + 1] = "2"
    _go(TORCHRUN + ["-m", "scorecore.cli", "--"] + short + ["--out", str(tmp_path / "resumed")], tmp_path)
    done = _go(TORCHRUN + ["-m", "scorecore.cli", "--"] + argv + ["--out", str(tmp_path / "resumed"), "--resume"],
               tmp_path)
    assert done.stdout.count("resumed ") == 1 and "at step 2" in done.stdout
    resumed = checkpoint.load(tmp_path / "resumed" / "checkpoint.safetensors")
    for k in two:
        np.testing.assert_array_equal(resumed[k], two[k], err_msg=k)
    assert (tmp_path / "resumed" / "loss.csv").read_text() == (tmp_path / "two" / "loss.csv").read_text()


def test_cli_train_under_torchrun_refuses_another_backend(tmp_path):
    done = subprocess.run(TORCHRUN + ["-m", "scorecore.cli", "--", "train", "--backend", "numpy", "--out",
                                      str(tmp_path / "x")], env=ENV, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "--backend must be torch under torchrun (WORLD_SIZE=2), got 'numpy'" in done.stderr
    assert not (tmp_path / "x").exists()


def test_the_likelihood_command_under_torchrun_prints_the_one_process_bits_per_dim(tmp_path):
    # Each rank scores its own images (dequantization noise and probes at their row indices) and
    # rank 0 prints the gathered mean: the same line as one process, to the printed digits.
    pytest.importorskip("diffusers")
    sys.path.insert(0, os.path.join(ROOT, "tests", "adapters"))
    from tiny_nets import tiny_unet

    import diffusers

    tiny_unet().to(torch.float32).save_pretrained(tmp_path / "m")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_config(tmp_path / "m")
    np.savez(tmp_path / "data.npz", images=np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8))
    cmd = ["-m", "scorecore.cli", "likelihood", "--model", f"diffusers:{tmp_path / 'm'}", "--data",
           str(tmp_path / "data.npz"), "--steps", "2", "--batch-size", "2", "--quiet"]
    one = _go([sys.executable, *cmd], tmp_path).stdout
    two = _go(TORCHRUN + cmd, tmp_path).stdout
    lines = [line for line in two.splitlines() if line.startswith("bits/dim")]
    assert "over 5 images" in one and lines == [line for line in one.splitlines() if line.startswith("bits/dim")]
