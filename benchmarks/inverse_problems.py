"""Bias of the posterior samplers for y = A x(0) + σ_y n on Gaussian-mixture priors, against exact
posterior samples (issue #14).

For each prior (the 8-ring, a 4-D and the 16-D mixture) and each measurement (``MEASUREMENTS``:
inpainting the first half of the coordinates, compressed sensing with a random A of D/2 rows,
2× super-resolution by block averaging and a 3×3 blur, the last two on the coordinates laid
out as a square image; noiseless and σ_y = 0.1, except the blur, which is invertible and so
noiseless would pin x; y = A x* + σ_y n for a prior draw x*), every method
draws n posterior samples with the exact prior score; the table gives the sliced W₂ to exact
posterior samples (mean over 4 exact sets) over the noise floor (mean over 32 exact pairs of size
n), as mean ± sd over ``--seeds`` independent runs, the NFE (batch model calls; DPS, ΠGDM and TDS
count their vjp as one), and the wall time of one run. The first row of each measurement is the
yardstick: the same ratio for exact posterior sets (16 of them). SW₂ between two exact sets is
heavy-tailed when a posterior has a light mode (the count of points in it moves the distance), so a
single run, or a floor from a few pairs, misreads by ±0.2–0.35 (4-D compressed sensing at σ_y = 0.1:
12 exact sets read 1.32 ± 0.35, up to 2.3, against a 4-pair floor).

* replacement: ``Conditioned("ancestral", Inpainting)`` (Song et al. 2021, App. I); with a mask
  and λ = 1 it *is* the projection of Song et al. 2022, so noisy measurements add the projection
  row with λ = 0.5. Other operators get the projection (``LinearInverse``, λ = 1 noiseless,
  0.5 noisy) in its place.
* DPS: ``DPS("ancestral", ..., zeta)`` (Chung et al. 2022); ΠGDM: ``PiGDM("ddim", eta=1)``.
* TDS: ``TDS(..., particles=K)`` (Wu et al. 2023) on n·K particles, one row per group kept.

    python benchmarks/inverse_problems.py [--n 1000] [--steps 200] [--particles 16,64] [--seeds 4]
        [--priors 4-D] [--measurements inpaint,cs] [--out PATH]

torch backend, float64, one thread. Writes benchmarks/results/inverse_problems.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import scorecore as sc
from scorecore.conditional import DPS, TDS, Conditioned, Inpainting, LinearInverse, PiGDM, operators
from scorecore.metrics import noise_floor, sliced_wasserstein


def mixture_4d():
    """The 4-D mixture of tests/conditional (4 components, seed 4)."""
    rng = np.random.default_rng(4)
    K, D = 4, 4
    means = 1.5 * rng.standard_normal((K, D))
    A = rng.standard_normal((K, D, D))
    return sc.GaussianMixture([0.3, 0.3, 0.2, 0.2], means, A @ np.swapaxes(A, 1, 2) / D + 0.1 * np.eye(D))


PRIORS = {"8-ring": lambda: sc.GaussianMixture.example("8-ring"), "4-D": mixture_4d,
          "16-D": lambda: sc.GaussianMixture.example("16d")}


def _side(D: int):
    """The side of the square image the D coordinates are laid out as (None if D is no square)."""
    side = int(round(D ** 0.5))
    return side if side * side == D and side % 2 == 0 else None


#: name -> (A for dimension D, or None where it does not apply; whether noiseless is posed).
MEASUREMENTS = {
    "inpaint": (lambda D: np.eye(D)[: D // 2], True),
    "cs": (lambda D: operators.compressed_sensing(max(D // 2, 1), D, seed=3), True),
    "superres": (lambda D: operators.block_average(_side(D), _side(D), 2) if _side(D) else None, True),
    "blur": (lambda D: operators.blur(_side(D), _side(D)) if _side(D) else None, False),
}


def exact_sampler(prior, A, y, sigma_y):
    """``draw(n, seed)``: exact samples of p(x | y = A x + σ_y n), full vectors, each component's
    posterior N(μ'_k, Σ'_k) drawn as μ'_k + V √Λ z from Σ'_k's eigendecomposition: noiseless,
    Σ'_k is singular (the affine set A x = y), and components whose weight underflows to 0 (the
    8-ring's far ones) are never drawn — neither a ``GaussianMixture`` admits."""
    w, means, covs = prior._condition(A, y, sigma_y**2)
    roots = []
    for c in covs:
        lam, V = np.linalg.eigh(c)
        roots.append(V * np.sqrt(np.clip(lam, 0.0, None)))

    def draw(n, seed):
        rng = np.random.default_rng(seed)
        k = rng.choice(len(w), size=n, p=w)
        z = rng.standard_normal((n, prior.dim))
        return means[k] + np.einsum("nij,nj->ni", np.stack(roots)[k], z)

    return draw


