"""GPU check in one command, on a machine with CUDA (run from the repository root):

    PYTHONPATH=src:backends:reference python benchmarks/gpu_check.py

1. runs the conformance suite with ``SCORECORE_TEST_DEVICES=cuda``, adding torch on CUDA,
   JAX on its GPU and CuPy to the CPU cases (each skipped with its reason if it can't run);
2. prints NFE/sec of annealed Langevin on the 8-ring's exact score (VE SDE, batch 16384,
   float32) per backend: NFE (score evaluations, exact) over wall time of a warm run.

``--cpu`` is a dry run on CPU backends with a small batch (to check the script itself);
``--no-tests`` skips step 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def run_conformance(cpu: bool) -> int:
    env = dict(os.environ)
    if not cpu:
        env["SCORECORE_TEST_DEVICES"] = "cuda"
    cmd = [sys.executable, "-m", "pytest", "tests/conformance", "-q", "-p", "no:cacheprovider"]
    print("$", " ".join(cmd), "" if cpu else "(SCORECORE_TEST_DEVICES=cuda)", flush=True)
    return subprocess.call(cmd, env=env)


def backends(cpu: bool):
    import scorecore as sc

    def torch_b():
        from scorecore_torch import TorchBackend

        return TorchBackend(None if cpu else "cuda")

    def jax_b():
        from scorecore_jax import JaxBackend

        return JaxBackend(None if cpu else "gpu")

    makers = [("numpy (host)", lambda: sc.get_backend("numpy")), ("torch" + ("" if cpu else "-cuda"), torch_b),
              ("jax" + ("" if cpu else "-gpu"), jax_b)]
    if not cpu:
        makers.append(("cupy", lambda: sc.get_backend("cupy")))
    for name, make in makers:
        try:
            yield name, make()
        except Exception as exc:  # a missing framework or device: report and go on
            yield name, exc


def nfe_per_second(be, batch: int, levels: int, each: int, repeats: int = 3):
    import scorecore as sc

    target, sde = sc.GaussianMixture.example("8-ring"), sc.VESDE()
    model = target.score_model(sde)
    run = lambda seed: sc.sample(model, sde, (batch, 2), sampler="ald", steps=levels, n_steps_each=each,  # noqa: E731
                                 backend=be, seed=seed, dtype="float32", progress=False, return_info=True)
    x, info = run(0)  # warm-up: compilation, caches
    be.block_until_ready(x)
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        x, info = run(r + 1)
        be.block_until_ready(x)
        best = min(best, time.perf_counter() - t0)
    return info.nfe, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="dry run on CPU backends, small batch")
    ap.add_argument("--no-tests", action="store_true", help="skip the conformance suite")
    args = ap.parse_args(argv)
    rc = 0 if args.no_tests else run_conformance(args.cpu)
    batch, levels, each = (1024, 10, 5) if args.cpu else (16384, 100, 10)
    print(f"\nannealed Langevin, 8-ring exact score, VE, float32, batch {batch}, "
          f"{levels}×{each} steps (+1 denoise), best of 3 warm runs")
    print(f"{'backend':16s} {'NFE':>6s} {'seconds':>9s} {'NFE/s':>9s} {'samples·NFE/s':>14s}")
    for name, be in backends(args.cpu):
        if isinstance(be, Exception):
            print(f"{name:16s} unavailable: {be}")
            continue
        nfe, sec = nfe_per_second(be, batch, levels, each)
        print(f"{name:16s} {nfe:6d} {sec:9.3f} {nfe / sec:9.1f} {batch * nfe / sec:14.3g}")
    print("\nconformance suite:", "passed" if rc == 0 else f"FAILED (pytest exit {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
