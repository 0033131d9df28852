"""scorecore's samplers beside k-diffusion's and diffusers', at NFE 5, 10, 20 and 50, on the same
exact mixture denoisers (float64), from the same x(T): three metrics side by side.

* **solver error** (deterministic runs only): RMS over samples of ‖x̂ − x̂*‖, x̂* the exact
  probability flow from the same x̂(T) = x(T)/m(T) to the level σ_end where the run stops (σ(eps),
  or 0 after a final denoising step). x̂* is GBS8 extrapolation (order 8, :mod:`scorecore.samplers.
  extrapolation`) of dx̂/du = x̂ − D(x̂; e^u) in u = log σ (Karras et al. 2022's flow, whose field
  is smooth in log σ down to σ → 0; the run to "0" stops at σ = 1e-9, where the rest of the flow
  moves x̂ by O(σ²)). Its own error, against the same solve with twice the steps, is printed under
  each table.
* **Δ ± sd**: Δ = mean log p_0(x̂) − E_{p_0}[log p_0], the expectation over 200,000 exact samples;
  sd is the standard deviation of the same Δ over ``--sets`` exact sample sets of the run's n.
  A run samples as well as exact sampling at this n when |Δ| ≤ 2 sd (✓). Unlike sliced W₂ this
  sees a sampler's error at n = 2,000 in 2-D (issue 17: diffusers' DDIM at 5 NFE on the 8-ring).
* **SW₂/floor**: sliced W₂ (256 projections) to exact sets, mean over 4, over the mean of the
  same metric between 4 pairs of exact sets.

Targets: the 8-ring, the 16-D six-component mixture with full covariances ("16d", as in
accuracy_vs_nfe.py) and a 3-D Gaussian ("gauss", whose flow is also known in closed form: the
GBS8 reference is checked against it) under the VP and VE SDEs. Rows:

* scorecore: every line of OURS (``label: (registry name, options)``; the steps for a budget are
  the most whose program spends at most the budget) and of ADAPTIVE (tolerances; a run sits in
  the first column whose budget it meets). A registry name in neither, nor in SKIPPED with its
  reason, is printed as missing.
* k-diffusion: its samplers on Karras levels (ρ = 7) from σ(T) to σ(eps) then 0, as its users
  run them (dpm_fast and dpm_adaptive on [σ(eps), σ(T)]).
* diffusers: its schedulers with their distinct levels replaced by float64 levels of the SDE
  (benchmarks/peer_drivers.py), spaced as each one spaces its own (uniform in t for DDIM and
  PNDM, log-SNR for the DPM-Solver/UniPC/DEIS family, Karras for the k-diffusion ports).

A run is deterministic when two seeds give the same samples (checked on 8 rows).

    PYTHONPATH=src:backends:reference python benchmarks/peers.py [--quick] [--out benchmarks/results/peers.md]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
from peer_drivers import Denoiser, diffusers_steps, load_kdiffusion, run_diffusers, run_kdiffusion

import scorecore as sc
from scorecore.metrics import noise_floor, sliced_wasserstein
from scorecore.samplers import SAMPLERS, Context, FixedProgram, ProbabilityFlowODE, make_sampler
from scorecore.samplers.ode import integrate
from scorecore.samplers.sigma_space import karras_sigmas, sigma_of_time, sigma_steps, time_of_sigma

BUDGETS = (5, 10, 20, 50)
VERDICT_BUDGETS = (5, 10, 20)
SIGMA_ZERO = 1e-9  # where the reference flow "to 0" stops
GBS8_STEPS_PER_UNIT = 4  # GBS8 steps per unit of log σ

#: label -> (registry name, options). One line per row; the steps come from the budget. An option
#: given as a function of (case, steps) is computed for each run (explicit levels, say).
OURS = {
    "ddim (uniform t)": ("ddim", {}),
    "ddim (logsnr)": ("ddim", {"schedule": "logsnr"}),
    "ddim η=1": ("ddim", {"eta": 1.0}),
    "dpmpp_2m (logsnr)": ("dpmpp_2m", {}),
    "dpmpp_2m (karras)": ("dpmpp_2m", {"schedule": "karras"}),
    "edm (heun)": ("edm", {}),
    "edm S_churn=10": ("edm", {"s_churn": 10.0}),
    "euler_ancestral": ("euler_ancestral", {}),
    "lms": ("lms", {}),
    "lms (logsnr)": ("lms", {"schedule": "logsnr"}),
    "dpm_2": ("dpm_2", {}),
    "dpmpp_2s": ("dpmpp_2s", {}),
    "dpmpp_2s (logsnr)": ("dpmpp_2s", {"schedule": "logsnr"}),
    "dpmpp_2s_ancestral": ("dpmpp_2s_ancestral", {}),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {}),
    "dpmpp_2m_sde η=0": ("dpmpp_2m_sde", {"eta": 0.0}),
    "dpmpp_3m": ("dpmpp_3m", {}),
    "dpmpp_3m (logsnr)": ("dpmpp_3m", {"schedule": "logsnr"}),
    "dpmpp_3m taylor (logsnr)": ("dpmpp_3m", {"schedule": "logsnr", "taylor": True}),
    "dpmpp_3m_sde": ("dpmpp_3m_sde", {}),
    "unipc bh2 p=2 (logsnr)": ("unipc", {}),
    "unipc bh2 p=3 (logsnr)": ("unipc", {"order": 3}),
    "unipc bh2 p=3 (karras)": ("unipc", {"order": 3, "schedule": "karras"}),
    "unipc bh1 p=3 (logsnr)": ("unipc_bh1", {"order": 3}),
    "deis tAB-3 (logsnr)": ("deis", {}),
    "deis tAB-3 (karras)": ("deis", {"schedule": "karras"}),
    "deis tAB-3 (logsnr, to σ(eps))": ("deis", {"sigmas": lambda c, N: to_eps(c, "logsnr", N)}),
    "deis tAB-2 (logsnr, to σ(eps))": ("deis", {"order": 2, "sigmas": lambda c, N: to_eps(c, "logsnr", N)}),
    "unipc bh2 p=2 (logsnr, to σ(eps))": ("unipc", {"sigmas": lambda c, N: to_eps(c, "logsnr", N)}),
    "unipc bh2 p=3 (logsnr, to σ(eps))": ("unipc", {"order": 3, "sigmas": lambda c, N: to_eps(c, "logsnr", N)}),
    "dpm_solver-2 (karras)": ("dpm_solver", {"order": 2}),
    "dpm_solver-3 (karras)": ("dpm_solver", {}),
    "dpm_solver-3 (logsnr)": ("dpm_solver", {"schedule": "logsnr"}),
    "dpm_fast": ("dpm_fast", {}),
    "pndm (prk warm-up)": ("pndm", {}),
    "plms (heun warm-up)": ("plms", {}),
    "plms (logsnr)": ("plms", {"schedule": "logsnr"}),
    "plms (uniform t)": ("plms", {"schedule": "uniform"}),
    "plms (uniform t, to σ(eps))": ("plms", {"sigmas": lambda c, N: to_eps(c, "uniform", N)}),
    "ode euler": ("euler", {}),
    "ode heun": ("heun", {}),
    "ode rk4": ("rk4", {}),
    "pc (reverse diffusion + ALD)": ("pc", {}),
    "reverse-sde (Euler–Maruyama)": ("reverse-sde", {}),
    "reverse-diffusion": ("reverse-diffusion", {}),
    "ancestral": ("ancestral", {}),
    "ald (1 step/level)": ("ald", {"n_steps_each": 1}),
}
#: label -> (registry name, [options per run]) for the adaptive samplers.
ADAPTIVE = {
    "dopri5": ("dopri5", [{"rtol": r, "atol": r} for r in (0.5, 1e-1, 1e-2)]),
    "dopri5_predictive": ("dopri5_predictive", [{"rtol": r, "atol": r} for r in (0.5, 1e-1, 1e-2)]),
    "adaptive_sde": ("adaptive_sde", [{"rtol": r, "atol": a} for r, a in ((1.0, 0.5), (0.5, 0.2), (0.2, 0.1))]),
    "dpm_adaptive": ("dpm_adaptive", [{"rtol": r, "atol": 0.05} for r in (1.0, 0.5, 0.2)] + [{}]),
}
#: registry names not run, and why.
SKIPPED = {
    "langevin": "Langevin MCMC at one fixed time, not a sampler of p_0 from the prior",
    "euler-maruyama": "the same sampler as reverse-sde",
    "ode": "the same sampler as rk4",
}


def one(nfe):
    return nfe


def two(nfe):
    return (nfe + 1) // 2  # 2N − 1 evaluations: the last step, into σ = 0, is first order


#: label -> (k-diffusion function, options, steps for a budget)
KDIFF = {
    "sample_euler": ("sample_euler", {}, one),
    "sample_euler_ancestral": ("sample_euler_ancestral", {}, one),
    "sample_heun": ("sample_heun", {}, two),
    "sample_lms": ("sample_lms", {}, one),
    "sample_dpm_2": ("sample_dpm_2", {}, two),
    "sample_dpmpp_2s_ancestral": ("sample_dpmpp_2s_ancestral", {}, two),
    "sample_dpmpp_2s_ancestral η=0": ("sample_dpmpp_2s_ancestral", {"eta": 0.0}, two),
    "sample_dpmpp_2m": ("sample_dpmpp_2m", {}, one),
    "sample_dpmpp_sde": ("sample_dpmpp_sde", {}, two),
    "sample_dpmpp_sde η=0": ("sample_dpmpp_sde", {"eta": 0.0}, two),
    "sample_dpmpp_2m_sde": ("sample_dpmpp_2m_sde", {}, one),
    "sample_dpmpp_2m_sde η=0": ("sample_dpmpp_2m_sde", {"eta": 0.0}, one),
    "sample_dpmpp_3m_sde": ("sample_dpmpp_3m_sde", {}, one),
    "sample_dpmpp_3m_sde η=0": ("sample_dpmpp_3m_sde", {"eta": 0.0}, one),
    "sample_dpm_fast": ("sample_dpm_fast", {}, one),
}
KDIFF_ADAPTIVE = {"sample_dpm_adaptive": ("sample_dpm_adaptive",
                                          [{"rtol": r, "atol": 0.05} for r in (1.0, 0.5, 0.2)] + [{}])}

#: label -> (diffusers scheduler, options, level spacing)
DIFFUSERS = {
    "DDIM": ("DDIMScheduler", {"clip_sample": False}, "uniform"),
    "DDIM η=1": ("DDIMScheduler", {"clip_sample": False}, "uniform"),
    "PNDM (PLMS)": ("PNDMScheduler", {"skip_prk_steps": True}, "uniform"),
    "DPMSolverMultistep 2M": ("DPMSolverMultistepScheduler", {}, "logsnr"),
    "DPMSolverMultistep 3M": ("DPMSolverMultistepScheduler", {"solver_order": 3}, "logsnr"),
    "DPMSolverMultistep SDE-2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, "logsnr"),
    "DPMSolverSinglestep 2": ("DPMSolverSinglestepScheduler", {}, "logsnr"),
    "DPMSolverSinglestep 3": ("DPMSolverSinglestepScheduler", {"solver_order": 3}, "logsnr"),
    "UniPC bh2 p=2": ("UniPCMultistepScheduler", {}, "logsnr"),
    "UniPC bh2 p=3": ("UniPCMultistepScheduler", {"solver_order": 3}, "logsnr"),
    "DEIS tAB-2": ("DEISMultistepScheduler", {}, "logsnr"),  # diffusers' default solver_order
    "DEIS tAB-3": ("DEISMultistepScheduler", {"solver_order": 3}, "logsnr"),
    "Euler": ("EulerDiscreteScheduler", {}, "karras"),
    "EulerAncestral": ("EulerAncestralDiscreteScheduler", {}, "karras"),
    "Heun": ("HeunDiscreteScheduler", {}, "karras"),
    "LMS": ("LMSDiscreteScheduler", {}, "karras"),
}
#: DDIM's η is an argument of its step, not of the scheduler.
STEP_ETA = {"DDIM η=1": 1.0}


class Case:
    """One target × SDE: x(T), the exact flow's ends, the Δ statistics and the SW₂ floor."""

    def __init__(self, tname, sname, n, sets):
        self.tname, self.sname = tname, sname
        self.target = gauss_target() if tname == "gauss" else sc.GaussianMixture.example(tname)
        self.sde = sc.VPSDE() if sname == "VP" else sc.VESDE()
        self.eps = sc.api.default_eps(self.sde)
        self.model = self.target.score_model(self.sde)
        self.sig_T, self.sig_eps = sigma_of_time(self.sde, self.sde.T), sigma_of_time(self.sde, self.eps)
        self.m_T = float(self.sde.marginal(self.sde.T)[0])
        self.n, self.d = n, self.target.dim
        self.x_T = self.sde.prior_std * np.random.default_rng(0).standard_normal((n, self.d))
        self.xh_T = self.x_T / self.m_T
        self.den = Denoiser(self.target)
        self._flow = {}
        self.E = float(np.mean(self.log_p(self.target.sample(200_000, seed=77))))
        exact_deltas = [self.delta(self.target.sample(n, seed=900 + j)) for j in range(sets)]
        self.sd = float(np.std(exact_deltas, ddof=1))
        self.refs = [self.target.sample(n, seed=500 + j) for j in range(4)]
        self.floor = noise_floor(lambda k, seed: self.target.sample(k, seed=seed), n, repeats=4)

    def log_p(self, x):
        return np.asarray(self.target.log_prob(x), dtype=np.float64)

    def delta(self, x):
        return float(np.mean(self.log_p(x))) - self.E

    def flow(self, sigma_end, steps_factor=1):
        """x̂* at σ_end: GBS8 in u = log σ, from σ(eps) where σ_end is below it, else from σ(T); cached."""
        key = (round(sigma_end, 14), steps_factor)
        if key not in self._flow:
            below = sigma_end < self.sig_eps * (1 - 1e-12)
            start, y0 = (self.sig_eps, self.flow(self.sig_eps, steps_factor)) if below else (self.sig_T, self.xh_T)
            u0, u1 = math.log(start), math.log(max(sigma_end, SIGMA_ZERO))
            steps = max(1, math.ceil(GBS8_STEPS_PER_UNIT * (u0 - u1))) * steps_factor

            def F(y, u):
                return y - self.den(y, np.exp(u))

            self._flow[key] = np.asarray(integrate(F, y0, u0, u1, method="gbs8", steps=steps)[0])
        return self._flow[key]

    def reference_note(self):
        gaps = [rms(self.flow(s) - self.flow(s, 2)) for s in (self.sig_eps, 0.0)]
        note = (f"x̂*: GBS8 in log σ, {GBS8_STEPS_PER_UNIT} steps per unit; against twice the steps "
                f"{gaps[0]:.1e} (to σ(eps) = {self.sig_eps:.3g}), {gaps[1]:.1e} (to 0) RMS")
        if self.tname == "gauss":
            note += f"; against the closed-form flow {rms(self.flow(0.0) - gauss_flow_sigma(self, 0.0)):.1e}"
        return note + "."

    def measure(self, xh, nfe, sigma_end, deterministic):
        """(solver error or None, Δ, SW₂/floor, nfe) of a run's samples x̂."""
        if not np.all(np.isfinite(xh)) or np.abs(xh).max() > 1e6:
            return (math.inf if deterministic else None), math.inf, math.inf, nfe
        err = rms(xh - self.flow(sigma_end)) if deterministic else None
        sw = float(np.mean([sliced_wasserstein(xh, r) for r in self.refs])) / self.floor
        return err, self.delta(xh), sw, nfe


