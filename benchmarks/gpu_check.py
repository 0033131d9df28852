"""GPU check in one command, on a machine with CUDA (run from the repository root):

    PYTHONPATH=src:backends:reference python benchmarks/gpu_check.py

1. runs the conformance suite with ``SCORECORE_TEST_DEVICES=cuda``, adding torch on CUDA,
   JAX on its GPU and CuPy to the CPU cases (each skipped with its reason if it can't run);
2. prints the NFE/s table of ``scorecore bench`` (``scorecore.bench.nfe_table``: PC, Heun,
   adaptive RK45, DPM-Solver++ on the 8-ring's exact score, VP SDE, batch 16384, float32) for
   NumPy on the host and torch, compiled torch, JAX and CuPy on the GPU.

``--cpu`` is a dry run on CPU backends with a small batch (to check the script itself);
``--no-tests`` skips step 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def run_conformance(cpu: bool) -> int:
    env = dict(os.environ)
    if not cpu:
        env["SCORECORE_TEST_DEVICES"] = "cuda"
    cmd = [sys.executable, "-m", "pytest", "tests/conformance", "-q", "-p", "no:cacheprovider"]
    print("$", " ".join(cmd), "" if cpu else "(SCORECORE_TEST_DEVICES=cuda)", flush=True)
    return subprocess.call(cmd, env=env)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="dry run on CPU backends, small batch")
    ap.add_argument("--no-tests", action="store_true", help="skip the conformance suite")
    args = ap.parse_args(argv)
    rc = 0 if args.no_tests else run_conformance(args.cpu)
    from scorecore.bench import nfe_table

    names = ["numpy", "torch", "jax"] if args.cpu else ["numpy", "torch-cuda", "torch-compile-cuda", "jax-gpu", "cupy"]
    print()
    nfe_table(names, batch=1024 if args.cpu else 16384, steps=10 if args.cpu else 50)
    print("\nconformance suite:", "passed" if rc == 0 else f"FAILED (pytest exit {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
