"""Every sampler, every backend: the NumPy run samples the exact mixture, and every other
backend gives the NumPy run's numbers with portable noise.

Through the public API only: ``sc.sample(..., backend=sc.portable(be), dtype="float64",
return_info=True)``. With portable noise every backend draws NumPy's noise bit for bit, so a
float64 run differs from NumPy's only by the rounding of its elementwise kernels (libm's
``exp``/``log``/``sqrt`` differ in the last bit between NumPy, torch and XLA), which a run
amplifies a little. Two checks split the work:

1. the NumPy run against the oracle, once per configuration: its samples are within 2× the
   noise floor of exact 8-ring samples (mean sliced W₂ over 4 exact sets against the same
   mean between exact sets; ``test_the_oracle_check_can_fail`` shows the check rejects an
   unconverged run). The loop-form oracle samplers of ``scorecore_reference`` (Euler–Maruyama,
   probability-flow Euler, annealed Langevin) are matched on NumPy and array-api-strict in
   ``tests/samplers`` and ``test_conformance.py``; with (2) those checks hold on every backend;
2. each backend against the NumPy run: samples to ``F64_RTOL`` = 1e-10 relative to the
   samples' scale (|x| + max |x|, the model of ``support.tolerance``), the same NFE, and for
   the adaptive solvers the same per-sample accepted and rejected step counts.

Every configuration keeps ``F64_RTOL`` (why the adaptive ones and the Langevin correctors can:
below ``CONFIGS``). Batch 256 and one shape for all, so JAX compiles each run once.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import scorecore as sc
from scorecore.samplers import SAMPLERS
from support.ring import RING, ring_distance
from support.tolerance import F64_RTOL, assert_close

SHAPE, SEED = (256, 2), 1
SDES = {"VE": sc.VESDE(), "VP": sc.VPSDE()}

# id -> (SDE, sample() options). Steps are the fewest at which the NumPy run sits within 2× the
# floor at n = 256 (measured ratios 0.85–1.62; run with -s to print them).
CONFIGS: dict[str, tuple[str, dict]] = {}
for _p in ("euler-maruyama", "reverse-diffusion", "ancestral"):
    for _c in ("ald", "langevin", "langevin-capped", "none"):
        CONFIGS[f"pc-{_p}-{_c}"] = ("VE", dict(sampler="pc", steps=50, predictor=_p, corrector=_c, snr=0.16))
# Corrector-only PC: annealed Langevin by the ald rule, 4 corrector steps per level.
CONFIGS["pc-none-ald"] = ("VE", dict(sampler="pc", steps=50, predictor="none", corrector="ald", n_steps_each=4))
CONFIGS.update({
    "reverse-sde": ("VP", dict(sampler="reverse-sde", steps=100)),
    "euler-maruyama": ("VE", dict(sampler="euler-maruyama", steps=100)),
    "reverse-diffusion": ("VP", dict(sampler="reverse-diffusion", steps=100)),
    "ancestral": ("VE", dict(sampler="ancestral", steps=100)),
    "euler": ("VP", dict(sampler="euler", steps=50)),
    "heun": ("VP", dict(sampler="heun", steps=20)),
    "rk4": ("VP", dict(sampler="rk4", steps=10)),
    "ode": ("VP", dict(sampler="ode", steps=20)),
    "dopri5": ("VP", dict(sampler="dopri5", rtol=1e-4, atol=1e-4)),
    "dopri5_predictive": ("VE", dict(sampler="dopri5_predictive", rtol=1e-4, atol=1e-4)),
    "edm": ("VP", dict(sampler="edm", steps=12)),
    "edm-churn": ("VP", dict(sampler="edm", steps=12, s_churn=5.0)),
    "ddim-eta0": ("VP", dict(sampler="ddim", steps=20, eta=0.0)),
    "ddim-eta1": ("VP", dict(sampler="ddim", steps=20, eta=1.0)),
    "dpmpp_2m": ("VP", dict(sampler="dpmpp_2m", steps=15)),
    "adaptive_sde": ("VP", dict(sampler="adaptive_sde", rtol=0.1, atol=0.1)),
    "ald": ("VE", dict(sampler="ald", steps=10, n_steps_each=10)),
    "langevin": ("VE", dict(sampler="langevin", steps=200, step_size=0.01)),
    "reverse-sde-tree": ("VP", dict(sampler="reverse-sde", steps=100, brownian="tree")),
    "euler_ancestral": ("VE", dict(sampler="euler_ancestral", steps=30)),
    "lms": ("VP", dict(sampler="lms", steps=15)),
    "dpm_2": ("VP", dict(sampler="dpm_2", steps=10)),
    "dpmpp_2s": ("VP", dict(sampler="dpmpp_2s", steps=10)),
    "dpmpp_2s_ancestral": ("VE", dict(sampler="dpmpp_2s_ancestral", steps=15)),
    "dpmpp_2m_sde": ("VP", dict(sampler="dpmpp_2m_sde", steps=20)),
    "dpmpp_3m": ("VP", dict(sampler="dpmpp_3m", steps=15)),
    "dpmpp_3m_sde": ("VE", dict(sampler="dpmpp_3m_sde", steps=20)),
    "unipc": ("VP", dict(sampler="unipc", steps=10)),
    "unipc_bh1": ("VP", dict(sampler="unipc_bh1", steps=10)),
    "deis": ("VP", dict(sampler="deis", steps=10)),
    "dpm_solver": ("VP", dict(sampler="dpm_solver", steps=6)),
    "dpm_solver-2": ("VP", dict(sampler="dpm_solver", steps=8, order=2)),
    "dpm_solver-1": ("VP", dict(sampler="dpm_solver", steps=30, order=1)),
    "dpm_fast": ("VP", dict(sampler="dpm_fast", steps=15)),
    "dpm_fast-eta": ("VE", dict(sampler="dpm_fast", steps=30, eta=1.0)),
    "dpm_adaptive": ("VP", dict(sampler="dpm_adaptive")),
    "dpm_adaptive-batch-eta": ("VE", dict(sampler="dpm_adaptive", error_norm="batch", eta=1.0)),
    "pndm": ("VP", dict(sampler="pndm", steps=6)),
    "plms": ("VE", dict(sampler="plms", steps=6)),
})

# No configuration needs a tolerance wider than F64_RTOL (torch and JAX CPU against NumPy). The
# adaptive SDE solver and DPM-adaptive take step sizes that are multiples of a power of two
# (``step_quantum``), so the last-bit differences of libm do not move their steps or their
# accept/reject decisions (measured 5.6e-14 torch, 8.4e-15 JAX; equal step counts). The Langevin
# correctors, score_sde's batch-mean "langevin" and the per-sample "langevin-capped", measured
# ≤ 1.6e-13.


def _run(cid: str, be):
    sde_name, options = CONFIGS[cid]
    sde = SDES[sde_name]
    x, info = sc.sample(RING.score_model(sde), sde, SHAPE, backend=be, seed=SEED, dtype="float64",
                        progress=False, return_info=True, **options)
    backend = sc.get_backend(be)
    assert x.dtype == backend.dtype("float64"), f"{cid}: samples in {x.dtype}, not float64"
    stats = {k: np.asarray(backend.to_numpy(info.stats[k])) for k in ("accepted", "rejected", "status")
             if k in (info.stats or {})}
    return np.asarray(backend.to_numpy(x), dtype=np.float64), info.nfe, stats


@functools.cache
def numpy_run(cid: str):
    """The NumPy run with portable noise: (samples, NFE, per-sample stats of adaptive solvers)."""
    return _run(cid, sc.portable("numpy"))


def test_every_registered_sampler_is_covered():
    covered = {options["sampler"] for _, options in CONFIGS.values()}
    assert covered == set(SAMPLERS), f"no configuration for {sorted(set(SAMPLERS) - covered)}"


@pytest.mark.parametrize("cid", sorted(CONFIGS))
def test_numpy_run_samples_the_exact_mixture(cid):
    x, nfe, _ = numpy_run(cid)
    assert np.all(np.isfinite(x))
    dist, floor = ring_distance(x)
    print(f"{cid}: SW2 {dist / floor:.2f}× the floor at NFE {nfe}")
    assert dist < 2 * floor, (cid, dist, floor)


def test_the_oracle_check_can_fail():
    # Annealed Langevin with 2 steps per level over 10 levels stops visibly short of p_0
    # (measured 10× the floor at 5 steps per level).
    x = sc.sample(RING.score_model(SDES["VE"]), SDES["VE"], SHAPE, sampler="ald", steps=10, n_steps_each=2,
                  seed=SEED, progress=False)
    dist, floor = ring_distance(np.asarray(x))
    assert dist > 2 * floor, (dist, floor)


@pytest.mark.parametrize("cid", sorted(CONFIGS))
def test_every_backend_gives_the_numpy_run(any_backend, cid):
    want, want_nfe, want_stats = numpy_run(cid)
    if any_backend.name == "numpy":
        # Portable noise on NumPy is NumPy's own noise: the plain run is the same, bit for bit.
        got, nfe, stats = _run(cid, any_backend)
        np.testing.assert_array_equal(got, want)
    else:
        got, nfe, stats = _run(cid, sc.portable(any_backend))
        assert_close(got, want, F64_RTOL, what=f"{cid} on {any_backend.name}")
    assert nfe == want_nfe, f"{cid} on {any_backend.name}: NFE {nfe}, NumPy's {want_nfe}"
    assert stats.keys() == want_stats.keys()
    for k in stats:
        diff = np.abs(stats[k].astype(np.int64) - want_stats[k].astype(np.int64))
        assert diff.max(initial=0) == 0, (
            f"{cid} on {any_backend.name}: {k} differs from NumPy's in {int((diff > 0).sum())} rows, by up to "
            f"{diff.max()}")