MU_G, LAM_G = np.array([1.0, -0.5, 2.0]), np.array([0.3, 1.0, 0.05]) ** 2


def gauss_target():
    return sc.GaussianMixture(np.array([1.0]), MU_G[None], np.diag(LAM_G)[None])


def gauss_flow_sigma(case, sigma):
    """x̂(σ) = μ + √(λ + σ²)/√(λ + σ_T²) (x̂_T − μ): the flow of N(μ, diag λ) in σ."""
    return MU_G + np.sqrt((LAM_G + sigma**2) / (LAM_G + case.sig_T**2)) * (case.xh_T - MU_G)


def rms(e):
    return float(np.sqrt(np.mean(np.sum(e**2, axis=1))))


# -- the three libraries' runs: each returns (x̂, nfe, σ_end) ------------------------------------

def to_eps(case, spacing, steps):
    """``steps`` steps on levels from σ(T) to σ(eps), with no final step into σ = 0."""
    return tuple(sigma_steps(case.sde, spacing, steps + 1, case.sig_T, case.sig_eps))


def resolved(case, opts, steps):
    return {k: (v(case, steps) if callable(v) else v) for k, v in opts.items()}


def scorecore_program(case, name, opts, steps):
    smp = make_sampler(name, None if "sigmas" in opts else steps, **resolved(case, opts, steps))
    ctx = Context(sc.get_backend("numpy"), np.float64, (case.n, case.d))
    return smp, smp.program(case.model, case.sde, ctx, float(case.eps))


