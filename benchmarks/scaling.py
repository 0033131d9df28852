"""Scale-out: NFE/s on 1, 2, 4 (forced host, or GPU) JAX devices and 1, 2 torch processes, and
the peak memory of a 10⁷-sample chunked job. A benchmark, not a test.

    python benchmarks/scaling.py jax   [--batch 65536 --steps 30 --devices 1,2,4]
    python benchmarks/scaling.py torch [--batch 65536 --steps 30 --procs 1,2]
    python benchmarks/scaling.py rss   [--n 10000000 --chunk 65536]
    python benchmarks/scaling.py all    # all three, the table in benchmarks/results/scaling.md

NFE/s = (the run's score evaluations, ``SampleInfo.nfe``) / (wall time of a warm run), the
batch the same for every layout; the ratio column divides by the one-device (one-process)
figure measured in the same invocation (shared machines vary run to run; ratios measured
together do not). Every layout runs in its own subprocess: JAX reads
``XLA_FLAGS=--xla_force_host_platform_device_count=k`` at import, torch ranks come from
``torchrun``. On a GPU machine the JAX leg uses the GPUs (``--platform gpu``).

The memory leg runs ``scorecore.jobs.sample_job`` (8-ring, exact score, DPM-Solver++ 10 steps,
NumPy float64) in a subprocess and reports ``ru_maxrss`` after the imports, after the job and
after merging to one ``.npy`` file, against the size of one chunk and of all samples.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.join(ROOT, p) for p in ("src", "backends", "reference"))}

JAX_LEG = textwrap.dedent("""
    import json, sys, time
    import jax, numpy as np
    import scorecore as sc
    from scorecore_jax import JaxBackend
    k, batch, steps, repeats = (int(a) for a in sys.argv[1:5])
    platform = sys.argv[5]
    devices = jax.devices(platform)[:k]
    be = JaxBackend(mesh=jax.sharding.Mesh(devices, ("batch",)), matmul_precision=None)
    sde = sc.VPSDE()
    model = sc.GaussianMixture.example("8-ring").score_model(sde)
    run = lambda seed: sc.sample(model, sde, (batch, 2), "pc", steps, backend=be, seed=seed, progress=False,
                                 return_info=True)
    x, info = run(0); jax.block_until_ready(x)                  # compile
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter(); x, info = run(r + 1); jax.block_until_ready(x)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"devices": len(devices), "kind": devices[0].platform, "nfe": info.nfe, "seconds": best}))
""")

TORCH_LEG = textwrap.dedent("""
    import json, sys, time
    import torch, torch.distributed as dist
    import scorecore as sc
    from scorecore_torch import distributed as D
    batch, steps, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)                                     # one core per rank: the ranks are the parallelism
    rank, world = D.init("gloo")
    sde = sc.VPSDE()
    model = sc.GaussianMixture.example("8-ring").score_model(sde)
    run = lambda seed: D.sample(model, sde, (batch, 2), "pc", steps, seed=seed, progress=False, gather=False,
                                return_info=True)
    run(0)
    best = float("inf")
    for r in range(repeats):
        if world > 1: dist.barrier()
        t0 = time.perf_counter(); (x, info), _ = run(r + 1)
        if world > 1: dist.barrier()
        best = min(best, time.perf_counter() - t0)
    if rank == 0:
        print(json.dumps({"procs": world, "nfe": info.nfe, "seconds": best}))
    if world > 1: dist.destroy_process_group()
""")

RSS_LEG = textwrap.dedent("""
    import json, os, resource, sys, time
    import numpy as np
    import scorecore as sc
    from scorecore import jobs
    n, chunk, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    mib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux: KiB
    sde = sc.VPSDE()
    model = sc.GaussianMixture.example("8-ring").score_model(sde)
    base = mib()
    t0 = time.perf_counter()
    report = jobs.sample_job(model, sde, (2,), n, chunk, out, spec={"model": "8-ring"}, sampler="dpmpp_2m",
                             steps=10, seed=0, progress=False)
    seconds = time.perf_counter() - t0
    after_job = mib()
    x = jobs.merge(out, into=os.path.join(out, "all.npy"))
    after_merge = mib()
    mean = float(np.asarray(x[:100000]).mean())
    print(json.dumps({"n": n, "chunk": chunk, "shards": len(report.written), "seconds": seconds,
                      "rss_after_imports_mib": base, "rss_after_job_mib": after_job,
                      "rss_after_merge_mib": after_merge, "chunk_mib": chunk * 2 * 8 / 2**20,
                      "all_samples_mib": n * 2 * 8 / 2**20, "complete": report.complete,
                      "first_rows_mean": mean}))
