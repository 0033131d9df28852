"""Inverse problems on the 8×8 digits: replacement, projection and DPS side by side.

    PYTHONPATH=src:backends python benchmarks/digits_inverse.py [--cache out/controllable_digits]

Loads (or trains) the score MLP and the judge of ``controllable_digits.py`` and, for held-out
digits, reports the fraction of reconstructions that the independent judge (logistic regression
on the clean training digits) assigns to the true digit, with its binomial standard error:

* inpainting, bottom and right half masked: replacement (``Conditioned("pc", Inpainting)``,
  the README's 63 % / 73 % on 10 digits × 3) and DPS (Chung et al. 2022) on ancestral
  sampling; projection for a mask *is* replacement (``LinearInverse`` with rows of the
  identity), so it has no row of its own here;
* 2× super-resolution (y = 2×2 block means, 16 numbers): projection
  (``Conditioned("pc", LinearInverse(A, y))``) and DPS.

Writes benchmarks/results/digits_inverse.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import scorecore as sc
from controllable_digits import ImageScore, load_models
from scorecore.conditional import DPS, Conditioned, Inpainting, LinearInverse, block_average


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="out/controllable_digits")
    p.add_argument("--score-steps", type=int, default=4000)
    p.add_argument("--classifier-steps", type=int, default=2000)
    p.add_argument("--sampler-steps", type=int, default=300)
    p.add_argument("--per-class", type=int, default=10, help="held-out digits per class")
    p.add_argument("--zeta", default="0.3,1.0", help="DPS step sizes ζ' to try")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "digits_inverse.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sde, be = sc.VPSDE(), sc.get_backend("torch")
    _, test, net, _, judge = load_models(args.cache, sde, args.score_steps, args.classifier_steps, args.seed)
    model = ImageScore(net, sde)
    pick = np.concatenate([np.nonzero(test.labels == c)[0][: args.per_class] for c in range(10)])
    truth, labels = test.x[pick], test.labels[pick]
    n, steps = len(pick), args.sampler_steps
    zetas = [float(z) for z in args.zeta.split(",")]

    masks = {}
    for name, sl in (("bottom", (slice(None), slice(0, 4), slice(None))), ("right", (slice(None), slice(None), slice(0, 4)))):
        masks[name] = np.zeros((1, 8, 8))
        masks[name][sl] = 1.0  # known: the top (left) half
    A_sr = block_average(8, 8, 2)
    y_sr = truth.reshape(n, 64) @ A_sr.T
    problems = {f"inpaint {k} half": Inpainting(m, truth) for k, m in masks.items()}
    problems["2× super-resolution"] = LinearInverse(A_sr, y_sr)

    lines = ["# Inverse problems on the 8×8 digits: replacement / projection vs DPS", "",
             f"{n} held-out digits ({args.per_class} per class), one reconstruction each, {steps} sampler steps, "
             f"seed {args.seed}. Judge: logistic regression on the clean training digits (test accuracy "
             f"{judge.score(test.x.reshape(len(test), -1), test.labels):.3f}). `hit` = fraction the judge assigns to "
             "the true digit ± binomial standard error; RMSE over the unmeasured pixels (inpainting) or all pixels "
             "(super-resolution), pixels in [−1, 1]. 2-core machine shared with other jobs: seconds are indicative.",
             "", f"Command: `python benchmarks/digits_inverse.py --score-steps {args.score_steps} --classifier-steps "
             f"{args.classifier_steps} --sampler-steps {steps} --per-class {args.per_class} --zeta {args.zeta}` (the "
             "models of `controllable_digits.py` with the same steps: the same weights when its --cache is shared).", "",
             "| problem | method | hit | RMSE | NFE | s |", "| --- | --- | --- | --- | --- | --- |"]
    for prob, meas in problems.items():
        first = "replacement (PC)" if isinstance(meas, Inpainting) else "projection (PC)"
        methods = [(first, Conditioned("pc", meas, steps=steps))]
        methods += [(f"DPS ζ'={z:g} (ancestral)", DPS("ancestral", meas, zeta=z, steps=steps)) for z in zetas]
        for name, sampler in methods:
            t0 = time.perf_counter()
            x, info = sc.sample(model, sde, (n, 1, 8, 8), sampler=sampler, backend=be, seed=args.seed + 1,
                                progress=False, return_info=True)
            secs = time.perf_counter() - t0
            x = x.clamp(-1, 1).detach().numpy()
            hit = float(np.mean(judge.predict(x.reshape(n, -1)) == labels))
            if isinstance(meas, Inpainting):
                miss = masks[prob.split()[1]] == 0
                rmse = float(np.sqrt(np.mean(((x - truth) ** 2)[:, miss])))
            else:
                rmse = float(np.sqrt(np.mean((x - truth) ** 2)))
            lines.append(f"| {prob} | {name} | {hit:.0%} ± {np.sqrt(hit * (1 - hit) / n):.0%} | {rmse:.3f} | "
                         f"{info.nfe} | {secs:.0f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
