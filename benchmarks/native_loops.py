"""The cost of abstraction: scorecore's samplers against hand-written loops, side by side.

    PYTHONPATH=src:backends:reference python benchmarks/native_loops.py [--batch 16384] [--steps 20]

For each backend (NumPy, torch, JAX jitted) and sampler (reverse-SDE Euler–Maruyama,
probability-flow Heun) on the same model (the 8-ring's exact score under the VP SDE, float32)
with the same times and steps, it times, alternating, best of ``--repeats``:

* **scorecore**: the sampler's program run by the driver of ``sc.sample`` (built once: on
  JAX the whole run is traced and compiled once, then reused — :class:`scorecore.bench.Bench`);
* **native**: a loop written directly in the framework with its own generator
  (``numpy.random.Generator``, ``torch.randn``, ``jax.random.normal`` of ``fold_in(key, k)``
  under ``jax.lax.fori_loop`` in one ``jax.jit``);
* **native + scorecore RNG**: the same loop drawing scorecore's batch-invariant noise
  (``backend.normal(fold_in(key, k), shape)``: counter-based SplitMix64 + Box–Muller on
  NumPy/torch, one ``fold_in`` per row under ``vmap`` on JAX),

and writes ``benchmarks/results/abstraction_cost.md``. scorecore/native is the price of the
abstraction as shipped; scorecore/(native + scorecore RNG) is the driver's own overhead
(finiteness check, per-step time arrays); their quotient is what batch-invariant noise costs.
It also times one ``sc.sample`` call on JAX (whatever ``scorecore.bench`` does: a first call traces
and compiles; later calls with the same sampler, shapes, dtype and model structure reuse the
compiled run — ``benchmarks/peers_speed.py --jax`` times those).

Threads are pinned to ``--threads`` (default 1) for every framework before they are imported:
on a shared machine oversubscribed thread pools make timings swing by 10×.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

SAMPLERS = ("reverse-sde", "heun")
BACKENDS = ("numpy", "torch", "jax")
TARGET = {"jax": 1.05}  # the jitted JAX sampler; every other backend: 1.10
DEFAULT_TARGET = 1.10


def pin_threads(n: int) -> None:
    """Limit BLAS/OpenMP, torch and XLA to ``n`` threads (call before importing them)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


# -- the VP SDE's coefficients, written out (β(t) = β_min + t (β_max − β_min)) -------------
def _beta(sde, t: float) -> float:
    return sde.beta_min + t * (sde.beta_max - sde.beta_min)


def _em_plan(sde, steps: int, eps: float):
    """Euler–Maruyama on the reverse SDE at PC's times t_k = linspace(T, eps, N), t_N = 0;
    per step x ← a_k x + b_k s(x, t_k) + c_k z with a = 1 − ½β Δt, b = −β Δt, c = √(β |Δt|)
    (Δt < 0) and no noise on the last step (score_sde's denoising)."""
    T = sde.T
    times = [T + (eps - T) * k / (steps - 1) for k in range(steps - 1)] + [eps]
    nexts = times[1:] + [0.0]
    a, b, c = [], [], []
    for k, (t, tn) in enumerate(zip(times, nexts)):
        dt, beta = tn - t, _beta(sde, t)
        a.append(1.0 - 0.5 * beta * dt)
        b.append(-beta * dt)
        c.append(math.sqrt(beta * -dt) if k < steps - 1 else 0.0)
    return times, a, b, c


def _heun_grid(sde, steps: int, eps: float):
    T = sde.T
    return [T + (eps - T) * k / steps for k in range(steps)] + [eps]


def _pf(sde, x, t, s):
    """Probability-flow drift −½β(t)(x + s) for a Python-float t."""
    return (-0.5 * _beta(sde, t)) * (x + s)


