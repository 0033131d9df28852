"""Resumable sampling jobs (:mod:`scorecore.jobs`, ``scorecore sample`` / ``merge``).

The shards of a job equal the rows of one big run (noise is batch invariant): bit for bit
with an elementwise model, to rounding with the exact mixture score (one BLAS product per
call). A job killed after k shards (SIGKILL in a subprocess: no cleanup runs) and rerun writes
exactly the shards of an uninterrupted run, byte for byte, and a corrupted shard is found by its
checksum and drawn again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import scorecore as sc
from scorecore import jobs
from scorecore._arrays import namespace, per_sample
from scorecore.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.join(ROOT, p) for p in ("src", "backends", "reference")),
       "OMP_NUM_THREADS": "1"}
SPEC = {"model": "test"}


class Elementwise:
    """The exact score of Π_j ½(N(2, 0.3²) + N(−2, 0.3²)) in each coordinate: no matrix product,
    so row i of the output never depends on the batch around it."""

    event_shape = (2,)

    def __init__(self, sde):
        self.sde = sde

    def __call__(self, x, t):
        xp = namespace(x)
        m, s = (per_sample(v, x) for v in self.sde.marginal(t))
        v = m * m * 0.09 + s * s
        return (-x + (2.0 * m) * xp.tanh((2.0 * m) * x / v)) / v


def _files(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
            if name.startswith("shard-")}


def test_plan_covers_every_row_once_and_ranks_split_the_shards():
    shards = jobs.plan(10, 4)
    assert [(s.offset, s.count) for s in shards] == [(0, 4), (4, 4), (8, 2)]
    assert [s.index for s in jobs.rank_shards(shards, 1, 2)] == [1]
    assert [s.index for s in jobs.rank_shards(shards, 0, 2)] == [0, 2]
    with pytest.raises(ValueError, match="rank must be an int in \\[0, 1\\], got 2"):
        jobs.rank_shards(shards, 2, 2)
    with pytest.raises(ValueError, match="chunk must be a positive int, got 0"):
        jobs.plan(10, 0)


def test_chunked_job_equals_one_big_run_bit_for_bit_with_an_elementwise_model(tmp_path):
    sde = sc.VPSDE()
    kw = dict(sampler="pc", steps=30, seed=3)
    report = jobs.sample_job(Elementwise(sde), sde, (2,), 70, 16, str(tmp_path), spec=SPEC, progress=False, **kw)
    assert report.complete and report.written == [0, 1, 2, 3, 4] and not report.skipped
    big = sc.sample(Elementwise(sde), sde, (70, 2), progress=False, **kw)
    np.testing.assert_array_equal(jobs.merge(str(tmp_path)), big)
    manifest = json.load(open(tmp_path / jobs.MANIFEST))
    assert manifest["complete"] and [s["offset"] for s in manifest["shards"]] == [0, 16, 32, 48, 64]
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    assert manifest["spec"]["seed"] == 3 and manifest["spec"]["sampler"] == "pc"


def test_chunked_job_of_the_mixture_score_equals_one_big_run_to_rounding(tmp_path):
    sde = sc.VPSDE()
    model = sc.GaussianMixture.example("8-ring").score_model(sde)
    kw = dict(sampler="dpmpp_2m", steps=10, seed=1)
    jobs.sample_job(model, sde, (2,), 50, 12, str(tmp_path), spec=SPEC, progress=False, **kw)
    big = sc.sample(model, sde, (50, 2), progress=False, **kw)
    x = jobs.merge(str(tmp_path), into=str(tmp_path / "all.npy"))
    assert isinstance(x, np.memmap)
    np.testing.assert_allclose(x, big, rtol=0, atol=4096 * np.finfo(np.float64).eps * np.abs(big).max())


KILLED = textwrap.dedent("""
    import os, signal, sys
    import scorecore as sc
    from scorecore import jobs
    sde = sc.VPSDE()
    model = sc.GaussianMixture.example("8-ring").score_model(sde)
    k = int(sys.argv[2])
    def after(shard):
        if shard.index + 1 == k:
            os.kill(os.getpid(), signal.SIGKILL)   # no finally, no atexit: a real kill
    jobs.sample_job(model, sde, (2,), 90, 20, sys.argv[1], spec={"model": "ring"}, sampler="pc", steps=25,
                    seed=7, progress=False, on_shard=after)
