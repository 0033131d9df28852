"""Run in a subprocess by test_jax_mesh.py: one-device and 4-device (mesh) runs side by side.

``python jax_mesh_job.py OUT.npz PART`` with XLA_FLAGS forcing 4 host devices; PART is
``samplers``, ``likelihood`` or ``training``. Saves each result twice (``<name>/one``, ``<name>/mesh``)
with facts about the mesh run (shardings, collectives) in ``facts`` (JSON), and leaves every
comparison to the test.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np

import scorecore as sc
from scorecore.api import prior_draw
from scorecore.samplers import Context, make_sampler, run
from scorecore_jax import JaxBackend
from scorecore_jax.sharding import hlo_collectives

N = 16
one, mesh = JaxBackend(x64=True), JaxBackend(x64=True, mesh=4)
sde = sc.VPSDE()
model = sc.GaussianMixture.example("8-ring").score_model(sde)
out, facts = {}, {"devices": len(jax.devices())}


def spec(x):
    return str(getattr(x.sharding, "spec", None))


def pair(name, fn):
    t0 = time.perf_counter()
    a, b = fn(one), fn(mesh)
    facts[f"{name}/seconds"] = round(time.perf_counter() - t0, 2)
    out[f"{name}/one"], out[f"{name}/mesh"] = np.asarray(a), np.asarray(b)
    facts[f"{name}/spec"] = spec(b)
    facts[f"{name}/devices"] = len(b.sharding.device_set)


def samplers():
    pair("noise", lambda be: be.normal(be.fold_in(be.key(3), 7), (N, 2), "float64", offset=5))
    pair("prior", lambda be: prior_draw(sde, Context(be, be.dtype("float64"), (N, 2)), be.key(3)))
    for name, steps, opts in [("pc", 30, {}), ("dpmpp_2m", 8, {}), ("dopri5", None, dict(rtol=1e-4, atol=1e-4))]:
        pair(name, lambda be: sc.sample(model, sde, (N, 2), name, steps, backend=be, dtype="float64", seed=1,
                                        progress=False, **opts))
    # A batch the 4 devices do not divide is replicated: slower, still the same samples.
    pair("uneven", lambda be: sc.sample(model, sde, (10, 2), "dpmpp_2m", 8, backend=be, dtype="float64", seed=1,
                                        progress=False))
    # The adaptive run's compiled program: which collectives cross devices.
    ctx = Context(mesh, mesh.dtype("float64"), (N, 2))
    key = mesh.key(1)
    x0 = prior_draw(sde, ctx, key)
    program = make_sampler("dopri5", None, rtol=1e-4, atol=1e-4).program(model, sde, ctx, 1e-3)
    run(program, x0, ctx, key, name="dopri5")
    text = program.compiled["run"].lower(x0, key).compile().as_text()
    facts["dopri5/collectives"] = hlo_collectives(text)
    facts["dopri5/all-reduce lines"] = [line.strip()[:300] for line in text.splitlines()
                                        if " all-reduce(" in line or " all-reduce-start(" in line]
    facts["dopri5/uses"] = [line.strip()[:300] for line in text.splitlines()
                            if "%all-reduce" in line and " all-reduce(" not in line]


def likelihood():
    x = sc.GaussianMixture.example("8-ring").sample(N, seed=4)
    pair("loglik", lambda be: sc.log_likelihood(model, sde, x, backend=be, dtype="float64"))
    pair("hutchinson", lambda be: sc.log_likelihood(model, sde, x, backend=be, dtype="float64",
                                                    divergence="hutchinson", n_probes=2, seed=2))
    pair("encode", lambda be: sc.encode(model, sde, x, backend=be, dtype="float64"))
    levels = np.clip(np.round((x + 6.0) / 12.0 * 255), 0, 255).astype(np.int64)
    for be, name in [(one, "one"), (mesh, "mesh")]:
        try:
            bpd = sc.bits_per_dim(model, sde, levels, n_levels=256, data_range=(-6.0, 6.0), backend=be,
                                  dtype="float64", seed=1)
            out[f"bpd/{name}"] = bpd.per_draw
        except Exception as exc:  # reported to the test, which names it
            facts[f"bpd/{name}/error"] = f"{type(exc).__name__}: {exc}"


def training_steps():
    # Two data-parallel training steps: the batch split over 4 devices, the state replicated.
    from scorecore import training

    config = training.TrainConfig(backend="jax", model="mlp", sde="vp", steps=2, batch_size=N, lr=1e-3,
                                  warmup=0, ema=0.5, seed=0, dtype="float64", model_kwargs={"hidden": 16, "depth": 2})
    data = sc.data.toy("8-ring", 64, seed=0)
    for name, shard in [("one", None), ("mesh", 4)]:
        trainer = training.make_trainer(config, (2,))
        if shard:
            trainer.shard(shard)
        training.fit(trainer, data, config, progress=False)
        state = trainer.state_dict()
        for k in sorted(state):
            if k.startswith(("params.", "ema.")):
                out[f"train:{k}/{name}"] = np.asarray(state[k])
        facts[f"train/{name}/param devices"] = len(jax.tree.leaves(trainer.params)[0].sharding.device_set)
    try:
        trainer.step(trainer.backend.asarray(np.zeros((6, 2)), "float64"), 0, 1e-3)
    except ValueError as exc:
        facts["train/uneven"] = str(exc)
    config0 = training.make_trainer(config, (2,)).state_dict()
    for k in config0:
        if k.startswith("params."):
            out[f"train:{k}/init"] = np.asarray(config0[k])


if __name__ == "__main__":
    {"samplers": samplers, "likelihood": likelihood, "training": training_steps}[sys.argv[2]]()
    np.savez(sys.argv[1], facts=json.dumps(facts), **out)
