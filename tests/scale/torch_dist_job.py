"""Run by test_torch_distributed.py: under ``torchrun --nproc_per_node=2`` (gloo) or alone.

``python torch_dist_job.py OUT_PREFIX`` writes ``OUT_PREFIX.<rank>.npz``: the gathered
samples, this rank's own rows, the likelihood totals, bits/dim, and the weights after four
DDP steps straight and after two steps, a rank-0 checkpoint and a resume. The test compares a
two-rank run with a one-process run.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

import scorecore as sc
from scorecore import training
from scorecore_torch import distributed as D

torch.set_num_threads(1)
prefix = sys.argv[1]
rank, world = D.init("gloo")
sde = sc.VPSDE()
ring = sc.GaussianMixture.example("8-ring")
model = ring.score_model(sde)
out = {"world": np.asarray(world)}

x = D.sample(model, sde, (10, 2), "pc", 30, dtype="float64", seed=4, progress=False)
local, offset = D.sample(model, sde, (10, 2), "pc", 30, dtype="float64", seed=4, progress=False, gather=False)
out |= {"samples": x.numpy(), "local": local.numpy(), "offset": np.asarray(offset)}

points = ring.sample(10, seed=5)
total = D.log_likelihood(model, sde, points, dtype="float64", gather=True, divergence="hutchinson", n_probes=1,
                         seed=3)
out |= {"ll_mean": np.asarray(total.mean), "ll_stderr": np.asarray(total.stderr), "ll_n": np.asarray(total.n),
        "ll_all": total.all.numpy(), "ll_local": total.local.numpy(), "ll_offset": np.asarray(total.offset)}

levels = np.clip(np.round((points + 6.0) / 12.0 * 255), 0, 255).astype(np.int64)
bpd = D.bits_per_dim(model, sde, levels, n_levels=256, data_range=(-6.0, 6.0), n_dequant=2, dtype="float64",
                     seed=1)
out |= {"bpd_mean": np.asarray(bpd.mean), "bpd_stderr": np.asarray(bpd.stderr), "bpd_per_draw": bpd.per_draw}

config = training.TrainConfig(backend="torch", model="mlp", steps=4, batch_size=8, lr=1e-2, warmup=0, ema=0.5,
                              seed=0, dtype="float64", model_kwargs={"hidden": 16, "depth": 2})
data = sc.data.toy("8-ring", 32, seed=0)
straight = D.DDPTrainer(config, (2,))
out["init:params.layers.0.weight"] = straight.state_dict()["params.layers.0.weight"]
losses = [loss for _, loss, _ in D.fit(straight, data, config)]
ckpt = f"{prefix}.ckpt.safetensors"
first = D.DDPTrainer(config, (2,))
D.fit(first, data, config, stop=2, checkpoint=ckpt)
resumed, _, step = D.resume(ckpt)
D.fit(resumed, data, config, start=step)
for name, trainer in [("straight", straight), ("resumed", resumed)]:
    for k, v in trainer.state_dict().items():
        out[f"{name}:{k}"] = np.asarray(v)
out["losses"] = np.asarray(losses)
out["ckpt_step"] = np.asarray(step)
np.savez(f"{prefix}.{rank}.npz", **out)
if world > 1:
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
os.environ.pop("WORLD_SIZE", None)