def scorecore_steps(case, name, opts, budget):
    """The most steps whose program spends at most ``budget`` evaluations (None: none does)."""
    for steps in range(budget, 0, -1):
        try:
            _, prog = scorecore_program(case, name, opts, steps)
        except ValueError:
            continue
        if isinstance(prog, FixedProgram) and prog.nfe <= budget:
            return steps
    return None


def scorecore_end(case, smp):
    """σ where a scorecore run stops: the last of its σ levels where it has them; else σ(eps) for
    the ODE solvers and the samplers told not to denoise, 0 for the rest (a final denoising step)."""
    levels = smp.levels(case.sde, case.eps) if hasattr(smp, "levels") else None
    if isinstance(levels, list) and all(isinstance(v, float) for v in levels):
        return levels[-1]
    return case.sig_eps if isinstance(smp, ProbabilityFlowODE) or getattr(smp, "denoise", True) is False else 0.0


def run_ours(case, name, opts, steps, seed, rows=None):
    x_T = case.x_T if rows is None else case.x_T[:rows]
    steps, opts = (None if "sigmas" in opts else steps), resolved(case, opts, steps)
    x, info = sc.sample(case.model, case.sde, x_T.shape, sampler=name, steps=steps, x_init=x_T, seed=seed,
                        progress=False, return_info=True, **opts)
    s_end = scorecore_end(case, make_sampler(name, steps, **opts))
    m_end = 1.0 if s_end == 0.0 else float(case.sde.marginal(time_of_sigma(case.sde, s_end))[0])
    return np.asarray(x) / m_end, info.nfe, s_end