def distance(x, draw):
    """Mean SW₂ of ``x`` to 4 exact sets of its size."""
    return float(np.mean([sliced_wasserstein(x, draw(len(x), 100 + j)) for j in range(4)]))


def spread(ratios):
    return f"{np.mean(ratios):.2f} ± {np.std(ratios, ddof=1):.2f}" if len(ratios) > 1 else f"{ratios[0]:.2f}"


def methods(name, A, y, sigma_y, steps, Ks):
    rows = []
    if name == "inpaint":
        mask = A.sum(axis=0)
        yfull = A.T @ y
        rows.append(("replacement", Conditioned("ancestral", Inpainting(mask, yfull, sigma_y=sigma_y), steps=steps), 1))
    if name != "inpaint" or sigma_y > 0:
        lam = 0.5 if sigma_y > 0 else 1.0
        rows.append((f"projection λ={lam:g}", Conditioned("ancestral", LinearInverse(A, y, lam=lam, sigma_y=sigma_y),
                                                            steps=steps), 1))
    meas = LinearInverse(A, y, sigma_y=sigma_y)
    rows += [("DPS ζ'=0.3", DPS("ancestral", meas, zeta=0.3, steps=steps), 1),
             ("ΠGDM (DDIM η=1)", PiGDM("ddim", meas, steps=steps, eta=1.0), 1),
             ] + [(f"TDS K={K}", TDS(meas, particles=K, steps=steps), K) for K in Ks]
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--particles", default="16", help="TDS particle counts K, comma-separated")
    ap.add_argument("--seeds", type=int, default=1, help="independent runs per method (mean ± sd)")
    ap.add_argument("--priors", default=",".join(PRIORS))
    ap.add_argument("--measurements", default=",".join(MEASUREMENTS))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "inverse_problems.md"))
    args = ap.parse_args(argv)
    be = sc.get_backend("torch")
    be.set_threads(1)
    sde = sc.VPSDE()
    lines = [f"# Posterior samplers: bias against exact posterior samples (n = {args.n}, {args.steps} steps)", "",
             "SW₂ to exact posterior samples / noise floor (1.0 = as good as exact sampling at this n), NFE, wall",
             f"time (torch CPU, float64, one thread, on a loaded 2-core machine: times are indicative). "
             f"TDS runs n·K particles (K = {args.particles}) and keeps one row per group.",
             "Command: `python benchmarks/inverse_problems.py" + (f" {' '.join(sys.argv[1:])}`" if argv is None else "`"),
             f"SW₂ / floor: mean ± sd over {args.seeds} run(s) (seeds 0 …); the 'exact' row: 16 exact posterior sets.",
             "", "| prior | measurement | σ_y | method | SW₂ / floor | SW₂ | floor | NFE | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    t_all = time.perf_counter()
    for pname in args.priors.split(","):
        prior = PRIORS[pname]()
        D = prior.dim
        x_star = np.asarray(prior.sample(1, seed=7))[0]
        for mname, sigma_y in [(m, s) for m in args.measurements.split(",") for s in (0.0, 0.1)]:
            make_A, noiseless = MEASUREMENTS[mname]
            A = make_A(D)
            if A is None or (sigma_y == 0 and not noiseless):
                continue
            y = A @ x_star + sigma_y * np.random.default_rng(8).standard_normal(A.shape[0])
            draw = exact_sampler(prior, A, y, sigma_y)
            floor = noise_floor(draw, args.n, repeats=32)
            exact = [distance(draw(args.n, 5000 + j), draw) for j in range(16)]
            rows = [("exact posterior sets", exact, "—", "—")]
            for label, smp, K in methods(mname, A, y, sigma_y, args.steps, [int(k) for k in args.particles.split(",")]):
                ds = []
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    x, info = sc.sample(prior.score_model(sde), sde, (args.n * K, D), sampler=smp, backend=be,
                                        dtype="float64", seed=seed, progress=False, return_info=True)
                    wall = time.perf_counter() - t0
                    ds.append(distance(np.asarray(x)[::K], draw))
                rows.append((label, ds, info.nfe, f"{wall:.1f}"))
            for label, ds, nfe, wall in rows:
                row = (f"| {pname} | {mname} | {sigma_y:g} | {label} | {spread(np.array(ds) / floor)} | "
                       f"{np.mean(ds):.4f} | {floor:.4f} | {nfe} | {wall} |")
                print(row, flush=True)
                lines.append(row)
    lines += ["", f"Total run time {time.perf_counter() - t_all:.0f} s."]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
