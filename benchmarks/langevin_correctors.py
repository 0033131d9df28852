"""PC's Langevin correctors on the 8-ring: SW₂ over the noise floor, n = 2,000, 3 seeds.

Reverse diffusion + one corrector step per step (NFE = 2N), snr = 0.16 (score_sde's), VP and
VE, N = 100 and 500. Rows: score_sde's batch-mean rule ("langevin"), the per-sample rule with
its ratio ‖z‖/‖s‖ capped at κ s(t) ("langevin-capped", κ = 2 by default; κ = 1, 4 beside it),
the per-sample rule uncapped (κ = 1e100) and the annealed rule ("ald").
Table: benchmarks/results/langevin_correctors.md.

    PYTHONPATH=src:backends:reference:tests python benchmarks/langevin_correctors.py
"""

from __future__ import annotations

import numpy as np
from support.ring import RING, ring_distance

import scorecore as sc
from scorecore.samplers.correctors import CappedLangevinCorrector

CORRECTORS = {"langevin": "langevin", "langevin-capped (κ = 2)": "langevin-capped",
              "capped, κ = 1": CappedLangevinCorrector(cap=1.0), "capped, κ = 4": CappedLangevinCorrector(cap=4.0),
              "per-sample, uncapped": CappedLangevinCorrector(cap=1e100), "ald": "ald"}


def main(n=2000, seeds=(0, 1, 2)):
    for sname, sde in (("VP", sc.VPSDE()), ("VE", sc.VESDE())):
        for steps in (100, 500):
            for label, corrector in CORRECTORS.items():
                ratios = []
                for seed in seeds:
                    x = sc.sample(RING.score_model(sde), sde, (n, 2), sampler="pc", steps=steps, corrector=corrector,
                                  snr=0.16, seed=seed, progress=False)
                    dist, floor = ring_distance(np.asarray(x)) if np.all(np.isfinite(x)) else (np.inf, 1.0)
                    ratios.append(dist / floor)
                print(f"| {sname} | {steps} | {label} | " + ", ".join(f"{r:.2f}" for r in ratios)
                      + f" | {np.mean(ratios):.2f}× |", flush=True)


if __name__ == "__main__":
    main()
