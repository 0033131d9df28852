"""scorecore's torch samplers against k-diffusion's on the same exact denoiser, side by side.

    PYTHONPATH=src:backends:reference python benchmarks/peers_speed.py [--batch 16384] [--steps 20]
        [--repeats 7] [--profile]
    ... peers_speed.py --jax    (JAX repeated sc.sample calls)
    ... peers_speed.py --rng    (the batch-invariant normal generator against torch.randn)

On torch CPU, one thread, float32: the 8-ring's exact score under the VP SDE, given to
scorecore as the score s(x, t) and to k-diffusion as its EDM denoiser
``D(x̂; σ) = x̂ + σ² m s(m x̂, t(σ))`` — written by hand (Tweedie, t(σ) on the host: the
sampler-overhead comparison) and through :func:`scorecore.models.denoiser_from_score` — on the
same levels (EDM: scorecore's ρ = 7 levels σ_0..σ_{N−1}, 0; DPM-Solver++(2M): σ of scorecore's
uniform-λ times) from the same x(T). It times, alternating in one process, best of
``--repeats``: ``sc.sample(..., sampler="edm")`` vs ``sample_heun``, ``"dpmpp_2m"`` vs
``sample_dpmpp_2m``, and ``"euler_ancestral"`` vs ``sample_euler_ancestral`` — once with a
``noise_sampler`` that draws scorecore's batch-invariant noise (the hand-written loop with that
noise on: the same samples), once with its own ``torch.randn`` — checks that each pair agrees
(max |Δx|, x̂-space; the ``torch.randn`` rows differ by their noise), and prints the ratios.
``--profile`` prints cProfile's top entries of one scorecore run of each sampler (where the
per-step host time goes).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup(threads: int):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT / "tests" / "samplers"))
    from kdiffusion_stub import load_sampling

    kd, why = load_sampling()
    if kd is None:
        raise SystemExit(f"k-diffusion is needed: {why}")
    return torch, kd


class LinearScore:
    """s(x, t) = −x / (m(t)² + s(t)²): the exact score of N(0, I) data, nearly free to
    evaluate, so that the samplers' own per-step work is what is timed."""

    event_shape = (2,)

    def __init__(self, sde):
        self.sde = sde

    def __call__(self, x, t):
        m, s = self.sde.marginal(t)
        return -x / (m * m + s * s)[:, None]


def cases(sc, torch, kd, n: int, steps: int):
    """(label, scorecore run, k-diffusion run, m(T)) per sampler, from one x(T)."""
    from scorecore.samplers import make_sampler
    from scorecore.models.parametrization import time_of_sigma
    from scorecore.samplers.sigma_space import sigma_of_time

    be = sc.get_backend("torch")
    sde = sc.VPSDE()
    score = sc.targets.GaussianMixture.example("8-ring").score_model(sde)
    adapter = sc.models.denoiser_from_score(score, sde)
    ones = torch.ones((n,), dtype=torch.float32)
    linear = LinearScore(sde)

    def tweedie(x_hat, sigma, score=score):
        """D(x̂; σ) = (x + s² s_θ(x, t)) / m at x = m x̂, t = t(σ): the denoiser written by hand,
        σ (one level per call, as k-diffusion passes it) converted to t on the host."""
        t = min(time_of_sigma(sde, float(sigma[0])), sde.T)  # float32 σ(T) may round above T
        m, s = (float(v) for v in sde.marginal(t))
        x = m * x_hat
        return (x + (s * s) * score(x, t * ones)) / m

    eps = sc.api.default_eps(sde)
    m_T = float(sde.marginal(sde.T)[0])
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn((n, 2), generator=gen, dtype=torch.float32) * float(sde.prior_std)
    edm = make_sampler("edm", steps)
    sig_edm = torch.tensor(edm.levels(sde, eps) + [0.0], dtype=torch.float32)
    dpm = make_sampler("dpmpp_2m", steps)
    ts = dpm.coefficients(sde, eps)[0]
    sig_dpm = torch.tensor([sigma_of_time(sde, t) for t in ts], dtype=torch.float32)
    m_eps = float(sde.marginal(ts[-1])[0])

    ea = make_sampler("euler_ancestral", steps)
    sig_ea = torch.tensor(ea.levels(sde, eps), dtype=torch.float32)

    def portable_noise():
        """k-diffusion's ``noise_sampler`` drawing scorecore's batch-invariant z_k: step k's key
        fold_in(key(seed 0), k), row i from (key, i) — the same bits as ``sc.sample``'s run."""
        key, k = be.key(0), iter(range(steps))
        return lambda sigma, sigma_next: be.normal(be.fold_in(key, next(k)), (n, 2), torch.float32)

    def ours(name, model=score):
        return lambda: sc.sample(model, sde, (n, 2), name, steps, backend=be, x_init=x_T, progress=False)

    out = []
    for dname, D, model in (("8-ring, Tweedie by hand", tweedie, score),
                            ("8-ring, denoiser_from_score", adapter, score),
                            ("linear score (per-step overhead)", lambda x, s: tweedie(x, s, linear), linear)):
        out += [
            (f"EDM / Heun, {dname}", ours("edm", model),
             lambda D=D: kd.sample_heun(D, x_T / m_T, sig_edm, disable=True), 1.0),
            (f"DPM-Solver++(2M), {dname}", ours("dpmpp_2m", model),
             lambda D=D: kd.sample_dpmpp_2m(D, x_T / m_T, sig_dpm, disable=True), m_eps),
            (f"Euler ancestral, {dname}; k-diffusion's loop with scorecore's noise", ours("euler_ancestral", model),
             lambda D=D: kd.sample_euler_ancestral(D, x_T / m_T, sig_ea, disable=True,
                                                   noise_sampler=portable_noise()), 1.0),
            (f"Euler ancestral, {dname}; k-diffusion with torch.randn (other noise)", ours("euler_ancestral", model),
             lambda D=D: kd.sample_euler_ancestral(D, x_T / m_T, sig_ea, disable=True), 1.0),
        ]
    return out


