"""Several hosts, as far as one CPU can test them: two processes joined by
``jax.distributed.initialize`` (2 forced host devices each) make one 4-device mesh, and
``JaxBackend(mesh=Mesh(jax.devices(), ...))`` samples across both — the fixed-step and the
adaptive run (whose while-loop all-reduces "any sample still running" across the processes) —
equal to one device, the result gathered from both processes by ``to_numpy``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_jax_processes_sample_on_one_mesh_equal_to_one_device(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(os.path.join(ROOT, p) for p in ("src", "backends", "reference"))}
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "jax_multiprocess_job.py"), str(pid), port,
                               str(tmp_path / f"{pid}.npz")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for pid in (0, 1)]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]  # a bound: about 10 s of CPU each
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    runs = [np.load(tmp_path / f"{pid}.npz") for pid in (0, 1)]
    for d in runs:
        facts = json.loads(str(d["facts"]))
        assert facts["devices"] == 4 and facts["local"] == 2
        for name in ("dpmpp_2m", "dopri5"):
            assert facts[f"{name}/addressable"] is False  # the samples really span both processes
            a, b = d[f"{name}/one"], d[f"{name}/mesh"]
            assert b.shape == (8, 2) and np.abs(a).max() > 1.0
            np.testing.assert_allclose(b, a, rtol=0, atol=4096 * np.finfo(np.float64).eps * np.abs(a).max())
    for name in ("dpmpp_2m/mesh", "dopri5/mesh"):
        np.testing.assert_array_equal(runs[0][name], runs[1][name])  # both processes gathered the same array
