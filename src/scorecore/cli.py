"""The ``scorecore`` command line."""

from __future__ import annotations

import argparse
import sys
import time

SDES = {"ve": "VESDE", "vp": "VPSDE", "subvp": "SubVPSDE"}


def _demo(args) -> int:
    import numpy as np

    import scorecore as sc

    target = sc.GaussianMixture.example(args.target)
    if target.dim != 2:
        raise SystemExit(f"--target must be a 2-D example for the picture, got {args.target!r}")
    sde = getattr(sc, SDES[args.sde])()
    model = target.score_model(sde)
    t0 = time.perf_counter()
    x, info = sc.sample(model, sde, (args.n, 2), sampler="ald", steps=args.levels,
                        n_steps_each=args.steps_each, backend="numpy", seed=args.seed,
                        progress=not args.quiet, return_info=True)
    elapsed = time.perf_counter() - t0
    exact = target.sample(args.n, seed=args.seed + 1)
    sw = sc.metrics.sliced_wasserstein(x, exact)
    floor = sc.metrics.noise_floor(lambda n, s: target.sample(n, seed=s), args.n)
    ed = sc.metrics.energy_distance(x, exact)
    ed_floor = sc.metrics.noise_floor(lambda n, s: target.sample(n, seed=s), args.n, sc.metrics.energy_distance)

    _plot(target, x, args.out, f"annealed Langevin, {sde!r}, NFE={info.nfe}")
    print(f"target        {args.target} (K={target.n_components}, exact score under {sde!r})")
    print(f"sampler       annealed Langevin: {args.levels} levels x {args.steps_each} steps + denoise, NFE = {info.nfe}")
    print(f"samples       {args.n} in {elapsed:.1f} s on backend 'numpy'")
    print(f"sliced W2     {sw:.4f} to exact samples (noise floor {floor:.4f}, ratio {sw / floor:.2f})")
    print(f"energy dist.  {ed:.5f} (noise floor {ed_floor:.5f})")
    print(f"picture       {args.out}")
    return 0


def _plot(target, x, path, title):
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("the demo's picture needs matplotlib: pip install 'scorecore[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.asarray(x)
    lim = float(np.max(np.abs(target.means))) + 2.0
    g = np.linspace(-lim, lim, 300)
    gx, gy = np.meshgrid(g, g)
    logp = target.log_prob(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.35, color="tab:blue", label="samples", rasterized=True)
    levels = np.max(logp) - np.array([12.0, 8.0, 5.0, 3.0, 1.5, 0.5])
    ax.contour(gx, gy, logp, levels=levels, colors="k", linewidths=0.8, linestyles="solid")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", markerscale=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _bench(args) -> int:
    from .bench import BACKENDS, GPU_BACKENDS, nfe_table

    names = args.backends.split(",") if args.backends else [b for b in BACKENDS if b != "jax-eager"]
    if args.gpu:
        names += [b for b in GPU_BACKENDS if b not in names]
    nfe_table(names, model=args.model, batch=args.batch, steps=args.steps, repeats=args.repeats)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scorecore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="annealed Langevin on an analytic Gaussian mixture (NumPy); writes a PNG")
    demo.add_argument("--target", default="8-ring", choices=["8-ring", "5x5-grid"])
    demo.add_argument("--sde", default="ve", choices=sorted(SDES))
    demo.add_argument("--n", type=int, default=5000, help="number of samples")
    demo.add_argument("--levels", type=int, default=100, help="noise levels L")
    demo.add_argument("--steps-each", type=int, default=10, help="Langevin steps T per level")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="demo.png", help="where to write the picture")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("bench", help="NFE/s of the samplers on every installed backend (and a GPU with --gpu)")
    bench.add_argument("--model", default="mixture-2d", choices=["mixture-2d", "mixture-64d", "mlp", "unet"])
    bench.add_argument("--batch", type=int, default=16384)
    bench.add_argument("--steps", type=int, default=20)
    bench.add_argument("--repeats", type=int, default=3, help="best of this many warm runs")
    bench.add_argument("--backends", default=None, help="comma-separated (default: numpy,torch,torch-compile,jax,cupy)")
    bench.add_argument("--gpu", action="store_true", help="add torch-cuda, torch-compile-cuda, jax-gpu, cupy")
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