def best_of(fns, repeats: int):
    """Best wall time of each function, run alternately ``repeats`` times (after one warm-up)."""
    for f in fns:
        f()
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def jax_repeat(n: int = 4096, steps: int = 20, repeats: int = 30):
    """JAX: wall time of ``sc.sample`` (8-ring, DPM-Solver++(2M)) on its first call, again,
    with a new seed, and of the same run jitted once through ``sc.sample_fn`` and kept; the
    last three alternate, best of ``repeats`` (a run is ~7 ms: one pass is at the machine's mercy)."""
    import jax

    import scorecore as sc

    sde = sc.VPSDE()
    target = sc.targets.GaussianMixture.example("8-ring")
    be = sc.get_backend("jax")

    def call(seed):
        return lambda: jax.block_until_ready(sc.sample(target.score_model(sde), sde, (n, 2), "dpmpp_2m", steps,
                                                       backend=be, seed=seed, progress=False))

    t0 = time.perf_counter()
    call(0)()
    first = time.perf_counter() - t0
    f = jax.jit(sc.sample_fn(target.score_model(sde), sde, (n, 2), "dpmpp_2m", steps, backend=be))
    key = be.key(0)
    seeds = iter(range(1, 10 * repeats))
    again, seeded, warm = best_of([call(0), lambda: call(next(seeds))(), lambda: jax.block_until_ready(f(key))],
                                  repeats)
    print(f"JAX sc.sample: first {first:.3f} s, second {again:.4f} s, new seed {seeded:.4f} s, "
          f"kept compiled run {warm:.4f} s; second / kept {again / warm:.2f}, new seed / kept {seeded / warm:.2f}")
    return first, again, seeded, warm


def rng_cost(n: int, repeats: int):
    """µs per (n, D) float32 normal draw: the eager counter generator, the fused one
    (``TorchBackend(compile=True)``) and ``torch.randn``, alternating, best of ``repeats``."""
    import torch
    from scorecore_torch import TorchBackend

    eager, fused = TorchBackend(), TorchBackend(compile=True)
    k = eager.key(0)
    for d in (2, 16):
        assert torch.equal(fused.normal(k, (n, d), offset=3), eager.normal(k, (n, d), offset=3))
        t_e, t_f, t_r = best_of([lambda: eager.normal(k, (n, d), offset=3), lambda: fused.normal(k, (n, d), offset=3),
                                 lambda: torch.randn(n, d)], repeats)
        print(f"| {n:,} × {d} | {t_e * 1e6:.0f} | {t_f * 1e6:.0f} | {t_r * 1e6:.0f} | {t_e / t_r:.2f} | "
              f"{t_f / t_r:.2f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--jax", action="store_true", help="only the JAX repeated-call timings")
    ap.add_argument("--rng", action="store_true", help="only the normal generator's cost")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "peers_speed.md"))
    args = ap.parse_args(argv)
    if args.jax or args.rng:
        setup(args.threads)
        return jax_repeat() if args.jax else rng_cost(args.batch, max(args.repeats, 30))
    torch, kd = setup(args.threads)
    import scorecore as sc

    rows = []
    for label, ours, theirs, m_end in cases(sc, torch, kd, args.batch, args.steps):
        diff = float((ours() / m_end - theirs()).abs().max())
        if args.profile and "overhead" in label:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(ours)
            print(f"--- {label}: scorecore, cProfile (tottime)")
            pstats.Stats(prof).sort_stats("tottime").print_stats(14)
        t_ours, t_kd = best_of([ours, theirs], args.repeats)
        rows.append((label, t_ours, t_kd, t_ours / t_kd, diff))
        print(f"{label}: scorecore {t_ours * 1e3:.1f} ms, k-diffusion {t_kd * 1e3:.1f} ms, "
              f"ratio {t_ours / t_kd:.3f}, max |Δx̂| {diff:.1e}")
    lines = [f"| {args.label} | {lb} | {a * 1e3:.1f} | {b * 1e3:.1f} | {r:.3f} | {d:.1e} |" for lb, a, b, r, d in rows]
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