""")


def _job(folder, k):
    return subprocess.run([sys.executable, "-c", KILLED, str(folder), str(k)], env=ENV, timeout=120,
                          capture_output=True, text=True)


def test_a_killed_job_resumes_to_the_shards_of_an_uninterrupted_run_and_redoes_a_corrupt_one(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _job(whole, 0).returncode == 0
    done = _job(killed, 2)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert jobs.status(str(killed))["shards"] == {0: "complete", 1: "complete", 2: "missing", 3: "missing",
                                                  4: "missing"}
    with pytest.raises(jobs.JobError, match=r"3 of 5 shards are missing or corrupt: 2 \(missing\)"):
        jobs.merge(str(killed))
    (killed / ".shard-00002.safetensors.tmp999").write_bytes(b"half a shard")  # killed mid-write
    assert _job(killed, 0).returncode == 0
    assert _files(killed) == _files(whole)  # byte for byte: the same shards, the same records
    assert sorted(os.listdir(killed)) == sorted(os.listdir(whole))  # the partial file is gone

    # A flipped byte in shard 1's samples: found by its SHA-256, refused by merge, drawn again.
    path = killed / "shard-00001.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    path.write_bytes(bytes(data))
    assert jobs.shard_state(str(killed), jobs.plan(90, 20)[1]) == "corrupt"
    with pytest.raises(jobs.JobError, match=r"1 of 5 shards are missing or corrupt: 1 \(corrupt\)"):
        jobs.merge(str(killed))
    sde = sc.VPSDE()
    model = sc.GaussianMixture.example("8-ring").score_model(sde)
    calls = []
    report = jobs.sample_job(model, sde, (2,), 90, 20, str(killed), spec={"model": "ring"}, sampler="pc", steps=25,
                             seed=7, progress=False, on_shard=calls.append)
    assert report.redone == [1] and report.skipped == [0, 2, 3, 4] and [s.index for s in calls] == [1]
    assert _files(killed) == _files(whole)
    np.testing.assert_array_equal(jobs.merge(str(killed)), jobs.merge(str(whole)))


def test_a_rerun_with_other_arguments_is_refused_before_any_shard(tmp_path):
    sde = sc.VPSDE()
    drawn = []

    def draw(offset, count):
        drawn.append(offset)
        return np.zeros((count, 2))

    jobs.run(str(tmp_path), draw, 10, 5, SPEC, progress=False)
    assert drawn == [0, 5]
    with pytest.raises(jobs.JobError, match=r"holds another job \(chunk, spec.seed differ: the folder has chunk=5, "
                                            r"spec.seed=None; asked for chunk=4, spec.seed=1\)"):
        jobs.run(str(tmp_path), draw, 10, 4, {**SPEC, "seed": 1}, progress=False)
    assert drawn == [0, 5]
    with pytest.raises(jobs.JobError, match=r"draw\(offset=0, count=3\) returned 2 rows"):
        jobs.run(str(tmp_path / "b"), lambda o, c: np.zeros((2, 2)), 3, 3, SPEC, progress=False)
    with pytest.raises(TypeError, match="spec must hold JSON values only"):
        jobs.run(str(tmp_path / "c"), draw, 3, 3, {"model": sde}, progress=False)


def test_ranks_write_disjoint_shards_and_the_last_completes_the_manifest(tmp_path):
    drawn = {0: [], 1: []}

    def draw_for(rank):
        def draw(offset, count):
            drawn[rank].append(offset)
            return np.arange(offset, offset + count, dtype=np.float64)[:, None]
        return draw

    first = jobs.run(str(tmp_path), draw_for(0), 10, 3, SPEC, rank=0, world=2, progress=False)
    assert not first.complete and "complete" not in json.load(open(tmp_path / jobs.MANIFEST))
    second = jobs.run(str(tmp_path), draw_for(1), 10, 3, SPEC, rank=1, world=2, progress=False)
    assert second.complete and drawn == {0: [0, 6], 1: [3, 9]}
    np.testing.assert_array_equal(jobs.merge(str(tmp_path))[:, 0], np.arange(10.0))


def test_cli_sample_resume_and_merge(tmp_path, capsys):
    out = tmp_path / "job"
    argv = ["sample", "--n", "40", "--chunk", "16", "--steps", "25", "--seed", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert "shards written 3, redone (corrupt) 0, skipped (complete) 0" in capsys.readouterr().out
    os.remove(out / "shard-00002.safetensors")
    assert main(argv) == 0
    assert "shards written 1, redone (corrupt) 0, skipped (complete) 2" in capsys.readouterr().out
    assert main(["merge", str(out)]) == 0
    assert "merged        40 samples of shape (2,) (float64)" in capsys.readouterr().out
    sde = sc.VPSDE()
    big = sc.sample(sc.GaussianMixture.example("8-ring").score_model(sde), sde, (40, 2), "pc", 25, seed=2,
                    progress=False)
    x = np.load(out / "samples.npy")
    np.testing.assert_allclose(x, big, rtol=0, atol=4096 * np.finfo(np.float64).eps * np.abs(big).max())


def _fails(argv, capsys, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_sample_and_merge_refuse_bad_arguments_before_any_shard(tmp_path, capsys, monkeypatch):
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled despite a bad argument")

    monkeypatch.setattr(sc, "sample", no_sampling)
    monkeypatch.setattr("scorecore.api.sample", no_sampling)
    _fails(["sample", "--chunk", "0"], capsys, "argument --chunk: --chunk must be a positive int, got 0")
    _fails(["sample", "--n", "-1"], capsys, "argument --n: --n must be a positive int, got -1")
    _fails(["sample", "--steps", "1", "--out", str(tmp_path / "a")], capsys, "n_steps must be an int ≥ 2, got 1")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _fails(["sample", "--out", str(a_file)], capsys, f"--out must be a folder, got the file '{a_file}'")
    _fails(["sample", "--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "b")], capsys,
           "--checkpoint must be a training checkpoint file")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    _fails(["sample", "--out", str(tmp_path / "c")], capsys, "RANK must be an int in [0, 1], got 2")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    _fails(["merge", str(tmp_path)], capsys, "DIR must be a folder written by 'scorecore sample'")
    jobs.open_job(str(tmp_path / "d"), 4, 2, SPEC)
    _fails(["merge", str(tmp_path / "d"), "--out", str(tmp_path / "x.txt")], capsys, "--out must end in .npy")
    _fails(["sample", "--n", "4", "--chunk", "2", "--out", str(tmp_path / "d")], capsys, "holds another job")
    assert not any(p.name.startswith("shard-") for p in (tmp_path / "d").iterdir())
