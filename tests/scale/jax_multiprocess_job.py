"""Run by test_jax_multiprocess.py: process ``PID`` of 2, each with 2 forced host devices, joined
by ``jax.distributed.initialize`` into one 4-device mesh (CPU collectives over gloo).

``python jax_multiprocess_job.py PID PORT OUT.npz`` saves the mesh run's samples (gathered
from both processes) and the same run on this process's one local device.
"""

from __future__ import annotations

import json
import sys

import jax

pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)

import numpy as np  # noqa: E402

import scorecore as sc  # noqa: E402
from scorecore_jax import JaxBackend  # noqa: E402

mesh = JaxBackend(mesh=jax.sharding.Mesh(jax.devices(), ("batch",)), x64=True)
one = JaxBackend(jax.local_devices()[0], x64=True)
sde = sc.VPSDE()
model = sc.GaussianMixture.example("8-ring").score_model(sde)
res, facts = {}, {"devices": len(jax.devices()), "local": len(jax.local_devices())}
for name, steps, opts in [("dpmpp_2m", 6, {}), ("dopri5", None, dict(rtol=1e-4, atol=1e-4))]:
    x = sc.sample(model, sde, (8, 2), name, steps, backend=mesh, dtype="float64", seed=1, progress=False, **opts)
    facts[f"{name}/addressable"] = bool(x.is_fully_addressable)
    res[f"{name}/mesh"] = mesh.to_numpy(x)
    res[f"{name}/one"] = one.to_numpy(sc.sample(model, sde, (8, 2), name, steps, backend=one, dtype="float64", seed=1,
                                                progress=False, **opts))
np.savez(out, facts=json.dumps(facts), **res)