def karras_levels(case):
    return lambda N: karras_sigmas(case.sig_T, case.sig_eps, N) + [0.0] if N > 1 else [case.sig_T, 0.0]


def spaced_levels(case, spacing):
    return lambda M: (sigma_steps(case.sde, spacing, M, case.sig_T, case.sig_eps) if M > 1 else [case.sig_T]) + [0.0]


def guarded(fn):
    """A run's result, or None where it raises: numbers, not crashes, in the table."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except (sc.NonFiniteError, FloatingPointError, RuntimeError, ZeroDivisionError) as exc:
        return exc


def row_cells(case, budgets, run, steps_for):
    """The cells of one row: ``run(steps, seed, rows)`` → (x̂, nfe, σ_end); ``steps_for(budget)``."""
    cells, deterministic = [], None
    for b in budgets:
        steps = steps_for(b)
        if steps is None:
            cells.append(None)
            continue
        if deterministic is None:
            probe = [guarded(lambda s=s: run(steps, s, 8)) for s in (0, 1)]
            deterministic = all(isinstance(p, tuple) for p in probe) and np.array_equal(probe[0][0], probe[1][0])
        out = guarded(lambda: run(steps, 0, None))
        cells.append(case.measure(*out, deterministic) if isinstance(out, tuple) else
                     ((math.inf if deterministic else None), math.inf, math.inf, None))
    return cells, bool(deterministic)


def adaptive_cells(case, budgets, variants, run):
    """Adaptive runs at several tolerances: each in the first column whose budget it meets."""
    cells, det = [None] * len(budgets), True
    for opts in variants:
        out = guarded(lambda: run(opts, 0, None))
        if not isinstance(out, tuple):
            continue
        probe = [guarded(lambda s=s: run(opts, s, 8)) for s in (0, 1)]
        det = det and all(isinstance(p, tuple) for p in probe) and np.array_equal(probe[0][0], probe[1][0])
        col = next((i for i, b in enumerate(budgets) if out[1] <= b), None)
        if col is not None and cells[col] is None:
            cells[col] = case.measure(*out, det)
    return cells, det


def all_rows(case, budgets, kd, diffusers):
    exact = (None, case.delta(case.flow(0.0)), case.measure(case.flow(0.0), 0, 0.0, False)[2], None)
    rows = {"exact flow x̂*(0) from the same x(T)": ([exact] * len(budgets), True)}
    for label, (name, opts) in OURS.items():
        rows["sc: " + label] = row_cells(
            case, budgets, lambda steps, seed, n, name=name, opts=opts: run_ours(case, name, opts, steps, seed, n),
            lambda b, name=name, opts=opts: scorecore_steps(case, name, opts, b))
    for label, (name, variants) in ADAPTIVE.items():
        rows["sc: " + label] = adaptive_cells(
            case, budgets, variants, lambda o, seed, n, name=name: run_ours(case, name, o, None, seed, n))
    if kd is not None:
        lv = karras_levels(case)
        for label, (fn, opts, steps) in KDIFF.items():
            rows["k: " + label] = row_cells(
                case, budgets, lambda N, seed, n, fn=fn, opts=opts: run_kdiffusion(
                    kd, fn, opts, N, case.den, case.xh_T[:n], lv, seed), steps)
        for label, (fn, variants) in KDIFF_ADAPTIVE.items():
            rows["k: " + label] = adaptive_cells(
                case, budgets, variants, lambda o, seed, n, fn=fn: run_kdiffusion(
                    kd, fn, o, None, case.den, case.xh_T[:n], lv, seed))
    if diffusers is not None:
        for label, (cls_name, kw, spacing) in DIFFUSERS.items():
            cls = getattr(diffusers, cls_name)
            rows["d: " + label] = row_cells(
                case, budgets, lambda N, seed, n, cls=cls, kw=kw, sp=spacing, lab=label: run_diffusers(
                    cls, kw, N, case.den, case.xh_T[:n], spaced_levels(case, sp), seed, STEP_ETA.get(lab, 0.0)),
                lambda b, cls=cls, kw=kw: diffusers_steps(cls, kw, b))
    return rows


# -- tables and the verdict ---------------------------------------------------------------------

def fmt(v):
    if v is None:
        return "—"
    if not math.isfinite(v):
        return "∞"
    return f"{v:.2g}" if abs(v) < 0.01 else f"{v:.3g}"


def table(case, budgets, rows):
    best = [min((r[0][i][0] for r in rows.values() if r[0][i] and r[0][i][0] is not None), default=None)
            for i in range(len(budgets))]
    out = ["| sampler | " + " | ".join(f"NFE {b}" for b in budgets) + " |",
           "| --- | " + " | ".join("---:" for _ in budgets) + " |"]
    for label, (cells, det) in rows.items():
        txt = []
        for i, c in enumerate(cells):
            if c is None:
                txt.append("—")
                continue
            err, delta, sw, nfe = c
            e = fmt(err)
            if err is not None and best[i] is not None and err <= best[i] * (1 + 1e-9):
                e = f"**{e}**"
            ok = " ✓" if abs(delta) <= 2 * case.sd else ""
            at = f" @{nfe}" if nfe is not None and nfe != budgets[i] else ""
            txt.append(f"{e} · {fmt(delta)}{ok} · {fmt(sw)}×{at}")
        out.append(f"| {label}{'' if det else ' (stoch.)'} | " + " | ".join(txt) + " |")
    return out


def verdict(case, budgets, rows):
    """The issue's criterion on one case, per budget: (lines, {budget: met})."""
    lines, met = [], {}

    def best_err(prefix, i):
        cands = [(r[0][i][0], lab) for lab, r in rows.items() if lab.startswith(prefix) and r[0][i]
                 and r[0][i][0] is not None]
        return min(cands, default=(math.inf, None))

    def first_exact(prefix, stays=False):
        """The first budget at which a row of the library has |Δ| ≤ 2 sd (with ``stays``: and keeps
        it at every larger budget, so that a Δ crossing zero on its way does not count)."""
        within = {lab: [bool(c) and abs(c[1]) <= 2 * case.sd for c in r[0]] for lab, r in rows.items()
                  if lab.startswith(prefix)}
        for i, b in enumerate(budgets):
            wins = [lab for lab, ok in within.items() if (all(ok[i:]) if stays else ok[i])]
            if wins:
                return b, wins[0]
        return None, None

    def first_peer(stays):
        found = [first_exact(p, stays) for p in peers]
        b = min((b for b, _ in found if b is not None), default=None)
        return b, next((w for fb, w in found if fb == b and b is not None), None)

    peers = ("k: ", "d: ")
    ours_b, ours_w = first_exact("sc: ")
    peer_b, peer_w = first_peer(False)
    (ours_s, ours_sw), (peer_s, peer_sw) = first_exact("sc: ", True), first_peer(True)
    for i, b in enumerate(budgets):
        if b not in VERDICT_BUDGETS:
            continue
        e_ours, w_ours = best_err("sc: ", i)
        e_peer, w_peer = min((best_err(p, i) for p in peers), key=lambda c: c[0])
        err_ok = e_ours <= e_peer * (1 + 1e-9)
        delta_ok = ours_b is not None and (peer_b is None or ours_b <= peer_b)
        met[b] = err_ok and delta_ok
        lines.append(f"| {case.tname}, {case.sname} | {b} | {'met' if met[b] else 'NOT met'} | "
                     f"{fmt(e_ours)} ({w_ours}) vs {fmt(e_peer)} ({w_peer}): ×{e_ours / e_peer:.2f} | "
                     f"{ours_b or 'none'} ({ours_w}) vs {peer_b or 'none'} ({peer_w}) | "
                     f"{ours_s or 'none'} ({ours_sw}) vs {peer_s or 'none'} ({peer_sw}) |")
    return lines, met


