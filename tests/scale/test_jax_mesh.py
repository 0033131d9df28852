"""JAX on a device mesh equals JAX on one device (4 forced host devices, in a subprocess).

``JaxBackend(mesh=4)`` shards the batch axis with ``NamedSharding``; the whole run stays one
``jax.jit``. The noise is bit-identical to the one-device run (counter-based, per row); the
results agree to float64 rounding (XLA fuses a 4-row shard differently from a 16-row batch);
the adaptive solve's compiled program has exactly one cross-device collective, the
while-loop's "any sample still running"; results come back sharded over the 4 devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EPS = np.finfo(np.float64).eps


def _run(part, tmp_path):
    out = tmp_path / f"{part}.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "OMP_NUM_THREADS": "1",
           "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join(os.path.join(ROOT, p) for p in ("src", "backends", "reference"))}
    # A bound, not an expectation: about 15 s of CPU each; the wall clock waits on a loaded machine.
    done = subprocess.run([sys.executable, os.path.join(HERE, "jax_mesh_job.py"), str(out), part], env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    d = np.load(out)
    return {k: d[k] for k in d.files if k != "facts"}, json.loads(str(d["facts"]))


def _close(a, b, ulps=4096):
    np.testing.assert_allclose(b, a, rtol=0, atol=ulps * EPS * max(1.0, float(np.abs(a).max())))


def test_mesh_sampling_equals_one_device(tmp_path):
    r, facts = _run("samplers", tmp_path)
    assert facts["devices"] == 4
    # The noise and the prior draw: bit for bit, and laid out over the 4 devices.
    for name in ("noise", "prior"):
        np.testing.assert_array_equal(r[f"{name}/mesh"], r[f"{name}/one"])
        assert facts[f"{name}/spec"] == "P('batch',)" and facts[f"{name}/devices"] == 4
    for name in ("pc", "dpmpp_2m", "dopri5"):
        _close(r[f"{name}/one"], r[f"{name}/mesh"])
        assert facts[f"{name}/spec"] == "P('batch',)" and facts[f"{name}/devices"] == 4
        assert np.abs(r[f"{name}/one"]).max() > 1.0  # real samples of the ring (radius 4), not zeros
    _close(r["uneven/one"], r["uneven/mesh"])
    assert facts["uneven/spec"] == "P()"  # replicated on the 4 devices
    assert facts["dopri5/collectives"] == {"all-reduce": 1, "all-gather": 0, "all-to-all": 0,
                                           "collective-permute": 0, "reduce-scatter": 0}
    (line,) = facts["dopri5/all-reduce lines"]
    assert line.split("=")[1].strip().startswith("pred[] all-reduce(")  # one bool per iteration
    assert "while/cond" in line


@pytest.fixture(scope="module")
def likelihood_run(tmp_path_factory):
    return _run("likelihood", tmp_path_factory.mktemp("mesh"))


def test_mesh_likelihood_and_encoding_equal_one_device(likelihood_run):
    r, facts = likelihood_run
    for name in ("loglik", "hutchinson", "encode"):
        _close(r[f"{name}/one"], r[f"{name}/mesh"])
        assert facts[f"{name}/spec"] == "P('batch',)" and facts[f"{name}/devices"] == 4
    assert np.all(np.isfinite(r["loglik/one"]))
    assert np.abs(r["hutchinson/one"] - r["loglik/one"]).max() > 1e-6  # the probes are used


def test_mesh_bits_per_dim_equals_one_device(likelihood_run):
    r, facts = likelihood_run
    assert "bpd/one/error" not in facts
    assert "bpd/mesh/error" not in facts, facts["bpd/mesh/error"]
    _close(r["bpd/one"], r["bpd/mesh"])  # dequantization noise drawn on the mesh, rows by index


def test_data_parallel_training_steps_equal_one_device(tmp_path):
    r, facts = _run("training", tmp_path)
    assert facts["train/mesh/param devices"] == 4 and facts["train/one/param devices"] == 1
    assert facts["train/uneven"] == ("the batch size (6) must be a multiple of the mesh's 4 devices along 'batch' "
                                     "to be sharded")
    names = sorted(k[:-len("/one")] for k in r if k.endswith("/one"))
    assert len(names) >= 10
    for name in names:
        _close(r[f"{name}/one"], r[f"{name}/mesh"], ulps=256)
    moved = [np.abs(r[f"{n}/one"] - r[f"{n}/init"]).max() for n in names if f"{n}/init" in r]
    assert max(moved) > 1e-4  # two Adam steps moved the weights
