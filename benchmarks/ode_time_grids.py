"""Fixed-step probability-flow solvers in t (Euler, Heun, RK4) on three time grids at NFE ≤ 20.

8-ring, exact score, float64, n = 2,000 per set, 3 prior draws: SW₂ over the averaged noise
floor (tests/support/ring.py) and the RMS over samples of ‖x − x*‖, x* the exact flow's end
from the same x(T) (RK4 with 2,000 log-SNR steps; the distance to RK4 with 1,000 ρ-spaced steps
is printed as its own error). Table: benchmarks/results/ode_time_grids.md.

    PYTHONPATH=src:backends:reference:tests python benchmarks/ode_time_grids.py
"""

from __future__ import annotations

import numpy as np
from support.ring import RING, ring_distance

import scorecore as sc

N_SAMPLES, SEEDS, BUDGETS = 2000, (0, 1, 2), (5, 10, 20)
SCHEDULES = ("uniform", "logsnr", "karras")
STEPS = {"euler": lambda b: b, "heun": lambda b: (b + 1) // 2, "rk4": lambda b: max(b // 4, 1)}


def main():
    for sname, sde in (("VP", sc.VPSDE()), ("VE", sc.VESDE())):
        model = RING.score_model(sde)
        x_T = {s: np.random.default_rng(s).standard_normal((N_SAMPLES, 2)) * sde.prior_std for s in SEEDS}

        def run(seed, **kw):
            return sc.sample(model, sde, (N_SAMPLES, 2), x_init=x_T[seed], progress=False, return_info=True, **kw)

        exact = {s: run(s, sampler="rk4", steps=2000, schedule="logsnr")[0] for s in SEEDS}
        check = run(SEEDS[0], sampler="rk4", steps=1000, schedule="karras")[0]
        print(f"{sname}: reference error {np.sqrt(np.mean(np.sum((check - exact[SEEDS[0]]) ** 2, 1))):.1e}")
        for method, steps in STEPS.items():
            for budget in BUDGETS:
                cells = []
                for schedule in SCHEDULES:
                    ratios, errs = [], []
                    for s in SEEDS:
                        x, info = run(s, sampler=method, steps=steps(budget), schedule=schedule)
                        dist, floor = ring_distance(np.asarray(x))
                        ratios.append(dist / floor)
                        errs.append(np.sqrt(np.mean(np.sum((x - exact[s]) ** 2, 1))))
                    cells.append(f"{np.mean(ratios):.3g}× / {np.mean(errs):.3g}")
                print(f"| {sname} | {method} | {info.nfe} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