def missing_registry_names():
    listed = {name for name, _ in OURS.values()} | {name for name, _ in ADAPTIVE.values()} | set(SKIPPED)
    return sorted(set(SAMPLERS) - listed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples per run (8-ring, 16d)")
    parser.add_argument("--sets", type=int, default=20, help="exact sample sets for Δ's standard deviation")
    parser.add_argument("--quick", action="store_true", help="n = 400, 10 sets, NFE 5/10/20, no gauss")
    parser.add_argument("--out", type=Path, default=None, help="write the tables here (markdown)")
    args = parser.parse_args(argv)
    n, sets = (400, 10) if args.quick else (args.n, args.sets)
    budgets = VERDICT_BUDGETS if args.quick else BUDGETS
    targets = ("8-ring", "16d") if args.quick else ("8-ring", "16d", "gauss")
    kd, why = load_kdiffusion()
    try:
        import diffusers

        diffusers.utils.logging.set_verbosity_error()  # its notes on changed configs, once per scheduler built
    except ImportError as exc:
        diffusers, why_d = None, str(exc)
    t0 = time.time()
    body, verdicts, all_met = [], [], []
    for tname in targets:
        for sname in ("VP", "VE"):
            case = Case(tname, sname, 500 if tname == "gauss" else n, sets)
            rows = all_rows(case, budgets, kd, diffusers)
            body += [f"## {tname}, {sname}", "",
                     f"n = {case.n}; E[log p_0] = {case.E:.4f}; sd of Δ over {sets} exact sets = {case.sd:.3g} "
                     f"(✓: |Δ| ≤ {2 * case.sd:.3g}); SW₂ floor {case.floor:.3g}. {case.reference_note()}", "",
                     *table(case, budgets, rows), ""]
            if tname != "gauss":
                v, met = verdict(case, budgets, rows)
                verdicts += v
                all_met += list(met.values())
            print(f"{time.time() - t0:6.0f}s {tname} {sname}", flush=True)
    missing = missing_registry_names()
    head = [
        "# Peers side by side: solver error, Δ log p_0 and sliced W₂ at NFE " + ", ".join(map(str, budgets)),
        "",
        f"Generated by `benchmarks/peers.py{' --quick' if args.quick else ''}` (float64, exact denoisers, "
        f"same x(T); its docstring gives the set-up) in {time.time() - t0:.0f} s on a loaded 2-core machine. "
        "Cell: **solver error** against the exact flow from the same x(T) (deterministic rows; bold: "
        "best of the column) · **Δ** = mean log p_0 − E log p_0 (✓: within 2 sd of exact sampling) · "
        "**SW₂/floor**. '@k': the run spent k evaluations; '—': the budget is out of reach; "
        "'(stoch.)': a stochastic row (no solver error). sc: scorecore, k: k-diffusion 0.1.1.post1, "
        "d: diffusers 0.42.",
        "",
    ]
    if kd is None:
        head += [f"k-diffusion not run: {why}", ""]
    if diffusers is None:
        head += [f"diffusers not run: {why_d}", ""]
    if missing:
        head += ["Registry samplers not in the table (add a line to OURS or SKIPPED): " + ", ".join(missing), ""]
    tail = ["## Verdict (issue 17's done-when)", "",
            "Per budget and case: scorecore's best deterministic solver error at or below the best peer's, "
            "and scorecore's first budget with |Δ| ≤ 2 sd at or below the peers' first.", "",
            "| case | NFE | criterion | best solver error: scorecore vs peers (ratio) "
            "| first NFE with \\|Δ\\| ≤ 2 sd: scorecore vs peers | first NFE from which one row stays "
            "within 2 sd (not in the criterion) |",
            "| --- | ---: | --- | --- | --- | --- |", *verdicts, "",
            f"Met in {sum(all_met)} of {len(all_met)} (case, budget) pairs."]
    text = "\n".join(head + body + tail) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