# -- native loops -------------------------------------------------------------------------
def numpy_loop(model, sde, x0, sampler, steps, eps, seed, noise=None):
    """A plain NumPy loop; ``noise(k)`` replaces the native generator when given."""
    import numpy as np

    n, x = x0.shape[0], x0
    ones = np.ones((n,), dtype=x0.dtype)
    if sampler == "heun":
        g = _heun_grid(sde, steps, eps)
        for k in range(steps):
            h = g[k + 1] - g[k]
            d1 = _pf(sde, x, g[k], model(x, g[k] * ones))
            if k == steps - 1:
                x = x + h * d1
            else:
                xe = x + h * d1
                d2 = _pf(sde, xe, g[k + 1], model(xe, g[k + 1] * ones))
                x = x + (0.5 * h) * (d1 + d2)
        return x
    rng = np.random.default_rng(seed)
    times, a, b, c = _em_plan(sde, steps, eps)
    for k in range(steps):
        z = noise(k) if noise else rng.standard_normal(x.shape, dtype=x.dtype)
        x = a[k] * x + b[k] * model(x, times[k] * ones) + c[k] * z
    return x


def torch_loop(model, sde, x0, sampler, steps, eps, seed, noise=None):
    """A plain torch loop (no autograd)."""
    import torch

    with torch.inference_mode():
        n, x = x0.shape[0], x0
        ones = torch.ones((n,), dtype=x0.dtype, device=x0.device)
        if sampler == "heun":
            g = _heun_grid(sde, steps, eps)
            for k in range(steps):
                h = g[k + 1] - g[k]
                d1 = _pf(sde, x, g[k], model(x, g[k] * ones))
                if k == steps - 1:
                    x = x + h * d1
                else:
                    xe = x + h * d1
                    d2 = _pf(sde, xe, g[k + 1], model(xe, g[k + 1] * ones))
                    x = x + (0.5 * h) * (d1 + d2)
            return x
        gen = torch.Generator(device=x0.device).manual_seed(seed)
        times, a, b, c = _em_plan(sde, steps, eps)
        for k in range(steps):
            z = noise(k) if noise else torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
            x = a[k] * x + b[k] * model(x, times[k] * ones) + c[k] * z
        return x


def jax_loop(model, sde, sampler, steps, eps, noise=None):
    """``jit``-compiled ``(x0, key) -> x`` with ``jax.lax.fori_loop`` over precomputed
    coefficient arrays; ``noise(key_k, shape)`` replaces ``jax.random.normal``."""
    import jax
    import jax.numpy as jnp

    def F(x, t):
        s = model(x, jnp.broadcast_to(t, (x.shape[0],)))
        return -0.5 * (sde.beta_min + t * (sde.beta_max - sde.beta_min)) * (x + s)

    if sampler == "heun":
        g = _heun_grid(sde, steps, eps)

        @jax.jit
        def run(x0, key):
            grid = jnp.asarray(g, dtype=x0.dtype)

            def body(k, x):
                t, tn = grid[k], grid[k + 1]
                h = tn - t
                d1 = F(x, t)
                return x + (0.5 * h) * (d1 + F(x + h * d1, tn))

            x = jax.lax.fori_loop(0, steps - 1, body, x0)
            return x + (grid[steps] - grid[steps - 1]) * F(x, grid[steps - 1])

        return run
    times, a, b, c = _em_plan(sde, steps, eps)
    draw = noise or (lambda k, shape, dtype: jax.random.normal(k, shape, dtype))

    @jax.jit
    def run(x0, key):
        coef = [jnp.asarray(v, dtype=x0.dtype) for v in (times, a, b, c)]

        def body(k, x):
            z = draw(jax.random.fold_in(key, k), x.shape, x.dtype)
            s = model(x, jnp.broadcast_to(coef[0][k], (x.shape[0],)))
            return coef[1][k] * x + coef[2][k] * s + coef[3][k] * z

        return jax.lax.fori_loop(0, steps, body, x0)

    return run