""")


def _json_line(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def _go(cmd, env, timeout):
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{cmd[:4]}... failed:\n{done.stderr[-3000:]}")
    return _json_line(done.stdout)


def jax_leg(devices, batch, steps, repeats, platform):
    rows = []
    for k in devices:
        env = {**ENV, "OMP_NUM_THREADS": "1"}
        if platform == "cpu":
            env |= {"XLA_FLAGS": f"--xla_force_host_platform_device_count={k}", "JAX_PLATFORMS": "cpu"}
        rows.append(_go([sys.executable, "-c", JAX_LEG, str(k), str(batch), str(steps), str(repeats), platform],
                        env, 1800))
    return rows


def torch_leg(procs, batch, steps, repeats):
    rows = []
    for p in procs:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p}"]
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(TORCH_LEG)
        try:
            rows.append(_go(cmd + [f.name, str(batch), str(steps), str(repeats)], {**ENV, "OMP_NUM_THREADS": "1"},
                            1800))
        finally:
            os.unlink(f.name)
    return rows


def rss_leg(n, chunk):
    with tempfile.TemporaryDirectory() as out:
        return _go([sys.executable, "-c", RSS_LEG, str(n), str(chunk), os.path.join(out, "job")],
                   {**ENV, "OMP_NUM_THREADS": "1"}, 7200)


def table(rows, what, batch, steps):
    base = rows[0]["nfe"] / rows[0]["seconds"]
    lines = [f"| {what} | NFE | seconds | NFE/s | samples·NFE/s | ratio to 1 |", "|---|---|---|---|---|---|"]
    for r in rows:
        rate = r["nfe"] / r["seconds"]
        lines.append(f"| {r.get('devices', r.get('procs'))}{' ' + r['kind'] if 'kind' in r else ''} | {r['nfe']} | "
                     f"{r['seconds']:.3f} | {rate:.1f} | {rate * batch:.3g} | {rate / base:.2f} |")
    return f"PC sampler, 8-ring exact score, VP SDE, float32, batch {batch}, {steps} steps\n\n" + "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("leg", choices=["jax", "torch", "rss", "all"])
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--devices", default="1,2,4")
    p.add_argument("--procs", default="1,2")
    p.add_argument("--platform", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--n", type=int, default=10_000_000)
    p.add_argument("--chunk", type=int, default=65536)
    p.add_argument("--out", default=None, help="also write the report (markdown) here")
    a = p.parse_args(argv)
    parts = [f"# Scale-out ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores)\n"]
    if a.leg in ("jax", "all"):
        rows = jax_leg([int(k) for k in a.devices.split(",")], a.batch, a.steps, a.repeats, a.platform)
        parts.append("## JAX, one process, a mesh over k devices\n\n" + table(rows, "devices", a.batch, a.steps))
    if a.leg in ("torch", "all"):
        rows = torch_leg([int(k) for k in a.procs.split(",")], a.batch, a.steps, a.repeats)
        parts.append("## torch, torchrun processes (gloo, one thread each)\n\n" + table(rows, "processes", a.batch,
                                                                                         a.steps))
    if a.leg in ("rss", "all"):
        r = rss_leg(a.n, a.chunk)
        parts.append(
            f"## Peak memory of a chunked job\n\n{r['n']:,} samples of the 8-ring (DPM-Solver++, 10 steps, NumPy "
            f"float64) in {r['shards']} shards of {r['chunk']:,} in {r['seconds']:.0f} s. Peak RSS (ru_maxrss): "
            f"{r['rss_after_imports_mib']:.0f} MiB after the imports, {r['rss_after_job_mib']:.0f} MiB after the "
            f"job, {r['rss_after_merge_mib']:.0f} MiB after merging to one .npy; one chunk is "
            f"{r['chunk_mib']:.1f} MiB, all samples {r['all_samples_mib']:.0f} MiB.")
    report = "\n\n".join(parts) + "\n"
    print(report)
    if a.out:
        with open(a.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