# -- side by side -----------------------------------------------------------------------
def measure(backend: str, sampler: str, batch: int = 16384, steps: int = 20, repeats: int = 5) -> dict:
    """Best-of-``repeats`` seconds of scorecore, native, native + scorecore RNG (alternating),
    for one backend and sampler; on JAX also one ``sc.sample`` call (see the module docstring)."""
    from scorecore.api import prior_draw
    from scorecore.bench import Bench

    bench = Bench(backend, "mixture-2d", sampler, batch, steps)
    be, sde, model, eps = bench.be, bench.sde, bench.score, bench.eps
    x0 = prior_draw(bench.sde, bench.ctx, be.key(0))
    sc_rng = lambda k, key=be.key(7): be.normal(be.fold_in(key, k), tuple(x0.shape), "float32")  # noqa: E731
    if backend == "jax":
        import jax

        native_run = jax_loop(model, sde, sampler, steps, eps)
        sc_rng_run = jax_loop(model, sde, sampler, steps, eps,
                              noise=lambda k, shape, dtype: be.normal(k, shape, dtype)) if sampler != "heun" else None
        native = lambda: native_run(x0, jax.random.key(1))  # noqa: E731
        with_sc_rng = (lambda: sc_rng_run(x0, jax.random.key(1))) if sc_rng_run else None  # noqa: E731
    else:
        loop = numpy_loop if backend == "numpy" else torch_loop
        native = lambda: loop(model, sde, x0, sampler, steps, eps, 1)  # noqa: E731
        with_sc_rng = (lambda: loop(model, sde, x0, sampler, steps, eps, 1, noise=sc_rng)) if sampler != "heun" else None  # noqa: E731
    cases = {"scorecore": lambda: bench.run(1, x0)[0], "native": native}
    if with_sc_rng:
        cases["native_sc_rng"] = with_sc_rng
    best = {name: float("inf") for name in cases}
    for name, fn in cases.items():  # warm-up (compilation)
        be.block_until_ready(fn())
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            be.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - t0)
    out = dict(backend=backend, sampler=sampler, batch=batch, steps=steps, nfe=bench.run(0)[1], **best)
    out["ratio"] = best["scorecore"] / best["native"]
    out["driver_ratio"] = best["scorecore"] / best["native_sc_rng"] if with_sc_rng else out["ratio"]
    out["rng_ratio"] = best["native_sc_rng"] / best["native"] if with_sc_rng else None
    if backend == "jax":
        out["sample_call"] = bench.sample_seconds()
    return out


def _fmt(v, spec):
    return "—" if v is None else format(v, spec)


def table(rows) -> str:
    lines = [
        "| backend | sampler | NFE | native (s) | scorecore (s) | **scorecore / native** | target | "
        "native + scorecore RNG (s) | driver overhead | batch-invariant RNG cost |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        target = TARGET.get(r["backend"], DEFAULT_TARGET)
        mark = "✓" if r["ratio"] <= target else "✗"
        lines.append(
            f"| {r['backend']} | {r['sampler']} | {r['nfe']} | {r['native']:.3f} | {r['scorecore']:.3f} | "
            f"**{r['ratio']:.3f}** {mark} | {target:.2f} | {_fmt(r.get('native_sc_rng'), '.3f')} | "
            f"{r['driver_ratio']:.3f} | {_fmt(r['rng_ratio'], '.2f')}× |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                   "abstraction_cost.md"))
    args = ap.parse_args(argv)
    pin_threads(args.threads)
    rows = []
    for backend in args.backends.split(","):
        for sampler in SAMPLERS:
            r = measure(backend, sampler, args.batch, args.steps, args.repeats)
            rows.append(r)
            print(f"{backend:6s} {sampler:12s} native {r['native']:.3f}s scorecore {r['scorecore']:.3f}s "
                  f"ratio {r['ratio']:.3f} driver {r['driver_ratio']:.3f} rng {_fmt(r['rng_ratio'], '.2f')}"
                  + (f"  sc.sample call {r['sample_call']:.2f}s" if "sample_call" in r else ""), flush=True)
    text = table(rows)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
